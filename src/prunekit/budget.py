"""Accuracy-budget search: the most compressed model whose held-out metric stays within budget.

One entry point per domain, one result type:

* :func:`search_tree` — every pruning method of :mod:`prunekit.trees` over its parameter grid
  (the whole cost-complexity path, C4.5 confidences, m-estimates, ...); size = nodes.
* :func:`search_ensemble` — each ordering method of :mod:`prunekit.ensembles`, sizes scanned
  upwards with early stopping at the first within budget; size = members.
* :func:`search_sparsity` — weight sparsity (:func:`prunekit.nn.prune_model`, optional
  sensitivity allocation and short fine-tune that keeps the zeros); size = non-zero weights.
* :func:`search_structured` — channel/neuron/head removal (:func:`prunekit.nn.structured.prune`)
  over MACs targets; size = MACs (params and optionally latency recorded too).

``max_drop`` is absolute (``0.01`` = one accuracy point) or, with ``relative=True``, a fraction
of the dense metric. The :class:`BudgetResult` holds every evaluated point, the Pareto front
(metric vs size) and the chosen point; ``result.plot()`` draws them for the HTML report. When no
compressed candidate meets the budget the result says so (``reachable=False``, ``closest``) and
``result.model`` raises :class:`BudgetNotReachable` — never a silent best effort.

Candidates are independent, so ``n_jobs`` evaluates several at a time with the serial
semantics (same points, same choice) through :mod:`prunekit._sweep`: the calling process plus
reusable loky worker processes that receive the model and ``eval_fn`` once per search, with
``cores // n_jobs`` torch threads each (never more workers than cores for ``n_jobs=-1``); inside
``joblib.parallel_backend("ray")`` the same sweep runs on a Ray cluster.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunekit._evaluation import EvalFn, EvaluationError, call_metric, metric_direction
from prunekit._sweep import Runner, bisect, cpu_cores, scan
from prunekit.errors import InvalidParameterError, PrunekitError

__all__ = [
    "BudgetNotReachable",
    "BudgetPoint",
    "BudgetResult",
    "EvaluationError",
    "search_ensemble",
    "search_sparsity",
    "search_structured",
    "search_tree",
]


class BudgetNotReachable(PrunekitError, LookupError):
    """No compressed candidate met the accuracy budget (see ``result.closest``)."""


@dataclass
class BudgetPoint:
    """One evaluated candidate: its setting, metric, size (and other costs)."""

    setting: dict[str, Any]
    metric: float
    size: float
    feasible: bool
    costs: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"setting": dict(self.setting), "metric": self.metric, "size": self.size,
                "feasible": self.feasible, "costs": dict(self.costs), "seconds": self.seconds}


@dataclass
class BudgetResult:
    """Every point of a budget search, the Pareto front and the chosen (smallest feasible) one."""

    domain: str
    size_name: str
    baseline: float
    baseline_size: float
    max_drop: float
    relative: bool
    threshold: float
    higher_is_better: bool
    points: list[BudgetPoint]
    chosen: BudgetPoint | None
    closest: BudgetPoint | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    _model: Any = field(default=None, repr=False)

    @property
    def reachable(self) -> bool:
        return self.chosen is not None

    @property
    def model(self) -> Any:
        """The chosen compressed model; raises :class:`BudgetNotReachable` if none qualified."""
        if self.chosen is None:
            c = self.closest
            near = (f"; the closest candidate {c.setting} scores {c.metric:.4g} at "
                    f"{self.size_name} {c.size:.4g}" if c is not None else "")
            raise BudgetNotReachable(
                f"no compressed candidate keeps the metric within max_drop={self.max_drop} "
                f"(threshold {self.threshold:.4g}, dense {self.baseline:.4g}){near}"
            )
        return self._model

    @property
    def compression(self) -> float:
        """Baseline size / chosen size (``nan`` when not reachable)."""
        if self.chosen is None or self.chosen.size <= 0:
            return math.nan
        return self.baseline_size / self.chosen.size

    @property
    def pareto(self) -> list[BudgetPoint]:
        """Points no other point beats on both size (smaller) and metric (better)."""
        sign = 1.0 if self.higher_is_better else -1.0
        front: list[BudgetPoint] = []
        best = -math.inf
        for p in sorted(self.points, key=lambda p: (p.size, -sign * p.metric)):
            if sign * p.metric > best + 1e-12:
                front.append(p)
                best = sign * p.metric
        return front

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain, "size_name": self.size_name, "baseline": self.baseline,
            "baseline_size": self.baseline_size, "max_drop": self.max_drop,
            "relative": self.relative, "threshold": self.threshold,
            "higher_is_better": self.higher_is_better, "reachable": self.reachable,
            "compression": None if self.chosen is None else self.compression,
            "chosen": None if self.chosen is None else self.chosen.to_dict(),
            "closest": None if self.closest is None else self.closest.to_dict(),
            "points": [p.to_dict() for p in self.points],
            "pareto": [p.to_dict() for p in self.pareto], "seconds": self.seconds,
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        head = (f"Budget search ({self.domain}): dense metric {self.baseline:.4g}, threshold "
                f"{self.threshold:.4g}; {len(self.points)} candidates in {self.seconds:.1f} s")
        if self.chosen is None:
            head += "\n\n**Not reachable**: no compressed candidate meets the budget."
        else:
            head += (f"\n\nChosen: {self.chosen.setting} -> metric {self.chosen.metric:.4g}, "
                     f"{self.size_name} {self.chosen.size:.4g} ({self.compression:.2f}x smaller)")
        rows = ["| setting | metric | " + self.size_name + " | within budget |",
                "|---|---:|---:|:-:|"]
        for p in self.pareto:
            rows.append(f"| {format_setting(p.setting)} | {p.metric:.4g} | {p.size:.4g} | "
                        f"{'yes' if p.feasible else 'no'} |")
        return head + "\n\nPareto front:\n\n" + "\n".join(rows)

    def plot(self, title: str | None = None) -> Any:
        """Metric vs size: every point, the Pareto front, the budget line, the chosen point."""
        from matplotlib.figure import Figure

        from prunekit.report.plots import _attach

        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        ax = fig.add_subplot()
        ok = [p for p in self.points if p.feasible]
        bad = [p for p in self.points if not p.feasible]
        if ok:
            ax.scatter([p.size for p in ok], [p.metric for p in ok], s=14, c="tab:blue",
                       label="within budget")
        if bad:
            ax.scatter([p.size for p in bad], [p.metric for p in bad], s=14, c="tab:grey",
                       alpha=0.6, label="over budget")
        front = self.pareto
        ax.plot([p.size for p in front], [p.metric for p in front], color="tab:blue", lw=1,
                label="Pareto front")
        ax.axhline(self.threshold, color="tab:red", ls="--", lw=1, label="budget")
        ax.scatter([self.baseline_size], [self.baseline], marker="s", c="black", label="dense")
        if self.chosen is not None:
            ax.scatter([self.chosen.size], [self.chosen.metric], marker="*", s=160,
                       c="tab:orange", zorder=5, label="chosen")
        ax.set_xlabel(self.size_name)
        ax.set_ylabel("metric")
        if self.size_name in ("macs", "nonzero_params", "params") and self.baseline_size > 0:
            ax.set_xscale("log")
        ax.set_title(title or f"Accuracy budget ({self.domain})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        return _attach(fig, "budget", **{k: v for k, v in self.to_dict().items()
                                         if k in ("points", "threshold", "chosen", "baseline")})

    def add_to_report(self, report: Any, title: str = "Accuracy budget") -> Any:
        """Add the plot and the Pareto table to a :class:`prunekit.report.Report`."""
        report.add_text(self.to_markdown())
        report.add_figure(self.plot(), title)
        return report


def format_setting(s: dict[str, Any]) -> str:
    """``"method=c45, confidence=0.25"``: a candidate's setting as a table label."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items())


# ----------------------------------------------------------------------------- shared engine


def _threshold(baseline: float, max_drop: float, relative: bool, hib: bool) -> float:
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) \
            or not math.isfinite(max_drop) or max_drop < 0:
        raise InvalidParameterError(f"max_drop must be a finite number >= 0, got {max_drop!r}")
    if relative and max_drop >= 1:
        raise InvalidParameterError(f"relative max_drop must be below 1, got {max_drop}")
    delta = abs(baseline) * max_drop if relative else max_drop
    return baseline - delta if hib else baseline + delta


def _feasible(metric: float, threshold: float, hib: bool) -> bool:
    return metric >= threshold - 1e-12 if hib else metric <= threshold + 1e-12


def _n_workers(n_jobs: int | None) -> int:
    """Workers for ``n_jobs`` (``-1``: one per usable core; ``None``/``1``: serial)."""
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise InvalidParameterError(f"n_jobs must be a positive int or -1 (all cores), got "
                                    f"{n_jobs!r}")
    return cpu_cores() if n_jobs == -1 else n_jobs


def _check_scan(patience: int, refine: int) -> None:
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise InvalidParameterError(f"patience must be an int >= 1, got {patience!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise InvalidParameterError(f"refine must be an int >= 0, got {refine!r}")


def _closest(points: list[BudgetPoint], hib: bool) -> BudgetPoint | None:
    if not points:
        return None
    return max(points, key=lambda p: (p.metric if hib else -p.metric, -p.size))


def _finish(domain: str, size_name: str, baseline: float, base_size: float, max_drop: float,
            relative: bool, thr: float, hib: bool, points: list[BudgetPoint],
            models: dict[int, Any], start: float, notes: list[str]) -> BudgetResult:
    feas = [i for i, p in enumerate(points) if p.feasible and p.size < base_size]
    chosen_i = min(feas, key=lambda i: (points[i].size, -points[i].metric if hib
                                        else points[i].metric)) if feas else None
    res = BudgetResult(
        domain=domain, size_name=size_name, baseline=baseline, baseline_size=base_size,
        max_drop=float(max_drop), relative=relative, threshold=thr, higher_is_better=hib,
        points=points, chosen=None if chosen_i is None else points[chosen_i],
        closest=_closest(points, hib) if chosen_i is None else None,
        seconds=time.perf_counter() - start, notes=notes,
    )
    res._model = None if chosen_i is None else models.get(chosen_i)
    return res


# ----------------------------------------------------------------------------- trees


def _tree_candidates(model: Any, clf: bool, has_val: bool, has_train: bool,
                     max_alphas: int) -> list[tuple[str, dict[str, Any]]]:
    from prunekit.trees._sktree import read_tree
    from prunekit.trees._structure import build_structure
    from prunekit.trees.cost_complexity import ccp_path

    alphas = np.unique(ccp_path(build_structure(read_tree(model), clf)).ccp_alphas)[1:]
    if len(alphas) > max_alphas:
        alphas = alphas[np.unique(np.linspace(0, len(alphas) - 1, max_alphas).round().astype(int))]
    cands: list[tuple[str, dict[str, Any]]] = [
        ("cost_complexity", {"ccp_alpha": float(a)}) for a in alphas]
    if has_val:
        cands.append(("reduced_error", {}))
    if clf:
        cands += [("pessimistic", {})]
        cands += [("c45", {"confidence": c}) for c in (0.01, 0.05, 0.1, 0.25, 0.5)]
        cands += [("min_error", {"m": m}) for m in (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)]
        cands += [("mdl", {})]
    return cands


def _eval_tree(model: Any, X_val: Any, y_val: Any, eval_fn: EvalFn, method: str,
               params: dict[str, Any]) -> tuple[Any, float, float, float]:
    from prunekit.trees import prune_tree

    t0 = time.perf_counter()
    pruned = prune_tree(model, method, X_val=X_val, y_val=y_val, **params)
    where = f"tree candidate method={method!r} {params}"
    metric = call_metric(eval_fn, pruned, where)
    return pruned, metric, float(pruned.tree_.node_count), time.perf_counter() - t0


def _sk_score(X: Any, y: Any) -> EvalFn:
    def score(model: Any) -> float:
        return float(model.score(X, y))

    score.higher_is_better = True  # type: ignore[attr-defined]
    return score


def _eval_data(eval_fn: EvalFn | None, X_eval: Any, y_eval: Any, X_val: Any, y_val: Any,
               notes: list[str]) -> EvalFn:
    if eval_fn is not None:
        if not callable(eval_fn):
            raise InvalidParameterError("eval_fn must be a callable eval_fn(model) -> float")
        return eval_fn
    if (X_eval is None) != (y_eval is None):
        raise InvalidParameterError("give both X_eval and y_eval (or neither)")
    if X_eval is None:
        if X_val is None or y_val is None:
            raise InvalidParameterError("give X_eval, y_eval (held-out data) or eval_fn")
        notes.append("budget measured on X_val (the pruning data): give X_eval, y_eval for an "
                     "unbiased held-out check")
        return _sk_score(X_val, y_val)
    return _sk_score(X_eval, y_eval)


def search_tree(
    model: Any,
    *,
    max_drop: float = 0.01,
    relative: bool = False,
    X_val: Any = None,
    y_val: Any = None,
    X_eval: Any = None,
    y_eval: Any = None,
    eval_fn: EvalFn | None = None,
    higher_is_better: bool | None = None,
    methods: Sequence[str] | None = None,
    max_alphas: int = 40,
    n_jobs: int | None = 1,
) -> BudgetResult:
    """The smallest pruned tree (any method, any parameter) within ``max_drop`` of the original.

    Methods needing validation data use ``X_val, y_val``; the budget is checked with
    ``eval_fn(model)`` or ``model.score(X_eval, y_eval)`` (accuracy / R²) on held-out data.
    """
    from prunekit.trees._sktree import check_tree_model, is_classifier_tree

    start = time.perf_counter()
    check_tree_model(model)
    notes: list[str] = []
    fn = _eval_data(eval_fn, X_eval, y_eval, X_val, y_val, notes)
    hib = metric_direction(fn, higher_is_better)
    clf = is_classifier_tree(model)
    cands = _tree_candidates(model, clf, X_val is not None, False, max_alphas)
    if methods is not None:
        cands = [c for c in cands if c[0] in set(methods)]
        if not cands:
            raise InvalidParameterError(f"methods={list(methods)} leaves no candidate; accepted: "
                                        "cost_complexity, reduced_error, pessimistic, c45, "
                                        "min_error, mdl")
    workers = min(_n_workers(n_jobs), len(cands))
    with Runner(_eval_tree, (model, X_val, y_val, fn), workers) as runner:
        baseline = call_metric(fn, model, "the unpruned tree")
        thr = _threshold(baseline, max_drop, relative, hib)
        out = runner.map([(m, p) for m, p in cands])
    points, models = [], {}
    for i, ((m, p), (pruned, metric, size, sec)) in enumerate(zip(cands, out, strict=True)):
        points.append(BudgetPoint({"method": m, **p}, metric, size,
                                  _feasible(metric, thr, hib), {"leaves":
                                                                float(pruned.get_n_leaves())},
                                  sec))
        models[i] = pruned
    return _finish("tree", "nodes", baseline, float(model.tree_.node_count), max_drop, relative,
                   thr, hib, points, models, start, notes)


# ----------------------------------------------------------------------------- ensembles


def _size_grid(n: int) -> list[int]:
    """1, 2, 3, ... growing by about 25 % per step, up to ``n``."""
    sizes = {n}
    k = 1.0
    while k < n:
        sizes.add(int(round(k)))
        k = max(k * 1.25, k + 1)
    return sorted(sizes)


def search_ensemble(
    model: Any,
    *,
    max_drop: float = 0.01,
    relative: bool = False,
    X_val: Any = None,
    y_val: Any = None,
    X_eval: Any = None,
    y_eval: Any = None,
    eval_fn: EvalFn | None = None,
    higher_is_better: bool | None = None,
    methods: Sequence[str] = ("reduce_error", "margin_distance", "orientation"),
    random_state: int = 0,
    n_jobs: int | None = 1,
) -> BudgetResult:
    """The fewest members (any of ``methods``) within ``max_drop`` of the whole ensemble.

    For each method the sizes are scanned upwards on a geometric grid and the scan stops at the
    first size within budget (early stopping); the gap below it is then bisected. With
    ``n_jobs`` the methods are searched at the same time (same points as ``n_jobs=1``).
    """
    from prunekit.ensembles import available_methods
    from prunekit.ensembles._members import build_member_matrix, check_fitted_ensemble, n_members

    start = time.perf_counter()
    notes: list[str] = []
    fn = _eval_data(eval_fn, X_eval, y_eval, X_val, y_val, notes)
    hib = metric_direction(fn, higher_is_better)
    if X_val is None or y_val is None:
        raise InvalidParameterError("search_ensemble needs X_val, y_val (the pruning data)")
    check_fitted_ensemble(model)
    total = n_members(model)
    allowed = available_methods(model)
    bad = [m for m in methods if m not in allowed]
    if bad or not methods:
        raise InvalidParameterError(f"methods {bad or list(methods)} do not apply to "
                                    f"{type(model).__name__}; accepted: {', '.join(allowed)}")
    workers = min(_n_workers(n_jobs), len(methods))
    members = build_member_matrix(model, X_val, y_val)
    points: list[BudgetPoint] = []
    models: dict[int, Any] = {}
    shared = (model, members, fn, random_state, total)
    with Runner(_ensemble_method, shared, workers) as runner:
        baseline = call_metric(fn, model, "the whole ensemble")
        thr = _threshold(baseline, max_drop, relative, hib)
        for found in runner.map([(m, thr, hib) for m in methods]):  # in method order
            for p, pruned in found:
                points.append(p)
                if pruned is not None:
                    models[len(points) - 1] = pruned
    return _finish("ensemble", "members", baseline, float(total), max_drop, relative, thr, hib,
                   points, models, start, notes)


def _ensemble_method(model: Any, members: Any, fn: EvalFn, random_state: int, total: int,
                     method: str, thr: float, hib: bool) -> list[tuple[BudgetPoint, Any]]:
    """One method's size search: ``[(point, pruned model if within budget else None)]``."""
    from prunekit.ensembles import prune_ensemble

    out: list[tuple[BudgetPoint, Any]] = []

    def evaluate(k: int) -> bool:
        t0 = time.perf_counter()
        pruned = prune_ensemble(model, method, size=k, members=members,
                                random_state=random_state)
        metric = call_metric(fn, pruned, f"ensemble method={method!r} size={k}")
        ok = _feasible(metric, thr, hib)
        out.append((BudgetPoint({"method": method, "size": k}, metric, float(k), ok, {},
                                time.perf_counter() - t0), pruned if ok else None))
        return ok

    prev = 0
    for k in _size_grid(total - 1 if total > 1 else 1):
        if evaluate(k):
            lo, hi = prev, k  # lo fails (or is 0), hi passes: bisect the gap
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if evaluate(mid):
                    hi = mid
                else:
                    lo = mid
            break
        prev = k
    return out


# ----------------------------------------------------------------------------- neural networks


def _keep_zeros_finetune(model: Any, finetune: Callable[[Any], Any] | None) -> None:
    """Run ``finetune(model)`` then zero again the weights that were zero before it."""
    if finetune is None:
        return
    import torch

    zeros = {n: p.detach() == 0 for n, p in model.named_parameters() if p.dim() > 1}
    finetune(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in zeros:
                p.masked_fill_(zeros[n], 0)


def _nonzero(model: Any) -> float:
    return float(sum(int((p != 0).sum()) for p in model.parameters()))


def _eval_sparse(model: Any, eval_fn: EvalFn, finetune: Any, opts: dict[str, Any], s: float,
                 thr: float, hib: bool) -> tuple[Any, float, float, float]:
    """One sparsity candidate; the model comes back only when it meets ``thr`` (the rest
    would cross a process boundary for nothing)."""
    from prunekit.nn.sparsity import prune_model

    t0 = time.perf_counter()
    opts = dict(opts)
    cand = copy.deepcopy(model)
    alloc = opts.pop("sensitivity", None)
    if alloc is not None:
        from prunekit.nn.allocation import allocate

        scope = allocate(alloc, sparsity=s, max_ratio=opts.pop("max_ratio", 0.95)).scope
        prune_model(cand, scope=scope, prune_first_last=True, **opts)
    else:
        opts.pop("max_ratio", None)
        prune_model(cand, s, **opts)
    _keep_zeros_finetune(cand, finetune)
    metric = call_metric(eval_fn, cand, f"sparsity {s:.4g}")
    keep = cand if _feasible(metric, thr, hib) else None
    return keep, metric, _nonzero(cand), time.perf_counter() - t0


def _scan(knobs: list[float], runner: Runner, record: Callable[[float, Any], bool],
          patience: int, refine: int, args: tuple[Any, ...] = ()) -> None:
    """Scan ``knobs`` (increasing compression) until ``patience`` infeasible points in a row,
    then bisect between the last feasible knob and the next one. Serial semantics whatever the
    number of workers (:func:`prunekit._sweep.scan`): ``record(knob, result)`` sees the same
    points in the same order."""
    done = scan(knobs, runner, record, patience, args)
    feas = [k for k, ok in done if ok]
    if not feas:
        return
    lo = max(feas)
    above = [k for k, _ in done if k > lo]
    if above and refine:
        bisect(lo, min(above), refine, runner, record, args)


def search_sparsity(
    model: Any,
    eval_fn: EvalFn,
    *,
    max_drop: float = 0.01,
    relative: bool = False,
    grid: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99),
    criterion: str = "magnitude",
    scope: str = "global",
    sensitivity: Any = None,
    finetune: Callable[[Any], Any] | None = None,
    higher_is_better: bool | None = None,
    patience: int = 2,
    refine: int = 3,
    n_jobs: int | None = 1,
    max_ratio: float = 0.95,
    **prune_options: Any,
) -> BudgetResult:
    """The highest weight sparsity whose ``eval_fn`` stays within ``max_drop``.

    Each candidate is a pruned copy (:func:`prunekit.nn.prune_model`), optionally fine-tuned by
    ``finetune(model)`` (the zeros are re-imposed after it). With ``sensitivity=`` (a
    :func:`prunekit.nn.sensitivity.layer_sensitivity` result) the per-layer sparsities come from
    :func:`prunekit.nn.allocation.allocate` instead of ``scope``. The model is not modified.
    """
    from prunekit._evaluation import check_grid

    start = time.perf_counter()
    if not callable(eval_fn):
        raise InvalidParameterError("eval_fn must be a callable eval_fn(model) -> float")
    knobs = check_grid(grid)
    hib = metric_direction(eval_fn, higher_is_better)
    _check_scan(patience, refine)
    workers = _n_workers(n_jobs)
    opts = {"criterion": criterion, **prune_options, "max_ratio": max_ratio}
    if sensitivity is not None:
        opts["sensitivity"] = sensitivity
    else:
        opts["scope"] = scope
    points: list[BudgetPoint] = []
    models: dict[int, Any] = {}
    best: list[Any] = [None, -1]

    def record(s: float, out: tuple[Any, float, float, float]) -> bool:
        cand, metric, size, sec = out
        p = BudgetPoint({"sparsity": round(s, 6)}, metric, size, _feasible(metric, thr, hib),
                        {}, sec)
        points.append(p)
        if p.feasible and (best[0] is None or size < best[1]):
            models.clear()
            models[len(points) - 1] = cand
            best[0], best[1] = cand, size
        return p.feasible

    with Runner(_eval_sparse, (model, eval_fn, finetune, opts), workers) as runner:
        baseline = call_metric(eval_fn, model, "the dense model")
        thr = _threshold(baseline, max_drop, relative, hib)
        _scan(knobs, runner, record, patience, refine, (thr, hib))
    return _finish("unstructured", "nonzero_params", baseline, _nonzero(model), max_drop,
                   relative, thr, hib, points, models, start, [])


def _eval_structured(model: Any, example_inputs: Any, eval_fn: EvalFn, finetune: Any,
                     opts: dict[str, Any], latency: bool, removed: float, thr: float, hib: bool
                     ) -> tuple[Any, float, float, dict[str, float], float]:
    """One candidate keeping ``1 - removed`` of the MACs; the model comes back only when it
    meets ``thr``."""
    from prunekit.nn.structured import prune

    t0 = time.perf_counter()
    keep = 1.0 - removed
    cand, rep = prune(model, example_inputs, target_macs=keep, measure=latency, **opts)
    if finetune is not None:
        finetune(cand)
    metric = call_metric(eval_fn, cand, f"target_macs {keep:.4g}")
    costs = {"params": float(rep.params_after), "macs_reduction": rep.macs_reduction}
    if latency and rep.latency_after_s is not None:
        costs["latency_s"] = rep.latency_after_s
    keep_model = cand if _feasible(metric, thr, hib) else None
    return keep_model, metric, float(rep.macs_after), costs, time.perf_counter() - t0


def search_structured(
    model: Any,
    example_inputs: Any,
    eval_fn: EvalFn,
    *,
    max_drop: float = 0.01,
    relative: bool = False,
    grid: Sequence[float] = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.33, 0.25, 0.2),
    criterion: str = "l2",
    allocation: str = "uniform",
    sensitivity: Any = None,
    finetune: Callable[[Any], Any] | None = None,
    higher_is_better: bool | None = None,
    latency: bool = False,
    patience: int = 2,
    refine: int = 3,
    n_jobs: int | None = 1,
    **prune_options: Any,
) -> BudgetResult:
    """The fewest MACs (``grid`` = fractions of MACs kept) whose ``eval_fn`` stays in budget.

    Candidates come from :func:`prunekit.nn.structured.prune` (``criterion``, ``allocation``,
    ``sensitivity`` and other options passed on), optionally fine-tuned by ``finetune(model)``.
    With ``latency=True`` and ``n_jobs > 1`` the latencies are measured while other candidates
    run: compare them with each other, not with a quiet machine.
    """
    from prunekit._evaluation import check_grid
    from prunekit.metrics import count_macs

    start = time.perf_counter()
    if not callable(eval_fn):
        raise InvalidParameterError("eval_fn must be a callable eval_fn(model) -> float")
    keeps = check_grid(grid)
    hib = metric_direction(eval_fn, higher_is_better)
    _check_scan(patience, refine)
    workers = _n_workers(n_jobs)
    opts = {"criterion": criterion, "allocation": allocation, **prune_options}
    if sensitivity is not None:
        opts["sensitivity"] = sensitivity
    points: list[BudgetPoint] = []
    models: dict[int, Any] = {}
    best: list[Any] = [None, math.inf]

    def record(removed: float, out: tuple[Any, float, float, dict[str, float], float]) -> bool:
        cand, metric, size, costs, sec = out
        p = BudgetPoint({"target_macs": round(1.0 - removed, 6)}, metric, size,
                        _feasible(metric, thr, hib), costs, sec)
        points.append(p)
        if p.feasible and size < best[1]:
            models.clear()
            models[len(points) - 1] = cand
            best[0], best[1] = cand, size
        return p.feasible

    shared = (model, example_inputs, eval_fn, finetune, opts, latency)
    with Runner(_eval_structured, shared, workers) as runner:
        baseline = call_metric(eval_fn, model, "the dense model")
        thr = _threshold(baseline, max_drop, relative, hib)
        # knobs: fraction of MACs removed, increasing compression
        _scan(sorted(1.0 - k for k in keeps), runner, record, patience, refine, (thr, hib))
    return _finish("structured", "macs", baseline, float(count_macs(model, example_inputs)),
                   max_drop, relative, thr, hib, points, models, start, [])


# keep the exported name visible to type checkers and docs
_ = EvaluationError
