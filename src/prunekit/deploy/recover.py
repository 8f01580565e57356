"""Recovery training for unstructured / one-shot pruned models that keeps pruned weights at zero.

:func:`keep_zeros` wraps *any* training loop: gradients of pruned entries are masked (so Adam's
moments stay zero there) and after every optimizer step the masks are re-applied (so weight decay
or a user's stale momentum cannot regrow them). :func:`masked_finetune` runs
:func:`prunekit.nn.distill.finetune` (cross-entropy or knowledge distillation from the dense
teacher) and :func:`masked_distill_hidden_states` runs
:func:`prunekit.nn.distill.distill_hidden_states` (embedding distillation for encoders) inside
it. Masks come from a :class:`prunekit.nn.Pruner` (``pruner.masks``), a ``SparsityReport``
(``report.masks``), a dict ``{param_name: keep_mask}`` or, by default, the model's zeros.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from prunekit.deploy._common import fmt
from prunekit.errors import InvalidParameterError


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Keep-masks (``True`` = kept) of every weight matrix / kernel that contains zeros."""
    return {name: p.detach() != 0 for name, p in model.named_parameters()
            if p.dim() >= 2 and bool((p == 0).any())}


def _resolve(model: nn.Module, masks: Any) -> dict[str, torch.Tensor]:
    if masks is None:
        out = zero_masks(model)
    else:
        source = getattr(masks, "masks", masks)  # a Pruner or a SparsityReport
        if not isinstance(source, Mapping):
            raise InvalidParameterError(
                "masks must be a dict {param_name: bool mask}, a prunekit.nn.Pruner, a "
                f"SparsityReport or None (use the model's zeros), got {type(masks).__name__}"
            )
        params = dict(model.named_parameters())
        out = {}
        for name, m in source.items():
            if name not in params or tuple(m.shape) != tuple(params[name].shape):
                raise InvalidParameterError(
                    f"mask {name!r} does not match a parameter of the model (name and shape)"
                )
            out[name] = m.to(device=params[name].device, dtype=torch.bool)
    if not out:
        raise InvalidParameterError("the model has no pruned (zero) weights; nothing to keep")
    return out


@contextlib.contextmanager
def keep_zeros(model: nn.Module, masks: Any = None) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, pruned weights of ``model`` stay exactly zero whatever trains it."""
    masks = _resolve(model, masks)
    params = dict(model.named_parameters())
    targets = [(params[n], m) for n, m in masks.items()]
    handles = [p.register_hook(lambda g, m=m: g.masked_fill(~m, 0)) for p, m in targets]

    @torch.no_grad()
    def reapply(*_: Any) -> None:
        for p, m in targets:
            p.masked_fill_(~m, 0)

    reapply()
    handles.append(register_optimizer_step_post_hook(reapply))
    try:
        yield masks
    finally:
        for h in handles:
            h.remove()
        reapply()


@dataclass
class RecoveryReport:
    """What a masked recovery run did: losses, and that the pruned weights stayed zero."""

    method: str
    masked_params: int
    pruned_weights: int
    zeros_kept: bool
    sparsity: float
    losses: list[float] = field(default_factory=list)
    metric: str | None = None
    before: float | None = None
    after: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        rows = {"method": self.method, "masked weight tensors": self.masked_params,
                "pruned weights": self.pruned_weights, "sparsity of masked tensors": self.sparsity,
                "pruned weights still zero": self.zeros_kept,
                "first / last loss": (f"{self.losses[0]:.4g} / {self.losses[-1]:.4g}"
                                      if self.losses else None),
                f"{self.metric} before": self.before, f"{self.metric} after": self.after}
        lines = ["### Masked recovery", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in rows.items()
                  if v is not None and not k.startswith("None")]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)


def _summary(model: nn.Module, masks: dict[str, torch.Tensor], method: str,
             losses: list[float]) -> RecoveryReport:
    params = dict(model.named_parameters())
    pruned = sum(int((~m).sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    kept = all(bool((params[n][~m] == 0).all()) for n, m in masks.items())
    return RecoveryReport(method, len(masks), pruned, kept, pruned / max(total, 1), list(losses))


def masked_finetune(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    masks: Any = None,
    teacher: nn.Module | None = None,
    epochs: int = 1,
    lr: float = 1e-4,
    T: float = 4.0,
    alpha: float = 0.5,
    max_steps: int | None = None,
    eval_loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    progress: bool = False,
) -> RecoveryReport:
    """Fine-tune (or distil from ``teacher``) a sparse classifier in place, keeping its zeros.

    Runs :func:`prunekit.nn.distill.finetune` inside :func:`keep_zeros`. With ``eval_loader``
    the top-1 accuracy before and after is reported.
    """
    from prunekit.nn.distill import finetune
    from prunekit.nn.training import evaluate_accuracy

    before = evaluate_accuracy(model, eval_loader) if eval_loader is not None else None
    with keep_zeros(model, masks) as m:
        losses = finetune(model, loader, epochs=epochs, lr=lr, teacher=teacher, T=T, alpha=alpha,
                          max_steps=max_steps, progress=progress)
    report = _summary(model, m, "distillation" if teacher is not None else "fine-tuning", losses)
    if eval_loader is not None:
        report.metric, report.before = "accuracy", before
        report.after = evaluate_accuracy(model, eval_loader)
    return report


def masked_distill_hidden_states(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    steps: int,
    masks: Any = None,
    **kwargs: Any,
) -> RecoveryReport:
    """Embedding distillation of a sparse (one-shot pruned) encoder that keeps its zeros.

    :func:`prunekit.nn.distill.distill_hidden_states` (all its keyword options accepted) inside
    :func:`keep_zeros`; the teacher is usually the dense model before pruning.
    """
    from prunekit.nn.distill import distill_hidden_states

    with keep_zeros(student, masks) as m:
        losses = distill_hidden_states(student, teacher, batches, steps=steps, **kwargs)
    return _summary(student, m, "hidden-state distillation", losses)
