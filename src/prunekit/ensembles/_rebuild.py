"""Rebuild a fitted scikit-learn ensemble of the same class with only the selected members.

All knowledge of ensemble internals needed to shrink them lives here:

- RandomForest / ExtraTrees: ``estimators_`` and ``n_estimators``;
- Bagging: also ``estimators_features_`` and ``_seeds`` (behind ``estimators_samples_``);
- Voting: ``estimators_``, the ``estimators`` parameter, ``named_estimators_`` and ``weights``;
- GradientBoosting: the first ``k`` stages of ``estimators_``, ``n_estimators(_)``,
  ``train_score_`` and the OOB arrays;
- HistGradientBoosting: the first ``k`` iterations of ``_predictors``, ``max_iter``, and the
  score arrays.

A member selected ``r`` times (forward selection with replacement) appears ``r`` times: forests
and bagging average over ``estimators_``, so the same fitted member is repeated by reference (it is
stored once when pickled); Voting ensembles get an integer weight ``r`` instead. Out-of-bag
attributes of the original ensemble (``oob_score_``, ``oob_decision_function_``,
``oob_prediction_``) no longer describe the pruned one and are removed. The original model is
never modified; the kept members are deep copies.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from sklearn.utils import Bunch

from prunekit.ensembles._members import check_fitted_ensemble, n_members
from prunekit.errors import InvalidParameterError

_STALE_OOB = ("oob_score_", "oob_decision_function_", "oob_prediction_")


def _copy_except(model: object, exclude: Sequence[str]) -> object:
    """A deep copy of ``model`` without the (large) attributes named in ``exclude``."""
    state = {k: v for k, v in model.__dict__.items() if k not in exclude}
    new = model.__class__.__new__(model.__class__)
    new.__dict__.update(copy.deepcopy(state))
    return new


def _drop_stale(new: object) -> list[str]:
    dropped = [a for a in _STALE_OOB if a in new.__dict__]
    for a in dropped:
        delattr(new, a)
    return dropped


def rebuild(model: object, members: Sequence[int]) -> tuple[object, list[str]]:
    """Return ``(pruned_model, notes)``: a new fitted ensemble made of ``members`` (a multiset of
    member indices, order kept) and notes on attributes that had to change."""
    kind = check_fitted_ensemble(model)
    idx = [int(i) for i in members]
    total = n_members(model)
    if not idx:
        raise InvalidParameterError("cannot build an ensemble with no members")
    if min(idx) < 0 or max(idx) >= total:
        raise InvalidParameterError(f"member indices must lie in [0, {total}); got {idx}")
    notes: list[str] = []
    if kind == "forest":
        new = _copy_except(model, ["estimators_"])
        new.estimators_ = copy.deepcopy([model.estimators_[i] for i in idx])  # type: ignore[attr-defined]
        new.n_estimators = len(idx)
    elif kind == "bagging":
        new = _copy_except(model, ["estimators_", "estimators_features_"])
        kept = copy.deepcopy(
            [(model.estimators_[i], model.estimators_features_[i]) for i in idx]  # type: ignore[attr-defined]
        )
        new.estimators_ = [e for e, _ in kept]
        new.estimators_features_ = [f for _, f in kept]
        seeds = getattr(model, "_seeds", None)
        if seeds is not None and len(seeds) == total:
            new._seeds = np.asarray(seeds)[idx]
        elif seeds is not None:
            del new._seeds
            notes.append(
                "_seeds did not match estimators_ (warm start); estimators_samples_ dropped"
            )
        new.n_estimators = len(idx)
    elif kind == "voting":
        new = _rebuild_voting(model, idx)
    elif kind == "gradient_boosting":
        k = _prefix_length(idx, model)
        new = _copy_except(model, ["estimators_"])
        new.estimators_ = copy.deepcopy(model.estimators_[:k])  # type: ignore[attr-defined]
        new.n_estimators = k
        new.n_estimators_ = k
        new.train_score_ = new.train_score_[:k]
        if hasattr(new, "oob_improvement_"):
            new.oob_improvement_ = new.oob_improvement_[:k]
            new.oob_scores_ = new.oob_scores_[:k]
            new.oob_score_ = new.oob_scores_[-1]
    else:  # hist_gradient_boosting
        k = _prefix_length(idx, model)
        new = _copy_except(model, ["_predictors"])
        new._predictors = copy.deepcopy(model._predictors[:k])  # type: ignore[attr-defined]
        new.max_iter = k
        for name in ("train_score_", "validation_score_"):
            scores = getattr(new, name, None)
            if scores is not None and len(scores) > 0:
                setattr(new, name, np.asarray(scores)[: k + 1])
    if kind in ("forest", "bagging"):
        dropped = _drop_stale(new)
        if dropped:
            notes.append(f"removed stale out-of-bag attributes: {', '.join(dropped)}")
    return new, notes


def _prefix_length(idx: list[int], model: object) -> int:
    k = len(idx)
    if idx != list(range(k)):
        raise InvalidParameterError(
            f"{type(model).__name__} is a boosting ensemble: each stage corrects the previous "
            "ones, so only a prefix of stages (0, 1, ..., k-1) can be kept"
        )
    return k


def _rebuild_voting(model: object, idx: list[int]) -> object:
    kept, counts = np.unique(np.asarray(idx), return_counts=True)  # fit order, multiplicity
    params = [(n, e) for n, e in model.estimators if not (isinstance(e, str) and e == "drop")]  # type: ignore[attr-defined]
    old_w = model._weights_not_none  # type: ignore[attr-defined]
    old_w = np.ones(len(params)) if old_w is None else np.asarray(old_w, dtype=np.float64)
    new = _copy_except(model, ["estimators_", "named_estimators_", "estimators"])
    fitted = copy.deepcopy([model.estimators_[i] for i in kept])  # type: ignore[attr-defined]
    new.estimators = [(params[i][0], copy.deepcopy(params[i][1])) for i in kept]
    new.estimators_ = fitted
    new.named_estimators_ = Bunch(**{params[i][0]: f for i, f in zip(kept, fitted, strict=True)})
    weights = old_w[kept] * counts
    if model.weights is None and np.all(counts == 1):  # type: ignore[attr-defined]
        new.weights = None
    else:
        new.weights = [float(w) for w in weights]
    return new
