"""Correctness checks for a structured-pruning plan.

:func:`zero_removed` sets every weight that a plan removes to zero, in a copy of the original
model. If pruning is exact, the zeroed model and ``apply_plan(zeroed, plan)`` compute the same
function (units whose weights are zero contribute nothing), so :func:`removed_units_error`
should be ~0. It catches wrong couplings and scale changes such as the attention softmax
``1/sqrt(head_dim)``. Normalisations that compute statistics over the pruned dimension
(LayerNorm, GroupNorm) make zero units count, so check plans made with those layers frozen.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from prunekit._modes import eval_mode

from .handlers import Slice, get_owner, handler_for


def _zero_positions(owner: nn.Module, s: Slice, removed: list[int], n: int) -> None:
    t = getattr(owner, s.attr.rsplit(".", 1)[-1], None)
    if not isinstance(t, torch.Tensor) or t.dim() <= s.dim or not removed:
        return
    idx = torch.as_tensor(removed, dtype=torch.long)
    with torch.no_grad():
        if s.groups > 1:  # grouped conv input: position g*ipg + j is column j of group g's rows
            ipg = t.shape[1]
            opg = t.shape[0] // s.groups
            for p in removed:
                g, j = divmod(p, ipg)
                t[g * opg:(g + 1) * opg, j] = 0
            return
        if s.chunks > 1:
            size = t.shape[s.dim] // s.chunks
            idx = torch.cat([idx + c * size for c in range(s.chunks)])
        if int(idx.max()) >= t.shape[s.dim]:
            return
        t.index_fill_(s.dim, idx.to(t.device), 0)


def zero_removed(model: nn.Module, plan: dict[str, Any]) -> nn.Module:
    """A copy of ``model`` (the unpruned architecture) with every weight ``plan`` removes zeroed."""
    model = copy.deepcopy(model)
    for name, roles in plan.get("layers", {}).items():
        m = model.get_submodule(name)
        h = handler_for(m)
        for role, keep in roles.items():
            n = plan.get("original", {}).get(name, {}).get(role)
            if n is None:
                continue
            kept = set(keep)
            removed = [i for i in range(n) if i not in kept]
            for s in h.slices(m, role):
                owner, _ = get_owner(m, s.attr)
                _zero_positions(owner, s, removed, n)
    for name, rec in plan.get("params", {}).items():
        owner, attr = get_owner(model, name)
        kept = set(rec["keep"])
        removed = [i for i in range(int(rec["size"])) if i not in kept]
        _zero_positions(owner, Slice(attr, int(rec["dim"])), removed, int(rec["size"]))
    return model


def _flat(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flat(o)]
    return []


def removed_units_error(model: nn.Module, example_inputs: Any, plan: dict[str, Any]) -> float:
    """Max |difference| (relative to the output's max |value|) between the model with the
    plan's removed units zeroed and the same model pruned by the plan."""
    from .core import _as_tuple, apply_plan

    inputs = _as_tuple(example_inputs)
    zeroed = zero_removed(model, plan)
    pruned = apply_plan(zeroed, plan)
    with torch.no_grad(), eval_mode(zeroed), eval_mode(pruned):
        a, b = _flat(zeroed(*inputs)), _flat(pruned(*inputs))
    err = 0.0
    for x, y in zip(a, b, strict=True):
        scale = float(x.abs().max()) if x.numel() else 1.0
        err = max(err, float((x - y).abs().max()) / max(scale, 1e-12))
    return err
