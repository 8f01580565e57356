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
    parent, depth = _parents_and_depths(raw.left, raw.right)
    w = raw.weighted_n_node_samples.astype(np.float64)
    if is_classifier:
        counts = raw.value[:, 0, :] * w[:, None]  # sklearn >= 1.4 stores (weighted) fractions
        if np.allclose(w, np.round(w)):  # unit/integer weights: counts are integers up to rounding
            counts = np.round(counts, 6)
        sse = np.zeros(raw.node_count)
    else:
        counts = raw.value[:, 0, :1].copy()
        sse = w * raw.impurity
    return TreeStructure(raw, is_classifier, parent, depth, w, counts, sse)


def _parents_and_depths(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent (-1 for the root) and depth of every node reachable from the root, level by level."""
    n_nodes = left.shape[0]
    parent = np.full(n_nodes, -1, dtype=np.intp)
    depth = np.zeros(n_nodes, dtype=np.intp)
    level, d = np.zeros(1, dtype=np.intp), 0
    while level.size:
        inner = level[left[level] != TREE_LEAF]
        kids = np.concatenate([left[inner], right[inner]])
        parent[kids] = np.concatenate([inner, inner])
        d += 1
        depth[kids] = d
        level = kids
    return parent, depth


def levels(struct: TreeStructure) -> list[np.ndarray]:
    """Node ids grouped by depth (root level first)."""
    order = np.argsort(struct.depth, kind="stable")
    bounds = np.searchsorted(struct.depth[order], np.arange(int(struct.depth.max()) + 2))
    return [order[bounds[d] : bounds[d + 1]] for d in range(len(bounds) - 1)]


def accumulate_up(struct: TreeStructure, values: np.ndarray) -> np.ndarray:
    """Add every node's ``values`` row into all its ancestors (leaf data -> subtree totals)."""
    out = np.array(values, dtype=np.float64, copy=True)
    for nodes in reversed(levels(struct)[1:]):
        np.add.at(out, struct.parent[nodes], out[nodes])
    return out


def collapsed_leaf(struct: TreeStructure, collapse: np.ndarray) -> np.ndarray:
    """For each node, the node that is its leaf (or itself) once ``collapse`` is applied."""
    rep = np.arange(struct.n_nodes)
    for nodes in levels(struct)[1:]:
        p = struct.parent[nodes]
        absorbed = collapse[p] | (rep[p] != p)
        rep[nodes] = np.where(absorbed, rep[p], nodes)
    return rep


def class_codes(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Index of each (already validated) label in ``classes``; -1 for a label not in it."""
    classes = np.asarray(classes)
    y = np.asarray(y)
    if classes.dtype.kind in "biuf" and y.dtype.kind in "biuf":
        codes = np.clip(np.searchsorted(classes, y), 0, classes.size - 1)
        return np.where(classes[codes] == y, codes, -1)
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    return np.fromiter((lookup.get(v, -1) for v in y.tolist()), dtype=np.intp, count=y.size)


def routed_stats_from_leaves(
    struct: TreeStructure,
    leaves: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray | None,
    weight: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """:func:`routed_stats` from the leaf each sample reaches (``model.apply``), memory
    O(nodes + samples): per-leaf sums added up into every ancestor."""
    n_nodes = struct.n_nodes
    leaves = np.asarray(leaves, dtype=np.intp)
    w = np.ones(leaves.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64)
    n = np.bincount(leaves, weights=w, minlength=n_nodes)
    if struct.is_classifier:
        assert classes is not None
        k = len(classes)
        codes = class_codes(y, classes)
        ok = codes >= 0
        flat = np.bincount(leaves[ok] * k + codes[ok], weights=w[ok], minlength=n_nodes * k)
        both = accumulate_up(struct, np.c_[n, flat.reshape(n_nodes, k)])
        return {"n": both[:, 0], "counts": both[:, 1:]}
    yf = np.asarray(y, dtype=np.float64)
    sums = np.c_[n, np.bincount(leaves, weights=w * yf, minlength=n_nodes),
                 np.bincount(leaves, weights=w * yf * yf, minlength=n_nodes)]
    sums = accumulate_up(struct, sums)
    return {"n": sums[:, 0], "sum": sums[:, 1], "sumsq": sums[:, 2]}


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
