"""User metrics for sensitivity analysis and budget search: checked calls, ready-made metrics.

A metric is any ``eval_fn(model) -> float``. Higher is better unless the callable carries
``higher_is_better = False`` (as :class:`BatchLoss` does) or the caller says otherwise.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prunekit.errors import InvalidParameterError, PrunekitError

EvalFn = Callable[[Any], float]


class EvaluationError(PrunekitError, RuntimeError):
    """The user's ``eval_fn`` raised while scoring a candidate."""


def call_metric(eval_fn: EvalFn, model: Any, where: str) -> float:
    """``eval_fn(model)`` as a finite float; a raise or a NaN names the candidate ``where``."""
    try:
        value = eval_fn(model)
    except PrunekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - any user error is re-raised with context
        raise EvaluationError(
            f"eval_fn raised {type(exc).__name__} on {where}: {exc}"
        ) from exc
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(
            f"eval_fn must return a real number, got {type(value).__name__} on {where}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise InvalidParameterError(f"eval_fn returned {value} on {where}; it must be finite")
    return value


def metric_direction(eval_fn: EvalFn, given: bool | None) -> bool:
    """The direction of ``eval_fn``: ``given`` if set, else its ``higher_is_better`` attribute."""
    if given is not None:
        if not isinstance(given, bool):
            raise InvalidParameterError(f"higher_is_better must be True/False, got {given!r}")
        return given
    return bool(getattr(eval_fn, "higher_is_better", True))


class BatchLoss:
    """``eval_fn`` = mean loss of a torch model over a few ``(inputs, targets)`` batches.

    Lower is better (``higher_is_better = False``). The batches are materialised once, so a
    shuffling DataLoader is read only once and every candidate sees the same samples.
    """

    higher_is_better = False

    def __init__(self, data: Iterable[Any], loss_fn: Callable[..., Any] | None = None,
                 max_batches: int | None = None) -> None:
        batches: list[tuple[Any, Any]] = []
        for i, b in enumerate(data):
            if max_batches is not None and i >= max_batches:
                break
            if not isinstance(b, (list, tuple)) or len(b) < 2:
                raise InvalidParameterError("data must yield (inputs, targets) batches")
            batches.append((b[0], b[1]))
        if not batches:
            raise InvalidParameterError("data yielded no batches")
        self.batches = batches
        self.loss_fn = loss_fn

    @property
    def cache_name(self) -> str:
        """Stable identity for caches: the loss function and a hash of the batches."""
        name = getattr(self.loss_fn, "__qualname__", None) or "cross_entropy"
        return f"BatchLoss[{name}]:{_hash_batches(self.batches)}"

    def __call__(self, model: Any) -> float:
        import torch

        from prunekit._modes import eval_mode

        loss_fn = self.loss_fn or torch.nn.functional.cross_entropy
        total, count = 0.0, 0
        with torch.no_grad(), eval_mode(model):
            for x, y in self.batches:
                total += float(loss_fn(model(x), y)) * len(y)
                count += len(y)
        return total / max(count, 1)


class Accuracy:
    """``eval_fn`` = top-1 accuracy of a torch classifier over ``(inputs, targets)`` batches."""

    higher_is_better = True

    def __init__(self, data: Iterable[Any]) -> None:
        self.batches = list(data)
        if not self.batches:
            raise InvalidParameterError("data yielded no batches")

    @property
    def cache_name(self) -> str:
        """Stable identity for caches: a hash of the batches."""
        return f"Accuracy:{_hash_batches(self.batches)}"

    def __call__(self, model: Any) -> float:
        from prunekit.nn.training import evaluate_accuracy

        return evaluate_accuracy(model, self.batches)


def _hash_batches(batches: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for b in batches:
        for t in (b if isinstance(b, (list, tuple)) else (b,)):
            arr = t.detach().cpu().contiguous().numpy() if hasattr(t, "detach") else t
            h.update(str(getattr(arr, "shape", "")).encode())
            h.update(arr.tobytes() if hasattr(arr, "tobytes") else repr(arr).encode())
    return h.hexdigest()[:16]


def fingerprint(model: Any, *extra: Any) -> str:
    """A hash of a torch model's tensors (names, shapes, values) and ``extra`` settings."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes() if t.numel() else b"")
    for e in extra:
        h.update(repr(e).encode())
    return h.hexdigest()[:32]


def check_grid(grid: Sequence[float], name: str = "grid", *, high: float = 1.0) -> list[float]:
    """A sorted list of distinct fractions in (0, high)."""
    try:
        vals = sorted({float(g) for g in grid})
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a sequence of numbers, got {grid!r}") from exc
    if not vals or any(not (0.0 < v < high) or not math.isfinite(v) for v in vals):
        raise InvalidParameterError(
            f"{name} must hold at least one fraction strictly between 0 and {high}, got {grid!r}"
        )
    return vals
