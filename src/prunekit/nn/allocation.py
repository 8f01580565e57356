"""Per-layer / per-group pruning ratios that meet a global target with the least predicted damage.

Each entry (a layer's weights, or a structured group) has a sensitivity curve: the metric drop
and the resource saved (parameters, MACs, latency, units) at a grid of ratios, measured alone
(:mod:`prunekit.nn.sensitivity`). Assuming damages add up, choosing one ratio per entry so that
the savings reach the target and the summed damage is smallest is a multiple-choice knapsack;
:func:`solve` answers it exactly up to a fine discretisation of the savings (``method="dp"``)
or greedily by marginal damage per unit saved (``method="greedy"``).

OWL's outlier-weighted layer sparsities for one-shot transformer pruning
(:func:`prunekit.nn.oneshot.algorithms.owl_sparsities`) are the other allocation prunekit
offers; :func:`owl_allocation` returns them in the same :class:`Allocation` form.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunekit.errors import InvalidParameterError

from .sensitivity import SensitivityResult

RESOURCES = ("params", "macs", "latency_s", "units")
SOLVERS = ("dp", "greedy")
DEFAULT_BALANCE = 0.0


@dataclass
class Allocation:
    """Chosen ratio per entry, what it is predicted to save and to cost."""

    ratios: dict[str, float]
    resource: str
    target_fraction: float  # fraction of the resource asked to be removed
    predicted_fraction: float  # fraction removed by the chosen ratios (additive estimate)
    predicted_drop: float  # summed metric drop of the chosen ratios
    kind: str = "weights"
    method: str = "dp"
    notes: list[str] = field(default_factory=list)

    @property
    def scope(self) -> dict[str, float]:
        """``{module_name: sparsity}`` for ``prunekit.nn.prune_model(scope=...)``."""
        return {n[: -len(".weight")] if n.endswith(".weight") else n: r
                for n, r in self.ratios.items()}

    def to_markdown(self) -> str:
        rows = ["| entry | ratio |", "|---|---:|"]
        rows += [f"| {n} | {r:.3f} |" for n, r in self.ratios.items()]
        return (f"Allocation ({self.method}) of {self.target_fraction:.3f} of `{self.resource}`: "
                f"predicted {self.predicted_fraction:.3f} removed, predicted drop "
                f"{self.predicted_drop:.4g}\n\n" + "\n".join(rows))


def _bounds(name: str, value: float | Mapping[str, float], default: float) -> float:
    import fnmatch

    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == name or fnmatch.fnmatchcase(name, k) or name == f"{k}.weight":
                return float(v)
        return default
    return float(value)


def _check_bound(label: str, value: Any) -> None:
    vals = value.values() if isinstance(value, Mapping) else [value]
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise InvalidParameterError(f"{label} must be a fraction in [0, 1] (or a dict of "
                                        f"them), got {value!r}")


def _curves(result: SensitivityResult, resource: str, step: float
            ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per entry: candidate ratios, monotone damage, saving (interpolated onto ``step``)."""
    if resource not in result.savings:
        avail = ", ".join(sorted(result.savings))
        hint = (" (weight sensitivity needs example_inputs= for MACs; latency only exists for "
                "group_sensitivity(latency=True))")
        raise InvalidParameterError(
            f"the sensitivity result has no {resource!r} savings; available: {avail}{hint}"
        )
    grid = np.array([0.0, *result.grid])
    top = float(grid[-1])
    fine = np.unique(np.concatenate([np.arange(0.0, top + 1e-9, step), grid]))
    out = {}
    for name in result.names:
        drop = np.maximum(np.concatenate([[0.0], result.drop(name)]), 0.0)
        drop = np.maximum.accumulate(drop)  # more pruning never predicted to help
        save = np.concatenate([[0.0], result.savings[resource][name]])
        save = np.maximum.accumulate(np.maximum(save, 0.0))
        out[name] = (fine, np.interp(fine, grid, drop), np.interp(fine, grid, save))
    return out


def solve(
    options: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    required: float,
    *,
    method: str = "dp",
    buckets: int = 2000,
) -> dict[str, int]:
    """Pick one option index per entry with summed saving >= ``required`` and least damage.

    ``options[name] = (ratios, damage, saving)``; savings are floored onto ``buckets`` steps of
    ``required / buckets``, so the true saving of the answer is never below ``required``.
    Raises :class:`InvalidParameterError` when even the largest options cannot reach it.
    """
    names = list(options)
    best = sum(float(o[2].max()) for o in options.values())
    if required > best * (1 + 1e-9) + 1e-12:
        raise InvalidParameterError(
            f"the target is not reachable: the allowed ratios save at most {best:.6g}, "
            f"{required:.6g} was asked; raise max_ratio or lower the target"
        )
    if required <= 0:
        return {n: int(np.argmin(o[1] + 1e-12 * o[0])) for n, o in options.items()}
    if method == "greedy":
        return _greedy(options, required)
    unit = required / buckets
    top = {n: int(np.argmax(o[2])) for n, o in options.items()}
    if sum(_bucket(options[n][2][j], unit, buckets) for n, j in top.items()) < buckets:
        # the target is within the flooring error of the largest saving: only the largest
        # options reach it (their true saving is >= required, checked above)
        return top
    history = [np.full(buckets + 1, math.inf)]
    history[0][0] = 0.0
    choice = np.zeros((len(names), buckets + 1), dtype=np.int32)
    for i, n in enumerate(names):
        dp = history[-1]
        ratios, damage, saving = options[n]
        new = np.full(buckets + 1, math.inf)
        for j in range(len(ratios)):
            s = _bucket(saving[j], unit, buckets)
            c = damage[j] + 1e-12 * ratios[j] ** 2  # tiny penalty: ties stay balanced
            cand = dp + c if s == 0 else np.concatenate([np.full(s, math.inf), dp[:-s] + c])
            if s:
                cand[buckets] = min(cand[buckets], float(dp[buckets - s:].min()) + c)
            better = cand < new
            new[better] = cand[better]
            choice[i, better] = j
        history.append(new)
    if not math.isfinite(history[-1][buckets]):
        raise InvalidParameterError("the target is not reachable with the allowed ratios")
    picks: dict[str, int] = {}
    b = buckets
    for i in range(len(names) - 1, -1, -1):
        j = int(choice[i, b])
        picks[names[i]] = j
        s = _bucket(options[names[i]][2][j], unit, buckets)
        if b == buckets and s:  # a capped state: the best predecessor at or above buckets - s
            prev = history[i]
            b = buckets - s + int(np.argmin(prev[buckets - s:]))
        else:
            b -= s
    return {n: picks[n] for n in names}


def _bucket(saving: float, unit: float, buckets: int) -> int:
    return min(int(math.floor(saving / unit + 1e-9)), buckets)


def _greedy(options: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
            required: float) -> dict[str, int]:
    idx = {n: 0 for n in options}
    saved = sum(float(o[2][0]) for o in options.values())
    while saved < required - 1e-12:
        best, best_rate = None, math.inf
        for n, (_r, d, s) in options.items():
            j = idx[n]
            for k in range(j + 1, len(s)):
                ds = s[k] - s[j]
                if ds > 0:
                    rate = (d[k] - d[j]) / ds
                    if rate < best_rate:
                        best, best_rate = (n, k), rate
                    break
        if best is None:
            raise InvalidParameterError("the target is not reachable with the allowed ratios")
        n, k = best
        saved += float(options[n][2][k] - options[n][2][idx[n]])
        idx[n] = k
    return idx


def _uniform_ratio(options: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                   required: float) -> float:
    """The one ratio that, applied to every entry (clipped to its allowed range), saves
    ``required`` by the interpolated curves (bisection; the top of the range when out of reach)."""

    def saved(u: float) -> float:
        return sum(float(np.interp(min(max(u, r[0]), r[-1]), r, s))
                   for r, _d, s in options.values())

    lo, hi = 0.0, 1.0
    if saved(hi) < required:
        return hi
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if saved(mid) < required else (lo, mid)
    return hi


def _balanced(options: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
              required: float, balance: float
              ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Add to each option's damage a convex penalty on leaving the uniform ratio ``u``.

    The penalty of ratio ``r`` is ``balance * D_u * w * log((1 - r) / (1 - u))**2``: ``D_u`` the
    predicted damage of the uniform allocation (so the penalty is in the metric's units and
    scale-free), ``w`` the entry's share of the largest saving, the log of kept fractions so a
    bottleneck (keeping 5 % where uniform keeps 30 %) costs far more than keeping more. It
    counters what the additive single-entry curves miss: noise the knapsack would exploit,
    damage that compounds when several entries are pruned hard, and layers left too thin to
    recover in fine-tuning.
    """
    if balance <= 0 or required <= 0:
        return dict(options)
    u = _uniform_ratio(options, required)
    d_u = sum(float(np.interp(min(max(u, r[0]), r[-1]), r, d)) for r, d, _s in options.values())
    d_ref = max(d_u, 1e-9)
    tops = {n: float(o[2].max()) for n, o in options.items()}
    total = sum(tops.values()) or 1.0
    eps = 1e-3
    out = {}
    for n, (r, d, s) in options.items():
        dev = np.log((1.0 - r + eps) / (1.0 - u + eps))
        out[n] = (r, d + balance * d_ref * (tops[n] / total) * dev ** 2, s)
    return out


def _mixed(options: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
           picks: Mapping[str, int], required: float, mix: float) -> dict[str, float]:
    """``mix`` of the way from the uniform ratio (saving ``required``) to the knapsack's."""
    chosen = {n: float(options[n][0][j]) for n, j in picks.items()}
    if mix >= 1.0:
        return chosen
    u = _uniform_ratio(options, required)
    out = {n: (1.0 - mix) * min(max(u, float(r[0])), float(r[-1])) + mix * chosen[n]
           for n, (r, _d, _s) in options.items()}

    def shifted(delta: float) -> dict[str, float]:
        return {n: min(out[n] + delta, float(o[0][-1])) for n, o in options.items()}

    def saved(rs: Mapping[str, float]) -> float:
        return sum(float(np.interp(rs[n], o[0], o[2])) for n, o in options.items())

    if saved(out) >= required * (1 - 1e-9):
        return out
    # curved savings (structured groups): a blend of two allocations that each reach the
    # target may fall short; raise every ratio by the same smallest amount that reaches it
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if saved(shifted(mid)) < required else (lo, mid)
    return shifted(hi)


def _check_mix(mix: Any) -> float:
    if isinstance(mix, bool) or not isinstance(mix, (int, float)) or not 0.0 <= mix <= 1.0:
        raise InvalidParameterError(
            f"mix must be in [0, 1] (0 = uniform ratios, 1 = the sensitivity allocation), "
            f"got {mix!r}")
    return float(mix)


def _check_balance(balance: Any) -> float:
    if isinstance(balance, bool) or not isinstance(balance, (int, float)) or not (
            math.isfinite(balance) and balance >= 0):
        raise InvalidParameterError(
            f"balance must be a finite number >= 0 (0 = the unregularised knapsack), got "
            f"{balance!r}")
    return float(balance)


def _target(result: SensitivityResult, sparsity: float | None, target_macs: float | None,
            target_params: float | None, target_latency: float | None,
            units: float | None) -> tuple[str, float]:
    """(resource, fraction of the resource's total to remove) from exactly one target."""
    given = {"sparsity": sparsity, "target_macs": target_macs, "target_params": target_params,
             "target_latency": target_latency, "units": units}
    named = [k for k, v in given.items() if v is not None]
    if len(named) != 1:
        raise InvalidParameterError(
            "give exactly one of sparsity, target_macs, target_params, target_latency, units "
            f"(got {named or 'none'})"
        )
    k = named[0]
    v = given[k]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise InvalidParameterError(f"{k} must be a fraction in [0, 1], got {v!r}")
    if k == "sparsity":
        return "params", float(v)
    if k == "units":
        return "units", float(v)
    resource = {"target_macs": "macs", "target_params": "params",
                "target_latency": "latency_s"}[k]
    # targets name the fraction kept of the whole model, as in structured prune()
    return resource, 1.0 - float(v)


def allocate(
    result: SensitivityResult,
    *,
    sparsity: float | None = None,
    target_macs: float | None = None,
    target_params: float | None = None,
    target_latency: float | None = None,
    units: float | None = None,
    min_ratio: float | Mapping[str, float] = 0.0,
    max_ratio: float | Mapping[str, float] = 0.95,
    method: str = "dp",
    step: float = 0.025,
    balance: float = DEFAULT_BALANCE,
    mix: float = 1.0,
) -> Allocation:
    """Ratios per entry of ``result`` that reach one global target with the least damage.

    Targets: ``sparsity`` (fraction of the analysed weights removed, as ``prune_model``);
    ``target_macs`` / ``target_params`` / ``target_latency`` (fraction of the whole model kept,
    as structured ``prune``); ``units`` (fraction of structured units removed). ``min_ratio`` /
    ``max_ratio`` bound each entry (a number, or ``{name_or_glob: fraction}``); ratios beyond
    the measured grid are never chosen. A target the bounds cannot reach raises
    :class:`InvalidParameterError` naming the most that is reachable.
    """
    from prunekit._validation import check_choice

    if not isinstance(result, SensitivityResult):
        raise InvalidParameterError("result must be a SensitivityResult from layer_sensitivity "
                                    "or group_sensitivity")
    check_choice("method", method, SOLVERS)
    _check_bound("min_ratio", min_ratio)
    _check_bound("max_ratio", max_ratio)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 0.5:
        raise InvalidParameterError(f"step must be in (0, 0.5], got {step!r}")
    resource, frac = _target(result, sparsity, target_macs, target_params, target_latency, units)
    curves = _curves(result, resource, step)
    options: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, (r, d, s) in curves.items():
        lo, hi = _bounds(name, min_ratio, 0.0), _bounds(name, max_ratio, 0.95)
        if lo > hi:
            raise InvalidParameterError(f"min_ratio {lo} > max_ratio {hi} for {name!r}")
        keep = (r >= lo - 1e-9) & (r <= hi + 1e-9)
        if not keep.any():
            raise InvalidParameterError(
                f"no measured ratio of {name!r} lies in [{lo}, {hi}]; grid is {result.grid}"
            )
        options[name] = (r[keep], d[keep], s[keep])
    total = float(result.totals[resource])
    required = frac * total
    reachable = sum(float(o[2].max()) for o in options.values())
    if required > reachable * (1 + 1e-9) + 1e-12:
        raise InvalidParameterError(
            f"target not reachable: removing {frac:.4g} of {resource} needs {required:.6g}, but "
            f"within min_ratio/max_ratio and the grid at most {reachable / total:.4g} of it can "
            "be removed"
        )
    mix = _check_mix(mix)
    picks = solve(_balanced(options, required, _check_balance(balance)), required, method=method)
    ratios = _mixed(options, picks, required, mix)
    saved = sum(float(np.interp(ratios[n], o[0], o[2])) for n, o in options.items())
    drop = sum(float(np.interp(ratios[n], o[0], o[1])) for n, o in options.items())
    notes = [f"mix {mix:g}: {1 - mix:g} of the way back to the uniform ratio"] if mix < 1 else []
    return Allocation(ratios=ratios, resource=resource, target_fraction=frac,
                      predicted_fraction=saved / total if total else 0.0, predicted_drop=drop,
                      kind=result.kind, method=method, notes=notes)


def owl_allocation(outlier_ratios: Mapping[str, float], sparsity: float,
                   lam: float = 0.08) -> Allocation:
    """OWL layer sparsities (Yin et al. 2024) as an :class:`Allocation` (``.scope`` for
    ``prune_model``); ``outlier_ratios[layer]`` is the layer's share of outlier weights."""
    from prunekit.nn.oneshot.algorithms import owl_sparsities

    if not isinstance(outlier_ratios, Mapping) or not outlier_ratios:
        raise InvalidParameterError("outlier_ratios must be a non-empty {layer: ratio} dict")
    names = list(outlier_ratios)
    vals = owl_sparsities([float(outlier_ratios[n]) for n in names], sparsity, lam)
    return Allocation(ratios=dict(zip(names, vals, strict=True)), resource="params",
                      target_fraction=float(sparsity), predicted_fraction=float(np.mean(vals)),
                      predicted_drop=float("nan"), kind="weights", method="owl")


@dataclass(frozen=True)
class SensitivityAllocation:
    """Group sensitivity curves with the settings of their allocation, accepted by structured
    ``prune(allocation="sensitivity", sensitivity=...)`` in place of the bare result.

    ``mix`` moves the ratios from uniform (0) to the knapsack's (1, the default of a bare
    result); ``balance`` penalises leaving the uniform ratio inside the knapsack;
    ``method`` is the solver. :func:`select_allocation` picks ``mix`` on validation data.
    """

    result: SensitivityResult
    mix: float = 1.0
    balance: float = DEFAULT_BALANCE
    method: str = "dp"

    def __post_init__(self) -> None:
        from prunekit._validation import check_choice

        if not isinstance(self.result, SensitivityResult) or self.result.kind != "groups":
            raise InvalidParameterError("SensitivityAllocation needs result=group_sensitivity("
                                        "model, ...) (a SensitivityResult of kind 'groups')")
        _check_mix(self.mix)
        _check_balance(self.balance)
        check_choice("method", self.method, SOLVERS)


def group_ratios(graph: Any, result: SensitivityResult | SensitivityAllocation, strength: float,
                 *, resource: str, max_ratio: float, method: str = "dp",
                 balance: float = DEFAULT_BALANCE, mix: float = 1.0) -> dict[int, float]:
    """Per-group ratios for structured ``prune(allocation="sensitivity")``.

    ``strength`` in ``[0, max_ratio]`` maps linearly to the fraction of the largest reachable
    saving of ``resource`` (so ``prune``'s bisection on a target works unchanged); with
    ``resource="units"`` it is the fraction of units removed. Groups of ``graph`` that
    ``result`` did not analyse keep all their units. A :class:`SensitivityAllocation` brings
    its own ``mix`` / ``balance`` / ``method``, which replace the keyword arguments.
    """
    from .sensitivity import group_keys

    if isinstance(result, SensitivityAllocation):
        result, mix, balance, method = result.result, result.mix, result.balance, result.method
    if not isinstance(result, SensitivityResult) or result.kind != "groups":
        raise InvalidParameterError(
            "allocation='sensitivity' needs sensitivity=group_sensitivity(model, ...) (a "
            "SensitivityResult of kind 'groups', or a SensitivityAllocation of one)"
        )
    keys = group_keys(graph)
    missing = [k for k in keys.values() if k not in result.metrics]
    if len(missing) == len(keys):
        raise InvalidParameterError("sensitivity= was computed for another model: none of its "
                                    f"groups match ({sorted(keys.values())[:5]} ...)")
    curves = _curves(result, resource, 0.025)
    options = {}
    for name, (r, d, s) in curves.items():
        keep = r <= max_ratio + 1e-9
        options[name] = (r[keep], d[keep], s[keep])
    reach = sum(float(o[2].max()) for o in options.values())
    if resource == "units":
        frac = min(strength * result.totals["units"], reach)
    else:
        frac = reach * (strength / max_ratio if max_ratio > 0 else 0.0)
    need = min(frac, reach)
    picks = solve(_balanced(options, need, _check_balance(balance)), need, method=method)
    by_name = _mixed(options, picks, need, _check_mix(mix))
    return {gid: by_name.get(k, 0.0) for gid, k in keys.items()}


DEFAULT_MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class AllocationChoice:
    """What :func:`select_allocation` chose: the pruned model, its ``mix`` and every score."""

    model: Any
    mix: float
    metric: float
    scores: dict[float, float]  # validation metric of the jointly pruned model per mix
    report: Any  # StructuredReport (groups) or Allocation (weights) of the chosen mix
    higher_is_better: bool = True

    def to_markdown(self) -> str:
        rows = ["| mix | metric |", "|---:|---:|"]
        rows += [f"| {m:g}{' (chosen)' if m == self.mix else ''} | {v:.4g} |"
                 for m, v in self.scores.items()]
        return (f"Allocation chosen on validation data: mix {self.mix:g} (0 = uniform, "
                f"1 = sensitivity knapsack)\n\n" + "\n".join(rows))


def select_allocation(
    model: Any,
    eval_fn: Any,
    sensitivity: SensitivityResult,
    *,
    example_inputs: Any = None,
    mixes: Any = DEFAULT_MIXES,
    balance: float = DEFAULT_BALANCE,
    higher_is_better: bool | None = None,
    **kwargs: Any,
) -> AllocationChoice:
    """Prune at one target with ratios ``mix`` of the way from uniform to the sensitivity
    allocation, for each of ``mixes``, and keep the candidate whose *jointly* pruned model
    scores best on ``eval_fn`` (validation data, never the test set).

    The knapsack adds up damages measured one entry at a time; the joint evaluation catches
    where that misleads (interactions, noisy curves) and falls back toward uniform ratios.
    ``sensitivity`` of kind ``"groups"`` prunes with structured ``prune(model, example_inputs,
    allocation="sensitivity", **kwargs)`` (``kwargs``: its target and options); of kind
    ``"weights"`` with ``prune_model(copy, scope=allocate(sensitivity, **target).scope, ...)``
    (``kwargs``: the target of :func:`allocate` plus ``prune_model`` options;
    ``prune_first_last`` defaults to True). ``model`` is not modified. Ties go to the larger mix.
    """
    from prunekit._evaluation import call_metric, metric_direction

    if not isinstance(sensitivity, SensitivityResult):
        raise InvalidParameterError("sensitivity must be a SensitivityResult from "
                                    "layer_sensitivity or group_sensitivity")
    if not callable(eval_fn):
        raise InvalidParameterError("eval_fn must be a callable eval_fn(model) -> float")
    if isinstance(mixes, (str, bytes)) or not hasattr(mixes, "__iter__"):
        raise InvalidParameterError(f"mixes must be a sequence of numbers in [0, 1], got "
                                    f"{mixes!r}")
    mix_list = sorted({_check_mix(m) for m in mixes})
    if not mix_list:
        raise InvalidParameterError("mixes must hold at least one number in [0, 1]")
    balance = _check_balance(balance)
    hib = metric_direction(eval_fn, higher_is_better)
    best: tuple[float, float, Any, Any] | None = None
    scores: dict[float, float] = {}
    for m in mix_list:
        cand, report = _build_mixed(model, sensitivity, m, balance, example_inputs, dict(kwargs))
        value = call_metric(eval_fn, cand, f"the allocation with mix {m:g}")
        scores[m] = value
        signed = value if hib else -value
        if best is None or signed >= best[0]:
            best = (signed, m, cand, report)
    _, m, cand, report = best  # type: ignore[misc]  # mix_list is not empty
    return AllocationChoice(model=cand, mix=m, metric=scores[m], scores=scores, report=report,
                            higher_is_better=hib)


def _build_mixed(model: Any, result: SensitivityResult, mix: float, balance: float,
                 example_inputs: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    if result.kind == "groups":
        from prunekit.nn.structured import prune

        if example_inputs is None:
            raise InvalidParameterError("group sensitivity needs example_inputs= for the "
                                        "structured prune")
        for k in ("allocation", "sensitivity"):
            if k in kwargs:
                raise InvalidParameterError(f"{k}= is set by select_allocation; remove it")
        spec = SensitivityAllocation(result, mix=mix, balance=balance,
                                     method=kwargs.pop("method", "dp"))
        return prune(model, example_inputs, allocation="sensitivity", sensitivity=spec, **kwargs)
    from prunekit.nn.sparsity import prune_model

    target_keys = ("sparsity", "target_macs", "target_params", "target_latency", "units",
                   "min_ratio", "max_ratio", "method", "step")
    target = {k: kwargs.pop(k) for k in target_keys if k in kwargs}
    if "scope" in kwargs:
        raise InvalidParameterError("scope= is set by select_allocation; remove it")
    al = allocate(result, balance=balance, mix=mix, **target)
    cand = copy.deepcopy(model)
    kwargs.setdefault("prune_first_last", True)
    prune_model(cand, scope=al.scope, **kwargs)
    return cand, al
