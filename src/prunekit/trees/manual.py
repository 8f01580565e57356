"""Pruning by hand: collapse listed nodes or nodes a predicate picks, and lossless simplification.

:class:`NodeInfo` is what a ``where=`` predicate sees for each internal node. :func:`simplify` is
the ``"simplify"`` method: it collapses every split whose leaves all predict the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunekit._validation import check_real
from prunekit.errors import InvalidParameterError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF, RawTree
from prunekit.trees._structure import TreeStructure, compact


@dataclass(frozen=True)
class NodeInfo:
    """One node of a fitted tree, as a ``where=`` predicate sees it.

    ``id`` is the node's index in ``model.tree_``; ``depth`` counts from the root (0);
    ``n_samples``/``weighted_n_samples`` are the training samples reaching it; ``impurity`` its
    training impurity; ``value`` its ``tree_.value`` row (class fractions or mean, shape
    ``(n_classes,)`` / ``(1,)``); ``feature``/``threshold`` its split (-2 and -2.0 for a leaf).
    """

    id: int
    depth: int
    n_samples: int
    weighted_n_samples: float
    impurity: float
    value: np.ndarray
    feature: int
    threshold: float
    is_leaf: bool


def node_infos(struct: TreeStructure) -> list[NodeInfo]:
    """A :class:`NodeInfo` for every node of the tree."""
    raw = struct.raw
    leaf = struct.is_leaf
    return [
        NodeInfo(
            id=i,
            depth=int(struct.depth[i]),
            n_samples=int(raw.n_node_samples[i]),
            weighted_n_samples=float(raw.weighted_n_node_samples[i]),
            impurity=float(raw.impurity[i]),
            value=raw.value[i, 0].copy(),
            feature=-2 if leaf[i] else int(raw.feature[i]),
            threshold=-2.0 if leaf[i] else float(raw.threshold[i]),
            is_leaf=bool(leaf[i]),
        )
        for i in range(struct.n_nodes)
    ]


def check_node_ids(nodes: Any, n_nodes: int) -> np.ndarray:
    """``nodes`` as an array of valid node ids, or a clear error."""
    try:
        ids = np.atleast_1d(np.asarray(nodes))
    except (TypeError, ValueError):
        ids = np.asarray([None], dtype=object)
    if ids.size and (ids.ndim != 1 or ids.dtype.kind not in "iu"):
        raise InvalidParameterError(f"nodes must be a list of integer node ids, got {nodes!r}")
    ids = ids.astype(np.intp)
    if ids.size and (ids.min() < 0 or ids.max() >= n_nodes):
        raise InvalidParameterError(
            f"nodes must be node ids in [0, {n_nodes - 1}], got {ids.tolist()}"
        )
    return ids


def where_mask(struct: TreeStructure, where: Callable[[NodeInfo], Any]) -> np.ndarray:
    """Internal nodes for which ``where(node_info)`` is true (leaves are never asked)."""
    if not callable(where):
        raise InvalidParameterError(
            f"where must be a callable taking a NodeInfo and returning a bool, got {where!r}"
        )
    mask = np.zeros(struct.n_nodes, dtype=bool)
    for info in node_infos(struct):
        if not info.is_leaf:
            mask[info.id] = bool(where(info))
    return mask


def simplify(ctx: PruneContext, *, tol: float = 0.0) -> MethodResult:
    """Lossless simplification: collapse every split whose leaves all predict the same.

    Classifiers: a subtree whose leaves all have the same ``predict`` class (argmax) becomes one
    leaf; ``predict`` is unchanged on every input, but ``predict_proba`` of the merged leaf is the
    merged node's training class distribution. Regressors: a subtree whose leaf values span at
    most ``tol`` becomes one leaf holding the node's training mean (which lies within that span,
    so predictions move by at most ``tol``); with ``tol=0`` the leaf keeps the shared value
    exactly.
    """
    tol = check_real("tol", tol, minimum=0.0)
    raw = ctx.struct.raw
    mask, value = simplify_mask(raw, ctx.struct.is_classifier, tol, ctx.struct.postorder())
    notes = [f"{int(mask.sum())} split(s) with identical predictions below merged"] if mask.any() \
        else []
    new = RawTree(**{**raw.__dict__, "value": value})
    return MethodResult(raw=compact(new, mask), params={"tol": tol}, notes=notes)


def simplify_mask(
    raw: RawTree, is_classifier: bool, tol: float, postorder: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes to collapse for :func:`simplify` and the value array to use (may be ``raw.value``)."""
    n = raw.node_count
    left, right = raw.left.tolist(), raw.right.tolist()
    v = raw.value[:, 0, :]
    mask = np.zeros(n, dtype=bool)
    if is_classifier:
        pred = v.argmax(axis=1)
        cls = pred.tolist()
        same = [True] * n
        for t in postorder.tolist():
            if left[t] == TREE_LEAF:
                continue
            a, b = left[t], right[t]
            ok = same[a] and same[b] and cls[a] == cls[b]
            same[t] = ok
            if ok:
                # the merged node's own distribution must predict the same class
                mask[t] = pred[t] == cls[a]
                same[t] = bool(mask[t])
                cls[t] = cls[a]
        return mask, raw.value
    lo = v[:, 0].copy()
    hi = v[:, 0].copy()
    for t in postorder.tolist():
        if left[t] == TREE_LEAF:
            continue
        a, b = left[t], right[t]
        lo[t], hi[t] = min(lo[a], lo[b]), max(hi[a], hi[b])
        mask[t] = hi[t] - lo[t] <= tol
    if tol == 0 and mask.any():
        value = raw.value.copy()
        value[mask, 0, 0] = lo[mask]
        return mask, value
    return mask, raw.value
