"""``prunekit ensemble``: fit an ensemble, prune it with several methods, compare them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from prunekit._cli_common import SEED_MAX
from prunekit._validation import check_choice
from prunekit.errors import InvalidParameterError

MODELS = ("rf", "et", "bagging", "gb", "hgb")
BOOSTING = ("gb", "hgb")
OUTPUT_FILES = ("report.html", "report.json", "results.json")
MAX_ESTIMATORS = 10_000


def applicable_methods(model_name: str, task: str) -> list[str]:
    """Pruning methods for ensemble family ``model_name`` on a ``task`` target."""
    from prunekit.ensembles.prune import METHODS

    if model_name in BOOSTING:
        return ["stages"]
    return [n for n, m in METHODS.items() if m.regression or task == "classification"]


def check_oob(model_name: str, use_oob: bool) -> None:
    """Out-of-bag pruning data exists only for bootstrap ensembles."""
    if use_oob and model_name not in ("rf", "et", "bagging"):
        raise InvalidParameterError(
            f"--oob needs bootstrap members (--model rf, et or bagging); --model {model_name} "
            "has no out-of-bag samples, prune it on the validation split (drop --oob)"
        )


def parse_size(text: str) -> int | float | str:
    """``"auto"``, an integer count (``"20"``) or a fraction (``"0.2"``)."""
    text = text.strip().lower()
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise InvalidParameterError(
            f"--size={text!r} must be 'auto', a member count (20) or a fraction in (0, 1] (0.2)"
        ) from None


def make_model(name: str, task: str, n_estimators: int, seed: int) -> Any:
    """An unfitted ensemble of the requested family for the task."""
    from sklearn import ensemble as E
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    check_choice("model", name, MODELS)
    clf = task == "classification"
    common = {"random_state": seed}
    if name == "rf":
        cls = E.RandomForestClassifier if clf else E.RandomForestRegressor
        return cls(n_estimators=n_estimators, n_jobs=1, **common)
    if name == "et":
        cls = E.ExtraTreesClassifier if clf else E.ExtraTreesRegressor
        return cls(n_estimators=n_estimators, bootstrap=True, n_jobs=1, **common)
    if name == "bagging":
        base = DecisionTreeClassifier() if clf else DecisionTreeRegressor()
        cls = E.BaggingClassifier if clf else E.BaggingRegressor
        return cls(base, n_estimators=n_estimators, n_jobs=1, **common)
    if name == "gb":
        cls = E.GradientBoostingClassifier if clf else E.GradientBoostingRegressor
        return cls(n_estimators=n_estimators, **common)
    cls = E.HistGradientBoostingClassifier if clf else E.HistGradientBoostingRegressor
    return cls(max_iter=n_estimators, early_stopping=False, **common)


def _row(name: str, model: Any, X: np.ndarray, y: np.ndarray, task: str, prune_s: float) -> dict:
    from prunekit import metrics

    scores = metrics.evaluate(model, X, y, task=task)
    lat = metrics.measure_latency(model, X, warmup=1, repeats=5)
    n = getattr(model, "prune_report_", None)
    kept = n.n_members_after if n is not None else _size(model)
    unique = n.n_unique_members if n is not None else kept
    row: dict[str, Any] = {"method": name, "members": kept, "unique": unique}
    if task == "classification":
        row["test_accuracy"] = round(scores["accuracy"], 4)
        row["f1_macro"] = round(scores["f1_macro"], 4)
    else:
        row["test_r2"] = round(scores["r2"], 4)
        row["mae"] = round(scores["mae"], 4)
    row["predict_ms"] = round(lat.median_s * 1e3, 2)
    row["model_bytes"] = metrics.serialized_size(model)
    row["prune_s"] = round(prune_s, 3)
    return row


def _size(model: Any) -> int:
    from prunekit.ensembles._members import n_members

    return n_members(model)


def run_comparison(
    *,
    data: str = "breast_cancer",
    csv: str | None = None,
    target: str = "-1",
    model_name: str = "rf",
    n_estimators: int = 100,
    methods: list[str] | None = None,
    size: int | float | str = 0.2,
    use_oob: bool = False,
    seed: int = 0,
    quiet: bool = True,
    max_drop: float | None = None,
    relative: bool = False,
) -> tuple[list[dict], dict[str, list[tuple[float, float]]], Any, dict]:
    """Fit, prune with every method, evaluate on the test split.

    Returns ``(rows, curves, full_model, info)``: the table rows (full ensemble first), test-set
    score curves ``{method: [(members, score), ...]}`` and details for the report.
    """
    from prunekit._cli_common import fit_model, load_table
    from prunekit._progress import ProgressBar
    from prunekit.ensembles import build_member_matrix, prune_ensemble
    from prunekit.ensembles._scoring import prefix_scores, r2_from_neg_mse

    check_oob(model_name, use_oob)
    ds = load_table(data, None if csv is None else Path(csv), target, seed)
    allowed = applicable_methods(model_name, ds.task)
    chosen = methods if methods else allowed
    for m in chosen:
        if m not in allowed:
            kind = "(boosting)" if model_name in BOOSTING else f"on a {ds.task} target"
            raise InvalidParameterError(
                f"--methods: {m!r} does not apply to --model {model_name} {kind}; "
                "accepted: " + ", ".join(allowed)
            )
    model = make_model(model_name, ds.task, n_estimators, seed)
    t0 = time.perf_counter()
    fit_model("--csv" if csv else "--data", model, ds.X_train, ds.y_train)
    fit_s = time.perf_counter() - t0
    X_p, y_p = (ds.X_train, ds.y_train) if use_oob else (ds.X_val, ds.y_val)
    rows = [_row("full", model, ds.X_test, ds.y_test, ds.task, 0.0)]
    curves: dict[str, list[tuple[float, float]]] = {}
    M_test = M_val = None
    matrix_s = 0.0
    if model_name not in BOOSTING:  # ask the members once
        t0 = time.perf_counter()
        M_val = build_member_matrix(model, X_p, y_p, oob=use_oob)
        matrix_s = time.perf_counter() - t0
        M_test = build_member_matrix(model, ds.X_test, ds.y_test)
    data_kw: dict[str, Any] = (
        {"members": M_val} if M_val is not None else {"X_val": X_p, "y_val": y_p}
    )
    with ProgressBar(len(chosen), "pruning", enabled=not quiet) as bar:
        for m in chosen:
            pruned = prune_ensemble(model, m, size=size, random_state=seed, **data_kw)
            rep = pruned.prune_report_
            rows.append(_row(m, pruned, ds.X_test, ds.y_test, ds.task, rep.time_s))
            if size != "auto":  # the full ordering, for the curves
                rep = prune_ensemble(
                    model, m, size="auto", random_state=seed, **data_kw
                ).prune_report_
            if rep.ordering is not None and M_test is not None:
                sc = prefix_scores(M_test, np.asarray(rep.ordering))
                if ds.task != "classification":
                    sc = np.asarray(r2_from_neg_mse(M_test, sc))
                curves[m] = [(float(i + 1), float(v)) for i, v in enumerate(sc)]
            elif rep.method == "stages":
                curves[m] = _staged_test_curve(model, ds.X_test, ds.y_test)
            else:
                curves[m + " (validation)"] = [(float(s), float(v)) for s, v in rep.curve]
            bar.advance()
    budget = None
    if max_drop is not None:
        budget = _budget_row(model, ds, chosen, max_drop, relative, seed, rows)
    info: dict[str, Any] = {
        "data": csv or data,
        "task": ds.task,
        "model": type(model).__name__,
        "n_estimators": n_estimators,
        "size": size,
        "pruning_data": "out-of-bag (train)" if use_oob else "validation",
        "fit_s": round(fit_s, 3),
        "member_matrix_s": round(matrix_s, 3),
        "n_train": len(ds.y_train),
        "n_val": len(ds.y_val),
        "n_test": len(ds.y_test),
    }
    if budget is not None:
        info["budget"] = budget
    return rows, curves, model, info


BUDGET_METHODS = ("reduce_error", "margin_distance", "orientation")


def _budget_row(model: Any, ds: Any, methods: list[str], max_drop: float, relative: bool,
                seed: int, rows: list[dict]) -> dict[str, Any]:
    """``budget.search_ensemble`` on the validation split; its choice becomes a table row.

    Searches the fast greedy orderings among ``methods`` (all of ``methods`` when none of them
    is one, e.g. ``stages`` for boosting).
    """
    from prunekit.budget import search_ensemble
    from prunekit.trees.cli import add_budget_row

    search = [m for m in methods if m in BUDGET_METHODS] or list(methods)
    res = search_ensemble(model, max_drop=max_drop, relative=relative, X_val=ds.X_val,
                          y_val=ds.y_val, methods=search, random_state=seed)
    return add_budget_row(res, max_drop, relative, "full ensemble", rows,
                          lambda name: _row(name, res.model, ds.X_test, ds.y_test, ds.task,
                                            res.seconds))


def _staged_test_curve(model: Any, X: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    from prunekit.ensembles.prune import _staged_scores

    vals, _ = _staged_scores(model, X, np.asarray(y))
    return [(float(i + 1), float(v)) for i, v in enumerate(vals)]


def _print_table(rows: list[dict], quiet: bool) -> None:
    from prunekit._tables import print_table

    print_table(rows)


def register(app: typer.Typer) -> None:
    """Add ``prunekit ensemble`` to the root command."""

    @app.command("ensemble")
    def ensemble(
        data: str = typer.Option(
            "breast_cancer", help="Bundled data set: iris, wine, breast_cancer, digits, diabetes."
        ),
        csv: Path | None = typer.Option(
            None, help="A numeric CSV (UTF-8, header row) instead of --data."
        ),
        target: str = typer.Option("-1", help="CSV target column (name or index)."),
        model: str = typer.Option("rf", help="Ensemble to fit: rf, et, bagging, gb, hgb."),
        n_estimators: int = typer.Option(
            100, min=1, max=MAX_ESTIMATORS, help="Members (boosting: stages) to fit."
        ),
        methods: str = typer.Option(
            "all", help="Comma-separated pruning methods, or 'all' that apply to the model."
        ),
        size: str = typer.Option("0.2", help="Members to keep: a count, a fraction or 'auto'."),
        oob: bool = typer.Option(
            False, "--oob", help="Prune on out-of-bag training predictions (rf, et, bagging)."
        ),
        seed: int = typer.Option(
            0, min=0, max=SEED_MAX, help="Seed for the split, the model and the methods."
        ),
        out: Path = typer.Option(Path("prunekit-ensemble"), help="Folder for report.html/.json."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        max_drop: float | None = typer.Option(
            None, help="Also find the fewest members whose validation score drops by at most "
            "this much (0.01 = one point); adds a 'budget' row."
        ),
        relative: bool = typer.Option(
            False, "--relative", help="--max-drop is a fraction of the full ensemble's score."
        ),
    ) -> None:
        """Prune a fitted ensemble with several methods; table + HTML report with curves."""
        from prunekit._cli_common import check_option_choice, check_output_dir, parse_list
        from prunekit.ensembles.prune import METHODS, resolve_size
        from prunekit.trees.cli import check_max_drop

        check_option_choice("--model", model, MODELS)
        chosen = parse_list("--methods", methods, list(METHODS))
        size_value = parse_size(size)
        try:
            resolve_size(size_value, n_estimators)  # fail before fitting
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"--{exc} (--n-estimators {n_estimators})") from None
        check_oob(model, oob)
        check_max_drop(max_drop, relative)
        check_output_dir("--out", out, OUTPUT_FILES)
        rows, curves, _fitted, info = run_comparison(
            data=data,
            csv=None if csv is None else str(csv),
            target=target,
            model_name=model,
            n_estimators=n_estimators,
            methods=chosen,
            size=size_value,
            use_oob=oob,
            seed=seed,
            quiet=quiet,
            max_drop=max_drop,
            relative=relative,
        )
        _print_table(rows, quiet)
        _write_report(out, rows, curves, info)
        from prunekit._cli_common import echo_written

        echo_written(out, OUTPUT_FILES)


def _write_report(out: Path, rows: list[dict], curves: dict, info: dict[str, Any]) -> None:
    """report.html, report.json and results.json in ``out``, written together at the end."""
    from prunekit._cli_common import write_outputs
    from prunekit._io import atomic_write_json
    from prunekit.report import Report

    metric = "accuracy" if info["task"] == "classification" else "r2"
    rep = Report(f"Ensemble pruning: {info['model']} on {info['data']}")
    rep.add_text(
        f"{info['n_estimators']} members, target size `{info['size']}`, pruning data: "
        f"{info['pruning_data']}; train/val/test = {info['n_train']}/{info['n_val']}/"
        f"{info['n_test']} samples. Latency is the median `predict` time on the test set; "
        f"prune_s is the method's time on a member matrix built once "
        f"({info['member_matrix_s']} s)."
    )
    rep.add_table(rows, "Methods on the test set")
    col = "test_accuracy" if metric == "accuracy" else "test_r2"
    full = rows[0][col]
    chosen = {r["method"]: (float(r["members"]), float(r[col])) for r in rows[1:]
              if r["method"] in curves}
    if curves:
        rep.add_tradeoff(
            "Test score along each method's ordering", curves, xlabel="members kept",
            metric=f"test {metric}", baseline=full, baseline_label=f"all {rows[0]['members']}",
            chosen=chosen, pareto=False,
        )
    rep.add_tradeoff(
        f"Test {metric} vs. prediction latency", {r["method"]: [(r["predict_ms"], r[col])]
                                                   for r in rows},
        xlabel="predict latency (ms)", metric=f"test {metric}")
    results = {"info": info, "rows": rows, "curves": curves}
    write_outputs({
        out / "report.html": rep.to_html(),
        out / "report.json": lambda tmp: rep.write_json(tmp),
        out / "results.json": lambda tmp: atomic_write_json(tmp, results),
    })
