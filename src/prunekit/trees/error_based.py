"""Error-estimate post-pruning: reduced-error, pessimistic, minimum-error and C4.5 error-based.

Each method is one pass over the node arrays of :class:`TreeStructure` and returns the internal
nodes to collapse (C4.5 with subtree raising returns a restructured tree).
"""

from __future__ import annotations

import math
import numbers
from statistics import NormalDist

import numpy as np

from prunekit._validation import check_choice, check_fraction
from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF, RawTree
from prunekit.trees._structure import TreeStructure, leaf_loss_on


def reduced_error(ctx: PruneContext) -> MethodResult:
    """Reduced-error pruning (Quinlan 1987, "Simplifying decision trees", IJMMS 27(3):221-234).

    Bottom-up over the tree: replace a subtree by a leaf (predicting the node's training majority
    class, or training mean for regression) whenever that does not increase the loss on the
    validation set (misclassifications, or squared error). Ties prune, so nodes no validation
    sample reaches are pruned too, as in Quinlan's definition. The validation loss of the result
    is never higher than the unpruned tree's.
    """
    struct = ctx.struct
    leaf_loss = leaf_loss_on(struct, ctx.val_stats)
    sub = np.zeros(struct.n_nodes)
    collapse = np.zeros(struct.n_nodes, dtype=bool)
    for t in struct.postorder():
        if struct.left[t] == TREE_LEAF:
            sub[t] = leaf_loss[t]
            continue
        below = sub[struct.left[t]] + sub[struct.right[t]]
        if leaf_loss[t] <= below:
            collapse[t] = True
            sub[t] = leaf_loss[t]
        else:
            sub[t] = below
    n_val = float(ctx.val_stats["n"][0])
    unseen = int(np.sum(collapse & (ctx.val_stats["n"] == 0)))
    notes = (
        [f"{unseen} subtree(s) reached by no validation sample were pruned (Quinlan's rule)"]
        if unseen
        else []
    )
    return MethodResult(
        collapse=collapse,
        notes=notes,
        params={
            "val_loss_before": float(_subtree_loss(struct, leaf_loss)) / max(n_val, 1.0),
            "val_loss_after": float(sub[0]) / max(n_val, 1.0),
        },
    )


def _subtree_loss(struct: TreeStructure, leaf_loss: np.ndarray) -> float:
    return float(leaf_loss[struct.is_leaf].sum())


def _subtree_sums(struct: TreeStructure, per_leaf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each node: number of leaves below it and the sum of ``per_leaf`` over them."""
    n_leaves = np.zeros(struct.n_nodes)
    total = np.zeros(struct.n_nodes)
    for t in struct.postorder():
        if struct.left[t] == TREE_LEAF:
            n_leaves[t], total[t] = 1.0, per_leaf[t]
        else:
            lt, rt = struct.left[t], struct.right[t]
            n_leaves[t] = n_leaves[lt] + n_leaves[rt]
            total[t] = total[lt] + total[rt]
    return n_leaves, total


def pessimistic(ctx: PruneContext) -> MethodResult:
    """Pessimistic error pruning (Quinlan 1987, "Simplifying decision trees", sec. 2.3).

    Training errors get a continuity correction of 1/2 per leaf: ``e'(t) = e(t) + 1/2`` for the
    node as a leaf and ``e'(T_t) = E(T_t) + L(T_t)/2`` for its subtree, with standard error
    ``SE = sqrt(e'(T_t) (n(t) - e'(T_t)) / n(t))``. Walking top-down, ``t`` becomes a leaf when
    ``e'(t) <= e'(T_t) + SE``; its descendants are then not examined.
    """
    struct = ctx.struct
    e = struct.leaf_errors()
    n_leaves, errors = _subtree_sums(struct, e)
    collapse = np.zeros(struct.n_nodes, dtype=bool)
    stack = [0]
    while stack:
        t = stack.pop()
        if struct.left[t] == TREE_LEAF:
            continue
        e_leaf = e[t] + 0.5
        e_tree = errors[t] + n_leaves[t] / 2.0
        n = struct.n[t]
        se = math.sqrt(max(e_tree * (n - e_tree), 0.0) / n) if n > 0 else 0.0
        if e_leaf <= e_tree + se:
            collapse[t] = True
        else:
            stack.extend((int(struct.right[t]), int(struct.left[t])))
    return MethodResult(collapse=collapse)


def min_error(ctx: PruneContext, *, m: float = 2.0, prior: str = "training") -> MethodResult:
    """Minimum-error pruning (Niblett & Bratko 1986) with m-estimates (Cestnik & Bratko 1991).

    The expected error of a node as a leaf is ``1 - max_c (n_c + p_c m) / (n + m)`` with priors
    ``p_c`` (class frequencies at the root, or uniform); the expected error of a subtree is the
    sample-weighted mean of its children's (already pruned) errors. Bottom-up, a node becomes a
    leaf when its static error is no larger than its subtree's. ``m = n_classes`` with
    ``prior="uniform"`` is Niblett & Bratko's original Laplace estimate.

    Niblett, T. & Bratko, I. (1986) "Learning decision rules in noisy domains", Expert Systems 86;
    Cestnik, B. & Bratko, I. (1991) "On estimating probabilities in tree pruning", EWSL-91.
    """
    if isinstance(m, bool) or not isinstance(m, numbers.Real) or m < 0:
        raise InvalidParameterError(f"m must be a number >= 0, got {m!r}")
    prior = check_choice("prior", prior, ["training", "uniform"])
    struct = ctx.struct
    counts, n = struct.counts, struct.n
    k = counts.shape[1]
    p = counts[0] / n[0] if prior == "training" else np.full(k, 1.0 / k)
    with np.errstate(invalid="ignore", divide="ignore"):
        static = 1.0 - ((counts + p[None, :] * m).max(axis=1) / (n + m))
    static = np.where(n + m > 0, static, 0.0)
    err = np.zeros(struct.n_nodes)
    collapse = np.zeros(struct.n_nodes, dtype=bool)
    for t in struct.postorder():
        if struct.left[t] == TREE_LEAF:
            err[t] = static[t]
            continue
        lt, rt = struct.left[t], struct.right[t]
        dyn = (n[lt] * err[lt] + n[rt] * err[rt]) / n[t] if n[t] > 0 else 0.0
        if static[t] <= dyn:
            collapse[t] = True
            err[t] = static[t]
        else:
            err[t] = dyn
    return MethodResult(collapse=collapse, params={"m": float(m), "prior": prior})


# ---------------------------------------------------------------- C4.5 error-based pruning


def c45_added_errors(n: float, e: float, cf: float) -> float:
    """Extra errors ``N * U_CF(E, N) - E`` of C4.5's binomial upper confidence limit.

    Follows Quinlan's C4.5 (1993) as implemented in Weka's ``Stats.addErrs``: exact for ``E = 0``
    (``N (1 - CF^(1/N))``), linear interpolation for ``0 < E < 1`` and ``E + 1/2 >= N``, and the
    normal approximation with continuity correction elsewhere.
    """
    if e < 1:
        base = n * (1.0 - cf ** (1.0 / n))
        if e == 0:
            return base
        return base + e * (c45_added_errors(n, 1.0, cf) - base)
    if e + 0.5 >= n:
        return max(n - e, 0.0)
    z = NormalDist().inv_cdf(1.0 - cf)
    f = (e + 0.5) / n
    r = (f + z * z / (2 * n) + z * math.sqrt(f / n - f * f / n + z * z / (4 * n * n))) / (
        1 + z * z / n
    )
    return r * n - e


def _estimated_errors(dist: np.ndarray, cf: float) -> float:
    total = float(dist.sum())
    if total <= 0:
        return 0.0
    wrong = total - float(dist.max())
    return wrong + c45_added_errors(total, wrong, cf)


#: C4.5 and Weka J48 prune when the leaf's estimate is within this many errors of the subtree's.
C45_TOLERANCE = 0.1


def c45(
    ctx: PruneContext, *, confidence: float = 0.25, subtree_raising: bool = False
) -> MethodResult:
    """C4.5 error-based pruning (Quinlan 1993, *C4.5: Programs for Machine Learning*, ch. 4).

    Each leaf's error is estimated pessimistically as ``N * U_CF(E, N)``, the upper limit of the
    binomial confidence interval at confidence factor ``CF`` (default 0.25, as in C4.5 and Weka
    J48). Bottom-up, a subtree is replaced by a leaf when the leaf's estimate is no more than 0.1
    above the sum of its leaves' estimates. With ``subtree_raising=True`` (J48's default) a node may
    instead be replaced by its most populous child's subtree, with all the node's training cases
    redistributed through it; this needs ``X_train, y_train`` (the data the tree was grown on,
    assumed unit-weighted) and rebuilds the leaves' class distributions from them.
    """
    cf = check_fraction("confidence", confidence, low=0.0, high=0.5, low_inclusive=False,
                        high_inclusive=True)
    if subtree_raising:
        return _c45_raising(ctx, cf)
    struct = ctx.struct
    est = np.array([_estimated_errors(struct.counts[t], cf) for t in range(struct.n_nodes)])
    tree_err = np.zeros(struct.n_nodes)
    collapse = np.zeros(struct.n_nodes, dtype=bool)
    for t in struct.postorder():
        if struct.left[t] == TREE_LEAF:
            tree_err[t] = est[t]
            continue
        below = tree_err[struct.left[t]] + tree_err[struct.right[t]]
        if est[t] <= below + C45_TOLERANCE:
            collapse[t] = True
            tree_err[t] = est[t]
        else:
            tree_err[t] = below
    return MethodResult(
        collapse=collapse,
        params={"confidence": cf, "subtree_raising": False, "estimated_errors": tree_err[0]},
    )


class _Node:
    __slots__ = ("origin", "idx", "left", "right")

    def __init__(self, origin: int, idx: np.ndarray) -> None:
        self.origin = origin
        self.idx = idx
        self.left: _Node | None = None
        self.right: _Node | None = None


def _c45_raising(ctx: PruneContext, cf: float) -> MethodResult:
    X, y = ctx.require_training("c45", " with subtree_raising=True")
    struct, raw = ctx.struct, ctx.struct.raw
    Xf = np.asarray(X, dtype=np.float32)
    classes = np.asarray(ctx.model.classes_)
    codes = np.searchsorted(classes, np.asarray(y))
    k = classes.size
    if Xf.shape[0] != round(struct.n[0]) or not np.all(
        classes[np.minimum(codes, k - 1)] == np.asarray(y)
    ):
        raise ShapeMismatchError(
            "X_train/y_train must be the (unit-weighted) data the tree was grown on: the tree saw "
            f"{struct.n[0]:g} samples, got {Xf.shape[0]}"
        )

    def go_left(origin: int, idx: np.ndarray) -> np.ndarray:
        col = Xf[idx, raw.feature[origin]]
        return np.where(np.isnan(col), bool(raw.missing_go_to_left[origin]),
                        col <= raw.threshold[origin])

    def grow(origin: int, idx: np.ndarray) -> _Node:
        node = _Node(origin, idx)
        if raw.left[origin] != TREE_LEAF:
            gl = go_left(origin, idx)
            node.left = grow(int(raw.left[origin]), idx[gl])
            node.right = grow(int(raw.right[origin]), idx[~gl])
        return node

    def dist(idx: np.ndarray) -> np.ndarray:
        return np.bincount(codes[idx], minlength=k).astype(np.float64)

    def redistribute(node: _Node, idx: np.ndarray) -> None:
        node.idx = idx
        if node.left is not None:
            gl = go_left(node.origin, idx)
            redistribute(node.left, idx[gl])
            redistribute(node.right, idx[~gl])

    def est_tree(node: _Node) -> float:
        if node.left is None:
            return _estimated_errors(dist(node.idx), cf)
        return est_tree(node.left) + est_tree(node.right)

    def est_branch(node: _Node, idx: np.ndarray) -> float:
        if node.left is None:
            return _estimated_errors(dist(idx), cf)
        gl = go_left(node.origin, idx)
        return est_branch(node.left, idx[gl]) + est_branch(node.right, idx[~gl])

    n_raised = 0

    def prune(node: _Node) -> None:
        nonlocal n_raised
        if node.left is None:
            return
        prune(node.left)
        prune(node.right)
        largest = node.left if node.left.idx.size >= node.right.idx.size else node.right
        err_largest = est_branch(largest, node.idx)
        err_leaf = _estimated_errors(dist(node.idx), cf)
        err_tree = est_tree(node)
        if err_leaf <= err_tree + C45_TOLERANCE and err_leaf <= err_largest + C45_TOLERANCE:
            node.left = node.right = None
            return
        if err_largest <= err_tree + C45_TOLERANCE:
            n_raised += 1
            node.origin, node.left, node.right = largest.origin, largest.left, largest.right
            redistribute(node, node.idx)
            prune(node)

    root = grow(0, np.arange(Xf.shape[0]))
    prune(root)
    new_raw = _emit(root, raw, dist, ctx.model.criterion)
    return MethodResult(
        raw=new_raw,
        params={"confidence": cf, "subtree_raising": True, "subtrees_raised": n_raised},
    )


def _impurity(dist: np.ndarray, criterion: str) -> float:
    total = dist.sum()
    if total <= 0:
        return 0.0
    p = dist[dist > 0] / total
    if criterion == "gini":
        return float(1.0 - np.sum(p * p))
    return float(-np.sum(p * np.log2(p)))  # entropy / log_loss (scikit-learn uses log base 2)


def _emit(root: _Node, raw: RawTree, dist, criterion: str) -> RawTree:
    """Pre-order arrays of the restructured tree with statistics recomputed from its cases."""
    order: list[tuple[_Node, int]] = []  # (node, parent position)
    stack: list[tuple[_Node, int]] = [(root, -1)]
    while stack:
        node, par = stack.pop()
        order.append((node, par))
        if node.left is not None:
            pos = len(order) - 1
            stack.append((node.right, pos))
            stack.append((node.left, pos))
    n = len(order)
    left = np.full(n, TREE_LEAF, dtype=np.intp)
    right = np.full(n, TREE_LEAF, dtype=np.intp)
    value = np.zeros((n, 1, raw.value.shape[2]))
    imp = np.zeros(n)
    cnt = np.zeros(n, dtype=np.intp)
    for i, (node, par) in enumerate(order):
        if par >= 0:
            if left[par] == TREE_LEAF:
                left[par] = i
            else:
                right[par] = i
        d = dist(node.idx)
        total = d.sum()
        value[i, 0] = d / total if total > 0 else value[par, 0]  # empty leaf: parent's class
        imp[i] = _impurity(d, criterion)
        cnt[i] = node.idx.size
    origins = np.array([node.origin for node, _ in order], dtype=np.intp)
    return RawTree(
        left=left,
        right=right,
        feature=raw.feature[origins],
        threshold=raw.threshold[origins],
        impurity=imp,
        n_node_samples=cnt,
        weighted_n_node_samples=cnt.astype(np.float64),
        missing_go_to_left=raw.missing_go_to_left[origins],
        value=value,
    )
