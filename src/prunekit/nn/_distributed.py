"""``torch.distributed`` helpers for the :class:`~prunekit.nn.Pruner` (DDP / Lightning ``ddp``).

Every rank computes its criterion's statistics on its own data; the statistics are all-reduced
(so global thresholds rank over the statistics of all ranks' data), masks are computed from the
reduced scores and then broadcast from the group's rank 0, so every rank holds bit-identical masks.
Collectives run only when masks are recomputed and at ``prepare`` (a fingerprint of the model is
compared across ranks), never in the per-step path.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from prunekit.errors import InvalidParameterError, UnsupportedModelError

REDUCTIONS = ("sum", "mean", "none")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` (names without
    ``module.``)."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def is_initialized() -> bool:
    dist = torch.distributed
    return bool(dist.is_available() and dist.is_initialized())


def resolve(distributed: bool | None, group: Any = None) -> bool:
    """Whether to synchronise: ``None`` = when a process group with more than one rank exists."""
    if distributed is not None and not isinstance(distributed, bool):
        raise InvalidParameterError(
            f"distributed must be True, False or None (auto), got {distributed!r}"
        )
    if distributed is False:
        return False
    if not is_initialized():
        if distributed:
            raise InvalidParameterError(
                "distributed=True but torch.distributed is not initialised: call "
                "torch.distributed.init_process_group(...) on every rank first (or pass "
                "distributed=None to synchronise only when a process group exists)"
            )
        return False
    return distributed is True or torch.distributed.get_world_size(group) > 1


def _src(group: Any) -> int:
    if group is None:
        return 0
    return int(torch.distributed.get_global_rank(group, 0))


def _comm_device(t: torch.Tensor, group: Any) -> torch.device:
    backend = torch.distributed.get_backend(group)
    return t.device if backend != "gloo" else torch.device("cpu")


def all_reduce_scores(
    scores: Mapping[str, torch.Tensor], reduction: str, count: float, group: Any = None
) -> dict[str, torch.Tensor]:
    """Combine every rank's scores: ``sum``, a ``count``-weighted ``mean``, or ``none``."""
    if reduction not in REDUCTIONS:
        raise InvalidParameterError(
            f"criterion reduction must be one of {REDUCTIONS}, got {reduction!r}"
        )
    if reduction == "none":
        return dict(scores)
    dist = torch.distributed
    weight = float(count) if reduction == "mean" else 1.0
    out: dict[str, torch.Tensor] = {}
    for name in sorted(scores):  # same order on every rank
        s = scores[name].detach()
        dev = _comm_device(s, group)
        buf = s.to(device=dev, dtype=torch.float64) * weight
        dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
        out[name] = buf.to(s.device)
    if reduction == "mean":
        total = torch.tensor([weight], dtype=torch.float64)
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        denom = float(total) if float(total) > 0 else 1.0
        out = {k: v / denom for k, v in out.items()}
    return {k: out[k] for k in scores}


def broadcast_masks(
    masks: Mapping[str, torch.Tensor], group: Any = None
) -> dict[str, torch.Tensor]:
    """Rank 0's masks on every rank (bit-identical masks whatever the reduction's rounding)."""
    dist = torch.distributed
    out: dict[str, torch.Tensor] = {}
    for name in sorted(masks):
        m = masks[name]
        buf = m.to(device=_comm_device(m, group), dtype=torch.uint8).contiguous()
        dist.broadcast(buf, src=_src(group), group=group)
        out[name] = buf.to(device=m.device, dtype=torch.bool)
    return {k: out[k] for k in masks}


@torch.no_grad()
def broadcast_params(params: Mapping[str, torch.Tensor], group: Any = None) -> None:
    """Overwrite every rank's ``params`` with rank 0's (after a local weight update)."""
    dist = torch.distributed
    for name in sorted(params):
        p = params[name]
        buf = p.detach().to(_comm_device(p, group)).contiguous()
        dist.broadcast(buf, src=_src(group), group=group)
        p.copy_(buf.to(p.device))


def _fingerprint(model: nn.Module, targets: list[str]) -> tuple[int, float]:
    """(crc32 of the names, shapes and dtypes of the parameters, float64 sum of their values)."""
    params = dict(model.named_parameters())
    text = ";".join(f"{n}:{tuple(p.shape)}:{p.dtype}" for n, p in params.items())
    text += "|" + ",".join(targets)
    with torch.no_grad():
        checksum = sum(float(p.detach().double().sum()) for p in params.values())
    return zlib.crc32(text.encode()), checksum


def check_same_model(model: nn.Module, targets: list[str], group: Any = None) -> None:
    """Raise if ranks hold models of different structure, or different weights."""
    dist = torch.distributed
    struct, checksum = _fingerprint(model, targets)
    t = torch.tensor([float(struct), checksum], dtype=torch.float64)
    lo, hi = t.clone(), t.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=group)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=group)
    rank = dist.get_rank()
    if lo[0] != hi[0]:
        raise UnsupportedModelError(
            f"rank {rank}: the ranks hold different models (parameter names/shapes/dtypes or "
            "pruned layers differ); every rank must build the same model and Pruner arguments"
        )
    if lo[1] != hi[1]:
        raise UnsupportedModelError(
            f"rank {rank}: the ranks hold the same architecture with different weights "
            f"(checksums from {float(lo[1])!r} to {float(hi[1])!r}); wrap the model in "
            "DistributedDataParallel before creating the Pruner (it broadcasts rank 0's "
            "weights), or load/seed the same weights on every rank"
        )


def check_lockstep(step: int, group: Any = None) -> None:
    """Raise if the ranks recompute masks at different step counts (schedules out of step)."""
    dist = torch.distributed
    t = torch.tensor([float(step), -float(step)], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    if t[0] != -t[1]:
        raise InvalidParameterError(
            f"rank {dist.get_rank()}: the ranks update masks at different steps "
            f"({int(-t[1])} to {int(t[0])}); call Pruner.step() once per optimizer step on "
            "every rank (or pass the same step= everywhere) so schedules stay in lockstep"
        )
