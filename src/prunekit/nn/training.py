"""A plain, dependency-free training loop with a hook for pruning after every optimizer step."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit._progress import ProgressBar
from prunekit.errors import InvalidParameterError

StepCallback = Callable[[int], None]


def make_optimizer(model: nn.Module, name: str = "adam", lr: float = 1e-3) -> torch.optim.Optimizer:
    """Build ``adam`` / ``adamw`` / ``sgd`` (momentum 0.9) over the model's trainable parameters."""
    from prunekit._validation import check_choice

    check_choice("optimizer", name, ("adam", "adamw", "sgd"))
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
        raise InvalidParameterError(f"lr must be a number > 0, got {lr!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def train_classifier(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | str = "adam",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    on_step: StepCallback | None = None,
    max_steps: int | None = None,
    progress: bool = False,
    description: str = "training",
) -> list[float]:
    """Train ``model`` in place with cross-entropy (or ``loss_fn``); return the mean loss per epoch.

    ``on_step(step)`` runs after every ``optimizer.step()`` — the place for a pruner's ``step``,
    which re-applies masks and advances its schedule. ``max_steps`` stops early (total steps).
    """
    from prunekit._validation import check_positive_int

    check_positive_int("epochs", epochs)
    if max_steps is not None:
        check_positive_int("max_steps", max_steps)
    opt = make_optimizer(model, optimizer, lr) if isinstance(optimizer, str) else optimizer
    loss_fn = loss_fn or nn.functional.cross_entropy
    losses: list[float] = []
    step = 0
    with ProgressBar(epochs, description, enabled=progress) as task_bar:
        for _ in range(epochs):
            model.train()
            total, count = 0.0, 0
            for xb, yb in loader:
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
                step += 1
                if on_step is not None:
                    on_step(step)
                total += float(loss.detach()) * len(xb)
                count += len(xb)
                if max_steps is not None and step >= max_steps:
                    break
            losses.append(total / max(count, 1))
            task_bar.advance()
            if max_steps is not None and step >= max_steps:
                break
    model.eval()
    return losses


@torch.inference_mode()
def evaluate_accuracy(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> float:
    """Top-1 accuracy of ``model`` over ``loader`` (eval mode; restores the previous mode)."""
    correct = total = 0
    with eval_mode(model):
        for xb, yb in loader:
            correct += int((model(xb).argmax(dim=1) == yb).sum())
            total += len(yb)
    return correct / max(total, 1)
