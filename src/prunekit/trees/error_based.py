"""Error-estimate post-pruning: reduced-error, pessimistic, minimum-error and C4.5 error-based.

Each method is one pass over the node arrays of :class:`TreeStructure` and returns the internal
nodes to collapse (C4.5 with subtree raising returns a restructured tree).
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from statistics import NormalDist

import numpy as np

from prunekit._validation import check_choice, check_fraction, check_real
from prunekit.errors import InvalidParameterError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF, RawTree, write_tree
from prunekit.trees._structure import (
    TreeStructure,
    accumulate_up,
    build_structure,
    class_codes,
    collapsed_leaf,
    compact,
    leaf_loss_on,
)


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
    m = check_real("m", m, minimum=0.0)
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
    z = _z(cf)
    f = (e + 0.5) / n
    r = (f + z * z / (2 * n) + z * math.sqrt(f / n - f * f / n + z * z / (4 * n * n))) / (
        1 + z * z / n
    )
    return r * n - e


@functools.lru_cache(maxsize=64)
def _z(cf: float) -> float:
    return NormalDist().inv_cdf(1.0 - cf)


def _normal_added(n: np.ndarray, e: np.ndarray, z: float) -> np.ndarray:
    f = (e + 0.5) / n
    r = (f + z * z / (2 * n) + z * np.sqrt(np.maximum(f / n - f * f / n + z * z / (4 * n * n), 0)))
    return r / (1 + z * z / n) * n - e


def c45_added_errors_array(n: np.ndarray, e: np.ndarray, cf: float) -> np.ndarray:
    """:func:`c45_added_errors` for arrays of ``n`` (> 0) and ``e`` at once."""
    n = np.asarray(n, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    z = NormalDist().inv_cdf(1.0 - cf)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = n * (1.0 - cf ** (1.0 / n))
        one = np.where(n <= 1.5, np.maximum(n - 1.0, 0.0), _normal_added(n, np.ones_like(n), z))
        small = np.where(e == 0, base, base + e * (one - base))
        out = np.where(e < 1, small, np.where(e + 0.5 >= n, np.maximum(n - e, 0.0),
                                              _normal_added(n, e, z)))
    return out


def _estimated_errors_array(dist: np.ndarray, cf: float) -> np.ndarray:
    """C4.5's predicted errors ``E + N * U_CF(E, N) - E`` of every row of class counts."""
    dist = np.atleast_2d(dist)
    total = dist.sum(axis=1)
    wrong = total - dist.max(axis=1)
    pos = total > 0
    out = np.zeros(total.shape[0])
    out[pos] = wrong[pos] + c45_added_errors_array(total[pos], wrong[pos], cf)
    return out


def _estimated_errors(dist: np.ndarray, cf: float) -> float:
    d = dist.tolist()  # a handful of classes: plain floats beat numpy reductions here
    total = sum(d)
    if total <= 0:
        return 0.0
    wrong = total - max(d)
    return wrong + c45_added_errors(total, wrong, cf)


#: Cases below which subtree raising routes them one by one in plain Python (less overhead).
_SMALL = 24

#: C4.5 and Weka J48 prune when the leaf's estimate is within this many errors of the subtree's.
C45_TOLERANCE = 0.1


def c45(
    ctx: PruneContext,
    *,
    confidence: float = 0.25,
    subtree_raising: bool | None = None,
    collapse: bool = True,
) -> MethodResult:
    """C4.5 error-based pruning (Quinlan 1993, *C4.5: Programs for Machine Learning*, ch. 4).

    Defaults follow Weka J48 (``-C 0.25``, subtree raising on, ``collapseTree`` on):

    - ``collapse=True``: first J48's ``collapse`` step, top-down: an internal node whose subtree
      makes no fewer training errors than the node itself as a leaf becomes a leaf.
    - Each leaf's error is estimated pessimistically as ``N * U_CF(E, N)``, the upper limit of the
      binomial confidence interval at confidence factor ``CF = confidence``. Bottom-up, a subtree
      is replaced by a leaf when the leaf's estimate is no more than 0.1 above the sum of its
      leaves' estimates.
    - ``subtree_raising``: a node may instead be replaced by its most populous child's subtree,
      with all the node's training cases redistributed through it. This needs ``X_train,
      y_train`` (the data the tree was grown on). ``None`` (default) raises when ``X_train`` is
      given, as J48 does, and otherwise prunes without raising (noted in the report).
    """
    cf = check_fraction("confidence", confidence, low=0.0, high=0.5, low_inclusive=False,
                        high_inclusive=True)
    if subtree_raising not in (None, True, False):
        raise InvalidParameterError(
            f"subtree_raising must be True, False or None (raise when X_train is given), "
            f"got {subtree_raising!r}")
    if collapse not in (True, False):
        raise InvalidParameterError(f"collapse must be True or False, got {collapse!r}")
    notes: list[str] = []
    if subtree_raising is None:
        subtree_raising = ctx.X_train is not None
        if not subtree_raising:
            notes.append("no subtree raising (J48's default needs X_train, y_train)")
    inner, n_collapsed = (_j48_collapse(ctx) if collapse else (ctx, 0))
    result = _c45_raising(inner, cf) if subtree_raising else _c45_plain(inner.struct, cf)
    if n_collapsed and result.raw is None:
        result.raw = compact(inner.struct.raw, result.collapse)
        result.collapse = None
    result.params["collapse"] = bool(collapse)
    result.params["collapsed"] = n_collapsed
    result.notes = notes + result.notes
    return result


def _j48_collapse(ctx: PruneContext) -> tuple[PruneContext, int]:
    """J48's ``collapse``: top-down, a node whose subtree's training errors are not fewer than
    its own errors as a leaf (within 1e-3) becomes a leaf. Returns the collapsed tree's context."""
    struct = ctx.struct
    e = struct.leaf_errors()
    _, sub_err = _subtree_sums(struct, e)
    mask = ~struct.is_leaf & (sub_err >= e - 1e-3)
    rep = collapsed_leaf(struct, mask)
    n_collapsed = int(np.sum(mask & (rep == np.arange(struct.n_nodes))))
    if not n_collapsed:
        return ctx, 0
    raw = compact(struct.raw, mask)
    model = write_tree(ctx.model, raw)
    return replace(ctx, model=model, struct=build_structure(raw, True)), n_collapsed


def _c45_plain(struct: TreeStructure, cf: float) -> MethodResult:
    est = _estimated_errors_array(struct.counts, cf)
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


class _Raiser:
    """C4.5/J48 pruning with subtree raising on the training cases, without recursion.

    Node slots are the original node ids; raising the largest child ``b`` into ``v`` gives slot
    ``v`` the split and children of ``b``. Only leaves hold their cases. Deciding a node routes the
    cases of its *smaller* child through the larger child's subtree (all cases descend together,
    one vectorised step per level; each case is on the smaller side at most log2(n) times), and
    after a raise only nodes that received cases are re-pruned (the others are already at J48's
    fixed point), so the cost is near-linear in the number of cases times the depth instead of
    J48's repeated full re-pruning.
    """

    def __init__(self, ctx: PruneContext, cf: float, X: np.ndarray, codes: np.ndarray,
                 w: np.ndarray) -> None:
        raw = ctx.struct.raw
        self.raw, self.cf, self.codes, self.w = raw, cf, codes, w
        self.X = np.asarray(X, dtype=np.float32)
        self.k = ctx.struct.counts.shape[1]
        n_nodes = raw.node_count
        self.origin = np.arange(n_nodes)
        self.lch, self.rch = raw.left.copy(), raw.right.copy()
        self.feat, self.thr = raw.feature.copy(), raw.threshold.copy()
        self.miss = raw.missing_go_to_left.astype(bool)
        self.go_l, self.go_r = raw.left.copy(), raw.right.copy()
        for leaf in np.flatnonzero(raw.left == TREE_LEAF).tolist():
            self._set_leaf(leaf)
        self.has_nan = bool(np.isnan(self.X).any())
        # plain-list mirrors of the structure for the scalar paths (small nodes)
        self.L, self.R = self.lch.tolist(), self.rch.tolist()
        self.F, self.T = raw.feature.tolist(), raw.threshold.tolist()
        self.M = raw.missing_go_to_left.astype(bool).tolist()
        self.code_l, self.w_l = codes.tolist(), w.tolist()
        leaves = ctx.model.apply(self.X).astype(np.intp)
        order = np.argsort(leaves, kind="stable")
        bounds = np.searchsorted(leaves[order], np.arange(n_nodes + 1))
        self.members: list[np.ndarray | None] = [
            order[bounds[i] : bounds[i + 1]] if raw.left[i] == TREE_LEAF else None
            for i in range(n_nodes)
        ]
        leaf_dist = np.zeros((n_nodes, self.k))
        np.add.at(leaf_dist, (leaves, codes), w)
        leaf_cnt = np.bincount(leaves, minlength=n_nodes).astype(np.float64)
        up = accumulate_up(ctx.struct, np.c_[leaf_cnt, leaf_dist])
        self.cnt, self.dist = up[:, 0], up[:, 1:]
        self.tree_err = np.zeros(n_nodes)
        is_leaf = raw.left == TREE_LEAF
        self.tree_err[is_leaf] = _estimated_errors_array(self.dist[is_leaf], cf)
        self.dirty = np.ones(n_nodes, dtype=bool)
        self.n_raised = 0

    def est(self, dist: np.ndarray) -> float:
        return _estimated_errors(dist, self.cf)

    def samples(self, v: int) -> np.ndarray:
        parts, stack = [], [v]
        lch, rch = self.L, self.R
        while stack:
            u = stack.pop()
            if lch[u] == TREE_LEAF:
                parts.append(self.members[u])
            else:
                stack.append(rch[u])
                stack.append(lch[u])
        return np.concatenate(parts) if parts else np.zeros(0, np.intp)

    def _set_leaf(self, v: int) -> None:
        """Routing arrays: a leaf sends every case to itself (threshold +inf, both children v)."""
        self.go_l[v] = self.go_r[v] = v
        self.thr[v] = np.inf
        self.feat[v] = 0

    def route(self, start: int, idx: np.ndarray, keep_path: bool = False):
        """Leaf (below ``start``) each case in ``idx`` reaches; with ``keep_path`` also every
        (node, case) pair passed on the way, leaves included. All cases move one level per
        vectorised step; cases at a leaf stay there."""
        cur = np.full(idx.size, start, dtype=np.intp)
        Xm = self.X[idx]
        rows = np.arange(idx.size)
        path_nodes, path_rows = [], []
        while True:
            if keep_path:
                inner = self.lch[cur] != TREE_LEAF
                path_nodes.append(cur[inner])
                path_rows.append(rows[inner])
            x = Xm[rows, self.feat[cur]]
            if self.has_nan:
                go_left = np.where(np.isnan(x), self.miss[cur], x <= self.thr[cur])
            else:
                go_left = x <= self.thr[cur]
            nxt = np.where(go_left, self.go_l[cur], self.go_r[cur])
            if np.array_equal(nxt, cur):
                break
            cur = nxt
        if keep_path:
            path_nodes.append(cur)
            path_rows.append(rows)
            return cur, np.concatenate(path_nodes), np.concatenate(path_rows)
        return cur

    def decide(self, v: int) -> bool:
        """J48's decision at ``v`` (children already pruned); True if ``v`` was raised into."""
        left, right = self.L[v], self.R[v]
        tree_e = self.tree_err[left] + self.tree_err[right]
        leaf_e = self.est(self.dist[v])
        big, small = (left, right) if self.dist[left].sum() >= self.dist[right].sum() \
            else (right, left)
        if leaf_e <= tree_e + C45_TOLERANCE and leaf_e <= self.tree_err[big] + C45_TOLERANCE:
            # adding cases to leaves never lowers their estimate, so err_big >= tree_err[big]:
            # J48 makes v a leaf whatever the routing gives
            return self._collapse(v, leaf_e)
        if self.L[big] == TREE_LEAF:  # raising a leaf gives v's own leaf (err_big == leaf_e)
            if leaf_e <= tree_e + C45_TOLERANCE:
                return self._collapse(v, leaf_e)
            self.tree_err[v] = tree_e
            return False
        moved = self.samples(small)
        if moved.size <= _SMALL:
            err_big = self.tree_err[big] + self._rise_small(big, moved)
        else:
            err_big = self.tree_err[big] + self._rise(big, moved)
        if leaf_e <= tree_e + C45_TOLERANCE and leaf_e <= err_big + C45_TOLERANCE:
            return self._collapse(v, leaf_e)
        if err_big > tree_e + C45_TOLERANCE:
            self.tree_err[v] = tree_e
            return False
        self.n_raised += 1
        end, nodes, rows = self.route(big, moved, keep_path=True)
        np.add.at(self.dist, (nodes, self.codes[moved[rows]]), self.w[moved[rows]])
        np.add.at(self.cnt, nodes, 1.0)
        self.dirty[nodes] = True
        leaves, inv = np.unique(end, return_inverse=True)
        for j, leaf in enumerate(leaves.tolist()):
            self.members[leaf] = np.concatenate([self.members[leaf], moved[inv == j]])
        self.origin[v], self.lch[v], self.rch[v] = self.origin[big], self.lch[big], self.rch[big]
        self.feat[v], self.thr[v], self.miss[v] = self.feat[big], self.thr[big], self.miss[big]
        self.go_l[v], self.go_r[v] = self.go_l[big], self.go_r[big]
        self.L[v], self.R[v], self.F[v] = self.L[big], self.R[big], self.F[big]
        self.T[v], self.M[v] = self.T[big], self.M[big]
        return True

    def _rise(self, big: int, moved: np.ndarray) -> float:
        """Increase of the estimated errors of ``big``'s leaves when ``moved`` join them."""
        end = self.route(big, moved)
        leaves, inv = np.unique(end, return_inverse=True)
        key = inv * self.k + self.codes[moved]
        add = np.bincount(key, weights=self.w[moved], minlength=leaves.size * self.k)
        add = add.reshape(leaves.size, self.k)
        if leaves.size <= 8:
            return sum(self.est(self.dist[u] + add[j]) - self.tree_err[u]
                       for j, u in enumerate(leaves.tolist()))
        return float((_estimated_errors_array(self.dist[leaves] + add, self.cf)
                      - self.tree_err[leaves]).sum())

    def _rise_small(self, big: int, moved: np.ndarray) -> float:
        """:meth:`_rise` for a few cases, walking each down in plain Python (same comparisons:
        float32 feature value against the float64 threshold; NaN follows missing_go_to_left)."""
        L, R, F, T, M = self.L, self.R, self.F, self.T, self.M
        adds: dict[int, list[float]] = {}
        for s in moved.tolist():
            xs = self.X[s].tolist()
            u = big
            while L[u] != TREE_LEAF:
                x = xs[F[u]]
                go_left = M[u] if x != x else x <= T[u]
                u = L[u] if go_left else R[u]
            d = adds.get(u)
            if d is None:
                adds[u] = d = [0.0] * self.k
            d[self.code_l[s]] += self.w_l[s]
        return sum(self.est(self.dist[u] + np.asarray(d)) - self.tree_err[u]
                   for u, d in adds.items())

    def _collapse(self, v: int, leaf_e: float) -> bool:
        self.members[v] = self.samples(v)
        self.lch[v] = self.rch[v] = TREE_LEAF
        self.L[v] = self.R[v] = TREE_LEAF
        self._set_leaf(v)
        self.tree_err[v] = leaf_e
        return False

    def prune(self) -> None:
        stack = [(0, False)]
        while stack:
            v, expanded = stack.pop()
            if self.L[v] == TREE_LEAF:
                if self.dirty[v]:
                    self.tree_err[v] = self.est(self.dist[v])
                self.dirty[v] = False
                continue
            if not expanded:
                stack.append((v, True))
                for c in (self.R[v], self.L[v]):
                    if self.dirty[c]:
                        stack.append((c, False))
                continue
            if self.decide(v):
                stack.append((v, False))  # J48 prunes the raised subtree again
            else:
                self.dirty[v] = False

    def emit(self, criterion: str) -> RawTree:
        """Pre-order arrays of the restructured tree with statistics of its cases."""
        order, parents, stack = [], [], [(0, -1)]
        lch, rch = self.lch.tolist(), self.rch.tolist()
        while stack:
            v, par = stack.pop()
            order.append(v)
            parents.append(par)
            if lch[v] != TREE_LEAF:
                pos = len(order) - 1
                stack.append((rch[v], pos))
                stack.append((lch[v], pos))
        n = len(order)
        nodes = np.asarray(order, dtype=np.intp)
        par = np.asarray(parents, dtype=np.intp)
        left = np.full(n, TREE_LEAF, dtype=np.intp)
        right = np.full(n, TREE_LEAF, dtype=np.intp)
        kids = np.arange(1, n)
        is_left = kids == par[kids] + 1  # in pre-order a left child follows its parent
        left[par[kids][is_left]] = kids[is_left]
        right[par[kids][~is_left]] = kids[~is_left]
        dist = self.dist[nodes]
        total = dist.sum(axis=1)
        value = np.zeros((n, self.raw.value.shape[2]))
        for i in range(n):  # pre-order: an empty leaf takes its parent's class distribution
            value[i] = dist[i] / total[i] if total[i] > 0 else value[par[i]]
        origins = self.origin[nodes]
        return RawTree(
            left=left,
            right=right,
            feature=self.raw.feature[origins],
            threshold=self.raw.threshold[origins],
            impurity=_impurity_array(dist, criterion),
            n_node_samples=self.cnt[nodes].round().astype(np.intp),
            weighted_n_node_samples=total,
            missing_go_to_left=self.raw.missing_go_to_left[origins],
            value=value[:, None, :],
        )


def _c45_raising(ctx: PruneContext, cf: float) -> MethodResult:
    X, y = ctx.require_training("c45", " with subtree_raising=True")
    w = ctx.train_weights("c45", exact=True)
    codes = class_codes(y, ctx.model.classes_)
    weights = np.ones(y.shape[0]) if w is None else w
    raiser = _Raiser(ctx, cf, X, codes, weights)
    raiser.prune()
    notes = ["cases weighted by the tree's class_weight/sample_weight"] if w is not None else []
    return MethodResult(
        raw=raiser.emit(ctx.model.criterion),
        params={"confidence": cf, "subtree_raising": True, "subtrees_raised": raiser.n_raised},
        notes=notes,
    )


def _impurity_array(dist: np.ndarray, criterion: str) -> np.ndarray:
    """Gini or entropy (log base 2, as scikit-learn) of every row of class counts."""
    total = dist.sum(axis=1, keepdims=True)
    p = np.divide(dist, total, out=np.zeros_like(dist), where=total > 0)
    if criterion == "gini":
        return np.where(total[:, 0] > 0, 1.0 - np.sum(p * p, axis=1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=1)
