"""Importance of removable units (channels, neurons, heads), computed over whole groups.

Every (layer, role) position gets a score from the parameters that index it; a unit's score is
the mean over the layers it touches of the per-layer sums -- Torch-Pruning's group reduction
(Fang et al., CVPR 2023). Criteria:

* ``"l1"`` / ``"l2"``: group weight norm (Li et al., "Pruning Filters for Efficient ConvNets",
  ICLR 2017), sum of ``|w|^p`` over the unit's weights in every coupled layer.
* ``"bn_scale"``: ``|gamma|`` of the BatchNorm layers in the group (network slimming, Liu et al.,
  ICCV 2017); groups without BatchNorm fall back to ``"l2"``.
* ``"fpgm"``: distance of each filter to the others, small near the geometric median (He et al.,
  "Filter Pruning via Geometric Median", CVPR 2019).
* ``"taylor"``: first-order Taylor estimate ``(sum_w g * w)^2`` of the loss change (Molchanov et
  al., "Importance Estimation for Neural Network Pruning", CVPR 2019); needs ``data``.
* ``"random"``: uniform random scores (the baseline every criterion must beat).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit._modes import eval_mode

from .graph import BN, DependencyGraph
from .handlers import Slice, get_owner, handler_for, per_position, slice_tensor

CRITERIA = ("l1", "l2", "bn_scale", "fpgm", "taylor", "random")


def _use_slices(model: nn.Module, name: str, role: str) -> list[tuple[nn.Module, Slice]]:
    if role.startswith("param:"):
        owner, attr = get_owner(model, name)
        return [(owner, Slice(attr, int(role.split(":")[1])))]
    m = model.get_submodule(name)
    return [(m, s) for s in handler_for(m).slices(m, role)]


def _magnitude(t: torch.Tensor, p: int) -> torch.Tensor:
    try:  # reuse the sparsity engine's per-weight criterion when it is present
        from prunekit.nn.importance import magnitude_scores

        return torch.as_tensor(magnitude_scores(t, p=p)).reshape(t.shape)
    except (ImportError, TypeError, AttributeError, ValueError):
        return t.abs().pow(p)


def _sum_rows(x: torch.Tensor) -> torch.Tensor:
    return x.sum(1)


def _fpgm_rows(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return torch.cdist(x, x).sum(1)


def gradients(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    max_batches: int = 8,
) -> dict[str, torch.Tensor]:
    """Sum of gradients of the loss over ``max_batches`` batches of ``data`` (x, y pairs)."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = dict(model.named_parameters())
    acc = {k: torch.zeros_like(p) for k, p in params.items()}
    with eval_mode(model):
        for i, batch in enumerate(data):
            if i >= max_batches:
                break
            x, y = batch[0], batch[1]
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            for k, p in params.items():
                if p.grad is not None:
                    acc[k] += p.grad.detach()
        model.zero_grad(set_to_none=True)
    return acc


def unit_scores(
    model: nn.Module,
    graph: DependencyGraph,
    criterion: str = "l2",
    *,
    grads: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> tuple[dict[int, float], list[str]]:
    """Score every unit of ``graph``; return ``{unit: score}`` and notes on fallbacks."""
    notes: list[str] = []
    units_all = [u for g in graph.groups for u in g.units]
    if criterion == "random":
        rng = np.random.default_rng(seed)
        return dict(zip(units_all, rng.random(len(units_all)).tolist(), strict=True)), notes
    param_names = {id(p): n for n, p in model.named_parameters()}
    total: dict[int, float] = {}
    count: dict[int, int] = {}

    def add(use_key: tuple[str, str], values: torch.Tensor) -> None:
        units = graph.unit_of(graph.uses[use_key])
        vals = values.detach().double().cpu().numpy()
        if len(vals) != len(units):
            return
        uniq, inv = np.unique(units, return_inverse=True)
        sums = np.zeros(len(uniq))
        np.add.at(sums, inv, vals)
        for u, s in zip(uniq.tolist(), sums.tolist(), strict=True):
            total[u] = total.get(u, 0.0) + s
            count[u] = count.get(u, 0) + 1

    bn_units: set[int] = set()
    for key in graph.uses:
        name, role = key
        if criterion == "bn_scale":
            if role == "chan" and isinstance(model.get_submodule(name), BN):
                gamma = model.get_submodule(name).weight
                if gamma is not None:
                    add(key, gamma.detach().abs())
                    bn_units.update(int(u) for u in graph.unit_of(graph.uses[key]))
            continue
        acc: torch.Tensor | None = None
        for owner, s in _use_slices(model, name, role):
            raw = slice_tensor(owner, s)
            if raw is None or raw.dim() <= s.dim:
                continue
            pid, t = id(raw), raw.detach()
            if criterion in ("l1", "l2"):
                v = per_position(_magnitude(t, 1 if criterion == "l1" else 2), s, _sum_rows)
            elif criterion == "fpgm":
                if t.dim() < 2 or s.chunks > 1:
                    continue
                v = per_position(t, s, _fpgm_rows)
            elif criterion == "taylor":
                if grads is None:
                    raise ValueError("taylor needs gradients")
                g = grads.get(param_names.get(pid, ""), None)
                if g is None:
                    continue
                v = per_position(t * g, s, _sum_rows).pow(2)
            else:
                raise ValueError(criterion)
            acc = v if acc is None else acc + v
        if acc is not None:
            add(key, acc)
    scores = {u: total[u] / count[u] for u in total}
    if criterion == "bn_scale":
        missing = [u for u in units_all if u not in bn_units]
        if missing:
            fallback, _ = unit_scores(model, graph, "l2")
            for g in graph.groups:
                if any(u not in bn_units for u in g.units):
                    notes.append(f"group {g.id}: no BatchNorm; scored with 'l2'")
                    for u in g.units:
                        scores[u] = fallback.get(u, 0.0)
    for u in units_all:
        scores.setdefault(u, 0.0)
    return scores, notes
