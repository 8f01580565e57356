"""Cost-complexity (weakest-link) pruning with alpha chosen by validation or k-fold CV.

Breiman, Friedman, Olshen & Stone (1984), *Classification and Regression Trees*, ch. 3 and 10:
the cost of a subtree is ``R_alpha(T) = R(T) + alpha * |leaves(T)|``; repeatedly collapsing the
internal node with the smallest effective alpha ``g(t) = (R(t) - R(T_t)) / (|leaves(T_t)| - 1)``
gives the nested sequence of optimal subtrees. The arithmetic follows scikit-learn's
``_cost_complexity_prune`` step for step (``R(t)`` = weighted impurity / total weight), so the
path's alphas and impurities are bit-for-bit those of ``cost_complexity_pruning_path``.
Alpha is chosen on a validation set or by k-fold cross-validation over the geometric means of
consecutive path alphas (CART, sec. 3.4.2), optionally with the 1-SE rule (CART sec. 3.4.3;
rpart's ``xerror``/``xstd`` convention).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from prunekit._validation import (
    check_bool,
    check_choice,
    check_positive_int,
    check_real,
    sklearn_errors,
)
from prunekit.errors import InvalidParameterError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF, read_tree
from prunekit.trees._structure import (
    TreeStructure,
    accumulate_up,
    build_structure,
    class_codes,
    collapsed_leaf,
    leaf_loss_on,
    routed_stats_from_leaves,
)


@dataclass(frozen=True)
class CCPPath:
    """The weakest-link sequence: ``nodes[j]`` is collapsed at step ``j``, alpha ``step_alphas[j]``.

    ``ccp_alphas`` and ``impurities`` match scikit-learn's ``cost_complexity_pruning_path``
    (entry 0 is the unpruned tree, alpha 0). ``state_loss[j]`` (when a per-node loss was given)
    is the total loss of the subtree after ``j`` steps.
    """

    nodes: np.ndarray
    step_alphas: np.ndarray
    ccp_alphas: np.ndarray
    impurities: np.ndarray
    state_loss: np.ndarray | None = None

    def n_steps(self, alpha: float | np.ndarray) -> int | np.ndarray:
        """Steps scikit-learn applies for ``ccp_alpha=alpha`` (it stops at the first g > alpha)."""
        running = np.maximum.accumulate(self.step_alphas)
        out = np.searchsorted(running, alpha, side="right")
        return int(out) if np.ndim(out) == 0 else out

    def collapse_at(self, alpha: float, n_nodes: int) -> np.ndarray:
        mask = np.zeros(n_nodes, dtype=bool)
        mask[self.nodes[: self.n_steps(alpha)]] = True
        return mask


def _initial_branch(struct: TreeStructure, r_node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leaf impurities summed into every ancestor in leaf-index order (scikit-learn's order)."""
    n_nodes, parent = struct.n_nodes, struct.parent
    leaves = np.flatnonzero(struct.is_leaf)
    anc_parts, leaf_parts = [], []
    cur, src = leaves, leaves
    while cur.size:
        keep = cur != 0
        cur, src = parent[cur[keep]], src[keep]
        anc_parts.append(cur)
        leaf_parts.append(src)
    anc = np.concatenate(anc_parts) if anc_parts else np.zeros(0, np.intp)
    src = np.concatenate(leaf_parts) if leaf_parts else np.zeros(0, np.intp)
    order = np.argsort(src, kind="stable")
    anc, src = anc[order], src[order]
    r_branch = np.zeros(n_nodes)
    r_branch[leaves] = r_node[leaves]
    np.add.at(r_branch, anc, r_node[src])  # sequential adds in leaf order, as scikit-learn
    n_leaves = np.bincount(anc, minlength=n_nodes).astype(np.intp)
    return r_branch, n_leaves


def ccp_path(
    struct: TreeStructure, node_loss: np.ndarray | None = None, stop_alpha: float | None = None
) -> CCPPath:
    """The full weakest-link pruning path of a tree (see module docstring).

    A heap of effective alphas with lazy updates replaces scikit-learn's scan over all nodes per
    step: each step costs O(depth log n), the arithmetic and tie-breaking (smallest node id) are
    scikit-learn's, so alphas and impurities are identical. ``node_loss`` (loss of some data at
    each node used as a leaf) is tracked along the path as ``state_loss``. With ``stop_alpha`` the
    path ends where scikit-learn's pruning with ``ccp_alpha=stop_alpha`` stops.
    """
    left, right, n_nodes = struct.left, struct.right, struct.n_nodes
    w = struct.raw.weighted_n_node_samples
    r_node_a = w * struct.raw.impurity / w[0]
    r_branch_a, n_leaves_a = _initial_branch(struct, r_node_a)
    r_node, r_branch = r_node_a.tolist(), r_branch_a.tolist()
    n_leaves, par = n_leaves_a.tolist(), struct.parent.tolist()
    lft, rgt = left.tolist(), right.tolist()
    track = node_loss is not None
    if track:
        leaf_l = np.asarray(node_loss, dtype=np.float64)
        cur_a = np.zeros(n_nodes)
        cur_a[struct.is_leaf] = leaf_l[struct.is_leaf]
        cur_a = accumulate_up(struct, cur_a)
        cur, leaf_loss = cur_a.tolist(), leaf_l.tolist()
        losses = [cur[0]]
    internal = np.flatnonzero(~struct.is_leaf)
    g0 = (r_node_a[internal] - r_branch_a[internal]) / (n_leaves_a[internal] - 1)
    heap = list(zip(g0.tolist(), internal.tolist(), strict=True))
    heapq.heapify(heap)
    key = [np.inf] * n_nodes  # the smallest heap key of each candidate (never above its alpha)
    for g, i in heap:
        key[i] = g
    alive = [True] * n_nodes  # still in the current tree
    candidate = (~struct.is_leaf).tolist()
    nodes: list[int] = []
    alphas: list[float] = [0.0]
    impurities: list[float] = [r_branch[0]]
    while candidate[0] and heap:
        g, node = heapq.heappop(heap)
        if not candidate[node] or g > key[node]:
            continue  # collapsed or removed, or an outdated entry
        fresh = (r_node[node] - r_branch[node]) / (n_leaves[node] - 1)
        if fresh != g:  # its alpha rose since it was pushed: re-queue at the current value
            key[node] = fresh
            heapq.heappush(heap, (fresh, node))
            continue
        if stop_alpha is not None and g > stop_alpha:
            break
        stack = [lft[node], rgt[node]]
        while stack:  # remove the subtree (stop at parts removed by earlier steps)
            i = stack.pop()
            if not alive[i]:
                continue
            alive[i] = candidate[i] = False
            if lft[i] != TREE_LEAF:
                stack.append(lft[i])
                stack.append(rgt[i])
        candidate[node] = False
        n_pruned = n_leaves[node] - 1
        n_leaves[node] = 0
        r_diff = r_node[node] - r_branch[node]
        r_branch[node] = r_node[node]
        if track:
            l_diff = leaf_loss[node] - cur[node]
            cur[node] = leaf_loss[node]
        a = par[node]
        while a != -1:
            n_leaves[a] -= n_pruned
            r_branch[a] += r_diff
            if track:
                cur[a] += l_diff
            # an ancestor's alpha cannot fall when a weaker link below it is cut (up to
            # rounding); its entry then waits in the heap and is re-queued when popped
            ga = (r_node[a] - r_branch[a]) / (n_leaves[a] - 1)
            if ga < key[a]:
                key[a] = ga
                heapq.heappush(heap, (ga, a))
            a = par[a]
        nodes.append(node)
        alphas.append(g)
        impurities.append(r_branch[0])
        if track:
            losses.append(cur[0])
    return CCPPath(
        nodes=np.asarray(nodes, dtype=np.intp),
        step_alphas=np.asarray(alphas[1:], dtype=np.float64),
        ccp_alphas=np.asarray(alphas, dtype=np.float64),
        impurities=np.asarray(impurities, dtype=np.float64),
        state_loss=np.asarray(losses, dtype=np.float64) if track else None,
    )


def _node_losses(model, struct: TreeStructure, X, y, weight=None) -> np.ndarray:
    """Loss of the data ``X, y`` at every node if that node were a leaf; O(nodes + samples)."""
    return leaf_loss_on(struct, routed_stats_from_leaves(struct, model.apply(X), y,
                                                        getattr(model, "classes_", None), weight))


def _sample_losses(model, struct: TreeStructure, collapse: np.ndarray, X, y, weight=None):
    """Per-sample loss of the tree with ``collapse`` applied (classification 0/1, else squared)."""
    end = collapsed_leaf(struct, collapse)[model.apply(X)]
    if struct.is_classifier:
        codes = class_codes(y, model.classes_)
        loss = (struct.counts.argmax(axis=1)[end] != codes).astype(np.float64)
    else:
        loss = (struct.counts[end, 0] - np.asarray(y, dtype=np.float64)) ** 2
    return loss


def _weighted_se(loss: np.ndarray, weight: np.ndarray | None) -> float:
    n = loss.shape[0]
    if n < 2:
        return 0.0
    if weight is None:
        return float(loss.std(ddof=1) / np.sqrt(n))
    wsum = weight.sum()
    if wsum <= 0:
        return 0.0
    mean = float(weight @ loss) / wsum
    var = float(weight @ (loss - mean) ** 2) / wsum * n / (n - 1)
    return float(np.sqrt(var / n))


def _choose(mean: np.ndarray, se_of, one_se: bool) -> int:
    """Index of the chosen candidate (candidates sorted from largest tree to smallest)."""
    best = int(np.argmin(mean))
    bound = mean[best] + (se_of(best) if one_se else 0.0) + 1e-12
    return int(np.flatnonzero(mean <= bound).max())


def cost_complexity(
    ctx: PruneContext,
    *,
    ccp_alpha: float | None = None,
    select: str = "auto",
    cv: int | None = None,
    one_se: bool = False,
) -> MethodResult:
    """Weakest-link pruning (Breiman et al. 1984); see the module docstring.

    ``ccp_alpha`` prunes at that alpha (like refitting with ``ccp_alpha``). Otherwise alpha is
    chosen by ``select``: ``"validation"`` (X_val/y_val), ``"cv"`` (k-fold CV over X_train/y_train,
    the data the tree was grown on; ``cv`` folds, default 5) or ``"auto"`` (validation if X_val is
    given and ``cv`` is not, else CV). ``one_se=True`` picks the smallest tree whose error is
    within one standard error of the minimum. Contradictory combinations (``ccp_alpha`` with any
    selection parameter, ``cv`` with ``select="validation"``) raise ``InvalidParameterError``.
    """
    select = check_choice("select", select, ["auto", "validation", "cv"])
    one_se = check_bool("one_se", one_se)
    if cv is not None:
        cv = check_positive_int("cv", cv, minimum=2)
    params: dict = {}
    if ccp_alpha is not None:
        alpha = check_real("ccp_alpha", ccp_alpha, minimum=0.0)
        given = [f"{k}={v!r}" for k, v in (("select", select), ("cv", cv), ("one_se", one_se))
                 if v not in ("auto", None, False)]
        if given:
            raise InvalidParameterError(
                f"ccp_alpha={ccp_alpha!r} fixes alpha, so {', '.join(given)} (which choose alpha) "
                "would be ignored; pass either ccp_alpha or the selection parameters"
            )
        params["select"] = "given"
        struct = ctx.struct
        path = ccp_path(struct, stop_alpha=alpha)
    else:
        if select == "auto":
            select = "validation" if ctx.X_val is not None and cv is None else "cv"
        if select == "validation" and cv is not None:
            raise InvalidParameterError(
                f"cv={cv!r} is for select='cv'; select='validation' scores alphas on X_val/y_val"
            )
        cv = 5 if cv is None else cv
        struct = ctx.struct
        if select == "validation":
            X, y = ctx.require_validation("cost_complexity")
            path = ccp_path(struct, _node_losses(ctx.model, struct, X, y))
            alphas = np.unique(path.ccp_alphas)
            mean, se_of = _validation_losses(ctx, path, alphas)
        else:
            path = ccp_path(struct)
            alphas = np.unique(path.ccp_alphas)
            mean, se_of = _cv_losses(ctx, alphas, cv)
        k = _choose(mean, se_of, one_se)
        alpha = float(alphas[k])
        params.update(
            select=select,
            one_se=one_se,
            error=float(mean[k]),
            error_se=se_of(k),
            min_error=float(mean.min()),
        )
        if select == "cv":
            params["cv"] = int(cv)
    params["ccp_alpha"] = alpha
    return MethodResult(collapse=path.collapse_at(alpha, struct.n_nodes), params=params)


def _validation_losses(ctx: PruneContext, path: CCPPath, path_alphas: np.ndarray):
    """Mean validation loss of every candidate alpha (from the path's tracked validation loss),
    and a function giving a candidate's standard error."""
    X, y = ctx.X_val, ctx.y_val
    mean = path.state_loss[path.n_steps(path_alphas)] / y.shape[0]

    def se(j: int) -> float:
        mask = path.collapse_at(float(path_alphas[j]), ctx.struct.n_nodes)
        return _weighted_se(_sample_losses(ctx.model, ctx.struct, mask, X, y), None)

    return mean, se


def _cv_losses(ctx: PruneContext, alphas: np.ndarray, cv: int):
    """Pooled held-out loss of each candidate alpha (CART's geometric-mean alphas per fold).

    Memory O(nodes + samples): each fold's path carries the held-out loss of every subtree along
    it; per-sample losses are computed only for the candidates whose standard error is needed.
    Rows are weighted by the training weights (sample_weight times class_weight).
    """
    X, y = ctx.require_training("cost_complexity", " with select='cv'")
    weight = ctx.train_weights("cost_complexity")
    if X.shape[0] < cv:
        raise InvalidParameterError(f"cv={cv} folds need at least {cv} samples, got {X.shape[0]}")
    betas = np.append(np.sqrt(alphas[:-1] * alphas[1:]), np.inf)
    folds = _folds(ctx, cv, X, y)
    total = np.zeros(alphas.size)
    fitted = []
    for tr, te in folds:
        sw = None if weight is None else weight[tr]
        fold_model = clone(ctx.model).set_params(ccp_alpha=0.0)
        with sklearn_errors("X_train/y_train", fold_model):
            fold_model.fit(X[tr], y[tr], sample_weight=sw)
        fstruct = build_structure(read_tree(fold_model), ctx.struct.is_classifier)
        wte = None if weight is None else weight[te]
        fpath = ccp_path(fstruct, _node_losses(fold_model, fstruct, X[te], y[te], wte))
        total += fpath.state_loss[fpath.n_steps(betas)]
        fitted.append((fold_model, fstruct, fpath, te))
    wsum = float(y.shape[0] if weight is None else weight.sum())
    mean = total / wsum if wsum > 0 else total

    def se(j: int) -> float:
        loss = np.empty(y.shape[0])
        for fold_model, fstruct, fpath, te in fitted:
            mask = fpath.collapse_at(float(betas[j]), fstruct.n_nodes)
            loss[te] = _sample_losses(fold_model, fstruct, mask, X[te], y[te])
        return _weighted_se(loss, weight)

    return mean, se


def _folds(ctx: PruneContext, cv: int, X: np.ndarray, y: np.ndarray) -> list:
    seed = ctx.random_state or 0
    if ctx.struct.is_classifier and np.unique(y, return_counts=True)[1].min() >= cv:
        return list(StratifiedKFold(cv, shuffle=True, random_state=seed).split(X, y))
    return list(KFold(cv, shuffle=True, random_state=seed).split(X, y))
