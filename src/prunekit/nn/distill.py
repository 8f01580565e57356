"""Recovery after pruning: fine-tuning, optionally distilling from the unpruned model.

``distillation_loss`` is the knowledge-distillation objective of Hinton, Vinyals & Dean,
"Distilling the Knowledge in a Neural Network" (2015): a mix of the hard-label cross-entropy and
the KL divergence between temperature-softened teacher and student distributions, scaled by
``T**2`` so its gradients keep their size as ``T`` changes.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from prunekit._modes import eval_mode
from prunekit._validation import check_fraction
from prunekit.errors import InvalidParameterError
from prunekit.nn.training import train_classifier


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None = None,
    T: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)``.

    With ``targets=None`` only the distillation term is used (``alpha`` is then ignored).
    """
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or T <= 0:
        raise InvalidParameterError(f"T must be a number > 0, got {T!r}")
    alpha = check_fraction("alpha", alpha, high_inclusive=True)
    if student_logits.shape != teacher_logits.shape:
        raise InvalidParameterError(
            f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
            f"{tuple(teacher_logits.shape)}"
        )
    kd = F.kl_div(
        F.log_softmax(student_logits / T, dim=-1),
        F.log_softmax(teacher_logits.detach() / T, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * (T * T)
    if targets is None:
        return kd
    return alpha * kd + (1.0 - alpha) * F.cross_entropy(student_logits, targets)


class _WithTeacher:
    """Re-iterable loader yielding ``(x, (y, teacher_logits))``."""

    def __init__(self, loader: Iterable[Any], teacher: nn.Module) -> None:
        self.loader, self.teacher = loader, teacher

    def __iter__(self) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
        with eval_mode(self.teacher):  # the teacher's own mode is restored afterwards
            for xb, yb in self.loader:
                with torch.no_grad():
                    t = self.teacher(xb)
                yield xb, (yb, t)


def finetune(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    teacher: nn.Module | None = None,
    T: float = 4.0,
    alpha: float = 0.5,
    optimizer: torch.optim.Optimizer | str = "adam",
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
    progress: bool = False,
) -> list[float]:
    """Fine-tune ``model`` in place (cross-entropy, or KD from ``teacher``); return epoch losses.

    Built on :func:`prunekit.nn.training.train_classifier`; the teacher's logits are computed
    per batch under ``no_grad`` and fed to :func:`distillation_loss`.
    """
    if teacher is None:
        return train_classifier(model, loader, epochs=epochs, lr=lr, optimizer=optimizer,
                                max_steps=max_steps, on_step=on_step, progress=progress,
                                description="fine-tuning")
    T_, alpha_ = float(T), float(alpha)
    distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), None, T_, alpha_)  # validate early

    def loss_fn(logits: torch.Tensor, target: Any) -> torch.Tensor:
        y, t = target
        return distillation_loss(logits, t, y, T_, alpha_)

    return train_classifier(model, _WithTeacher(loader, teacher), epochs=epochs, lr=lr,
                            optimizer=optimizer, loss_fn=loss_fn, max_steps=max_steps,
                            on_step=on_step, progress=progress, description="distilling")
