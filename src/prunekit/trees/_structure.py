"""A fitted tree as plain numpy arrays for the pruning algorithms, and the compact rebuild.

:class:`TreeStructure` holds what every method needs: children, parents, depth, and the training
statistics per node (weighted class counts for classifiers; mean and weighted sum of squared errors
for regressors). Methods return a boolean ``collapse`` mask (internal nodes turned into leaves);
:func:`compact` turns that into a renumbered :class:`RawTree` holding only the reachable nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from prunekit.trees._sktree import TREE_LEAF, RawTree


@dataclass(frozen=True)
class TreeStructure:
    """Arrays describing a fitted tree; node ``i`` is row ``i`` everywhere."""

    raw: RawTree
    is_classifier: bool
    parent: np.ndarray
    depth: np.ndarray
    n: np.ndarray  # weighted training samples per node
    counts: np.ndarray  # (n_nodes, n_classes) weighted training class counts; (n_nodes, 1) means
    sse: np.ndarray  # regressors: weighted SSE of the node mean (n * impurity); zeros otherwise

    @property
    def left(self) -> np.ndarray:
        return self.raw.left

    @property
    def right(self) -> np.ndarray:
        return self.raw.right

    @property
    def n_nodes(self) -> int:
        return self.raw.node_count

    @property
    def is_leaf(self) -> np.ndarray:
        return self.raw.left == TREE_LEAF

    def preorder(self) -> np.ndarray:
        """Node ids in pre-order (parent first, left subtree before right)."""
        return _preorder(self.raw.left, self.raw.right, np.zeros(self.n_nodes, dtype=bool))

    def postorder(self) -> np.ndarray:
        """Node ids with every child before its parent (reverse pre-order)."""
        return self.preorder()[::-1]

    def leaf_errors(self) -> np.ndarray:
        """Training errors of each node used as a leaf: misclassified weight, or SSE."""
        if self.is_classifier:
            return self.n - self.counts.max(axis=1)
        return self.sse

    def descendants_mask(self, node: int) -> np.ndarray:
        """Boolean mask of the nodes strictly below ``node``."""
        mask = np.zeros(self.n_nodes, dtype=bool)
        if self.left[node] == TREE_LEAF:
            return mask
        stack = [int(self.left[node]), int(self.right[node])]
        while stack:
            i = stack.pop()
            mask[i] = True
            if self.left[i] != TREE_LEAF:
                stack.extend((int(self.left[i]), int(self.right[i])))
        return mask


def build_structure(raw: RawTree, is_classifier: bool) -> TreeStructure:
    """Derive parents, depths and per-node training statistics from ``raw``."""
    n_nodes = raw.node_count
    parent = np.full(n_nodes, -1, dtype=np.intp)
    depth = np.zeros(n_nodes, dtype=np.intp)
    for i in _preorder(raw.left, raw.right, np.zeros(n_nodes, dtype=bool)):
        if raw.left[i] != TREE_LEAF:
            for c in (raw.left[i], raw.right[i]):
                parent[c] = i
                depth[c] = depth[i] + 1
    w = raw.weighted_n_node_samples.astype(np.float64)
    if is_classifier:
        counts = raw.value[:, 0, :] * w[:, None]  # sklearn >= 1.4 stores fractions
        if np.allclose(w, np.round(w)):  # unit/integer weights: counts are integers up to rounding
            counts = np.round(counts, 6)
        sse = np.zeros(n_nodes)
    else:
        counts = raw.value[:, 0, :1].copy()
        sse = w * raw.impurity
    return TreeStructure(raw, is_classifier, parent, depth, w, counts, sse)


def _preorder(left: np.ndarray, right: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Pre-order walk from the root that does not descend below nodes with ``stop`` set."""
    order = []
    stack = [0]
    while stack:
        i = stack.pop()
        order.append(i)
        if left[i] != TREE_LEAF and not stop[i]:
            stack.append(int(right[i]))
            stack.append(int(left[i]))
    return np.asarray(order, dtype=np.intp)


def compact(raw: RawTree, collapse: np.ndarray) -> RawTree:
    """Turn the nodes in ``collapse`` into leaves and drop everything no longer reachable.

    Surviving nodes are renumbered in pre-order (left before right), the order scikit-learn's own
    ``_build_pruned_tree`` uses, so a tree pruned here is array-for-array equal to one scikit-learn
    prunes with the same leaves.
    """
    collapse = np.asarray(collapse, dtype=bool)
    order = _preorder(raw.left, raw.right, collapse)
    new_id = np.full(raw.node_count, -1, dtype=np.intp)
    new_id[order] = np.arange(order.size)
    out = raw.take(order)
    leaf = (out.left == TREE_LEAF) | collapse[order]
    out.left = np.where(leaf, TREE_LEAF, new_id[np.where(leaf, 0, out.left)])
    out.right = np.where(leaf, TREE_LEAF, new_id[np.where(leaf, 0, out.right)])
    return out


def node_indicator(model, X: np.ndarray) -> sparse.csc_matrix:
    """(n_samples, n_nodes) 0/1 matrix: which nodes each sample passes through."""
    return sparse.csc_matrix(model.decision_path(X), dtype=np.float64)


def routed_stats(
    struct: TreeStructure, indicator: sparse.spmatrix, y: np.ndarray, classes: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Per-node statistics of data routed through the tree (e.g. a validation set).

    Classifiers: ``counts`` (n_nodes, n_classes) and ``n``. Regressors: ``n``, ``sum``, ``sumsq``.
    """
    ind = sparse.csr_matrix(indicator.T)  # (n_nodes, n_samples)
    n = np.asarray(ind.sum(axis=1)).ravel()
    if struct.is_classifier:
        assert classes is not None
        codes = np.searchsorted(classes, y)
        valid = (codes < classes.size) & (classes[np.minimum(codes, classes.size - 1)] == y)
        onehot = np.zeros((y.shape[0], classes.size))
        onehot[np.flatnonzero(valid), codes[valid]] = 1.0
        return {"n": n, "counts": np.asarray(ind @ onehot)}
    y = np.asarray(y, dtype=np.float64)
    return {"n": n, "sum": ind @ y, "sumsq": ind @ (y * y)}


def leaf_loss_on(struct: TreeStructure, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Loss of the routed data at each node if that node were a leaf (training prediction).

    Classifiers: number of routed samples the node's majority class gets wrong.
    Regressors: sum of squared errors of the routed targets around the node's training mean.
    """
    if struct.is_classifier:
        pred = struct.counts.argmax(axis=1)
        return stats["n"] - stats["counts"][np.arange(struct.n_nodes), pred]
    m = struct.counts[:, 0]
    return stats["sumsq"] - 2.0 * m * stats["sum"] + stats["n"] * m * m
