"""Shared types of the tree-pruning methods: the context they read and the result they return."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from prunekit.errors import InvalidParameterError
from prunekit.trees._sktree import RawTree
from prunekit.trees._structure import TreeStructure, node_indicator, routed_stats


@dataclass
class PruneContext:
    """What a pruning method may use: the fitted model, its arrays, and optional data."""

    model: Any
    struct: TreeStructure
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    X_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    random_state: int | None = None

    @property
    def classes(self) -> np.ndarray | None:
        return getattr(self.model, "classes_", None)

    def require_validation(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        if self.X_val is None or self.y_val is None:
            raise InvalidParameterError(
                f"method={method!r} needs a validation set: pass X_val and y_val"
            )
        return self.X_val, self.y_val

    def require_training(self, method: str, why: str = "") -> tuple[np.ndarray, np.ndarray]:
        if self.X_train is None or self.y_train is None:
            raise InvalidParameterError(
                f"method={method!r}{why} needs the training data the tree was grown on: "
                "pass X_train and y_train"
            )
        return self.X_train, self.y_train

    @cached_property
    def val_indicator(self):
        X, _ = self.require_validation("this method")
        return node_indicator(self.model, X)

    @cached_property
    def val_stats(self) -> dict[str, np.ndarray]:
        _, y = self.require_validation("this method")
        return routed_stats(self.struct, self.val_indicator, y, self.classes)


@dataclass
class MethodResult:
    """A method's output: nodes to collapse (or a whole new tree / model) and what it chose."""

    collapse: np.ndarray | None = None  # bool mask over the original nodes
    raw: RawTree | None = None  # a restructured tree (e.g. C4.5 subtree raising)
    model: Any = None  # a freshly grown model (pre-pruning)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
