"""Shared types of the tree-pruning methods: the context they read and the result they return."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight

from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.trees._sktree import RawTree
from prunekit.trees._structure import TreeStructure, class_codes, routed_stats_from_leaves


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
    sample_weight: np.ndarray | None = None  # weights of the X_train rows, as passed to fit

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
    def val_stats(self) -> dict[str, np.ndarray]:
        """Per-node statistics of the validation data (memory O(nodes + samples))."""
        X, y = self.require_validation("this method")
        return routed_stats_from_leaves(self.struct, self.model.apply(X), y, self.classes)

    @property
    def weighted(self) -> bool:
        """Whether the tree was grown with sample or class weights (its counts are weighted)."""
        raw = self.struct.raw
        return getattr(self.model, "class_weight", None) is not None or not np.allclose(
            raw.weighted_n_node_samples, raw.n_node_samples
        )

    def train_weights(self, method: str, *, exact: bool = False) -> np.ndarray | None:
        """Per-row weights of X_train as the tree's ``fit`` used them (``sample_weight`` times the
        expanded ``class_weight``), or None when every row weighs 1.

        Checks them against the weighted counts stored at the tree's root: with ``exact`` (the
        method needs the very data the tree was grown on) any mismatch raises; otherwise a tree
        grown with ``sample_weight`` raises when none is given.
        """
        X, y = self.require_training(method)
        w = None if self.sample_weight is None else self.sample_weight.copy()
        cw = getattr(self.model, "class_weight", None)
        if cw is not None and self.struct.is_classifier:
            expanded = compute_sample_weight(cw, y)
            w = expanded if w is None else w * expanded
        root_w = float(self.struct.raw.weighted_n_node_samples[0])
        root_n = int(self.struct.raw.n_node_samples[0])
        total = float(y.shape[0] if w is None else w.sum())
        same = np.isclose(total, root_w, rtol=1e-6, atol=1e-9)
        if same and self.struct.is_classifier:
            codes = class_codes(y, self.model.classes_)
            got = np.bincount(codes, weights=w, minlength=self.struct.counts.shape[1])
            same = np.allclose(got, self.struct.counts[0], rtol=1e-6, atol=1e-6)
        if same and (y.shape[0] == root_n or not exact):
            return w
        if exact:
            raise ShapeMismatchError(
                f"method={method!r} needs the X_train/y_train (and sample_weight) the tree was "
                f"grown on: its root holds {root_n} samples of total weight {root_w:g}"
                + (" per class " + str(np.round(self.struct.counts[0], 6).tolist())
                   if self.struct.is_classifier else "")
                + f"; got {y.shape[0]} rows of total weight {total:g}"
                + ("" if self.sample_weight is not None or not self.weighted
                   else " (was the tree fitted with sample_weight? pass it as sample_weight=)")
            )
        if self.sample_weight is None and self._grown_with_sample_weight():
            raise InvalidParameterError(
                f"method={method!r} refits trees on X_train, and this tree was grown with "
                "sample_weight: pass the same weights as sample_weight= (one per X_train row)"
            )
        return w

    def _grown_with_sample_weight(self) -> bool:
        raw = self.struct.raw
        if getattr(self.model, "class_weight", None) is None:
            return not np.allclose(raw.weighted_n_node_samples, raw.n_node_samples)
        return False  # cannot tell apart from class weights without the exact training data


@dataclass
class MethodResult:
    """A method's output: nodes to collapse (or a whole new tree / model) and what it chose."""

    collapse: np.ndarray | None = None  # bool mask over the original nodes
    raw: RawTree | None = None  # a restructured tree (e.g. C4.5 subtree raising)
    model: Any = None  # a freshly grown model (pre-pruning)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
