"""Prune every member tree of a bagging ensemble in one call (``prune_members``).

The ordered-aggregation literature (Martínez-Muñoz, Hernández-Lobato & Suárez 2009) bags *pruned*
CART trees: fully grown trees fit their bootstrap almost perfectly, so a selection set drawn from
the training data carries no signal. ``prune_members`` prunes each tree of a fitted
RandomForest/ExtraTrees/Bagging of decision trees with any :func:`prunekit.trees.prune_tree`
method; with ``X_train, y_train`` (the data the ensemble was fitted on) each tree is pruned on its
own out-of-bag rows, e.g. cost-complexity pruning with alpha chosen on the member's OOB data.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.ensembles._members import check_pruning_data, ensemble_kind, oob_mask
from prunekit.errors import InvalidParameterError, UnsupportedModelError


def prune_members(
    model: Any,
    method: str = "cost_complexity",
    *,
    X_train: Any = None,
    y_train: Any = None,
    X_val: Any = None,
    y_val: Any = None,
    **params: Any,
) -> Any:
    """A copy of a fitted tree ensemble with every member pruned by ``prune_tree(tree, method)``.

    Data per member: with ``X_train, y_train`` (the ensemble's training data) each member is
    pruned on its out-of-bag rows as ``X_val, y_val`` (the ensemble must use bootstrap); with
    ``X_val, y_val`` every member is pruned on that shared set; with neither, only methods that
    need no data work (``pessimistic``, ``c45``, ``mdl``, ``min_error``, ``cost_complexity``
    with ``ccp_alpha=``, ``simplify``). The defaults (``"cost_complexity"`` on each member's OOB
    rows) are the pruned-CART bagging of the ordered-aggregation literature. ``params`` go to
    ``prune_tree``. The result is the same estimator class; ``members_report_`` lists the leaf
    counts before and after.
    """
    from prunekit.trees import prune_tree

    kind = ensemble_kind(model)
    trees = getattr(model, "estimators_", None)
    if kind not in ("forest", "bagging") or not trees or not all(
        isinstance(t, DecisionTreeClassifier | DecisionTreeRegressor) for t in trees
    ):
        raise UnsupportedModelError(
            "prune_members needs a fitted RandomForest/ExtraTrees or a Bagging ensemble of "
            f"decision trees; got {type(model).__name__}"
        )
    if X_train is not None and X_val is not None:
        raise InvalidParameterError(
            "pass X_train, y_train (each member pruned on its out-of-bag rows) or X_val, y_val "
            "(one shared pruning set), not both")
    start = time.perf_counter()
    per_member = _member_data(model, kind, X_train, y_train, X_val, y_val)
    new_trees = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        for tree, data in zip(trees, per_member, strict=True):
            new_trees.append(prune_tree(tree, method, **data, **params))
    pruned = copy.deepcopy(model, {id(trees): new_trees, **{id(t): None for t in trees}})
    pruned.estimators_ = new_trees
    before = np.array([t.get_n_leaves() for t in trees])
    after = np.array([t.get_n_leaves() for t in new_trees])
    pruned.members_report_ = {
        "method": new_trees[0].prune_report_.method,
        "data": "oob" if X_train is not None else ("validation" if X_val is not None else "none"),
        "mean_leaves_before": float(before.mean()),
        "mean_leaves_after": float(after.mean()),
        "time_s": time.perf_counter() - start,
    }
    return pruned


def _member_data(model, kind: str, X_train, y_train, X_val, y_val) -> list[dict[str, Any]]:
    """``X_val, y_val`` for each member (its OOB rows, or the shared set, or nothing)."""
    n = len(model.estimators_)
    if X_train is None and y_train is None and X_val is None and y_val is None:
        return [{} for _ in range(n)]
    oob = X_train is not None or y_train is not None
    if oob and (X_train is None or y_train is None):
        raise InvalidParameterError("pass both X_train and y_train, or neither")
    if not oob and (X_val is None or y_val is None):
        raise InvalidParameterError("pass both X_val and y_val, or neither")
    X, y = check_pruning_data(model, *(X_train, y_train) if oob else (X_val, y_val))
    X = np.asarray(X.to_numpy() if hasattr(X, "iloc") else X)
    if is_classifier(model):  # members were fitted on class indices
        y = np.searchsorted(model.classes_, y).astype(np.float64)
    mask = oob_mask(model, X.shape[0]) if oob else np.ones((n, X.shape[0]), dtype=bool)
    feats = getattr(model, "estimators_features_", None) if kind == "bagging" else None
    out = []
    for i in range(n):
        rows = np.flatnonzero(mask[i])
        Xi = X[rows] if feats is None else X[np.ix_(rows, feats[i])]
        if kind == "forest":
            Xi = Xi.astype(np.float32)
        out.append({"X_val": Xi, "y_val": y[rows]} if rows.size else {})
    return out
