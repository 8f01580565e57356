"""How sensitive is each layer (or structured group) to pruning? Curves, proxies, plots.

* :func:`layer_sensitivity` prunes one layer's weights at a time (the rest dense) at every
  sparsity of a grid and measures ``eval_fn(model)``; ``method="taylor"`` predicts the loss change
  instead from one gradient pass (first order plus the diagonal empirical Fisher, as OBD).
* :func:`group_sensitivity` removes a fraction of the units of one dependency group at a time
  (channels, neurons, heads; :mod:`prunekit.nn.structured`) and records the metric together with
  the parameters, MACs (and optionally latency) that the removal saves.
* :func:`allocate` (:mod:`prunekit.nn.allocation`) turns the curves into per-layer / per-group
  ratios that meet a global target with the least predicted damage.

Results are cached in memory and, with ``cache_dir=``, as JSON keyed by a fingerprint of the
model's tensors, the grid and the settings, so a repeated analysis costs nothing.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit._evaluation import (
    Accuracy,
    BatchLoss,
    EvalFn,
    EvaluationError,
    call_metric,
    check_grid,
    fingerprint,
    metric_direction,
)
from prunekit._io import atomic_write_json
from prunekit.errors import InvalidParameterError

__all__ = [
    "Accuracy",
    "BatchLoss",
    "EvaluationError",
    "SensitivityResult",
    "clear_cache",
    "group_keys",
    "group_sensitivity",
    "layer_sensitivity",
    "plot_sensitivity",
]

DEFAULT_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
METHODS = ("full", "taylor")
_MEMORY_CACHE: dict[str, dict[str, Any]] = {}


@dataclass
class SensitivityResult:
    """Metric of the model with one entry (layer or group) pruned at each grid ratio.

    ``metrics[name][i]`` is the metric with only ``name`` pruned at ``grid[i]``;
    ``savings[resource][name][i]`` what that removal saves (``params``, ``macs``, ``units``,
    ``latency_s``); ``totals[resource]`` the whole model's amount (the denominator of targets).
    """

    kind: str  # "weights" or "groups"
    grid: list[float]
    baseline: float
    higher_is_better: bool
    metrics: dict[str, list[float]]
    savings: dict[str, dict[str, list[float]]]
    totals: dict[str, float]
    method: str = "full"
    criterion: str = "magnitude"
    key: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.metrics)

    def drop(self, name: str) -> np.ndarray:
        """Metric damage at each grid ratio (positive = worse than the dense model)."""
        m = np.asarray(self.metrics[name], dtype=float)
        return self.baseline - m if self.higher_is_better else m - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SensitivityResult:
        return cls(**dict(d))

    def to_markdown(self, max_rows: int = 40) -> str:
        head = "| entry | " + " | ".join(f"{g:.2f}" for g in self.grid) + " |"
        sep = "|---|" + "---:|" * len(self.grid)
        rows = [head, sep]
        for name in self.names[:max_rows]:
            rows.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in self.metrics[name]) + " |")
        what = "sparsity" if self.kind == "weights" else "removed fraction"
        return (f"Sensitivity ({self.kind}, {self.method}, criterion `{self.criterion}`): metric "
                f"per {what}; dense {self.baseline:.4g}\n\n" + "\n".join(rows))

    def plot(self, title: str | None = None) -> Any:
        """A line per entry (heat map of the damage when there are more than 12)."""
        return plot_sensitivity(self, title=title)


# ----------------------------------------------------------------------------- caching


def _cached(key: str, cache_dir: str | os.PathLike[str] | None) -> SensitivityResult | None:
    if key in _MEMORY_CACHE:
        return SensitivityResult.from_dict(_MEMORY_CACHE[key])
    if cache_dir is not None:
        path = os.path.join(os.fspath(cache_dir), f"sensitivity-{key}.json")
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    d = json.load(fh)
                res = SensitivityResult.from_dict(d)
            except (OSError, ValueError, TypeError):
                return None  # a damaged cache file is recomputed, then overwritten
            _MEMORY_CACHE[key] = d
            return res
    return None


def _store(res: SensitivityResult, cache_dir: str | os.PathLike[str] | None) -> None:
    d = res.to_dict()
    _MEMORY_CACHE[res.key] = d
    if cache_dir is not None:
        os.makedirs(os.fspath(cache_dir), exist_ok=True)
        atomic_write_json(os.path.join(os.fspath(cache_dir), f"sensitivity-{res.key}.json"), d)


def clear_cache() -> None:
    """Forget the in-memory sensitivity results (files under ``cache_dir`` stay)."""
    _MEMORY_CACHE.clear()


def _metric(eval_fn: EvalFn | None, data: Iterable[Any] | None,
            loss_fn: Callable[..., Any] | None, max_batches: int | None) -> EvalFn:
    if eval_fn is not None:
        if not callable(eval_fn):
            raise InvalidParameterError("eval_fn must be a callable eval_fn(model) -> float")
        return eval_fn
    if data is None:
        raise InvalidParameterError(
            "give eval_fn(model) -> float, or data= batches of (inputs, targets) for the loss"
        )
    return BatchLoss(data, loss_fn, max_batches)


def _eval_name(eval_fn: Any) -> str:
    """The metric's cache identity: its ``cache_name`` attribute when it has one (``Accuracy``
    and ``BatchLoss`` hash their data; set one on your own ``eval_fn`` to reuse results across
    runs), else the object's identity, valid for this process only."""
    name = getattr(eval_fn, "cache_name", None)
    if name:
        return str(name)
    qual = getattr(eval_fn, "__qualname__", None) or type(eval_fn).__qualname__
    return f"{qual}@{id(eval_fn)}"


# ----------------------------------------------------------------------------- weights


def _layer_macs(model: nn.Module, example_inputs: Any, names: Sequence[str]) -> dict[str, float]:
    """Dense MACs of each named weight's layer on ``example_inputs`` (forward hooks)."""
    out: dict[str, float] = {}
    mods = {n: model.get_submodule(n[: -len(".weight")]) for n in names}
    hooks = []

    def hook_for(pname: str) -> Callable[..., None]:
        def hook(m: nn.Module, inp: tuple[Any, ...], res: Any) -> None:
            w = m.weight
            if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                macs = inp[0].numel() / w.shape[0] * w.numel()
            elif isinstance(res, torch.Tensor) and w.dim() >= 2:
                macs = res.numel() / w.shape[0] * w.numel()
            else:
                macs = float(w.numel())
            out[pname] = out.get(pname, 0.0) + float(macs)
        return hook

    for n, m in mods.items():
        hooks.append(m.register_forward_hook(hook_for(n)))
    try:
        from prunekit._modes import eval_mode

        args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
        with torch.no_grad(), eval_mode(model):
            model(*args)
    finally:
        for h in hooks:
            h.remove()
    return {n: out.get(n, 0.0) for n in names}


def _weight_targets(model: nn.Module, include: Any, exclude: Any,
                    prune_first_last: bool) -> list[str]:
    from prunekit.nn.sparsity import Pruner

    pruner = Pruner(model, sparsity=0.5, include=include, exclude=exclude,
                    prune_first_last=prune_first_last)
    return list(pruner.targets)


def layer_sensitivity(
    model: nn.Module,
    eval_fn: EvalFn | None = None,
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    data: Iterable[Any] | None = None,
    loss_fn: Callable[..., Any] | None = None,
    max_batches: int | None = None,
    criterion: str = "magnitude",
    method: str = "full",
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    prune_first_last: bool = True,
    example_inputs: Any = None,
    higher_is_better: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> SensitivityResult:
    """Prune each weight layer alone at every ``grid`` sparsity and measure the metric.

    The metric is ``eval_fn(model)`` or, without it, the mean loss on ``data`` (its first
    ``max_batches`` batches: the cheap proxy). ``method="taylor"`` skips the evaluations and
    predicts the loss change ``sum(-g*w + F*w^2/2)`` over the pruned weights from gradients on
    ``data`` (one pass). ``criterion`` ranks weights inside a layer (a
    :mod:`prunekit.nn.importance` name). ``example_inputs`` adds MACs to the recorded savings.
    ``model`` is restored exactly after every evaluation.
    """
    import time

    from prunekit._validation import check_choice
    from prunekit.nn.importance import get_criterion
    from prunekit.nn.patterns import unstructured_mask

    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice("method", method, METHODS)
    grid_l = check_grid(grid)
    if method == "taylor" and data is None:
        raise InvalidParameterError("method='taylor' needs data= batches of (inputs, targets)")
    fn = _metric(eval_fn, data, loss_fn, max_batches) if method == "full" else None
    hib = metric_direction(fn, higher_is_better) if fn is not None else False
    names = _weight_targets(model, include, exclude, prune_first_last)
    key = fingerprint(model, "weights", grid_l, criterion, method, names, max_batches,
                      _eval_name(fn) if fn is not None else "taylor", example_inputs is None)
    hit = _cached(key, cache_dir)
    if hit is not None:
        return hit
    start = time.perf_counter()
    params = {n: model.get_parameter(n) for n in names}
    with torch.enable_grad():
        scores = get_criterion(criterion)(model, params, data, loss_fn)
    savings: dict[str, dict[str, list[float]]] = {
        "params": {n: [float(round(g * params[n].numel())) for g in grid_l] for n in names}
    }
    totals = {"params": float(sum(p.numel() for p in params.values()))}
    if example_inputs is not None:
        macs = _layer_macs(model, example_inputs, names)
        savings["macs"] = {n: [g * macs[n] for g in grid_l] for n in names}
        from prunekit.metrics import count_macs

        totals["macs"] = float(count_macs(model, example_inputs))
    metrics: dict[str, list[float]] = {}
    if method == "taylor":
        baseline = 0.0
        grads, fisher = _grad_fisher(model, params, data, loss_fn, max_batches)
        for n, p in params.items():
            w = p.detach()
            delta = (-grads[n] * w + 0.5 * fisher[n] * w * w).double()
            s = scores[n].detach().reshape(w.shape)
            metrics[n] = [float(delta[~unstructured_mask(s, g)].sum()) for g in grid_l]
    else:
        baseline = call_metric(fn, model, "the dense model")
        for n, p in params.items():
            s = scores[n].detach().reshape(p.shape)
            orig = p.detach().clone()
            vals = []
            try:
                for g in grid_l:
                    with torch.no_grad():
                        p.mul_(unstructured_mask(s, g).to(p.dtype))
                    vals.append(call_metric(fn, model, f"layer {n!r} at sparsity {g:.3g}"))
                    with torch.no_grad():
                        p.copy_(orig)
            finally:
                with torch.no_grad():
                    p.copy_(orig)
            metrics[n] = vals
    res = SensitivityResult(
        kind="weights", grid=grid_l, baseline=baseline, higher_is_better=hib, metrics=metrics,
        savings=savings, totals=totals, method=method, criterion=str(criterion), key=key,
        seconds=time.perf_counter() - start,
    )
    _store(res, cache_dir)
    return res


def _grad_fisher(model: nn.Module, params: Mapping[str, torch.Tensor], data: Iterable[Any],
                 loss_fn: Callable[..., Any] | None, max_batches: int | None,
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Mean gradient and diagonal empirical Fisher (per-sample, up to 256 samples)."""
    from prunekit._modes import eval_mode
    from prunekit.nn.importance import fisher_diagonal

    loss_fn = loss_fn or nn.functional.cross_entropy
    batches = BatchLoss(data, loss_fn, max_batches).batches
    grads = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    with eval_mode(model), torch.enable_grad():
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            for n, p in params.items():
                if p.grad is not None:
                    grads[n] += p.grad.detach().float() * len(y)
            count += len(y)
        model.zero_grad(set_to_none=True)
    grads = {n: g / max(count, 1) for n, g in grads.items()}
    with eval_mode(model):
        fisher = fisher_diagonal(model, batches, loss_fn, params)
    return grads, {n: f.reshape(params[n].shape) for n, f in fisher.items()}


# ----------------------------------------------------------------------------- groups


def group_key(graph: Any, group: Any) -> str:
    """A stable name for a dependency group: its first producing layer (``name``) or use."""
    outs = [n for n, r in group.uses if r == "out"]
    first = outs[0] if outs else ":".join(group.uses[0])
    return str(first)


def group_keys(graph: Any) -> dict[int, str]:
    """``group.id -> unique stable name`` for every group of ``graph``."""
    seen: dict[str, int] = {}
    out: dict[int, str] = {}
    for g in graph.groups:
        k = group_key(graph, g)
        if k in seen:
            seen[k] += 1
            k = f"{k}#{seen[k]}"
        else:
            seen[k] = 0
        out[g.id] = k
    return out


def group_sensitivity(
    model: nn.Module,
    example_inputs: Any,
    eval_fn: EvalFn | None = None,
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    data: Iterable[Any] | None = None,
    loss_fn: Callable[..., Any] | None = None,
    max_batches: int | None = None,
    criterion: str = "l2",
    ignored_layers: Sequence[str | nn.Module] = (),
    round_to: int | None = None,
    min_channels: int = 1,
    latency: bool = False,
    higher_is_better: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> SensitivityResult:
    """Remove ``grid`` fractions of each dependency group's units alone and measure the metric.

    Units are ranked by the structured ``criterion`` (``prunekit.nn.structured.CRITERIA``);
    every candidate is the real smaller network (built on a copy, ``model`` is untouched), so the
    recorded ``params`` / ``macs`` savings are exact and ``latency=True`` measures latency too.
    """
    import time

    from prunekit.metrics import count_macs
    from prunekit.nn.structured.core import (
        _as_tuple,
        _latency_s,
        _n_remove,
        _pick,
        apply_plan,
        count_params,
        make_plan,
    )
    from prunekit.nn.structured.graph import analyze
    from prunekit.nn.structured.importance import gradients, unit_scores

    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    grid_l = check_grid(grid)
    fn = _metric(eval_fn, data, loss_fn, max_batches)
    hib = metric_direction(fn, higher_is_better)
    key = fingerprint(model, "groups", grid_l, criterion, _eval_name(fn), max_batches,
                      round_to, min_channels, latency, [str(x) for x in ignored_layers])
    hit = _cached(key, cache_dir)
    if hit is not None:
        return hit
    start = time.perf_counter()
    work = copy.deepcopy(model)
    inputs = _as_tuple(example_inputs)
    graph = analyze(work, inputs, ignored_layers)
    grads = gradients(work, data, loss_fn) if criterion == "taylor" else None
    scores, notes = unit_scores(work, graph, criterion, grads=grads, seed=seed)
    keys = group_keys(graph)
    macs0, params0 = count_macs(work, inputs), count_params(work)
    lat0 = _latency_s(work, inputs) if latency else None
    baseline = call_metric(fn, work, "the dense model")
    metrics: dict[str, list[float]] = {}
    savings: dict[str, dict[str, list[float]]] = {"params": {}, "macs": {}, "units": {}}
    if latency:
        savings["latency_s"] = {}
    for g in graph.groups:
        name = keys[g.id]
        step = math.lcm(round_to or 1, len(g.partitions)) if g.partitions else round_to
        vals: list[float] = []
        for k_res in savings.values():
            k_res[name] = []
        for r in grid_l:
            k = _n_remove(g.n_units, r, 1.0, min_channels, step)
            removed = set(_pick(g, scores, k))
            cand = apply_plan(work, make_plan(work, graph, removed)) if removed else work
            vals.append(call_metric(fn, cand, f"group {name!r} with {r:.3g} of units removed"))
            savings["params"][name].append(float(params0 - count_params(cand)))
            savings["macs"][name].append(float(macs0 - count_macs(cand, inputs)))
            savings["units"][name].append(float(len(removed)))
            if latency:
                savings["latency_s"][name].append(float(lat0 - _latency_s(cand, inputs)))
        metrics[name] = vals
    totals = {"params": float(params0), "macs": float(macs0),
              "units": float(sum(g.n_units for g in graph.groups))}
    if lat0 is not None:
        totals["latency_s"] = float(lat0)
    res = SensitivityResult(
        kind="groups", grid=grid_l, baseline=baseline, higher_is_better=hib, metrics=metrics,
        savings=savings, totals=totals, method="full", criterion=criterion, key=key,
        seconds=time.perf_counter() - start, notes=list(graph.notes) + list(notes),
    )
    _store(res, cache_dir)
    return res


# ----------------------------------------------------------------------------- plots


def plot_sensitivity(result: SensitivityResult, *, title: str | None = None,
                     max_lines: int = 12) -> Any:
    """Metric vs ratio, one line per entry; a heat map of the damage for many entries."""
    from matplotlib.figure import Figure

    from prunekit.report.plots import _attach

    if not isinstance(result, SensitivityResult):
        raise InvalidParameterError("result must be a SensitivityResult")
    xlabel = "sparsity" if result.kind == "weights" else "fraction of units removed"
    names = result.names
    fig = Figure(figsize=(6.4, max(4.0, 0.25 * len(names) + 1.5) if len(names) > max_lines
                          else 4.0), dpi=100)
    ax = fig.add_subplot()
    label = "predicted loss change" if result.method == "taylor" else "metric"
    if len(names) <= max_lines:
        for n in names:
            ax.plot(result.grid, result.metrics[n], marker="o", label=n)
        if result.method != "taylor":
            ax.axhline(result.baseline, color="grey", linestyle="--", linewidth=1, label="dense")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    else:
        damage = np.array([result.drop(n) for n in names])
        im = ax.imshow(damage, aspect="auto", cmap="magma_r", interpolation="nearest")
        ax.set_yticks(range(len(names)), labels=names, fontsize="x-small")
        ax.set_xticks(range(len(result.grid)), labels=[f"{g:.2f}" for g in result.grid])
        ax.set_xlabel(xlabel)
        fig.colorbar(im, ax=ax, label="metric drop")
    ax.set_title(title or f"Sensitivity per {'layer' if result.kind == 'weights' else 'group'}")
    fig.tight_layout()
    return _attach(fig, "sensitivity", grid=result.grid, baseline=result.baseline,
                   metrics=result.metrics, entries=result.kind)
