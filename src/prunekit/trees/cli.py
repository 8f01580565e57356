"""``prunekit tree``: grow a decision tree, prune it with every method, compare on the test set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from prunekit._validation import check_choice

#: Method variants the comparison runs: (row name, method, parameters).
VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("pre_pruning", "pre_pruning", {}),
    ("reduced_error", "reduced_error", {}),
    ("cost_complexity (val)", "cost_complexity", {"select": "validation"}),
    ("cost_complexity (cv, 1-SE)", "cost_complexity", {"select": "cv", "one_se": True}),
    ("pessimistic", "pessimistic", {}),
    ("c45", "c45", {}),
    ("c45 (subtree raising)", "c45", {"subtree_raising": True}),
    ("min_error", "min_error", {}),
    ("mdl", "mdl", {}),
)


def _row(name: str, model: Any, X: np.ndarray, y: np.ndarray, task: str, prune_s: float) -> dict:
    from prunekit import metrics

    scores = metrics.evaluate(model, X, y, task=task)
    row: dict[str, Any] = {
        "method": name,
        "leaves": int(model.get_n_leaves()),
        "depth": int(model.get_depth()),
    }
    if task == "classification":
        row["test_accuracy"] = round(scores["accuracy"], 4)
        row["f1_macro"] = round(scores["f1_macro"], 4)
    else:
        row["test_r2"] = round(scores["r2"], 4)
        row["mae"] = round(scores["mae"], 4)
    row["prune_s"] = round(prune_s, 4)
    return row


def run_comparison(
    *,
    data: str = "breast_cancer",
    csv: str | None = None,
    target: str = "-1",
    methods: list[str] | None = None,
    criterion: str | None = None,
    seed: int = 0,
    quiet: bool = True,
) -> tuple[list[dict], dict[str, list[tuple[float, float]]], dict[str, Any]]:
    """Grow an unpruned tree on the train split, prune it with each method, score on test.

    Returns ``(rows, curves, info)``: table rows (unpruned first), the test score along the
    cost-complexity path ``{"cost-complexity path": [(leaves, score), ...]}`` and run details.
    """
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from prunekit import metrics
    from prunekit._progress import ProgressBar
    from prunekit.data import load_csv, load_dataset
    from prunekit.trees import METHODS, cost_complexity_path, prune_tree

    if csv is not None:
        tgt: str | int = int(target) if target.lstrip("-").isdigit() else target
        ds = load_csv(csv, target=tgt, seed=seed)
    else:
        ds = load_dataset(data, seed=seed)
    clf = ds.task == "classification"
    kw = {"random_state": seed}
    if criterion is not None:
        kw["criterion"] = criterion
    tree = (DecisionTreeClassifier if clf else DecisionTreeRegressor)(**kw)
    t0 = time.perf_counter()
    tree.fit(ds.X_train, ds.y_train)
    fit_s = time.perf_counter() - t0
    variants = [v for v in VARIANTS if clf or METHODS[v[1]].regression]
    if methods:
        variants = [v for v in variants if v[1] in methods or v[0] in methods]
    rows = [_row("unpruned", tree, ds.X_test, ds.y_test, ds.task, 0.0)]
    data_kw = {"X_val": ds.X_val, "y_val": ds.y_val, "X_train": ds.X_train,
               "y_train": ds.y_train, "random_state": seed}
    reports = {}
    with ProgressBar(len(variants) + 1, "pruning", enabled=not quiet) as bar:
        for name, method, params in variants:
            pruned = prune_tree(tree, method, **data_kw, **params)
            rep = pruned.prune_report_
            reports[name] = rep.to_dict()
            rows.append(_row(name, pruned, ds.X_test, ds.y_test, ds.task, rep.time_s))
            bar.advance(description=name)
        path = cost_complexity_path(tree)
        metric = "accuracy" if clf else "r2"
        curve = []
        for a in np.unique(path["ccp_alphas"]):
            p = prune_tree(tree, "cost_complexity", ccp_alpha=float(a))
            curve.append((float(p.get_n_leaves()),
                          metrics.evaluate(p, ds.X_test, ds.y_test, task=ds.task)[metric]))
        bar.advance()
    info = {
        "data": csv or data,
        "task": ds.task,
        "model": type(tree).__name__,
        "criterion": tree.criterion,
        "fit_s": round(fit_s, 4),
        "n_train": len(ds.y_train),
        "n_val": len(ds.y_val),
        "n_test": len(ds.y_test),
        "reports": reports,
    }
    return rows, {"cost-complexity path": curve}, info


def register(app: typer.Typer) -> None:
    """Add ``prunekit tree`` to the root command."""

    @app.command("tree")
    def tree(
        data: str = typer.Option(
            "breast_cancer", help="Bundled data set: iris, wine, breast_cancer, digits, diabetes."
        ),
        csv: Path | None = typer.Option(None, help="A numeric CSV with a header row instead."),
        target: str = typer.Option("-1", help="CSV target column (name or index)."),
        methods: str = typer.Option(
            "all", help="Comma-separated methods (e.g. 'c45,mdl'), or 'all' that apply."
        ),
        criterion: str | None = typer.Option(
            None, help="Split criterion of the grown tree (default: gini / squared_error)."
        ),
        seed: int = typer.Option(0, help="Seed for the split, the tree and CV folds."),
        out: Path = typer.Option(Path("prunekit-tree"), help="Folder for report.html/.json."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Grow a tree, apply every pruning method, print a table and write an HTML report."""
        from prunekit._io import atomic_write_json
        from prunekit.metrics import markdown_table
        from prunekit.report import Report, plots
        from prunekit.trees import ALIASES, METHODS

        chosen = None
        if methods.strip().lower() != "all":
            chosen = [ALIASES.get(m.strip(), m.strip()) for m in methods.split(",") if m.strip()]
            for m in chosen:
                check_choice("methods", m, list(METHODS))
        rows, curves, info = run_comparison(
            data=data,
            csv=None if csv is None else str(csv),
            target=target,
            methods=chosen,
            criterion=criterion,
            seed=seed,
            quiet=quiet,
        )
        typer.echo(markdown_table(rows))
        metric = "accuracy" if info["task"] == "classification" else "r2"
        full = rows[0]["test_accuracy" if metric == "accuracy" else "test_r2"]
        rep = Report(f"Decision-tree pruning: {info['model']} on {info['data']}")
        rep.add_text(
            f"Unpruned tree grown with criterion `{info['criterion']}` on {info['n_train']} "
            f"training samples; validation-based methods use {info['n_val']} held-out samples; "
            f"scores are on {info['n_test']} test samples. `prune_s` is the pruning time "
            "(pre-pruning includes growing every candidate tree)."
        )
        rep.add_table(rows, "Methods on the test set")
        col = "test_accuracy" if metric == "accuracy" else "test_r2"
        points = {r["method"]: [(float(r["leaves"]), float(r[col]))] for r in rows[1:]}
        fig = plots.accuracy_vs_sparsity(
            {**curves, **points},
            metric=f"test {metric}",
            baseline=full,
            title="Test score vs. tree size",
            xlabel="leaves",
        )
        rep.add_figure(fig, f"{metric} vs. leaves")
        rep.add_table(
            [{"method": k, **{p: v for p, v in r["params"].items()}} for k, r in
             info["reports"].items() if r["params"]],
            "Parameters each method chose",
        )
        rep.write_html(out / "report.html")
        rep.write_json(out / "report.json")
        atomic_write_json(out / "results.json", {"info": info, "rows": rows, "curves": curves})
        if not quiet:
            typer.echo(f"report: {out / 'report.html'}")
