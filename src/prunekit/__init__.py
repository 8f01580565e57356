"""prunekit: prune decision trees, ensembles and neural networks.

Subpackages: :mod:`prunekit.trees`, :mod:`prunekit.ensembles`, :mod:`prunekit.nn`,
:mod:`prunekit.deploy`, over a small shared core (:mod:`prunekit.data`, :mod:`prunekit.metrics`,
:mod:`prunekit.report`).
Subpackages are imported lazily so ``import prunekit`` stays cheap.
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
