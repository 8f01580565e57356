"""Pre-pruning (early stopping): a validated search over the tree's stopping criteria.

Early stopping halts growth when a split would be too deep, too small or too weak (Breiman et al.
1984, sec. 3.1; Quinlan 1986's chi-square stopping is the classical critique that motivated
post-pruning). Here the stopping rules are scikit-learn's own (``max_depth``, ``min_samples_leaf``,
``min_impurity_decrease``, ``max_leaf_nodes``): each candidate tree is grown on the training data
and scored on the validation set (or by k-fold CV); the best, with ties going to the fewest leaves,
is returned, so pre- and post-pruning can be compared on the same split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, ParameterGrid, StratifiedKFold

from prunekit._validation import check_positive_int
from prunekit.errors import InvalidParameterError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF

STOPPING_PARAMS = ("max_depth", "min_samples_leaf", "min_impurity_decrease", "max_leaf_nodes")


def default_grid(ctx: PruneContext, max_values: int = 12) -> list[dict[str, list[Any]]]:
    """One axis per stopping criterion (others left at the model's values), scaled to the tree."""
    struct = ctx.struct
    depth = int(struct.depth.max())
    n_leaves = int(struct.is_leaf.sum())
    n = int(round(struct.n[0]))

    def spread(lo: int, hi: int) -> list[int]:
        if hi <= lo:
            return [lo]
        vals = np.unique(np.round(np.geomspace(lo, hi, num=max_values)).astype(int))
        return sorted(set(vals.tolist()))

    raw = struct.raw
    internal = np.flatnonzero(~struct.is_leaf)
    w = raw.weighted_n_node_samples
    dec = (
        w[internal] * raw.impurity[internal]
        - w[raw.left[internal]] * raw.impurity[raw.left[internal]]
        - w[raw.right[internal]] * raw.impurity[raw.right[internal]]
    ) / w[0]
    dec = dec[dec > 0]
    mid = (
        np.unique(np.quantile(dec, np.linspace(0.0, 0.95, max_values - 1))).tolist()
        if dec.size
        else []
    )
    return [
        {"max_depth": list(range(1, depth + 1)) if depth <= max_values else spread(1, depth)},
        {"min_samples_leaf": spread(1, max(1, n // 4))},
        {"min_impurity_decrease": [0.0, *(float(v) for v in mid)]},
        {"max_leaf_nodes": spread(2, max(2, n_leaves))},
    ]


def pre_pruning(
    ctx: PruneContext,
    *,
    param_grid: dict[str, list] | list[dict[str, list]] | None = None,
    cv: int | None = None,
) -> MethodResult:
    """Grow trees with each stopping setting and keep the best one (see the module docstring).

    ``param_grid`` is a scikit-learn style grid (a dict, or a list of dicts whose union is
    searched) over the tree's parameters; by default each of :data:`STOPPING_PARAMS` is searched on
    its own axis. Candidates are scored on X_val/y_val, or by ``cv``-fold CV on the training data
    when ``cv`` is set or no validation set is given.
    """
    X, y = ctx.require_training("pre_pruning")
    X, y = np.asarray(X), np.asarray(y)
    grid_spec = default_grid(ctx) if param_grid is None else param_grid
    params = ctx.model.get_params()
    for spec in grid_spec if isinstance(grid_spec, list) else [grid_spec]:
        unknown = sorted(set(spec) - set(params))
        if unknown:
            raise InvalidParameterError(
                f"param_grid has unknown parameters {unknown}; accepted: {sorted(params)}"
            )
    candidates = list(ParameterGrid(grid_spec))
    use_cv = cv is not None or ctx.X_val is None
    if use_cv:
        k = check_positive_int("cv", 5 if cv is None else cv, minimum=2)
        folds = _folds(ctx, k, X, y)
    scored = []
    base = clone(ctx.model).set_params(ccp_alpha=0.0)
    for cand in candidates:
        est = clone(base).set_params(**cand)
        if use_cv:
            losses = np.empty(y.shape[0])
            for tr, te in folds:
                fold = clone(est).fit(X[tr], y[tr])
                losses[te] = _loss(fold, X[te], y[te], ctx.struct.is_classifier)
            est.fit(X, y)
            loss = float(losses.mean())
        else:
            est.fit(X, y)
            loss = float(_loss(est, ctx.X_val, ctx.y_val, ctx.struct.is_classifier).mean())
        scored.append((loss, int((est.tree_.children_left == TREE_LEAF).sum()), est, cand))
    loss, _, best, cand = min(scored, key=lambda s: (s[0], s[1]))
    chosen = {k: v for k, v in cand.items()}
    return MethodResult(
        model=best,
        params={
            **chosen,
            "select": "cv" if use_cv else "validation",
            "error": loss,
            "n_candidates": len(candidates),
        },
    )


def _folds(ctx: PruneContext, k: int, X: np.ndarray, y: np.ndarray) -> list:
    if X.shape[0] < k:
        raise InvalidParameterError(f"cv={k} folds need at least {k} samples, got {X.shape[0]}")
    seed = ctx.random_state or 0
    if ctx.struct.is_classifier and np.unique(y, return_counts=True)[1].min() >= k:
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y))
    return list(KFold(k, shuffle=True, random_state=seed).split(X, y))


def _loss(model, X, y, is_classifier: bool) -> np.ndarray:
    pred = model.predict(X)
    if is_classifier:
        return (pred != np.asarray(y)).astype(np.float64)
    return (pred - np.asarray(y, dtype=np.float64)) ** 2
