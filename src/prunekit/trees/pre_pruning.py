"""Pre-pruning (early stopping): a validated search over the tree's stopping criteria.

Early stopping halts growth when a split would be too deep, too small or too weak (Breiman et al.
1984, sec. 3.1; Quinlan 1986's chi-square stopping is the classical critique that motivated
post-pruning). Here the stopping rules are scikit-learn's own (by default ``max_depth``,
``min_samples_split``, ``min_impurity_decrease``, ``max_leaf_nodes``; any tree parameter through
``param_grid``): each candidate tree is grown on the training data (or, for those four rules, cut
from the grown tree, which is the same tree) and scored on the validation set (or by k-fold CV);
the best, with ties going to the fewest leaves, is returned, so pre- and post-pruning can be
compared on the same split.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, ParameterGrid, StratifiedKFold

from prunekit._validation import check_positive_int, sklearn_errors
from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.trees._base import MethodResult, PruneContext
from prunekit.trees._sktree import TREE_LEAF, read_tree, write_tree
from prunekit.trees._structure import (
    TreeStructure,
    build_structure,
    collapsed_leaf,
    compact,
    leaf_loss_on,
    routed_stats_from_leaves,
)

STOPPING_PARAMS = ("max_depth", "min_samples_split", "min_impurity_decrease", "max_leaf_nodes")


def default_grid(ctx: PruneContext, max_values: int = 12) -> list[dict[str, list[Any]]]:
    """One axis per stopping criterion (others left at the model's values), scaled to the tree."""
    struct = ctx.struct
    depth = max(1, int(struct.depth.max()))
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
    # just below observed decreases, so a split whose decrease equals a threshold is kept
    # robustly (scikit-learn's own rounding of the decrease can differ in the last bits)
    mid = (
        np.unique(np.quantile(dec, np.linspace(0.0, 0.95, max_values - 1)) * (1 - 1e-7)).tolist()
        if dec.size
        else []
    )
    return [
        {"max_depth": list(range(1, depth + 1)) if depth <= max_values else spread(1, depth)},
        {"min_samples_split": spread(2, max(2, n // 2))},
        {"min_impurity_decrease": [0.0, *(float(v) for v in mid)]},
        {"max_leaf_nodes": spread(2, max(2, n_leaves))},
    ]


#: Stopping rules that can be applied to the grown tree instead of regrowing it (top-down rules
#: and scikit-learn's best-first leaf budget): the same tree up to tie-breaking between splits.
TRUNCATABLE = ("max_depth", "min_samples_split", "min_impurity_decrease", "max_leaf_nodes")
_DEFAULTS = {"max_depth": None, "min_samples_split": 2, "min_impurity_decrease": 0.0,
             "max_leaf_nodes": None}
_EPSILON = float(np.finfo(np.float64).eps)  # scikit-learn's EPSILON in the tree builder


def pre_pruning(
    ctx: PruneContext,
    *,
    param_grid: dict[str, list] | list[dict[str, list]] | None = None,
    cv: int | None = None,
) -> MethodResult:
    """Grow trees with each stopping setting and keep the best one (see the module docstring).

    ``param_grid`` is a scikit-learn style grid (a dict, or a list of dicts whose union is
    searched) over the tree's parameters; by default ``max_depth``, ``min_samples_split``,
    ``min_impurity_decrease`` and ``max_leaf_nodes`` are each searched on their own axis.
    Candidates are scored on X_val/y_val, or by ``cv``-fold CV on the training data when ``cv``
    is set or no validation set is given.

    When X_train/y_train are the data the tree was grown on (``splitter="best"``, all features per
    split, no ``ccp_alpha``) and the grid only uses :data:`TRUNCATABLE` stopping rules, each
    candidate is evaluated by truncating the grown tree (regrowing would give the same tree up to
    ties between equally good splits), so no tree is refitted on the full data and CV fits one
    tree per fold; otherwise every candidate is regrown.
    """
    X, y = ctx.require_training("pre_pruning")
    struct = ctx.struct
    if struct.n_nodes == 1:
        return MethodResult(
            collapse=np.zeros(1, dtype=bool),
            params={"n_candidates": 0},
            notes=["the tree is a single leaf: there is nothing to pre-prune"],
        )
    grid_spec = default_grid(ctx) if param_grid is None else param_grid
    candidates = _candidates(ctx, grid_spec)
    use_cv = cv is not None or ctx.X_val is None
    k = check_positive_int("cv", 5 if cv is None else cv, minimum=2) if use_cv else 0
    weight = ctx.train_weights("pre_pruning")
    fast = _can_truncate(ctx, candidates, weight)
    if fast:
        loss, cand, collapse = _search_truncated(ctx, candidates, k, weight)
        pruned = write_tree(ctx.model, compact(struct.raw, collapse))
        pruned.set_params(**cand)
        how = "truncation of the grown tree"
    else:
        loss, cand, pruned = _search_refit(ctx, candidates, k, weight)
        how = "regrown"
    return MethodResult(
        model=pruned,
        params={
            **cand,
            "select": "cv" if use_cv else "validation",
            "error": loss,
            "n_candidates": len(candidates),
            "search": how,
        },
    )


def _candidates(ctx: PruneContext, grid_spec: Any) -> list[dict[str, Any]]:
    params = ctx.model.get_params()
    specs = grid_spec if isinstance(grid_spec, list) else [grid_spec]
    if not specs or not all(isinstance(spec, dict) for spec in specs):
        raise InvalidParameterError(
            "param_grid must be a dict of parameter -> list of values, or a list of such dicts; "
            f"got {grid_spec!r}"
        )
    for spec in specs:
        unknown = sorted(set(spec) - set(params))
        if unknown:
            raise InvalidParameterError(
                f"param_grid has unknown parameters {unknown}; accepted: {sorted(params)}"
            )
        for key, values in spec.items():
            if isinstance(values, str | bytes) or not hasattr(values, "__len__") or not len(values):
                raise InvalidParameterError(
                    f"param_grid[{key!r}] must be a non-empty list of values, got {values!r}"
                )
    try:
        candidates = list(ParameterGrid(specs))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"param_grid is not a valid grid: {exc}") from None
    base = clone(ctx.model)
    for cand in candidates:
        est = clone(base).set_params(**cand)
        if hasattr(est, "_validate_params"):
            try:
                est._validate_params()
            except (TypeError, ValueError) as exc:
                raise InvalidParameterError(f"param_grid candidate {cand}: {exc}") from None
    return candidates


def _can_truncate(ctx: PruneContext, candidates: list[dict], weight) -> bool:
    model = ctx.model
    if any(set(c) - set(TRUNCATABLE) for c in candidates):
        return False
    if model.splitter != "best" or model.ccp_alpha != 0 or model.max_features not in (
        None, model.n_features_in_, 1.0
    ):
        return False
    used = {key for c in candidates for key in c}
    if any(getattr(model, key) != _DEFAULTS[key] for key in used):
        return False  # the grown tree is already limited by a rule the grid would loosen
    try:
        ctx.train_weights("pre_pruning", exact=True)
    except ShapeMismatchError:
        return False  # X_train is not the data the tree was grown on
    return True


def truncation_mask(struct: TreeStructure, cand: dict[str, Any]) -> np.ndarray:
    """Internal nodes to collapse so the grown tree obeys the stopping rules in ``cand``."""
    raw = struct.raw
    internal = ~struct.is_leaf
    collapse = np.zeros(struct.n_nodes, dtype=bool)
    if cand.get("max_depth") is not None:
        collapse |= internal & (struct.depth >= cand["max_depth"])
    mss = cand.get("min_samples_split")
    if mss is not None:
        if isinstance(mss, float):
            mss = max(2, math.ceil(mss * raw.n_node_samples[0]))
        collapse |= internal & (raw.n_node_samples < mss)
    mid = cand.get("min_impurity_decrease")
    if mid:
        collapse |= internal & (_improvement(struct) + _EPSILON < mid)
    if cand.get("max_leaf_nodes") is not None:
        collapse = _best_first(struct, collapse, int(cand["max_leaf_nodes"]))
    return collapse


def _improvement(struct: TreeStructure) -> np.ndarray:
    """scikit-learn's split improvement (weighted impurity decrease) of every node."""
    raw = struct.raw
    w, imp = raw.weighted_n_node_samples, raw.impurity
    left, right = np.maximum(raw.left, 0), np.maximum(raw.right, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dec = w / w[0] * (imp - w[right] / w * imp[right] - w[left] / w * imp[left])
    return np.where(struct.is_leaf, 0.0, dec)


def _best_first(struct: TreeStructure, collapse: np.ndarray, max_leaf_nodes: int) -> np.ndarray:
    """Expand splits in order of improvement until the tree has ``max_leaf_nodes`` leaves."""
    gain = _improvement(struct)
    out = np.ones(struct.n_nodes, dtype=bool) & ~struct.is_leaf
    budget = max_leaf_nodes - 1
    heap = [(-gain[0], 0)]
    while heap and budget > 0:
        _, v = heapq.heappop(heap)
        if struct.is_leaf[v] or collapse[v]:
            continue
        out[v] = False
        budget -= 1
        for c in (int(struct.left[v]), int(struct.right[v])):
            heapq.heappush(heap, (-gain[c], c))
    return out | (collapse & ~struct.is_leaf)


def _final_leaves(struct: TreeStructure, collapse: np.ndarray) -> np.ndarray:
    rep = collapsed_leaf(struct, collapse)
    return (rep == np.arange(struct.n_nodes)) & (collapse | struct.is_leaf)


def _search_truncated(ctx: PruneContext, candidates: list[dict], k: int, weight):
    struct = ctx.struct
    masks = [truncation_mask(struct, c) for c in candidates]
    if k:
        X, y = ctx.X_train, ctx.y_train
        total = np.zeros(len(candidates))
        for tr, te in _folds(ctx, k, X, y):
            fold = clone(ctx.model)
            with sklearn_errors("X_train/y_train", fold):
                fold.fit(X[tr], y[tr], sample_weight=None if weight is None else weight[tr])
            fstruct = build_structure(read_tree(fold), struct.is_classifier)
            wte = None if weight is None else weight[te]
            stats = routed_stats_from_leaves(fstruct, fold.apply(X[te]), y[te],
                                             getattr(fold, "classes_", None), wte)
            node_loss = leaf_loss_on(fstruct, stats)
            for j, cand in enumerate(candidates):
                m = truncation_mask(fstruct, cand)
                total[j] += node_loss[_final_leaves(fstruct, m)].sum()
        losses = total / float(y.shape[0] if weight is None else weight.sum())
    else:
        node_loss = leaf_loss_on(struct, ctx.val_stats)
        losses = np.array([node_loss[_final_leaves(struct, m)].sum() for m in masks])
        losses = losses / ctx.y_val.shape[0]
    leaves = [int(_final_leaves(struct, m).sum()) for m in masks]
    j = min(range(len(candidates)), key=lambda i: (losses[i], leaves[i]))
    return float(losses[j]), candidates[j], masks[j]


def _search_refit(ctx: PruneContext, candidates: list[dict], k: int, weight):
    X, y = ctx.X_train, ctx.y_train
    folds = _folds(ctx, k, X, y) if k else []
    scored = []
    base = clone(ctx.model).set_params(ccp_alpha=0.0)

    def fit(est, rows):
        sw = None if weight is None else weight[rows]
        with sklearn_errors("X_train/y_train", est):
            return est.fit(X[rows], y[rows], sample_weight=sw)

    everything = np.arange(y.shape[0])
    for cand in candidates:
        est = clone(base).set_params(**cand)
        if k:
            losses = np.empty(y.shape[0])
            for tr, te in folds:
                fold = fit(clone(est), tr)
                losses[te] = _loss(fold, X[te], y[te], ctx.struct.is_classifier)
            fit(est, everything)
            wl = losses if weight is None else losses * weight / weight.mean()
            loss = float(wl.mean())
        else:
            fit(est, everything)
            loss = float(_loss(est, ctx.X_val, ctx.y_val, ctx.struct.is_classifier).mean())
        scored.append((loss, int((est.tree_.children_left == TREE_LEAF).sum()), est, cand))
    loss, _, best, cand = min(scored, key=lambda s: (s[0], s[1]))
    return loss, dict(cand), best


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
