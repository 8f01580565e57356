"""Weight-sparsity benchmark: criteria x schedules x sparsities on the two showcase networks.

LeNet-300-100 on the offline MNIST-5k and the digits CNN, each trained dense once per seed
(the baseline of every row, measured in the same run), then pruned to 50/80/90/95 %:

* one-shot + fine-tuning for magnitude, Taylor, OBD, OBS (WoodFisher) and random scores;
* gradual magnitude pruning (AGP, Zhu & Gupta 2017) inside the same fine-tuning budget;
* lottery-ticket IMP (Frankle & Carbin 2019), 3 rounds of full training from the init;
* 2:4 semi-structured magnitude pruning (one-shot + fine-tuning) as an extra row.

Every method prunes all Linear/Conv weights (``prune_first_last=True``, the literature's
convention) with one global threshold (N:M: per layer). Reported: test accuracy (mean over
seeds) and its change against the dense model, one-shot accuracy before fine-tuning, the
compact file size as a fraction of the dense float32 state-dict bytes, and wall time (noisy on a
shared machine). ``--quick`` runs a seconds-long smoke test.

    python benchmarks/nn_sparsity.py [--quick] [--seeds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from prunekit._io import atomic_write_json
from prunekit.metrics import markdown_table
from prunekit.nn.sparsity_cli import (
    compact_ratio,
    load_showcase,
    run_sparsity_experiment,
    train_dense,
)

FULL = {
    "lenet": {"dense_epochs": 8, "finetune_epochs": 4},
    "cnn": {"dense_epochs": 15, "finetune_epochs": 6},
}
SPARSITIES = (0.5, 0.8, 0.9, 0.95)
ONESHOT_CRITERIA = ("magnitude", "taylor", "obd", "obs", "random")


def plan(quick: bool) -> list[tuple[str, str, str, float]]:
    """(method, criterion, pattern, sparsity) of every run, per model."""
    if quick:
        return [
            ("oneshot", "magnitude", "unstructured", 0.9),
            ("oneshot", "random", "unstructured", 0.9),
            ("agp", "magnitude", "unstructured", 0.9),
        ]
    runs = []
    for s in SPARSITIES:
        runs += [("oneshot", c, "unstructured", s) for c in ONESHOT_CRITERIA]
        runs.append(("agp", "magnitude", "unstructured", s))
        runs.append(("imp", "magnitude", "unstructured", s))
    runs.append(("oneshot", "magnitude", "2:4", 0.5))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per configuration (mean reported)")
    ap.add_argument("--models", default="lenet,cnn", help="comma-separated: lenet, cnn")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1 is fastest "
        "on a busy shared machine: idle threads spin-wait)",
    )
    ap.add_argument("--out", default="benchmarks/results/nn_sparsity.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    dense_rows: list[dict[str, Any]] = []
    for model_name in models:
        cfg = dict(FULL[model_name])
        if args.quick:
            cfg = {"dense_epochs": 1, "finetune_epochs": 1}
        per_config: dict[tuple[str, str, str, float], list[dict[str, Any]]] = {}
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            show = load_showcase(model_name, seed=seed)
            train_dense(show, cfg["dense_epochs"])
            dense_model = show.make_model()
            dense_model.load_state_dict(show.dense_state)
            _, dense_ratio = compact_ratio(dense_model)
            dense_rows.append(
                {
                    "model": model_name,
                    "seed": seed,
                    "accuracy": show.dense_accuracy,
                    "seconds": show.dense_seconds,
                    "file_ratio": dense_ratio,
                }
            )
            print(
                f"[{model_name} seed {seed}] dense acc {show.dense_accuracy:.4f} "
                f"({show.dense_seconds:.1f}s)",
                file=sys.stderr,
            )
            for method, criterion, pattern, sparsity in plan(args.quick):
                torch.manual_seed(seed)
                row = run_sparsity_experiment(
                    show,
                    sparsity=sparsity,
                    criterion=criterion,
                    pattern=pattern,
                    method=method,
                    finetune_epochs=cfg["finetune_epochs"],
                    rounds=3,
                    prune_first_last=True,
                )
                row.pop("model_obj")
                report = row.pop("report")
                row["layer_sparsity"] = report.layer_sparsity
                row["seed"] = seed
                per_config.setdefault((method, criterion, pattern, sparsity), []).append(row)
                print(
                    f"  {method:8s} {criterion:9s} {pattern:12s} {sparsity:.2f}: "
                    f"acc {row['accuracy']:.4f} ratio {row['file_ratio']:.3f} "
                    f"{row['seconds']:.1f}s",
                    file=sys.stderr,
                )
        for (method, criterion, pattern, sparsity), runs in per_config.items():
            dense_acc = statistics.mean(r["dense_accuracy"] for r in runs)
            acc = statistics.mean(r["accuracy"] for r in runs)
            before = [
                r["oneshot_accuracy"]
                for r in runs
                if r["oneshot_accuracy"] == r["oneshot_accuracy"]
            ]
            rows.append(
                {
                    "model": model_name,
                    "method": method,
                    "criterion": criterion,
                    "pattern": pattern,
                    "target_sparsity": sparsity,
                    "sparsity": statistics.mean(r["sparsity"] for r in runs),
                    "dense_accuracy": dense_acc,
                    "accuracy": acc,
                    "accuracy_min": min(r["accuracy"] for r in runs),
                    "accuracy_max": max(r["accuracy"] for r in runs),
                    "delta_accuracy_points": 100 * (acc - dense_acc),
                    "oneshot_accuracy_before_finetune": statistics.mean(before) if before else None,
                    "file_ratio": statistics.median(r["file_ratio"] for r in runs),
                    "file_bytes": statistics.median(r["file_bytes"] for r in runs),
                    "seconds_median": statistics.median(r["seconds"] for r in runs),
                    "seeds": len(runs),
                    "runs": runs,
                }
            )
    total = time.perf_counter() - t_start
    table = markdown(rows, dense_rows)
    print(table)
    print(
        f"\ntotal time {total:.0f}s, {args.seeds} seed(s), torch {torch.__version__}, "
        f"{platform.machine()}"
    )
    payload = {
        "benchmark": "nn_sparsity",
        "quick": args.quick,
        "seeds": args.seeds,
        "config": {m: FULL[m] for m in models},
        "prune_first_last": True,
        "dense": dense_rows,
        "rows": rows,
        "total_seconds": total,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "table_markdown": table,
    }
    atomic_write_json(Path(args.out), payload)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def markdown(rows: list[dict[str, Any]], dense_rows: list[dict[str, Any]]) -> str:
    cols = ("model", "method", "criterion", "pattern", "sparsity", "test acc",
            "Δ vs dense (pts)", "one-shot acc before FT", "file / dense bytes", "time (s)")
    table: list[dict[str, Any]] = []
    for model in dict.fromkeys(r["model"] for r in dense_rows):
        d = [r for r in dense_rows if r["model"] == model]
        acc = statistics.mean(r["accuracy"] for r in d)
        table.append(dict(zip(cols, (
            model, "dense", "-", "-", "0%", f"{acc:.4f}", "0.00", "-",
            f"{statistics.median(r['file_ratio'] for r in d):.3f}",
            f"{statistics.median(r['seconds'] for r in d):.1f}",
        ), strict=True)))
        for r in [r for r in rows if r["model"] == model]:
            before = r["oneshot_accuracy_before_finetune"]
            table.append(dict(zip(cols, (
                model, r["method"], r["criterion"], r["pattern"], f"{r['sparsity']:.0%}",
                f"{r['accuracy']:.4f}", f"{r['delta_accuracy_points']:+.2f}",
                "-" if before is None else f"{before:.4f}", f"{r['file_ratio']:.3f}",
                f"{r['seconds_median']:.1f}",
            ), strict=True)))
    return markdown_table(table, right=cols[4:])


if __name__ == "__main__":
    raise SystemExit(main())
