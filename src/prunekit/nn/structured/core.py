"""``prune``: physically remove channels, neurons and heads; plans that replay on fresh models."""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit._io import atomic_write_json
from prunekit._modes import eval_mode
from prunekit._validation import check_choice, check_fraction, check_positive_int
from prunekit.errors import (
    InvalidParameterError,
    PrunekitError,
    ShapeMismatchError,
    UnsupportedModelError,
)
from prunekit.metrics import count_macs, markdown_table, measure_latency

from .graph import ATTENTION_UNITS, DependencyGraph, Group, analyze, resolve_names
from .handlers import get_owner, handler_for, prune_param
from .importance import CRITERIA, gradients, unit_scores
from .plan_check import PLAN_FORMAT, role_size, validate_plan

ALLOCATIONS = ("uniform", "global", "sensitivity")

#: ``scorer(model, graph) -> {unit: score}``: unit importance replacing a built-in criterion.
Scorer = Callable[[nn.Module, DependencyGraph], dict[int, float]]
#: ``repair(dense, pruned, plan) -> notes``: in-place repair of the pruned copy after the search.
Repair = Callable[[nn.Module, nn.Module, dict[str, Any]], Iterable[str] | None]


# ----------------------------------------------------------------------------- measuring


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def count_params(model: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())


def state_bytes(model: nn.Module) -> int:
    """Bytes of the tensors in ``model.state_dict()`` (the payload of a saved checkpoint,
    without serialising it)."""
    seen: set[int] = set()
    total = 0
    for t in model.state_dict(keep_vars=True).values():
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def _latency_s(model: nn.Module, example_inputs: Any) -> float:
    """Median seconds of one eval-mode forward (``prunekit.metrics.measure_latency``)."""
    return measure_latency(model, _as_tuple(example_inputs), warmup=3, repeats=10).median_s


# ----------------------------------------------------------------------------- report


@dataclass
class StructuredReport:
    """What :func:`prune` removed, from where, and what it bought."""

    criterion: str
    allocation: str
    ratio: float
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    bytes_before: int
    bytes_after: int
    groups: list[dict[str, Any]]
    layers: dict[str, dict[str, list[int]]]  # layer -> role -> [before, after]
    skipped: list[str]
    notes: list[str]
    plan: dict[str, Any] = field(repr=False)
    latency_before_s: float | None = None
    latency_after_s: float | None = None

    @property
    def macs_reduction(self) -> float:
        """MACs before / MACs after."""
        return self.macs_before / max(self.macs_after, 1)

    @property
    def params_reduction(self) -> float:
        return self.params_before / max(self.params_after, 1)

    @property
    def kept_fraction(self) -> dict[str, float]:
        """Per pruned layer: the smallest kept fraction over its roles (1.0 if untouched)."""
        return {name: min(a / max(b, 1) for b, a in roles.values())
                for name, roles in self.layers.items()}

    @property
    def min_kept_fraction(self) -> float:
        """The smallest kept fraction of any layer (1.0 when nothing was removed)."""
        return min(self.kept_fraction.values(), default=1.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_reduction"] = self.macs_reduction
        d["params_reduction"] = self.params_reduction
        d["kept_fraction"] = self.kept_fraction
        d["min_kept_fraction"] = self.min_kept_fraction
        return d

    def to_markdown(self) -> str:
        rows = [
            ("MACs", self.macs_before, self.macs_after),
            ("parameters", self.params_before, self.params_after),
            ("bytes", self.bytes_before, self.bytes_after),
        ]
        if self.latency_before_s is not None and self.latency_after_s is not None:
            rows.append(("latency (ms)", self.latency_before_s * 1e3, self.latency_after_s * 1e3))
        lines = [
            f"Structured pruning: criterion `{self.criterion}`, allocation `{self.allocation}`, "
            f"ratio {self.ratio:.3f}",
            "",
        ]
        table = []
        for name, b, a in rows:
            fb, fa = (f"{b:,}", f"{a:,}") if isinstance(b, int) else (f"{b:.3f}", f"{a:.3f}")
            table.append({"metric": name, "before": fb, "after": fa,
                          "ratio": f"{b / max(a, 1e-12):.2f}x"})
        lines.append(markdown_table(table, right=("before", "after", "ratio")))
        groups = [
            {"group": g["id"], "units": g["units"], "removed": g["removed"],
             "layers": ", ".join(g["layers"][:4]) + (" ..." if len(g["layers"]) > 4 else "")}
            for g in self.groups
        ]
        if groups:
            lines += ["", markdown_table(groups, right=("group", "units", "removed"))]
        if self.layers:
            worst = min(self.kept_fraction.items(), key=lambda t: t[1])
            lines += ["", f"Smallest kept fraction of a layer: {worst[1]:.1%} ({worst[0]})"]
        if self.skipped:
            lines += ["", "Kept unchanged:"] + [f"- {s}" for s in self.skipped]
        if self.notes:
            lines += ["", "Notes:"] + [f"- {s}" for s in self.notes[:20]]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- selection


def _n_remove(n: int, ratio: float, max_ratio: float, min_units: int,
              round_to: int | None) -> int:
    k = min(int(math.floor(n * ratio + 1e-9)), int(math.floor(n * max_ratio + 1e-9)))
    keep = max(n - k, min(min_units, n))
    if round_to and round_to > 1 and keep % round_to:
        keep = min(n, int(math.ceil(keep / round_to)) * round_to)
    return max(n - keep, 0)


def _pick(group: Group, scores: dict[int, float], k: int) -> list[int]:
    if k <= 0:
        return []
    if group.partitions:
        h = len(group.partitions)
        per = min(k // h, min(len(p) for p in group.partitions) - 1)
        out: list[int] = []
        for part in group.partitions:
            out += sorted(part, key=lambda u: (scores[u], u))[:per]
        return out
    return sorted(group.units, key=lambda u: (scores[u], u))[:k]


def _branches(graph: DependencyGraph, group: Group) -> list[list[int]]:
    """Split a group's units by the layers that produce them (``out``/``param`` uses).

    Units of one group that come from different producers (the branches of a ``cat``) are ranked
    and counted per branch, so a branch with small weights is not wiped out while another keeps
    everything.
    """
    cached = graph.branch_cache.get(group.id)
    if cached is not None:
        return cached
    uset = set(group.units)
    origin: dict[int, list[tuple[str, str]]] = {}
    for key in group.uses:
        if key[1] != "out" and not key[1].startswith("param:"):
            continue
        for u in graph.unit_of(graph.uses[key]).tolist():
            if u in uset:
                origin.setdefault(u, [])
                if not origin[u] or origin[u][-1] != key:
                    origin[u].append(key)
    by_origin: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for u in group.units:
        by_origin.setdefault(tuple(sorted(set(origin.get(u, ())))), []).append(u)
    graph.branch_cache[group.id] = list(by_origin.values())
    return graph.branch_cache[group.id]


def _split_count(sizes: list[int], k: int) -> list[int]:
    """Distribute ``k`` removals over branches proportionally to their sizes (largest
    remainders), never removing a whole branch."""
    total = sum(sizes)
    if not total:
        return [0] * len(sizes)
    exact = [k * n / total for n in sizes]
    out = [min(int(math.floor(e)), max(n - 1, 0)) for e, n in zip(exact, sizes, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - out[i], reverse=True)
    for i in order:
        if sum(out) >= k:
            break
        if out[i] < sizes[i] - 1:
            out[i] += 1
    return out


def select_units(
    graph: DependencyGraph,
    scores: dict[int, float],
    ratio: float,
    *,
    allocation: str = "uniform",
    round_to: int | None = None,
    min_channels: int = 1,
    max_ratio: float = 0.9,
    group_ratios: dict[int, float] | None = None,
) -> set[int]:
    """Choose the units to remove: a uniform ``ratio`` per group (counted per branch where a
    group joins several producers), or a global ranking of branch-normalised scores with
    per-group ``max_ratio`` / ``min_channels`` limits."""
    removed: set[int] = set()

    def step(g: Group) -> int | None:
        # balanced heads: kept widths are a multiple of the head count (and of round_to)
        if g.partitions:
            return math.lcm(round_to or 1, len(g.partitions))
        return round_to

    def pick(g: Group, k: int) -> list[int]:
        if g.partitions or k <= 0:
            return _pick(g, scores, k)
        branches = _branches(graph, g)
        if len(branches) == 1:
            return _pick(g, scores, k)
        out: list[int] = []
        for units, kb in zip(branches, _split_count([len(b) for b in branches], k),
                             strict=True):
            out += sorted(units, key=lambda u: (scores[u], u))[:kb]
        return out

    if allocation in ("uniform", "sensitivity"):
        for g in graph.groups:
            r = ratio if group_ratios is None else group_ratios.get(g.id, 0.0)  # issue 14
            removed.update(pick(g, _n_remove(g.n_units, r, max_ratio, min_channels, step(g))))
    else:
        norm: list[tuple[float, int, int]] = []
        for gi, g in enumerate(graph.groups):
            for units in ([g.units] if g.partitions else _branches(graph, g)):
                vals = np.array([scores[u] for u in units])
                mean = float(vals.mean()) if len(vals) and vals.mean() > 0 else 1.0
                norm += [(scores[u] / mean, u, gi) for u in units]
        norm.sort()
        budget = int(round(ratio * len(norm)))
        cap = [_n_remove(g.n_units, max_ratio, max_ratio, min_channels, None)
               for g in graph.groups]
        per_group: list[int] = [0] * len(graph.groups)
        chosen: list[set[int]] = [set() for _ in graph.groups]
        for _, u, gi in norm:
            if sum(per_group) >= budget:
                break
            if per_group[gi] < cap[gi]:
                per_group[gi] += 1
                chosen[gi].add(u)
        for gi, g in enumerate(graph.groups):
            k = per_group[gi]
            r = step(g)
            if r and r > 1:
                keep = g.n_units - k
                keep = min(g.n_units, int(math.ceil(keep / r)) * r)
                k = g.n_units - keep
            if g.partitions or len(chosen[gi]) != k:
                removed.update(pick(g, k))
            else:
                removed.update(chosen[gi])
    # every layer keeps at least one position
    for use in graph.uses.values():
        units = graph.unit_of(use)
        if all(int(u) in removed for u in units):
            best = max({int(u) for u in units}, key=lambda u: scores.get(u, 0.0))
            removed.discard(best)
    return removed


# ----------------------------------------------------------------------------- plans


def make_plan(model: nn.Module, graph: DependencyGraph, removed: set[int]) -> dict[str, Any]:
    """A JSON-serialisable record of the kept positions of every touched layer."""
    layers: dict[str, dict[str, list[int]]] = {}
    params: dict[str, dict[str, Any]] = {}
    original: dict[str, dict[str, int]] = {}
    for (name, role), use in graph.uses.items():
        units = graph.unit_of(use)
        keep = [i for i, u in enumerate(units.tolist()) if u not in removed]
        if len(keep) == len(units):
            continue
        if role.startswith("param:"):
            params[name] = {"dim": int(role.split(":")[1]), "keep": keep, "size": len(units)}
        else:
            layers.setdefault(name, {})[role] = keep
            original.setdefault(name, {})[role] = len(units)
    attrs: dict[str, dict[str, int]] = {}
    removed_arr = np.fromiter(removed, dtype=np.int64) if removed else np.zeros(0, np.int64)
    for owner, attr, value, units, axis in graph.bindings:
        kept = ~np.isin(units, removed_arr)
        other = tuple(i for i in range(kept.ndim) if i != axis)
        new = int(kept.any(axis=other).sum()) if other else int(kept.sum())
        if new != value:
            attrs.setdefault(owner, {})[attr] = new
    return {"format": PLAN_FORMAT, "layers": layers, "params": params, "attrs": attrs,
            "original": original}


def apply_plan(model: nn.Module, plan: dict[str, Any], *, inplace: bool = False,
               example_inputs: Any = None) -> nn.Module:
    """Shrink ``model`` (a fresh copy of the pruned architecture) as ``plan`` records.

    Then ``load_state_dict`` of the pruned weights works. Returns the shrunk model (a deep copy
    unless ``inplace``). The plan is validated against the model before anything is touched;
    with ``example_inputs`` the shrunk model is also run once and must give the output shapes
    of the original (a hand-edited plan that leaves a coupled layer out fails here, not later).
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    validate_plan(model, plan)  # before anything is touched
    if example_inputs is not None:
        inputs = _example_inputs(model, example_inputs)
        shrunk = apply_plan(model, plan)
        try:
            with torch.no_grad():
                ref, got = _out_shapes(model, inputs), _out_shapes(shrunk, inputs)
        except Exception as exc:  # noqa: BLE001 - the plan broke the model
            raise ShapeMismatchError(f"the model shrunk by this plan does not run: "
                                     f"{type(exc).__name__}: {str(exc)[:300]}") from exc
        if got != ref:
            raise ShapeMismatchError(f"the model shrunk by this plan changes the output shapes "
                                     f"from {ref} to {got}")
        if not inplace:
            return shrunk
    model = model if inplace else copy.deepcopy(model)
    for name in plan.get("blocks", []):  # residual blocks removed by drop_blocks
        replace_with_identity(model, name)
    names = dict(model.named_modules())
    for name, roles in plan["layers"].items():
        if name not in names:
            raise ShapeMismatchError(f"plan names layer {name!r}, which the model does not have")
        m = names[name]
        h = handler_for(m)
        for role, keep in roles.items():
            expected = plan.get("original", {}).get(name, {}).get(role)
            if expected is not None and expected != _role_size(m, role):
                raise ShapeMismatchError(
                    f"layer {name!r} {role}: plan expects {expected} positions, the model has "
                    f"{_role_size(m, role)}; was the plan made for another architecture?"
                )
            h.prune(m, role, torch.as_tensor(keep, dtype=torch.long))
    for name, rec in plan["params"].items():
        owner, attr = get_owner(model, name)
        t = getattr(owner, attr, None)
        if not isinstance(t, torch.Tensor) or t.shape[int(rec["dim"])] != rec.get("size"):
            raise ShapeMismatchError(f"plan names tensor {name!r} of size {rec.get('size')}, "
                                     "which the model does not have")
        prune_param(model, name, int(rec["dim"]), torch.as_tensor(rec["keep"], dtype=torch.long))
    for name, attrs in plan["attrs"].items():
        m = model.get_submodule(name) if name else model
        for k, v in attrs.items():
            setattr(m, k, v)
    return model


def replace_with_identity(model: nn.Module, name: str) -> None:
    """Swap submodule ``name`` for ``nn.Identity`` (inside Sequential, ModuleList or as attr)."""
    parent_name, child = name.rsplit(".", 1) if "." in name else ("", name)
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
        parent.get_submodule(child)
    except AttributeError as exc:
        raise ShapeMismatchError(f"plan names block {name!r}, which the model lacks") from exc
    if isinstance(parent, nn.ModuleList):
        parent[int(child)] = nn.Identity()
    else:
        setattr(parent, child, nn.Identity())


_role_size = role_size


def save_plan(plan: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``plan`` as JSON (atomically)."""
    atomic_write_json(path, plan)


def load_plan(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a plan written by :func:`save_plan`."""
    if not os.path.isfile(path):
        raise InvalidParameterError(f"path={os.fspath(path)!r} is not an existing file")
    try:
        with open(path, encoding="utf-8") as fh:
            plan = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(f"{os.fspath(path)!r} is not a JSON plan: {exc}") from exc
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise InvalidParameterError(f"{os.fspath(path)!r} is not a prunekit structured plan")
    return plan


# ----------------------------------------------------------------------------- prune


def prune(
    model: nn.Module,
    example_inputs: Any,
    *,
    ratio: float | None = None,
    target_macs: float | None = None,
    target_params: float | None = None,
    target_latency: float | None = None,
    criterion: str = "l2",
    allocation: str = "uniform",
    round_to: int | None = None,
    ignored_layers: Sequence[str | nn.Module] = (),
    frozen_layers: Sequence[str | nn.Module] = (),
    data: Iterable[Any] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    min_channels: int = 1,
    max_ratio: float = 0.9,
    measure: bool = False,
    seed: int = 0,
    sensitivity: Any = None,
    scorer: Scorer | None = None,
    repair: Repair | None = None,
    attention: str | None = None,
) -> tuple[nn.Module, StructuredReport]:
    """Remove channels, neurons and attention heads; return ``(smaller_copy, report)``.

    Exactly one of ``ratio`` (fraction of units removed per group, or overall with
    ``allocation="global"``), ``target_macs``, ``target_params`` (a fraction of the original
    below 1, or an absolute count) or ``target_latency`` (latency on ``example_inputs`` as a
    fraction of the measured original) is given; targets are reached by
    bisection on the ratio. ``model`` is not modified. The copy is an ordinary module with smaller
    weights; ``report.plan`` replays the shrink on a fresh model (:func:`apply_plan`).
    Dependency groups follow DepGraph (Fang et al., CVPR 2023).
    ``allocation="sensitivity"`` takes per-group ratios from ``sensitivity=``
    (:func:`prunekit.nn.sensitivity.group_sensitivity`) that meet the target with the least
    predicted damage (:mod:`prunekit.nn.allocation`).

    Two hooks plug other scores and repairs into the same target search (calibration recovery,
    :func:`prunekit.nn.structured.recovery.prune_calibrated`, is built on them):
    ``scorer(model, graph) -> {unit: score}`` replaces the built-in criterion (``criterion`` then
    only names it in the report); ``repair(dense, pruned, plan) -> notes`` runs once on the
    pruned copy after the target is met (e.g. refitting weights, re-estimating BatchNorm) and
    its notes go into the report. Both get prunekit's private copies, never ``model`` itself.

    ``attention`` chooses the units of attention layers: ``"heads"`` (whole heads, the default)
    or ``"head_dim"`` (every head keeps its place and loses the same head_dim offsets, as
    Torch-Pruning does; exact only where the score scale is a constant, a report note says when
    it is not). ``None`` uses :func:`prunekit.nn.structured.graph.attention_units`' setting.
    """
    targets = {"ratio": ratio, "target_macs": target_macs, "target_params": target_params,
               "target_latency": target_latency}
    given = [k for k, v in targets.items() if v is not None]
    if len(given) != 1:
        raise InvalidParameterError(
            f"give exactly one of ratio, target_macs, target_params, target_latency (got {given})"
        )
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_hooks(criterion, scorer, repair)
    check_choice("allocation", allocation, ALLOCATIONS)
    if attention is not None:
        check_choice("attention", attention, ATTENTION_UNITS)
    max_ratio = check_fraction("max_ratio", max_ratio, low=0.0, high=1.0)
    check_positive_int("min_channels", min_channels)
    if round_to is not None:
        check_positive_int("round_to", round_to)
    if ratio is not None:
        ratio = check_fraction("ratio", ratio, low=0.0, high=1.0)
    if criterion == "taylor" and scorer is None and data is None:
        raise InvalidParameterError("criterion='taylor' needs data= (batches of (inputs, targets))")

    # module objects name layers of the caller's model: map them before the copy
    ignored_names = sorted(resolve_names(model, ignored_layers, "ignored_layers"))
    frozen_names = sorted(resolve_names(model, frozen_layers, "frozen_layers"))
    inputs = _example_inputs(model, example_inputs)
    work = copy.deepcopy(model)
    try:
        macs0, ref_out = _macs_and_shapes(work, inputs)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:  # rejects example_inputs
        raise ShapeMismatchError(f"the model cannot run on example_inputs: {exc}") from exc
    graph = analyze(work, inputs, ignored_names, frozen_names, attention=attention)
    if scorer is None:
        grads = gradients(work, data, loss_fn) if criterion == "taylor" else None
        scores, notes = unit_scores(work, graph, criterion, grads=grads, seed=seed)
    else:
        scores, notes = _hook_scores(scorer, work, graph), []
    notes = list(graph.notes) + notes
    params0 = count_params(work)
    bytes0 = state_bytes(work)

    excluded: set[int] = set()  # units of groups whose removal breaks the model
    state = {"work": work}

    # what the bisection variable of allocation="sensitivity" spends (fixed before `ratio`
    # is reassigned below)
    resource = "units" if ratio is not None else "params" if target_params is not None else "macs"

    def build(r: float, inplace: bool = False) -> tuple[nn.Module, dict[str, Any], set[int]]:
        gr = None
        if allocation == "sensitivity":  # issue 14: per-group ratios from sensitivity curves
            from prunekit.nn.allocation import group_ratios

            gr = group_ratios(graph, sensitivity, r, resource=resource, max_ratio=max_ratio)
        removed = select_units(graph, scores, r, allocation=allocation, round_to=round_to,
                               min_channels=min_channels, max_ratio=max_ratio,
                               group_ratios=gr) - excluded
        src = state["work"]
        plan = make_plan(src, graph, removed)
        try:
            return apply_plan(src, plan, inplace=inplace), plan, removed
        except PrunekitError:
            raise
        except Exception as exc:  # noqa: BLE001 - a handler failed on this model
            first = _breaking_groups(model, graph, removed, inputs, ref_out, first=True)
            raise PrunekitError(f"applying the pruning plan failed: {type(exc).__name__}: "
                                f"{exc}; {_culprit(first)}") from exc

    def verified(r: float, inplace: bool) -> tuple[nn.Module, dict[str, Any], set[int], int]:
        """Build at ratio ``r`` and run it; groups whose removal alone breaks the model (shape
        arithmetic the trace cannot see) are kept, with a note, and the build is redone."""
        for _ in range(3):
            cand = build(r, inplace=inplace)
            try:
                macs1, new_out = _macs_and_shapes(cand[0], inputs)
                if new_out == ref_out:
                    return (*cand, macs1)
                problem = f"output shape changed from {ref_out} to {new_out}"
            except Exception as exc:  # noqa: BLE001 - the pruned model does not run
                problem = f"{type(exc).__name__}: {str(exc)[:200]}"
            if inplace:  # our copy is spoilt: start again from the caller's model
                state["work"], inplace = copy.deepcopy(model), False
            bad = _breaking_groups(model, graph, cand[2], inputs, ref_out)
            if not bad:
                break
            for g, _ in bad:
                excluded.update(g.units)
                notes.append(f"group {g.id} ({', '.join(f'{n}.{ro}' for n, ro in g.uses[:4])}) "
                             f"kept: removing its units breaks the model ({problem})")
        raise PrunekitError(f"the pruned model fails: {problem}; {_culprit(bad)}")

    if ratio is None:
        lat0 = None
        if target_macs is not None:
            goal, metric = _goal("target_macs", target_macs, macs0), "macs"
        elif target_params is not None:
            goal, metric = _goal("target_params", target_params, params0), "params"
        else:
            frac = check_fraction("target_latency", target_latency, low=0.0, high=1.0,
                                  low_inclusive=False)
            lat0 = _latency_s(work, inputs)
            goal, metric = frac * lat0, "latency"

        def value(m: nn.Module) -> float:
            if metric == "macs":
                return count_macs(m, inputs)
            if metric == "params":
                return count_params(m)
            return _latency_s(m, inputs)

        verified(max_ratio, inplace=False)  # find groups that cannot be pruned, once
        lo, hi = 0.0, max_ratio
        best = None
        for _ in range(14 if metric != "latency" else 8):
            mid = (lo + hi) / 2
            cand = build(mid)
            if value(cand[0]) <= goal:
                best, hi = (mid, cand), mid
            else:
                lo = mid
        if best is None:
            best = (hi, build(hi))
            notes.append(f"{metric} target {goal:.4g} not reached at max_ratio={max_ratio}")
        ratio = best[0]
        pruned, plan, removed, macs1 = verified(ratio, inplace=False)
        if measure and lat0 is None:
            lat0 = _latency_s(work, inputs)
    else:
        lat0 = _latency_s(work, inputs) if measure else None
        # `work` is our own copy; a repair still needs it dense
        pruned, plan, removed, macs1 = verified(ratio, inplace=repair is None)

    if repair is not None:
        notes += [str(n) for n in (repair(work, pruned, plan) or ())]
    pruned.train(model.training)
    report = _report(pruned, graph, removed, plan, criterion, allocation, ratio, notes,
                     (macs0, macs1), (params0, bytes0), inputs, ignored_names, frozen_names,
                     lat0 if measure else None, measure)
    _warn_weak_result(report, graph, ratio if targets["ratio"] is not None else None)
    return pruned, report


def _check_hooks(criterion: Any, scorer: Any, repair: Any) -> None:
    """``criterion`` is a built-in one unless a ``scorer`` replaces it; hooks are callables."""
    for name, hook in (("scorer", scorer), ("repair", repair)):
        if hook is not None and not callable(hook):
            raise InvalidParameterError(f"{name} must be a callable or None, got "
                                        f"{type(hook).__name__}")
    if scorer is None:
        check_choice("criterion", criterion, CRITERIA)
    elif not isinstance(criterion, str) or not criterion:
        raise InvalidParameterError("with scorer=, criterion must be a non-empty str naming the "
                                    f"scores in the report, got {criterion!r}")


def _hook_scores(scorer: Scorer, model: nn.Module, graph: DependencyGraph) -> dict[int, float]:
    """``scorer(model, graph)``, checked to score every unit of every group."""
    scores = scorer(model, graph)
    if not isinstance(scores, dict):
        raise InvalidParameterError(f"scorer must return a dict {{unit: score}}, got "
                                    f"{type(scores).__name__}")
    missing = [u for g in graph.groups for u in g.units if u not in scores]
    if missing:
        raise InvalidParameterError(f"scorer returned no score for {len(missing)} unit(s) "
                                    f"(e.g. {missing[:5]}); score every unit of graph.groups")
    out = {u: float(v) for u, v in scores.items()}
    bad = [u for u, v in out.items() if not math.isfinite(v)]
    if bad:
        raise InvalidParameterError(f"scorer returned non-finite scores for {len(bad)} unit(s) "
                                    f"(e.g. {bad[:5]}); scores must be finite numbers")
    return out


def _example_inputs(model: nn.Module, example_inputs: Any) -> tuple[Any, ...]:
    """``example_inputs`` as a tuple of positional arguments; numpy arrays become tensors
    (floating ones in the model's dtype)."""
    if type(model).__module__.startswith("transformers.") or hasattr(model, "config") and \
            hasattr(model.config, "model_type"):
        raise UnsupportedModelError(
            f"{type(model).__name__} is a Hugging Face transformers model, which torch.fx "
            "cannot trace; use prunekit.nn.structured.prune_transformer(model, head_ratio=..., "
            "ffn_ratio=...) for it"
        )
    if isinstance(example_inputs, dict):
        raise InvalidParameterError(
            "example_inputs must be a tensor, a numpy array or a tuple of them (positional "
            "arguments of forward), got a dict; for a tokenizer's output on a Hugging Face "
            "model use prune_transformer"
        )
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    device = p.device if p is not None else torch.device("cpu")

    def conv(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            if x.dtype == object:
                raise InvalidParameterError("example_inputs: numpy arrays of objects are not "
                                            "accepted; pass numeric arrays or tensors")
            t = torch.from_numpy(np.ascontiguousarray(x))
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
        if isinstance(x, list):
            return [conv(v) for v in x]
        return x

    return tuple(conv(x) for x in _as_tuple(example_inputs))


def _macs_and_shapes(model: nn.Module, inputs: tuple[Any, ...]) -> tuple[int, Any]:
    """MACs and output shapes from one forward pass (eval mode, no grad)."""
    from prunekit.metrics.complexity import _counting_mode, _flop_counter

    counter = _flop_counter()
    with _counting_mode(model), counter:
        out = model(*inputs)
    return int(counter.get_total_flops()) // 2, _shapes(out)


def _breaking_groups(model: nn.Module, graph: DependencyGraph, removed: set[int],
                     inputs: tuple[Any, ...], ref_out: Any, limit: int = 400,
                     first: bool = False) -> list[tuple[Group, str]]:
    """``(group, why)`` for the groups whose removal alone makes ``model`` fail or change its
    output shape (only the first one with ``first``)."""
    bad = []
    for g in graph.groups[:limit]:
        mine = removed & set(g.units)
        if not mine:
            continue
        try:
            m = apply_plan(model, make_plan(model, graph, mine))
            with torch.no_grad(), eval_mode(m):
                why = "" if _shapes(m(*inputs)) == ref_out else "output shape changed"
        except Exception as exc:  # noqa: BLE001
            why = type(exc).__name__
        if why:
            bad.append((g, why))
            if first:
                break
    return bad


def _culprit(bad: list[tuple[Group, str]]) -> str:
    """Name the first group whose removal alone breaks the model (for error messages)."""
    if not bad:
        return "no single group reproduces it; please report it"
    g, why = bad[0]
    layers = ", ".join(f"{n}.{r}" for n, r in g.uses[:6])
    return (f"group {g.id} ({layers}) breaks it ({why}); pass one of those layers in "
            "frozen_layers to keep that group")


def _warn_weak_result(report: StructuredReport, graph: DependencyGraph,
                      ratio: float | None) -> None:
    """Warn when a ratio removed almost nothing, or a layer keeps under 10 % of its units."""
    if ratio and ratio >= 0.05:
        removed = 1 - report.params_after / max(report.params_before, 1)
        if removed < 0.1 * ratio:
            why = []
            if not graph.groups:
                why.append("no prunable group was found")
            if graph.frozen_units:
                why.append(f"{graph.frozen_units} units are fixed by the model's inputs/outputs, "
                           "ignored/frozen layers or operations prunekit does not track")
            unknown = [n for n in report.notes if "unknown" in n or "cannot trace" in n]
            if unknown:
                why.append("e.g. " + "; ".join(unknown[:3]))
            warnings.warn(
                f"ratio={ratio} removed only {removed:.1%} of the parameters: "
                + ("; ".join(why) or "most units are coupled to the output"),
                UserWarning, stacklevel=3)
    low = {n: f for n, f in report.kept_fraction.items() if f < 0.1}
    if low:
        worst = ", ".join(f"{n} ({f:.1%})" for n, f in sorted(low.items(), key=lambda t: t[1])[:5])
        warnings.warn(f"{len(low)} layer(s) keep under 10% of their units: {worst}",
                      UserWarning, stacklevel=3)


def _goal(name: str, value: float, base: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidParameterError(f"{name} must be a positive number, got {value!r}")
    return value * base if value < 1 else float(value)


def _out_shapes(model: nn.Module, inputs: tuple[Any, ...]) -> Any:
    with eval_mode(model):
        out = model(*inputs)
    return _shapes(out)


def _shapes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (list, tuple)):
        return [_shapes(o) for o in out]
    if isinstance(out, dict):
        return {k: _shapes(v) for k, v in out.items()}
    return None


def _report(pruned: nn.Module, graph: DependencyGraph, removed: set[int],
            plan: dict[str, Any], criterion: str, allocation: str, ratio: float,
            notes: list[str], macs: tuple[int, int], sizes: tuple[int, int],
            inputs: tuple[Any, ...], ignored: Sequence[str], frozen: Sequence[str],
            lat0: float | None, measure: bool) -> StructuredReport:
    groups = []
    for g in graph.groups:
        groups.append({"id": g.id, "units": g.n_units,
                       "removed": sum(1 for u in g.units if u in removed),
                       "layers": sorted({f"{n}" for n, _ in g.uses})})
    layers: dict[str, dict[str, list[int]]] = {}
    for name, roles in plan["layers"].items():
        for role, keep in roles.items():
            layers.setdefault(name, {})[role] = [plan["original"][name][role], len(keep)]
    skipped = [f"{n}: in ignored_layers (output units kept)" for n in ignored]
    skipped += [f"{n}: in frozen_layers (unchanged)" for n in frozen]
    if graph.frozen_units:
        skipped.append(f"{graph.frozen_units} units fixed by the model's inputs/outputs or "
                       "untracked operations")
    rep = StructuredReport(
        criterion=criterion, allocation=allocation, ratio=float(ratio),
        macs_before=macs[0], macs_after=macs[1],
        params_before=sizes[0], params_after=count_params(pruned),
        bytes_before=sizes[1], bytes_after=state_bytes(pruned),
        groups=groups, layers=layers, skipped=skipped, notes=notes, plan=plan,
    )
    if measure:
        rep.latency_before_s = lat0
        rep.latency_after_s = _latency_s(pruned, inputs)
    return rep


def dependency_groups(
    model: nn.Module, example_inputs: Any, ignored_layers: Sequence[str | nn.Module] = (),
    frozen_layers: Sequence[str | nn.Module] = (), *, attention: str | None = None,
) -> DependencyGraph:
    """The coupled groups of ``model`` (for inspection; :func:`prune` computes them itself)."""
    return analyze(model, _as_tuple(example_inputs), ignored_layers, frozen_layers,
                   attention=attention)
