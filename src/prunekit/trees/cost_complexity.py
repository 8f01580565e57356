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

import numbers
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from prunekit._validation import check_choice, check_positive_int
from prunekit.errors import InvalidParameterError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF, read_tree
from prunekit.trees._structure import TreeStructure, build_structure, node_indicator


@dataclass(frozen=True)
class CCPPath:
    """The weakest-link sequence: ``nodes[j]`` is collapsed at step ``j``, alpha ``step_alphas[j]``.

    ``ccp_alphas`` and ``impurities`` match scikit-learn's ``cost_complexity_pruning_path``
    (entry 0 is the unpruned tree, alpha 0).
    """

    nodes: np.ndarray
    step_alphas: np.ndarray
    ccp_alphas: np.ndarray
    impurities: np.ndarray

    def n_steps(self, alpha: float) -> int:
        """Number of steps scikit-learn applies for ``ccp_alpha=alpha`` (stops at alpha < g)."""
        over = np.flatnonzero(self.step_alphas > alpha)
        return int(over[0]) if over.size else int(self.step_alphas.size)

    def collapse_at(self, alpha: float, n_nodes: int) -> np.ndarray:
        mask = np.zeros(n_nodes, dtype=bool)
        mask[self.nodes[: self.n_steps(alpha)]] = True
        return mask


def ccp_path(struct: TreeStructure) -> CCPPath:
    """Compute the full weakest-link pruning path of a tree (see module docstring)."""
    left, n_nodes = struct.left, struct.n_nodes
    w = struct.raw.weighted_n_node_samples
    r_node = w * struct.raw.impurity / w[0]
    parent = struct.parent
    is_leaf = left == TREE_LEAF
    r_branch = np.zeros(n_nodes)
    n_leaves = np.zeros(n_nodes, dtype=np.intp)
    # bubble leaf impurities up in leaf-index order, exactly as scikit-learn sums them
    rb = [0.0] * n_nodes
    nl = [0] * n_nodes
    par = parent.tolist()
    for leaf in np.flatnonzero(is_leaf).tolist():
        cur = float(r_node[leaf])
        rb[leaf] = cur
        i = leaf
        while i != 0:
            p = par[i]
            rb[p] += cur
            nl[p] += 1
            i = p
    r_branch[:] = rb
    n_leaves[:] = nl
    candidate = ~is_leaf
    nodes: list[int] = []
    alphas: list[float] = [0.0]
    impurities: list[float] = [float(r_branch[0])]
    while candidate[0]:
        idx = np.flatnonzero(candidate)
        g = (r_node[idx] - r_branch[idx]) / (n_leaves[idx] - 1)
        j = int(np.argmin(g))
        node, alpha = int(idx[j]), float(g[j])
        candidate[struct.descendants_mask(node)] = False
        candidate[node] = False
        n_pruned = n_leaves[node] - 1
        n_leaves[node] = 0
        r_diff = r_node[node] - r_branch[node]
        r_branch[node] = r_node[node]
        a = par[node]
        while a != -1:
            n_leaves[a] -= n_pruned
            r_branch[a] += r_diff
            a = par[a]
        nodes.append(node)
        alphas.append(alpha)
        impurities.append(float(r_branch[0]))
    return CCPPath(
        nodes=np.asarray(nodes, dtype=np.intp),
        step_alphas=np.asarray(alphas[1:], dtype=np.float64),
        ccp_alphas=np.asarray(alphas, dtype=np.float64),
        impurities=np.asarray(impurities, dtype=np.float64),
    )


def _state_losses(model, struct: TreeStructure, path: CCPPath, X, y) -> np.ndarray:
    """Per-sample loss of every path state (0..n_steps): array (n_states, n_samples)."""
    ind = node_indicator(model, X)  # csc (n_samples, n_nodes)
    end = model.apply(X).astype(np.intp)
    if struct.is_classifier:
        pred = np.asarray(model.classes_)[struct.counts.argmax(axis=1)]
    else:
        pred = struct.counts[:, 0]
        y = np.asarray(y, dtype=np.float64)
    out = np.empty((path.nodes.size + 1, y.shape[0]))

    def loss(e: np.ndarray) -> np.ndarray:
        if struct.is_classifier:
            return (pred[e] != y).astype(np.float64)
        return (pred[e] - y) ** 2

    out[0] = loss(end)
    for k, node in enumerate(path.nodes.tolist(), start=1):
        rows = ind.indices[ind.indptr[node] : ind.indptr[node + 1]]
        end[rows] = node
        out[k] = loss(end)
    return out


def _choose(mean: np.ndarray, se: np.ndarray, one_se: bool) -> int:
    """Index of the chosen candidate (candidates sorted from largest tree to smallest)."""
    best = int(np.argmin(mean))
    bound = mean[best] + (se[best] if one_se else 0.0) + 1e-12
    return int(np.flatnonzero(mean <= bound).max())


def cost_complexity(
    ctx: PruneContext,
    *,
    ccp_alpha: float | None = None,
    select: str = "auto",
    cv: int = 5,
    one_se: bool = False,
) -> MethodResult:
    """Weakest-link pruning (Breiman et al. 1984); see the module docstring.

    ``ccp_alpha`` prunes at that alpha (like refitting with ``ccp_alpha``). Otherwise alpha is
    chosen by ``select``: ``"validation"`` (X_val/y_val), ``"cv"`` (k-fold CV over X_train/y_train,
    the data the tree was grown on) or ``"auto"`` (validation if given, else CV). ``one_se=True``
    picks the smallest tree whose error is within one standard error of the minimum.
    """
    struct = ctx.struct
    path = ccp_path(struct)
    select = check_choice("select", select, ["auto", "validation", "cv"])
    params: dict = {}
    if ccp_alpha is not None:
        if isinstance(ccp_alpha, bool) or not isinstance(ccp_alpha, numbers.Real) or ccp_alpha < 0:
            raise InvalidParameterError(f"ccp_alpha must be a number >= 0, got {ccp_alpha!r}")
        alpha = float(ccp_alpha)
        params["select"] = "given"
    else:
        if select == "auto":
            select = "validation" if ctx.X_val is not None else "cv"
        alphas = np.unique(path.ccp_alphas)
        if select == "validation":
            X, y = ctx.require_validation("cost_complexity")
            losses = _state_losses(ctx.model, struct, path, X, y)
            states = [path.n_steps(a) for a in alphas]
            per = losses[states]
        else:
            per = _cv_losses(ctx, alphas, check_positive_int("cv", cv, minimum=2))
        mean = per.mean(axis=1)
        se = per.std(axis=1, ddof=1) / np.sqrt(per.shape[1]) if per.shape[1] > 1 else 0 * mean
        k = _choose(mean, se, bool(one_se))
        alpha = float(alphas[k])
        params.update(
            select=select,
            one_se=bool(one_se),
            error=float(mean[k]),
            error_se=float(se[k]),
            min_error=float(mean.min()),
        )
        if select == "cv":
            params["cv"] = int(cv)
    params["ccp_alpha"] = alpha
    return MethodResult(collapse=path.collapse_at(alpha, struct.n_nodes), params=params)


def _cv_losses(ctx: PruneContext, alphas: np.ndarray, cv: int) -> np.ndarray:
    """Pooled held-out losses of each candidate alpha (CART's geometric-mean alphas per fold)."""
    X, y = ctx.require_training("cost_complexity", " with select='cv'")
    X, y = np.asarray(X), np.asarray(y)
    if X.shape[0] < cv:
        raise InvalidParameterError(f"cv={cv} folds need at least {cv} samples, got {X.shape[0]}")
    betas = np.append(np.sqrt(alphas[:-1] * alphas[1:]), np.inf)
    if ctx.struct.is_classifier:
        _, cls_counts = np.unique(y, return_counts=True)
        if cls_counts.min() >= cv:
            folds = StratifiedKFold(cv, shuffle=True, random_state=ctx.random_state or 0)
        else:
            folds = KFold(cv, shuffle=True, random_state=ctx.random_state or 0)
    else:
        folds = KFold(cv, shuffle=True, random_state=ctx.random_state or 0)
    out = np.empty((alphas.size, y.shape[0]))
    for tr, te in folds.split(X, y):
        fold_model = clone(ctx.model).set_params(ccp_alpha=0.0).fit(X[tr], y[tr])
        fstruct = build_structure(read_tree(fold_model), ctx.struct.is_classifier)
        fpath = ccp_path(fstruct)
        losses = _state_losses(fold_model, fstruct, fpath, X[te], y[te])
        out[:, te] = losses[[fpath.n_steps(b) for b in betas]]
    return out
