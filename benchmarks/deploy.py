"""Deployment: dense vs pruned vs ONNX Runtime fp32 vs int8, measured side by side.

For each model, five variants are timed in one interleaved loop per batch size (batch 1 and 8;
medians; ratios vs dense PyTorch eager measured in the same loop):

* dense eager / pruned eager — PyTorch (scikit-learn for the forest);
* pruned ONNX-ORT fp32 — ``prunekit.deploy.export_onnx`` (BatchNorm folded, verified in ORT);
* pruned + int8 ORT / dense int8 ORT — ``prunekit.deploy.quantize``: static QDQ per-channel
  (calibrated on training batches) for the CNNs, dynamic for MiniLM; trees have no int8 path
  (the dense forest is shown in ORT fp32 instead).

Models: MnistCNN (MNIST-5k) and DigitsCNN (digits), trained, structurally pruned
(``prunekit.nn.structured.prune``, ratio 0.5) and recovered by distillation from the dense model
(``prunekit.nn.distill.finetune``, 10 epochs) — accuracy on the test split; torchvision resnet18 and
mobilenet_v2 at 64 px (random init, ratio 0.5) — latency only; the bundled all-MiniLM-L6-v2
(``prune_transformer`` 25 % of heads and FFN neurons + embedding distillation on stdlib
docstrings) — mean embedding cosine to dense eager on the built-in sentences (held out);
a 500-tree random forest on digits pruned to 100 trees (``prune_ensemble`` margin_distance) —
accuracy. Last, ``to_sparse_inference`` on a 90 %-sparse MLP (1024-4096-4096-1000), batch 1
and 64, against the same MLP dense.

Exports use the TorchScript exporter (``exporter="torchscript"``) to keep the run short; the
default ``"auto"`` tries the torch.export-based exporter first. Everything runs on
``--threads`` threads (default 1) for PyTorch and onnxruntime alike.

``--quick``: DigitsCNN (2 epochs), a 50-tree forest and a 1024-wide sparse MLP only.

Usage: python benchmarks/deploy.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from prunekit._io import atomic_write_json  # noqa: E402
from prunekit.deploy import export_onnx, quantize, to_sparse_inference  # noqa: E402
from prunekit.deploy._common import median_times, ort_session  # noqa: E402
from prunekit.metrics import markdown_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "deploy.json"
VARIANTS = ("dense eager", "pruned eager", "pruned ORT fp32", "pruned int8 ORT", "dense int8 ORT")
Runner = Callable[[Any], Any]


def log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def state_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def eager(model: nn.Module) -> Runner:
    model.eval()

    def run(x: Any) -> np.ndarray:
        with torch.inference_mode():
            out = model(**x) if isinstance(x, dict) else model(x)
        out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "last_hidden_state", out)
        return out.numpy()

    return run


def ort(path: Path) -> Runner:
    sess = ort_session(path)
    names = [i.name for i in sess.get_inputs()]

    def run(x: Any) -> np.ndarray:
        if isinstance(x, dict):
            feeds = {n: x[n].numpy() for n in names}
        else:
            feeds = {names[0]: x.numpy() if isinstance(x, torch.Tensor) else x}
        return sess.run(None, feeds)[0]

    return run


def time_all(runners: dict[str, Runner], inputs: dict[int, Any], reps: int) -> dict[int, dict]:
    """Interleaved median seconds of every runner, per batch size."""
    return {b: median_times({k: (lambda f=f, x=x: f(x)) for k, f in runners.items()},
                            reps=reps, warmup=2, budget_s=40.0)
            for b, x in inputs.items()}


def rows_for(model: str, runners: dict[str, Runner], sizes: dict[str, int | None],
             metric: str | None, scores: dict[str, float | None], times: dict[int, dict]
             ) -> list[dict[str, Any]]:
    rows = []
    for v in runners:
        row: dict[str, Any] = {"model": model, "variant": v, "bytes": sizes.get(v)}
        for b, t in times.items():
            row[f"b{b}_ms"] = t[v] * 1e3
            row[f"b{b}_x"] = t["dense eager"] / t[v]
        row["metric"] = metric
        row["value"] = scores.get(v)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- CNNs


def cnn_case(name: str, quick: bool, reps: int, work: Path) -> list[dict[str, Any]]:
    from prunekit.data import load_dataset
    from prunekit.nn.distill import finetune
    from prunekit.nn.models import DigitsCNN, MnistCNN
    from prunekit.nn.structured import prune
    from prunekit.nn.training import train_classifier

    ds_name, cls = {"DigitsCNN": ("digits", DigitsCNN), "MnistCNN": ("mnist", MnistCNN)}[name]
    ds = load_dataset(ds_name, seed=0)
    train, _, test = ds.loaders(64, images=True, seed=0)
    torch.manual_seed(0)
    dense = cls()
    epochs, ft = (2, 1) if quick else (10, 10)
    train_classifier(dense, train, epochs=epochs, lr=1e-3)
    dense.eval()
    shape = ds.image_shape
    x1 = torch.as_tensor(ds.images(ds.X_test[:1]), dtype=torch.float32)
    pruned, _ = prune(dense, x1, ratio=0.5, criterion="l2")
    torch.manual_seed(1)
    finetune(pruned, ds.loaders(64, images=True, seed=1)[0], epochs=ft, lr=1e-3, teacher=dense)
    pruned.eval()
    runners, sizes = _onnx_variants(name, dense, pruned, x1, work, calibration=train,
                                    mode="static")
    scores = {v: accuracy(f, test) for v, f in runners.items()}
    x8 = torch.as_tensor(ds.images(ds.X_test[:8]), dtype=torch.float32)
    times = time_all(runners, {1: x1, 8: x8}, reps)
    log(f"{name}: done ({shape})")
    return rows_for(f"{name} ({ds_name})", runners, sizes, "accuracy", scores, times)


def _onnx_variants(name: str, dense: nn.Module, pruned: nn.Module, example: Any, work: Path, *,
                   calibration: Any, mode: str) -> tuple[dict[str, Runner], dict[str, int]]:
    paths = {}
    for key, m in (("dense", dense), ("pruned", pruned)):
        paths[key] = work / f"{name}.{key}.onnx"
        export_onnx(m, example, paths[key], exporter="torchscript", atol=1e-3, rtol=1e-3)
        paths[f"{key}8"] = work / f"{name}.{key}.int8.onnx"
        quantize(paths[key], paths[f"{key}8"], mode,
                 calibration=calibration if mode == "static" else None,
                 max_calibration_batches=16)
    runners = {"dense eager": eager(dense), "pruned eager": eager(pruned),
               "pruned ORT fp32": ort(paths["pruned"]), "pruned int8 ORT": ort(paths["pruned8"]),
               "dense int8 ORT": ort(paths["dense8"])}
    sizes = {"dense eager": state_bytes(dense), "pruned eager": state_bytes(pruned),
             "pruned ORT fp32": paths["pruned"].stat().st_size,
             "pruned int8 ORT": paths["pruned8"].stat().st_size,
             "dense int8 ORT": paths["dense8"].stat().st_size}
    return runners, sizes


def accuracy(run: Runner, loader: Any) -> float:
    hits = total = 0
    for xb, yb in loader:
        hits += int((run(xb).argmax(1) == yb.numpy()).sum())
        total += len(yb)
    return hits / total


# --------------------------------------------------------------------------- torchvision


def vision_case(name: str, quick: bool, reps: int, work: Path) -> list[dict[str, Any]]:
    from prunekit._compat import import_torchvision
    from prunekit.nn.structured import prune

    tv = import_torchvision()
    torch.manual_seed(0)
    dense = getattr(tv.models, name)(num_classes=10).eval()
    x1 = torch.randn(1, 3, 64, 64)
    pruned, _ = prune(dense, x1, ratio=0.5, criterion="l2")
    pruned.eval()
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(8, 3, 64, 64, generator=g) for _ in range(2 if quick else 8)]
    runners, sizes = _onnx_variants(name, dense, pruned, x1, work, calibration=calib,
                                    mode="static")
    times = time_all(runners, {1: x1, 8: torch.randn(8, 3, 64, 64)}, reps)
    log(f"{name}: done")
    return rows_for(f"{name} (64 px, random init)", runners, sizes, None, {}, times)


# --------------------------------------------------------------------------- MiniLM


def minilm_case(quick: bool, reps: int, work: Path) -> list[dict[str, Any]]:
    from prunekit.nn.distill import distill_hidden_states
    from prunekit.nn.oneshot.corpus import builtin_sentences, stdlib_paragraphs
    from prunekit.nn.oneshot.minilm import load_minilm
    from prunekit.nn.structured.transformers import prune_transformer

    dense, tok = load_minilm()
    pruned, _ = prune_transformer(dense, head_ratio=0.25, ffn_ratio=0.25, criterion="l2")
    steps, bs = (3, 8) if quick else (60, 16)
    paras = stdlib_paragraphs(steps * bs, seed=0)
    batches = [dict(tok(paras[i:i + bs], padding=True, truncation=True, max_length=64,
                        return_tensors="pt")) for i in range(0, len(paras), bs)]
    torch.manual_seed(0)
    distill_hidden_states(pruned, dense, batches, steps=steps, lr=5e-4, loss="cosine")
    pruned.eval()
    sents = builtin_sentences()
    enc = dict(tok(sents, padding=True, truncation=True, max_length=64, return_tensors="pt"))
    example = {k: v[:2] for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    runners, sizes = _onnx_variants("minilm", dense, pruned, example, work, calibration=None,
                                    mode="dynamic")

    def embed(run: Runner) -> np.ndarray:
        out = []
        for i in range(0, len(sents), 16):
            b = {k: v[i:i + 16] for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            states = run(b)
            mask = b["attention_mask"].numpy()[..., None].astype(np.float32)
            pooled = (states * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out)

    ref = embed(runners["dense eager"])
    scores = {v: float(np.mean((embed(f) * ref).sum(1))) for v, f in runners.items()}
    lat = dict(tok(sents[:8], padding="max_length", truncation=True, max_length=64,
                   return_tensors="pt"))
    lat = {k: v for k, v in lat.items() if k in ("input_ids", "attention_mask")}
    times = time_all(runners, {1: {k: v[:1] for k, v in lat.items()}, 8: lat}, reps)
    log("MiniLM: done")
    return rows_for(f"MiniLM-L6 ({len(sents)} held-out sentences, 64 tokens)", runners, sizes,
                    "cosine", scores, times)


# --------------------------------------------------------------------------- forest


def forest_case(quick: bool, reps: int, work: Path) -> list[dict[str, Any]]:
    from sklearn.ensemble import RandomForestClassifier

    from prunekit.data import load_dataset
    from prunekit.ensembles import prune_ensemble

    ds = load_dataset("digits", seed=0)
    n = 50 if quick else 500
    dense = RandomForestClassifier(n, random_state=0).fit(ds.X_train, ds.y_train)
    pruned = prune_ensemble(dense, method="margin_distance", size=0.2, X_val=ds.X_val,
                            y_val=ds.y_val)
    paths = {k: work / f"forest.{k}.onnx" for k in ("dense", "pruned")}
    reports = {k: export_onnx(m, ds.X_val, paths[k]) for k, m in
               (("dense", dense), ("pruned", pruned))}
    runners = {"dense eager": lambda x: dense.predict_proba(x),
               "pruned eager": lambda x: pruned.predict_proba(x),
               "pruned ORT fp32": _forest_ort(paths["pruned"]),
               "dense ORT fp32": _forest_ort(paths["dense"])}
    sizes = {"dense eager": len(_pickle(dense)), "pruned eager": len(_pickle(pruned)),
             "pruned ORT fp32": paths["pruned"].stat().st_size,
             "dense ORT fp32": paths["dense"].stat().st_size}
    X = ds.X_test.astype(np.float32)
    scores = {v: float(np.mean(f(X).argmax(1) == ds.y_test)) for v, f in runners.items()}
    times = time_all(runners, {1: X[:1], 8: X[:8]}, reps)
    log(f"forest: done (threshold float32 round-ups: dense "
        f"{reports['dense'].threshold_mismatches}, pruned {reports['pruned'].threshold_mismatches};"
        f" prediction mismatches {reports['pruned'].prediction_mismatches})")
    rows = rows_for(f"random forest {n} -> {len(pruned.estimators_)} trees (digits)", runners,
                    sizes, "accuracy", scores, times)
    rows[0]["threshold_roundups"] = reports["dense"].threshold_mismatches
    return rows


def _forest_ort(path: Path) -> Runner:
    sess = ort_session(path)
    return lambda x: sess.run(None, {"X": np.asarray(x, dtype=np.float32)})[1]


def _pickle(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj)


# --------------------------------------------------------------------------- sparse MLP


def sparse_case(quick: bool, reps: int) -> list[dict[str, Any]]:
    from prunekit.nn import prune_model

    torch.manual_seed(0)
    width = 1024 if quick else 4096
    mlp = nn.Sequential(nn.Linear(1024, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                        nn.Linear(width, 1000)).eval()
    prune_model(mlp, 0.9, scope="layer", prune_first_last=True)
    rows = []
    for b in (1, 64):
        x = torch.randn(b, 1024)
        sparse, rep = to_sparse_inference(mlp, x, reps=reps)
        with torch.inference_mode():
            t = median_times({"dense": lambda x=x: mlp(x), "sparse": lambda s=sparse, x=x: s(x)},
                             reps=reps, budget_s=30.0)
        rows.append({"batch": b, "dense_ms": t["dense"] * 1e3, "sparse_ms": t["sparse"] * 1e3,
                     "speedup": t["dense"] / t["sparse"], "max_abs_diff": rep.max_abs_diff,
                     "layers": ", ".join(f"{c.name}:{c.kernel} {c.gain:.2f}x"
                                         for c in rep.layers)})
    log("sparse MLP: done")
    return rows


# --------------------------------------------------------------------------- main


def goals(rows: list[dict[str, Any]], sparse: list[dict[str, Any]]) -> list[str]:
    out = []

    def get(model_prefix: str, variant: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["model"].startswith(model_prefix)
                     and r["variant"] == variant), None)

    for cnn in ("MnistCNN", "DigitsCNN"):
        d, q, f = (get(cnn, v) for v in ("dense eager", "pruned int8 ORT", "pruned ORT fp32"))
        if d and q and f:
            drop = (d["value"] - q["value"]) * 100
            ok = q["b8_x"] >= 5 and drop <= 1
            out.append(f"- {cnn}: structured-pruned + int8 ORT is {q['b8_x']:.2f}x dense eager "
                       f"at batch 8 (goal >= 5x), accuracy drop {drop:.2f} points (goal <= 1): "
                       f"{'met' if ok else 'NOT met'} (pruned fp32 ORT: {f['b8_x']:.2f}x, "
                       f"drop {(d['value'] - f['value']) * 100:.2f} points)")
    d = get("MiniLM", "dense int8 ORT")
    if d:
        ok = d["b8_x"] >= 1.8 and d["value"] >= 0.98
        out.append(f"- MiniLM dynamic int8 (dense, ORT): {d['b8_x']:.2f}x at batch 8, "
                   f"{d['b1_x']:.2f}x at batch 1 (goal >= 1.8x), cosine {d['value']:.4f} "
                   f"(goal >= 0.98): {'met' if ok else 'NOT met'}")
    if sparse:
        ok = all(r["speedup"] >= 1.5 for r in sparse)
        s = ", ".join(f"{r['speedup']:.2f}x at batch {r['batch']}" for r in sparse)
        out.append(f"- sparse inference, 90 %-sparse MLP: {s} (goal >= 1.5x each): "
                   f"{'met' if ok else 'NOT met'}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings, seconds-long smoke run")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reps = 3 if args.quick else 30
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cnns = ["DigitsCNN"] if args.quick else ["MnistCNN", "DigitsCNN"]
        for name in cnns:
            rows += cnn_case(name, args.quick, reps, work)
        for name in ([] if args.quick else ["resnet18", "mobilenet_v2"]):
            rows += vision_case(name, args.quick, reps, work)
        try:
            if not args.quick:
                rows += minilm_case(args.quick, max(reps // 2, 3), work)
        except ImportError as exc:  # the transformers extra is missing
            log(f"MiniLM skipped: {exc}")
        rows += forest_case(args.quick, reps, work)
    sparse = sparse_case(args.quick, max(reps // 2, 3))
    elapsed = time.perf_counter() - t0

    lines = [f"## Deployment benchmark ({'quick' if args.quick else 'full'} run, "
             f"{args.threads} thread(s), {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__})", "",
             "Latency: interleaved medians per batch; `x` = dense eager time / variant time "
             "(higher is faster). bytes: torch.save state_dict (eager), pickle (sklearn), "
             "ONNX file (ORT).", ""]
    table = [{k: (f"{v:.4f}" if k == "value" and isinstance(v, float) else v)
              for k, v in r.items() if k != "threshold_roundups"} for r in rows]
    lines.append(markdown_table(table, right=("bytes", "b1_ms", "b1_x", "b8_ms", "b8_x",
                                              "value")))
    lines += ["", "### Sparse inference (to_sparse_inference vs dense eager, same MLP)", "",
              markdown_table(sparse, right=("dense_ms", "sparse_ms", "speedup")), "",
              "### Goals (issue 12)", ""]
    lines += goals(rows, sparse)
    lines.append(f"\nTotal run time {elapsed:.0f} s.")
    text = "\n".join(lines)
    print(text)
    atomic_write_json(RESULTS if not args.quick else RESULTS.with_name("deploy_quick.json"),
                      {"rows": rows, "sparse": sparse, "threads": args.threads,
                       "quick": args.quick, "elapsed_s": elapsed})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
