"""Remove whole residual blocks (layer pruning): ``y = x + f(x)`` becomes ``y = x``.

A block is a candidate when it sits in an ``nn.Sequential``/``nn.ModuleList``, keeps its
input's shape, and its traced graph adds its own input back (an identity shortcut). Blocks are
ranked by how much they change their input on the example batch, ``||block(x) - x|| / ||x||``
(the "block influence" of Men et al., "ShortGPT", 2024; cf. Veit et al., NeurIPS 2016, on
residual networks behaving like ensembles of shallow paths), and the least influential ones are
replaced by ``nn.Identity``.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit._validation import check_fraction, check_positive_int
from prunekit.errors import InvalidParameterError

from .core import PLAN_FORMAT, replace_with_identity
from .graph import _Tracer

_ADD = {operator.add, operator.iadd, torch.add}


@dataclass
class BlockReport:
    """Which residual blocks were removed, their influence scores, and what was not a candidate."""

    removed: list[str]
    scores: dict[str, float]
    skipped: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)  # replay with apply_plan


def _has_identity_shortcut(block: nn.Module) -> bool:
    try:
        graph = _Tracer(set()).trace(block)
    except Exception:  # noqa: BLE001
        return False
    placeholders = {n for n in graph.nodes if n.op == "placeholder"}
    if len(placeholders) != 1:
        return False
    for n in graph.nodes:
        if n.op == "call_function" and n.target in _ADD and any(
            a in placeholders for a in n.args
        ):
            return True
        if n.op == "call_method" and n.target in ("add", "add_", "__add__") and any(
            a in placeholders for a in n.args
        ):
            return True
    return False


def residual_blocks(model: nn.Module) -> list[str]:
    """Names of children of Sequential/ModuleList containers that have an identity shortcut."""
    out = []
    for name, parent in model.named_modules():
        if not isinstance(parent, (nn.Sequential, nn.ModuleList)):
            continue
        for child_name, child in parent.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if not isinstance(child, nn.Identity) and _has_identity_shortcut(child):
                out.append(full)
    return out


def block_influence(model: nn.Module, example_inputs: Any, names: list[str]) -> dict[str, float]:
    """``||block(x) - x|| / ||x||`` of each named block on ``example_inputs``."""
    scores: dict[str, float] = {}
    hooks = []

    def make(name: str) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor) and (
                out.shape == x.shape
            ):
                scores[name] = float((out - x).norm() / x.norm().clamp_min(1e-12))
        return hook

    for name in names:
        hooks.append(model.get_submodule(name).register_forward_hook(make(name)))
    try:
        with eval_mode(model), torch.no_grad():
            inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return scores


def drop_blocks(
    model: nn.Module,
    example_inputs: Any,
    *,
    n_blocks: int | None = None,
    ratio: float | None = None,
) -> tuple[nn.Module, BlockReport]:
    """Replace the ``n_blocks`` (or ``ratio`` of candidates) least influential residual blocks
    with ``nn.Identity``; return ``(copy, report)``. ``model`` is not modified."""
    if (n_blocks is None) == (ratio is None):
        raise InvalidParameterError("give exactly one of n_blocks or ratio")
    work = copy.deepcopy(model)
    cands = residual_blocks(work)
    scores = block_influence(work, example_inputs, cands)
    skipped = [f"{n}: output shape differs from input" for n in cands if n not in scores]
    ranked = sorted(scores, key=lambda n: (scores[n], n))
    if n_blocks is not None:
        k = check_positive_int("n_blocks", n_blocks, minimum=0)
    else:
        k = int(check_fraction("ratio", ratio) * len(ranked))
    if k > len(ranked):
        raise InvalidParameterError(
            f"n_blocks={k} but the model has only {len(ranked)} removable residual blocks"
        )
    removed = ranked[:k]
    for name in removed:
        replace_with_identity(work, name)
    plan = {"format": PLAN_FORMAT, "layers": {}, "params": {}, "attrs": {}, "original": {},
            "blocks": removed}
    report = BlockReport(removed, scores, skipped, plan)
    return work, report
