"""Benchmark every prunekit.trees method against the unpruned tree and sklearn's ccp_alpha by CV.

For each data set and seed: split train/val/test (prunekit.data, 60/20/20), grow an unpruned
``DecisionTree*`` on train, prune it with each method (validation-based methods see the val split,
CV-based ones train only), and score on test. The scikit-learn baseline is the usual recipe:
``cost_complexity_pruning_path`` on train, then ``GridSearchCV(cv=5)`` over the path's alphas
(at most ``--max-alphas``, evenly spaced by rank), refit on train.

    python benchmarks/trees.py            # full run (~5-10 min on 2 cores)
    python benchmarks/trees.py --quick    # seconds-long smoke run
    python benchmarks/trees.py --scale [--quick]   # large-tree section alone (500k rows; 50k quick)

The ``--scale`` section grows one tree on 500k rows x 20 features (~100k nodes) and prunes it with
every method, each in its own subprocess, printing wall time and peak RSS (``ru_maxrss`` of the
subprocess, which also holds the data and the tree), plus the full CCP path against scikit-learn's
``cost_complexity_pruning_path`` (which refits the tree; its fit time is shown apart). Results go to
benchmarks/results/trees_scale.json.

Prints Markdown tables (mean ± std over seeds) and writes benchmarks/results/trees.json.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
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
    ("c45 (CF=0.25, no raising)", "c45", {"subtree_raising": False, "collapse": False}),
    ("c45 (J48 defaults: raising + collapse)", "c45", {}),
    ("simplify (lossless)", "simplify", {}),
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


# ------------------------------------------------------------------ --scale: one large tree

SCALE_VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("cost_complexity (validation)", "cost_complexity", {"select": "validation"}),
    ("cost_complexity (cv5)", "cost_complexity", {"select": "cv", "cv": 5}),
    ("cost_complexity (ccp_alpha given)", "cost_complexity", {"ccp_alpha": 1e-5}),
    ("reduced_error", "reduced_error", {}),
    ("c45 (no raising)", "c45", {"subtree_raising": False}),
    ("c45 (J48 defaults: raising + collapse)", "c45", {}),
    ("pessimistic", "pessimistic", {}),
    ("min_error", "min_error", {}),
    ("mdl", "mdl", {}),
    ("pre_pruning (validation)", "pre_pruning", {}),
]


def scale_data(n_rows: int, n_features: int = 20, seed: int = 0):
    """Noisy synthetic classification data that grows a large tree (~0.2 nodes per row)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    signal = X[:, 0] + X[:, 1] * X[:, 2] + 0.5 * np.sin(3 * X[:, 3])
    y = (signal + rng.normal(scale=1.0, size=n_rows) > 0).astype(np.int64)
    return X, y


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def scale_worker(path: Path, label: str) -> None:
    """Run one variant on the pickled tree/data (our own file) and print a JSON line."""
    with open(path, "rb") as fh:
        tree, X_tr, y_tr, X_val, y_val = pickle.load(fh)  # noqa: S301 - written by this script
    base = _peak_rss_mb()
    if label == "__ccp_path__":
        from prunekit.trees import cost_complexity_path

        t0 = time.perf_counter()
        path_ = cost_complexity_path(tree)
        out = {"time_s": time.perf_counter() - t0, "n_alphas": int(path_["ccp_alphas"].size)}
    else:
        _, method, params = next(v for v in SCALE_VARIANTS if v[0] == label)
        t0 = time.perf_counter()
        pruned = prune_tree(tree, method, X_val=X_val, y_val=y_val, X_train=X_tr, y_train=y_tr,
                            random_state=0, **params)
        out = {"time_s": time.perf_counter() - t0, "leaves": int(pruned.get_n_leaves()),
               "val_acc": float(np.mean(pruned.predict(X_val) == y_val))}
    out.update(peak_rss_mb=_peak_rss_mb(), rss_before_mb=base)
    print(json.dumps(out))


def run_scale(n_rows: int, out_path: Path) -> None:
    X, y = scale_data(n_rows + n_rows // 5)
    X_tr, y_tr, X_val, y_val = X[:n_rows], y[:n_rows], X[n_rows:], y[n_rows:]
    t0 = time.perf_counter()
    tree = DecisionTreeClassifier(random_state=0).fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk_path = tree.cost_complexity_pruning_path(X_tr, y_tr)
    sk_path_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "scale.pkl"
        with open(file, "wb") as fh:
            pickle.dump((tree, X_tr.astype(np.float64), y_tr, X_val.astype(np.float64), y_val), fh)
        for label in ["__ccp_path__", *(v[0] for v in SCALE_VARIANTS)]:
            proc = subprocess.run(
                [sys.executable, __file__, "--scale-worker", label, "--scale-file", str(file)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                rows.append({"method": label, "error": proc.stderr.strip().splitlines()[-1:]})
                print(f"  {label}: FAILED {proc.stderr.strip()[-300:]}", file=sys.stderr)
                continue
            rows.append({"method": label, **json.loads(proc.stdout.strip().splitlines()[-1])})
            print(f"  {label}: {rows[-1]['time_s']:.2f} s", file=sys.stderr, flush=True)
    path_row = rows[0]
    t0 = time.perf_counter()
    sk_only = sk_ccp_path_only(tree)
    sk_only_s = time.perf_counter() - t0
    same = np.array_equal(sk_path.ccp_alphas, _alphas_of(tree)) and np.array_equal(
        sk_only["ccp_alphas"], sk_path.ccp_alphas)
    print(f"\n## prunekit.trees at scale: {n_rows} rows x {X.shape[1]} features, "
          f"{tree.tree_.node_count} nodes, {tree.get_n_leaves()} leaves, "
          f"depth {tree.get_depth()}\n")
    print("| full CCP path | time (s) | ratio prunekit / this |")
    print("|---|---|---|")
    print(f"| prunekit cost_complexity_path (fitted tree) | {path_row['time_s']:.2f} | 1.00 |")
    print(f"| sklearn cost_complexity_pruning_path (refits: fit alone {fit_s:.1f} s) "
          f"| {sk_path_s:.2f} | {path_row['time_s'] / sk_path_s:.2f} |")
    print(f"| sklearn Cython ccp_pruning_path on the fitted tree_ | {sk_only_s:.2f} "
          f"| {path_row['time_s'] / sk_only_s:.2f} |")
    print(f"\n{path_row['n_alphas']} alphas; identical alphas: {same}\n")
    print("| method | time (s) | peak RSS (MB) | RSS before (MB) | leaves after | val accuracy |")
    print("|---|---|---|---|---|---|")
    for r in rows[1:]:
        if "error" in r:
            print(f"| {r['method']} | failed: {r['error']} | | | | |")
            continue
        print(f"| {r['method']} | {r['time_s']:.2f} | {r['peak_rss_mb']:.0f} | "
              f"{r['rss_before_mb']:.0f} | {r['leaves']} | {r['val_acc']:.4f} |")
    print("\npeak RSS: the subprocess's high-water mark (data + tree + method); RSS before: its "
          "high-water mark after loading the data and the tree")
    atomic_write_json(out_path, {
        "benchmark": "trees_scale", "version": __version__, "n_rows": n_rows,
        "n_nodes": int(tree.tree_.node_count), "fit_s": fit_s, "sklearn_ccp_path_s": sk_path_s,
        "sklearn_cython_path_s": sk_only_s,
        "rows": rows,
    })
    print(f"\nwrote {out_path}", file=sys.stderr)


def sk_ccp_path_only(tree: Any) -> dict[str, np.ndarray]:
    """scikit-learn's Cython weakest-link path on the fitted ``tree_`` (no refit; private API)."""
    from sklearn.tree._tree import ccp_pruning_path

    return ccp_pruning_path(tree.tree_)


def _alphas_of(tree: Any) -> np.ndarray:
    from prunekit.trees import cost_complexity_path

    return cost_complexity_path(tree)["ccp_alphas"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 small data sets, 2 seeds")
    ap.add_argument("--seeds", type=int, default=5, help="seeded splits per data set")
    ap.add_argument("--mnist-seeds", type=int, default=3, help="seeded splits for mnist")
    ap.add_argument("--max-alphas", type=int, default=25, help="alphas in sklearn's grid")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trees.json")
    ap.add_argument("--scale", action="store_true",
                    help="only the large-tree section (500k rows; 50k with --quick)")
    ap.add_argument("--rows", type=int, default=None, help="rows for --scale")
    ap.add_argument("--scale-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scale-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.scale_worker:
        scale_worker(args.scale_file, args.scale_worker)
        return
    if args.scale:
        rows = args.rows or (50_000 if args.quick else 500_000)
        run_scale(rows, Path(__file__).parent / "results" / "trees_scale.json")
        return
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
