"""``prunekit tree``: grow a decision tree, prune it with every method, compare on the test set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from prunekit._cli_common import SEED_MAX
from prunekit.errors import InvalidParameterError

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


CRITERIA = {
    "classification": ("gini", "entropy", "log_loss"),
    "regression": ("squared_error", "friedman_mse", "absolute_error", "poisson"),
}
OUTPUT_FILES = ("report.html", "report.json", "results.json")


def check_methods(methods: list[str] | None, task: str) -> None:
    """Every chosen method must handle ``task``; the error names the ones that do."""
    from prunekit.trees import METHODS

    if task == "classification" or not methods:
        return
    capable = [m for m, spec in METHODS.items() if spec.regression]
    for m in methods:
        if m in METHODS and not METHODS[m].regression:
            raise InvalidParameterError(
                f"--methods: {m!r} prunes classification trees only and the target is a "
                f"regression target; methods for regression: {', '.join(capable)}"
            )


def run_comparison(
    *,
    data: str = "breast_cancer",
    csv: str | None = None,
    target: str = "-1",
    methods: list[str] | None = None,
    criterion: str | None = None,
    seed: int = 0,
    quiet: bool = True,
    max_drop: float | None = None,
    relative: bool = False,
) -> tuple[list[dict], dict[str, list[tuple[float, float]]], dict[str, Any]]:
    """Grow an unpruned tree on the train split, prune it with each method, score on test.

    Returns ``(rows, curves, info)``: table rows (unpruned first), the test score along the
    cost-complexity path ``{"cost-complexity path": [(leaves, score), ...]}`` and run details.
    """
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from prunekit import metrics
    from prunekit._cli_common import check_option_choice, fit_model, load_table
    from prunekit._progress import ProgressBar
    from prunekit.trees import METHODS, cost_complexity_path, prune_tree

    ds = load_table(data, None if csv is None else Path(csv), target, seed)
    clf = ds.task == "classification"
    check_methods(methods, ds.task)
    kw = {"random_state": seed}
    if criterion is not None:
        kw["criterion"] = check_option_choice("--criterion", criterion, CRITERIA[ds.task],
                                             f" for a {ds.task} target")
        if criterion == "poisson" and (ds.y_train < 0).any():
            raise InvalidParameterError("--criterion poisson needs a non-negative target")
    tree = (DecisionTreeClassifier if clf else DecisionTreeRegressor)(**kw)
    t0 = time.perf_counter()
    fit_model("--csv" if csv else "--data", tree, ds.X_train, ds.y_train)
    fit_s = time.perf_counter() - t0
    if tree.tree_.node_count == 1:
        raise InvalidParameterError(
            f"the tree grown on {csv or data} is a single leaf (no feature separates the "
            "training targets): there is nothing to prune"
        )
    variants = [v for v in VARIANTS if clf or METHODS[v[1]].regression]
    if methods:
        variants = [v for v in variants if v[1] in methods or v[0] in methods]
    rows = [_row("unpruned", tree, ds.X_test, ds.y_test, ds.task, 0.0)]
    data_kw = {"X_val": ds.X_val, "y_val": ds.y_val, "X_train": ds.X_train,
               "y_train": ds.y_train, "random_state": seed}
    reports = {}
    estimators: dict[str, Any] = {"unpruned": tree}
    with ProgressBar(len(variants) + 1, "pruning", enabled=not quiet) as bar:
        for name, method, params in variants:
            pruned = prune_tree(tree, method, **data_kw, **params)
            rep = pruned.prune_report_
            reports[name] = rep.to_dict()
            rows.append(_row(name, pruned, ds.X_test, ds.y_test, ds.task, rep.time_s))
            estimators[name] = pruned
            bar.advance(description=name)
        path = cost_complexity_path(tree)
        metric = "accuracy" if clf else "r2"
        curve = []
        for a in np.unique(path["ccp_alphas"]):
            p = prune_tree(tree, "cost_complexity", ccp_alpha=float(a))
            curve.append((float(p.get_n_leaves()),
                          metrics.evaluate(p, ds.X_test, ds.y_test, task=ds.task)[metric]))
        bar.advance()
    budget = None
    if max_drop is not None:
        budget = _budget_row(tree, ds, max_drop, relative, rows)
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
        "feature_names": [str(f) for f in getattr(ds, "feature_names", None) or []] or None,
        "class_names": [str(c) for c in getattr(ds, "target_names", None) or []] or None
        if clf else None,
        "_estimators": estimators,  # not written to JSON
    }
    if budget is not None:
        info["budget"] = budget
    return rows, {"cost-complexity path": curve}, info


def check_max_drop(max_drop: float | None, relative: bool) -> None:
    """``--max-drop`` in [0, 1); ``--relative`` needs it."""
    from prunekit._cli_common import check_number

    check_number("--max-drop", max_drop, 0.0, 1.0, high_open=True)
    if relative and max_drop is None:
        raise InvalidParameterError("--relative needs --max-drop (the allowed score drop)")


def budget_label(max_drop: float, relative: bool) -> str:
    """The table row name of a ``--max-drop`` search."""
    return f"budget (max drop {max_drop:g}{' relative' if relative else ''})"


def add_budget_row(res: Any, max_drop: float, relative: bool, reference: str,
                   rows: list[dict], make_row: Any) -> dict[str, Any]:
    """Append ``make_row(label)`` for the search's chosen model (or print why there is none);
    return the search as a dict for ``results.json``. Shared by the tree and ensemble CLIs."""
    from prunekit.budget import format_setting

    label = budget_label(max_drop, relative)
    if res.chosen is None:
        print(f"{label}: not reachable on the validation split (threshold "
              f"{res.threshold:.4g}, {reference} {res.baseline:.4g})", flush=True)
    else:
        rows.append(make_row(f"{label}: {format_setting(res.chosen.setting)}"))
    return res.to_dict()


def _budget_row(tree: Any, ds: Any, max_drop: float, relative: bool, rows: list[dict]
                ) -> dict[str, Any]:
    """``budget.search_tree`` on the validation split; its chosen tree becomes a table row."""
    from prunekit.budget import search_tree

    res = search_tree(tree, max_drop=max_drop, relative=relative, X_val=ds.X_val,
                      y_val=ds.y_val)
    return add_budget_row(res, max_drop, relative, "unpruned", rows,
                          lambda name: _row(name, res.model, ds.X_test, ds.y_test, ds.task,
                                            res.seconds))


def register(app: typer.Typer) -> None:
    """Add ``prunekit tree`` to the root command."""

    @app.command("tree")
    def tree(
        data: str = typer.Option(
            "breast_cancer", help="Bundled data set: iris, wine, breast_cancer, digits, diabetes."
        ),
        csv: Path | None = typer.Option(
            None, help="A numeric CSV (UTF-8, header row) instead of --data."
        ),
        target: str = typer.Option("-1", help="CSV target column (name or index)."),
        methods: str = typer.Option(
            "all", help="Comma-separated methods (e.g. 'c45,mdl'), or 'all' that apply."
        ),
        criterion: str | None = typer.Option(
            None, help="Split criterion of the grown tree (default: gini / squared_error)."
        ),
        seed: int = typer.Option(
            0, min=0, max=SEED_MAX, help="Seed for the split, the tree and CV folds."
        ),
        out: Path = typer.Option(Path("prunekit-tree"), help="Folder for report.html/.json."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        max_drop: float | None = typer.Option(
            None, help="Also find the smallest pruned tree (any method) whose validation score "
            "drops by at most this much (0.01 = one point); adds a 'budget' row."
        ),
        relative: bool = typer.Option(
            False, "--relative", help="--max-drop is a fraction of the unpruned score."
        ),
    ) -> None:
        """Grow a tree, apply every pruning method, print a table and write an HTML report."""
        from prunekit._cli_common import check_option_choice, check_output_dir, parse_list
        from prunekit.trees import ALIASES, METHODS

        chosen = parse_list("--methods", methods, list(METHODS), ALIASES)
        check_max_drop(max_drop, relative)
        if criterion is not None:
            check_option_choice("--criterion", criterion, [c for cs in CRITERIA.values()
                                                           for c in cs])
        check_output_dir("--out", out, OUTPUT_FILES)
        rows, curves, info = run_comparison(
            data=data,
            csv=None if csv is None else str(csv),
            target=target,
            methods=chosen,
            criterion=criterion,
            seed=seed,
            quiet=quiet,
            max_drop=max_drop,
            relative=relative,
        )
        from prunekit._cli_common import echo_written
        from prunekit._tables import print_table

        print_table(rows)
        _write_report(out, rows, curves, info)
        echo_written(out, OUTPUT_FILES)


def _write_report(out: Path, rows: list[dict], curves: dict, info: dict[str, Any]) -> None:
    """report.html, report.json and results.json in ``out``, written together at the end."""
    from prunekit._cli_common import write_outputs
    from prunekit._io import atomic_write_json
    from prunekit.report import Report, plots

    metric = "accuracy" if info["task"] == "classification" else "r2"
    col = "test_accuracy" if metric == "accuracy" else "test_r2"
    rep = Report(f"Decision-tree pruning: {info['model']} on {info['data']}")
    rep.add_text(
        f"Unpruned tree grown with criterion `{info['criterion']}` on {info['n_train']} "
        f"training samples; validation-based methods use {info['n_val']} held-out samples; "
        f"scores are on {info['n_test']} test samples. `prune_s` is the pruning time "
        "(pre-pruning includes growing every candidate tree)."
    )
    rep.add_table(rows, "Methods on the test set")
    points = {r["method"]: [(float(r["leaves"]), float(r[col]))] for r in rows[1:]}
    rep.add_tradeoff("Test score vs. tree size", {**curves, **points}, xlabel="leaves",
                     metric=f"test {metric}", baseline=rows[0][col])
    trees = info.get("_estimators", {})
    if trees:
        best = max(rows[1:], key=lambda r: (r[col], -r["leaves"]), default=None)
        rep.add_text("## Trees before and after pruning\n\nThe unpruned tree and the pruned "
                     "tree of the best-scoring method (fewest leaves among ties); big trees are "
                     "drawn to a depth that fits the page.")
        for name in ["unpruned"] + ([best["method"]] if best else []):
            if name in trees:
                rep.add_figure(plots.tree_drawing(
                    trees[name], feature_names=info.get("feature_names"),
                    class_names=info.get("class_names"), title=name), f"Tree: {name}")
    rep.add_table(
        [{"method": k, **dict(r["params"].items())} for k, r in info["reports"].items()
         if r["params"]],
        "Parameters each method chose",
    )
    public = {k: v for k, v in info.items() if not k.startswith("_")}
    results = {"info": public, "rows": rows, "curves": curves}
    write_outputs({
        out / "report.html": rep.to_html(),
        out / "report.json": lambda tmp: rep.write_json(tmp),
        out / "results.json": lambda tmp: atomic_write_json(tmp, results),
    })
