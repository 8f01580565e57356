"""Train/eval mode handling shared by every domain that runs a user's torch model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Put a torch module in eval mode for the block and restore each submodule's mode after.

    Restoring per submodule (not ``model.train(was_training)``) keeps a user's mixed modes, e.g.
    batch-norm layers frozen in eval inside a model being trained.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
