"""Lightning callback running a :class:`~prunekit.nn.Pruner` (optional extra ``lightning``).

    from prunekit.nn.lightning import SparsityCallback
    trainer = L.Trainer(callbacks=[SparsityCallback(sparsity=0.9, schedule=agp(0.9, 0, 2000))])

The callback builds the pruner on ``on_fit_start`` (keyword arguments are :class:`Pruner`'s), zeroes
pruned gradients before every optimizer step, re-applies masks and advances the schedule after
every training batch, and finalizes at the end of training. Lightning is imported lazily: this
module imports without it; using the callback without it raises
:class:`~prunekit.errors.OptionalDependencyError` naming the extra.

Under the ``ddp`` / ``ddp_spawn`` strategies the pruner is built once the process group exists and
the model is wrapped (``on_fit_start``, after DDP has broadcast rank 0's weights): it then
synchronises on its own (all-reduced scores, masks broadcast from rank 0, steps following the
trainer's ``global_step``, identical on every rank).
"""

from __future__ import annotations

import importlib
from typing import Any

from prunekit.errors import OptionalDependencyError

__all__ = ["lightning_available"]  # and SparsityCallback, built on first access

_CLASS: Any = None


def _lightning() -> Any:
    import contextlib

    from prunekit._compat import import_torchvision

    # torchmetrics (imported by Lightning) imports torchvision when present; make that work
    with contextlib.suppress(OptionalDependencyError):
        import_torchvision()
    for module in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise OptionalDependencyError(
        "the Lightning callback needs 'lightning'; "
        "install it with: pip install 'prunekit[lightning]'"
    )


def lightning_available() -> bool:
    """Whether ``lightning`` (or ``pytorch_lightning``) can be imported."""
    try:
        _lightning()
    except OptionalDependencyError:
        return False
    return True


def _build() -> Any:
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    pl = _lightning()
    from prunekit.nn import _distributed as _dist
    from prunekit.nn.sparsity import Pruner

    class SparsityCallback(pl.Callback):  # type: ignore[misc, name-defined]
        """Keeps a :class:`Pruner`'s masks applied through ``Trainer.fit``."""

        def __init__(self, **pruner_kwargs: Any) -> None:
            super().__init__()
            self.pruner_kwargs = pruner_kwargs
            self.pruner: Pruner | None = None

        def setup(self, trainer: Any, pl_module: Any, stage: str | None = None) -> None:
            # single process: build now; distributed: wait for on_fit_start (model wrapped in
            # DDP and rank 0's weights broadcast), so every rank prunes the same weights
            if self.pruner is None and stage in (None, "fit") and not _dist.is_initialized():
                self.pruner = Pruner(pl_module, **self.pruner_kwargs).prepare()

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            if self.pruner is None:
                self.pruner = Pruner(pl_module, **self.pruner_kwargs).prepare()

        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            if self.pruner is not None:
                self.pruner.optimizer = optimizer
                self.pruner.mask_gradients()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            if self.pruner is not None:
                # schedules count optimizer steps: with gradient accumulation a batch is not a
                # step, so follow the trainer's own counter when there is one
                self.pruner.step(getattr(trainer, "global_step", None))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.pruner is not None:
                self.pruner.finalize()

    # picklable by reference (ddp_spawn sends the trainer's callbacks to its processes)
    SparsityCallback.__qualname__ = "SparsityCallback"
    SparsityCallback.__module__ = __name__
    _CLASS = SparsityCallback
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "SparsityCallback":
        return _build()
    raise AttributeError(f"module 'prunekit.nn.lightning' has no attribute {name!r}")
