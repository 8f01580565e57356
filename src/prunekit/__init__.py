"""prunekit: prune decision trees, ensembles and neural networks.

Subpackages: :mod:`prunekit.trees`, :mod:`prunekit.ensembles`, :mod:`prunekit.nn`,
:mod:`prunekit.deploy`, over a small shared core (:mod:`prunekit.data`, :mod:`prunekit.metrics`,
:mod:`prunekit.report`).
Subpackages are imported lazily so ``import prunekit`` stays cheap.

In place or a copy? Entry points that return a model never modify their input (a copy is
pruned: ``prune_tree``, ``prune_ensemble``, the pruned-tree estimators, ``nn.structured.prune``,
``prune_transformer``, ``apply_plan`` unless ``inplace=True``). The weight-level entry points for
large models, ``nn.prune_model``, ``nn.oneshot.oneshot`` and ``nn.lottery_ticket``, prune in place
by default (a copy doubles the memory) and take ``inplace=False`` to prune a deep copy; the
pruned model is ``report.model`` (``result.model``) either way. ``nn.Pruner`` always works in
place on the model being trained.
"""

from __future__ import annotations

import importlib
from typing import Any

from prunekit.errors import (
    CorruptFileError,
    InvalidParameterError,
    OptionalDependencyError,
    PrunekitError,
    ShapeMismatchError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

_SUBMODULES = {"data", "metrics", "report", "trees", "ensembles", "nn", "deploy"}

__all__ = [
    "__version__",
    "PrunekitError",
    "CorruptFileError",
    "InvalidParameterError",
    "NotFittedError",
    "OptionalDependencyError",
    "ShapeMismatchError",
    "UnsupportedModelError",
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    if name == "NotFittedError":  # built on first use, see prunekit.errors
        from prunekit import errors

        return errors.NotFittedError
    if name in _SUBMODULES:
        return importlib.import_module(f"prunekit.{name}")
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")
