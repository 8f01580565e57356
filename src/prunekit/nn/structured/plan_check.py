"""Validate a structured-pruning plan against a model before anything is changed.

A plan is JSON a user may have edited by hand: every entry is checked (schema, layer and tensor
names, roles, index ranges, duplicates, emptiness, attribute values) and the first wrong entry
is named in an :class:`~prunekit.errors.InvalidParameterError` (a plan that does not fit the
architecture: :class:`~prunekit.errors.ShapeMismatchError`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.errors import InvalidParameterError, ShapeMismatchError

from .graph import BN, CONV, CONVT, INORM
from .handlers import HANDLERS, get_owner

PLAN_FORMAT = "prunekit.structured/1"
_KEYS = {"format", "layers", "params", "attrs", "original", "blocks"}


def role_size(m: nn.Module, role: str) -> int | None:
    """Positions of ``role`` in ``m`` as built; ``None`` if ``m`` has no such role."""
    if isinstance(m, nn.MultiheadAttention):
        return m.embed_dim if role == "in" else None
    if isinstance(m, nn.RNNBase):
        return {"in": m.input_size, "hidden": m.hidden_size}.get(role)
    if isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerEncoder)):
        layers = list(m.layers) if isinstance(m, nn.TransformerEncoder) else [m]
        if role == "model":
            return layers[0].self_attn.embed_dim
        if not role.startswith("ffn"):
            return None
        idx = role[3:]
        if isinstance(m, nn.TransformerEncoderLayer):
            return m.linear1.out_features if idx == "" else None
        if not idx.isdigit() or int(idx) >= len(layers):
            return None
        return layers[int(idx)].linear1.out_features
    if isinstance(m, nn.Linear):
        return {"out": m.out_features, "in": m.in_features}.get(role)
    if isinstance(m, nn.Embedding):
        return m.embedding_dim if role == "out" else None
    if isinstance(m, (*CONV, *CONVT)):
        return {"out": m.out_channels, "in": m.in_channels}.get(role)
    if isinstance(m, (*BN, *INORM, nn.GroupNorm, nn.LayerNorm, nn.PReLU)):
        w = getattr(m, "weight", None)
        n = getattr(m, "num_features", None) or getattr(m, "num_channels", None)
        if n is None and isinstance(w, torch.Tensor):
            n = int(w.shape[0])
        if isinstance(m, nn.LayerNorm):
            n = int(m.normalized_shape[-1])
        return n if role == "chan" else None
    w = getattr(m, "weight", None)  # a user-registered layer type
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() else None


def _has_handler(m: nn.Module) -> bool:
    return any(cls in HANDLERS for cls in type(m).__mro__)


def _check_keep(where: str, keep: Any, size: int | None) -> None:
    if not isinstance(keep, list) or not keep:
        raise InvalidParameterError(f"plan {where}: keep must be a non-empty list of indices, "
                                    f"got {keep!r:.60}")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in keep):
        raise InvalidParameterError(f"plan {where}: keep must hold integers only")
    if any(b <= a for a, b in zip(keep, keep[1:], strict=False)):
        dup = len(set(keep)) != len(keep)
        raise InvalidParameterError(
            f"plan {where}: keep has {'duplicate' if dup else 'unsorted'} indices; it must be "
            "strictly increasing")
    if keep[0] < 0 or (size is not None and keep[-1] >= size):
        raise InvalidParameterError(
            f"plan {where}: index out of range (keep spans {keep[0]}..{keep[-1]}, the layer has "
            f"{size} positions)")


def _check_layers_match_original(layers: dict[str, Any], original: dict[str, Any]) -> None:
    """Every pruned (layer, role) has its original size recorded and vice versa: a hand edit
    that deletes one side (a layer left out of a coupled chain) is caught here."""
    if not original:
        return  # plans of older versions recorded no sizes
    for name, roles in original.items():
        if not isinstance(roles, dict):
            raise InvalidParameterError(f"plan['original'][{name!r}] must be a dict role -> size")
        for role in roles:
            if role not in (layers.get(name) or {}):
                raise InvalidParameterError(
                    f"plan['layers'] lacks {name!r} {role!r}, which plan['original'] records as "
                    "pruned: the plan was edited inconsistently (coupled layers must shrink "
                    "together)")
    for name, roles in layers.items():
        for role in roles if isinstance(roles, dict) else ():
            if role not in (original.get(name) or {}):
                raise InvalidParameterError(
                    f"plan['original'] lacks {name!r} {role!r}, which plan['layers'] prunes: "
                    "the plan was edited inconsistently")


def validate_plan(model: nn.Module, plan: Any) -> None:
    """Check every entry of ``plan`` against ``model``; raise naming the first wrong entry."""
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise InvalidParameterError(f"plan must be a dict with format {PLAN_FORMAT!r}")
    unknown = set(plan) - _KEYS
    if unknown:
        raise InvalidParameterError(f"plan has unknown keys {sorted(unknown)}; accepted: "
                                    f"{sorted(_KEYS)}")
    for key in ("layers", "params", "attrs"):
        if not isinstance(plan.get(key), dict):
            raise InvalidParameterError(f"plan[{key!r}] must be a dict")
    original = plan.get("original", {})
    if not isinstance(original, dict):
        raise InvalidParameterError("plan['original'] must be a dict")
    blocks = plan.get("blocks", [])
    if not isinstance(blocks, list) or any(not isinstance(b, str) or not b for b in blocks):
        raise InvalidParameterError("plan['blocks'] must be a list of submodule names (the "
                                    "whole model cannot be replaced)")
    names = dict(model.named_modules())
    for b in blocks:
        if b not in names:
            raise ShapeMismatchError(f"plan['blocks'] names {b!r}, which the model lacks")
    if len(set(blocks)) != len(blocks):
        raise InvalidParameterError("plan['blocks'] lists a block twice")
    dropped = tuple(f"{b}." for b in blocks)
    for name, roles in plan["layers"].items():
        if name not in names or name.startswith(dropped):
            raise ShapeMismatchError(f"plan['layers'] names {name!r}, which the model lacks")
        m = names[name]
        if not _has_handler(m):
            raise InvalidParameterError(
                f"plan['layers'][{name!r}]: {type(m).__name__} has no structured-pruning handler")
        if not isinstance(roles, dict) or not roles:
            raise InvalidParameterError(f"plan['layers'][{name!r}] must be a non-empty dict "
                                        "role -> kept indices")
        for role, keep in roles.items():
            size = role_size(m, role)
            if size is None and type(m) in HANDLERS and type(m).__module__.startswith("torch."):
                raise InvalidParameterError(
                    f"plan['layers'][{name!r}]: unknown role {role!r} for {type(m).__name__}")
            exp = original.get(name, {}).get(role) if isinstance(original.get(name), dict) \
                else None
            if exp is not None and size is not None and exp != size:
                raise ShapeMismatchError(
                    f"layer {name!r} {role}: plan expects {exp} positions, the model has "
                    f"{size}; was the plan made for another architecture?")
            _check_keep(f"['layers'][{name!r}][{role!r}]", keep, size)
    _check_layers_match_original(plan["layers"], original)
    for name, rec in plan["params"].items():
        where = f"['params'][{name!r}]"
        if not isinstance(rec, dict) or not {"dim", "keep", "size"} <= set(rec):
            raise InvalidParameterError(f"plan {where} must be a dict with dim, keep, size")
        try:
            owner, attr = get_owner(model, name)
        except AttributeError as exc:
            raise ShapeMismatchError(f"plan {where}: the model has no tensor {name!r}") from exc
        t = getattr(owner, attr, None)
        dim = rec["dim"]
        if not isinstance(t, torch.Tensor):
            raise ShapeMismatchError(f"plan {where}: the model has no tensor {name!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < t.dim():
            raise InvalidParameterError(f"plan {where}: dim {dim!r} is not a dimension of a "
                                        f"{t.dim()}-d tensor")
        if t.shape[dim] != rec["size"]:
            raise ShapeMismatchError(f"plan {where}: size {rec['size']!r}, the model's tensor "
                                     f"has {t.shape[dim]}")
        _check_keep(where, rec["keep"], t.shape[dim])
    for name, attrs in plan["attrs"].items():
        if name not in names or not isinstance(attrs, dict):
            raise ShapeMismatchError(f"plan['attrs'] names module {name!r}, which the model "
                                     "lacks")
        for k, v in attrs.items():
            old = getattr(names[name], k, None)
            if isinstance(old, bool) or not isinstance(old, int):
                raise InvalidParameterError(f"plan['attrs'][{name!r}]: {k!r} is not an integer "
                                            "attribute of that module")
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidParameterError(f"plan['attrs'][{name!r}][{k!r}] must be a positive "
                                            f"integer, got {v!r}")
