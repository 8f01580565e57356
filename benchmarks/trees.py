"""Benchmark every prunekit.trees method against the unpruned tree and sklearn's ccp_alpha by CV.

For each data set and seed: split train/val/test (prunekit.data, 60/20/20), grow an unpruned
``DecisionTree*`` on train, prune it with each method (validation-based methods see the val split,
CV-based ones train only), and score on test. The scikit-learn baseline is the usual recipe:
``cost_complexity_pruning_path`` on train, then ``GridSearchCV(cv=5)`` over the path's alphas
(at most ``--max-alphas``, evenly spaced by rank), refit on train.

    python benchmarks/trees.py            # full run (~5-10 min on 2 cores)
    python benchmarks/trees.py --quick    # seconds-long smoke run

Prints Markdown tables (mean ± std over seeds) and writes benchmarks/results/trees.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit import __version__
from prunekit._io import atomic_write_json
from prunekit.data import load_dataset
from prunekit.trees import METHODS, prune_tree

VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("pre_pruning (val)", "pre_pruning", {}),
    ("reduced_error (val)", "reduced_error", {}),
    ("cost_complexity (val)", "cost_complexity", {"select": "validation"}),
    ("cost_complexity (cv5)", "cost_complexity", {"select": "cv", "cv": 5}),
    ("cost_complexity (cv5, 1-SE)", "cost_complexity", {"select": "cv", "cv": 5, "one_se": True}),
    ("pessimistic", "pessimistic", {}),
    ("c45 (CF=0.25)", "c45", {}),
    ("c45 (CF=0.25, raising)", "c45", {"subtree_raising": True}),
    ("min_error (m=2)", "min_error", {}),
    ("mdl", "mdl", {}),
]
BASELINE = "sklearn ccp_alpha (GridSearchCV 5)"


def score(model: Any, X: np.ndarray, y: np.ndarray, clf: bool) -> float:
    pred = model.predict(X)
    if clf:
        return float(np.mean(pred == y))
    y = y.astype(float)
    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def sklearn_ccp_cv(tree: Any, X: np.ndarray, y: np.ndarray, max_alphas: int, seed: int) -> Any:
    alphas = tree.cost_complexity_pruning_path(X, y).ccp_alphas
    if alphas.size > max_alphas:
        alphas = alphas[np.unique(np.linspace(0, alphas.size - 1, max_alphas).astype(int))]
    base = type(tree)(random_state=seed)
    search = GridSearchCV(base, {"ccp_alpha": [float(a) for a in alphas]}, cv=5, n_jobs=1)
    return search.fit(X, y).best_estimator_


def run(datasets: list[str], seeds: dict[str, int], max_alphas: int) -> dict[str, Any]:
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name in datasets:
        per: dict[str, dict[str, list[float]]] = {}

        def add(method: str, acc: float, leaves: int, secs: float) -> None:
            d = per.setdefault(method, {"score": [], "leaves": [], "time_s": []})  # noqa: B023
            d["score"].append(acc)
            d["leaves"].append(float(leaves))
            d["time_s"].append(secs)

        for seed in range(seeds[name]):
            ds = load_dataset(name, seed=seed)
            clf = ds.task == "classification"
            tree = (DecisionTreeClassifier if clf else DecisionTreeRegressor)(random_state=seed)
            tree.fit(ds.X_train, ds.y_train)
            add("unpruned", score(tree, ds.X_test, ds.y_test, clf), tree.get_n_leaves(), 0.0)
            t0 = time.perf_counter()
            sk = sklearn_ccp_cv(tree, ds.X_train, ds.y_train, max_alphas, seed)
            sk_s = time.perf_counter() - t0
            add(BASELINE, score(sk, ds.X_test, ds.y_test, clf), sk.get_n_leaves(), sk_s)
            for label, method, params in VARIANTS:
                if not clf and not METHODS[method].regression:
                    continue
                pruned = prune_tree(
                    tree, method, X_val=ds.X_val, y_val=ds.y_val, X_train=ds.X_train,
                    y_train=ds.y_train, random_state=seed, **params,
                )
                add(label, score(pruned, ds.X_test, ds.y_test, clf), pruned.get_n_leaves(),
                    pruned.prune_report_.time_s)
            print(f"  {name} seed {seed} done", file=sys.stderr, flush=True)
        results[name] = per
    return results


def summarise(results: dict[str, Any], tasks: dict[str, str]) -> tuple[list[dict], str]:
    rows: list[dict] = []
    lines: list[str] = []
    for name, per in results.items():
        metric = "accuracy" if tasks[name] == "classification" else "R²"
        base, full = per[BASELINE], per["unpruned"]
        n = len(full["score"])
        lines += [
            f"\n### {name} ({tasks[name]}, {n} seeds; test {metric})\n",
            f"| method | test {metric} | leaves | leaves vs unpruned | Δ{metric} vs sklearn-CV "
            "| prune time (ms) | time vs sklearn-CV |",
            "|---|---|---|---|---|---|---|",
        ]
        for method, d in per.items():
            s, lv, t = (np.asarray(d[k]) for k in ("score", "leaves", "time_s"))
            row = {
                "dataset": name,
                "method": method,
                "score_mean": float(s.mean()),
                "score_std": float(s.std()),
                "leaves_mean": float(lv.mean()),
                "leaves_std": float(lv.std()),
                "leaf_ratio_vs_unpruned": float(np.mean(lv / np.asarray(full["leaves"]))),
                "score_delta_vs_sklearn_cv": float(np.mean(s - np.asarray(base["score"]))),
                "time_ms_median": float(np.median(t) * 1e3),
                "time_ratio_vs_sklearn_cv": (
                    float(np.median(t) / np.median(base["time_s"])) if method != "unpruned"
                    else None
                ),
            }
            rows.append(row)
            ratio = row["time_ratio_vs_sklearn_cv"]
            lines.append(
                f"| {method} | {s.mean():.4f} ± {s.std():.4f} | {lv.mean():.1f} ± {lv.std():.1f} "
                f"| {row['leaf_ratio_vs_unpruned']:.2f} | {row['score_delta_vs_sklearn_cv']:+.4f} "
                f"| {row['time_ms_median']:.1f} | {'-' if ratio is None else f'{ratio:.3f}'} |"
            )
    # overall: mean over classification data sets
    cls_sets = [k for k, v in tasks.items() if v == "classification" and k in results]
    if cls_sets:
        lines += [
            f"\n### Mean over the {len(cls_sets)} classification data sets\n",
            "| method | mean Δaccuracy vs unpruned | mean Δaccuracy vs sklearn-CV "
            "| mean leaves vs unpruned |",
            "|---|---|---|---|",
        ]
        methods = list(results[cls_sets[0]])
        for method in methods:
            sel = [r for r in rows if r["method"] == method and r["dataset"] in cls_sets]
            full = [r for r in rows if r["method"] == "unpruned" and r["dataset"] in cls_sets]
            d_full = np.mean([a["score_mean"] - b["score_mean"] for a, b in zip(sel, full,
                                                                             strict=True)])
            d_sk = np.mean([r["score_delta_vs_sklearn_cv"] for r in sel])
            lr = np.mean([r["leaf_ratio_vs_unpruned"] for r in sel])
            lines.append(f"| {method} | {d_full:+.4f} | {d_sk:+.4f} | {lr:.2f} |")
    return rows, "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 small data sets, 2 seeds")
    ap.add_argument("--seeds", type=int, default=5, help="seeded splits per data set")
    ap.add_argument("--mnist-seeds", type=int, default=3, help="seeded splits for mnist")
    ap.add_argument("--max-alphas", type=int, default=25, help="alphas in sklearn's grid")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trees.json")
    args = ap.parse_args(argv)
    if args.quick:
        datasets = ["iris", "wine", "breast_cancer"]
        seeds = dict.fromkeys(datasets, 2)
    else:
        datasets = ["iris", "wine", "breast_cancer", "digits", "mnist", "diabetes"]
        seeds = dict.fromkeys(datasets, args.seeds)
        seeds["mnist"] = args.mnist_seeds
    start = time.perf_counter()
    results = run(datasets, seeds, args.max_alphas)
    tasks = {d: ("regression" if d == "diabetes" else "classification") for d in datasets}
    rows, table = summarise(results, tasks)
    total = time.perf_counter() - start
    print(f"## prunekit.trees benchmark (prunekit {__version__}; total {total:.0f} s)")
    print(table)
    atomic_write_json(
        args.out,
        {
            "benchmark": "trees",
            "version": __version__,
            "quick": args.quick,
            "seeds": seeds,
            "max_alphas": args.max_alphas,
            "total_s": total,
            "rows": rows,
            "raw": results,
        },
    )
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
