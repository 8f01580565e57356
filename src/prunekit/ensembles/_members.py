"""Member predictions, computed once: the matrix every pruning method works on.

This module is the only one that asks an ensemble's members for predictions. It recognises the
supported scikit-learn ensembles (:func:`ensemble_kind`), checks they are fitted, and builds a
:class:`MemberMatrix`:

- classifiers: ``votes[i, s, c]`` is member ``i``'s vote for class ``c`` on sample ``s`` in the
  ensemble's own combination rule, multiplied by the member's voting weight. Forests, bagging
  of probabilistic members and soft voting average ``predict_proba`` (soft vote), so the votes are
  class probabilities; hard voting (``VotingClassifier(voting="hard")``, bagging of members without
  ``predict_proba``) counts labels, so the votes are one-hot. Either way the ensemble predicts
  ``argmax_c sum_i votes[i, s, c]``, exactly the fitted class's ``predict``.
- regressors: ``votes[i, s, 0]`` is the member's weighted prediction; ``weight[i]`` its weight; the
  ensemble predicts ``sum_i votes / sum_i weight``.

With out-of-bag data (``oob=True``) the matrix is built on the training set and ``mask[i, s]`` is
False where sample ``s`` was in member ``i``'s bootstrap; masked entries are zero and methods ignore
them (the same estimate as scikit-learn's ``oob_score``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
from sklearn.base import is_classifier
from sklearn.ensemble import (
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted

from prunekit._validation import (
    check_class_labels,
    check_features,
    check_target,
    sklearn_errors,
)
from prunekit.errors import (
    InvalidParameterError,
    NotFittedError,
    ShapeMismatchError,
    UnsupportedModelError,
)

Kind = Literal["forest", "bagging", "voting", "gradient_boosting", "hist_gradient_boosting"]

_KINDS: tuple[tuple[tuple[type, ...], Kind], ...] = (
    (
        (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor),
        "forest",
    ),
    ((BaggingClassifier, BaggingRegressor), "bagging"),
    ((VotingClassifier, VotingRegressor), "voting"),
    ((GradientBoostingClassifier, GradientBoostingRegressor), "gradient_boosting"),
    ((HistGradientBoostingClassifier, HistGradientBoostingRegressor), "hist_gradient_boosting"),
)

SUPPORTED_CLASSES = tuple(c.__name__ for classes, _ in _KINDS for c in classes)
BOOSTING_KINDS = ("gradient_boosting", "hist_gradient_boosting")


def ensemble_kind(model: object) -> Kind:
    """Return which family of supported ensemble ``model`` is, or raise UnsupportedModelError."""
    for classes, kind in _KINDS:
        if isinstance(model, classes):
            return kind
    raise UnsupportedModelError(
        f"model of type {type(model).__name__} is not a supported ensemble; supported: "
        + ", ".join(SUPPORTED_CLASSES)
    )


def check_fitted_ensemble(model: object) -> Kind:
    """Check that ``model`` is a supported, fitted, single-output ensemble; return its kind."""
    kind = ensemble_kind(model)
    try:
        check_is_fitted(model)
    except SklearnNotFittedError:
        raise NotFittedError(
            f"{type(model).__name__} is not fitted; call fit(X, y) before pruning it"
        ) from None
    if getattr(model, "n_outputs_", 1) != 1 or (
        is_classifier(model) and np.ndim(getattr(model, "classes_", [])) != 1
    ):
        raise UnsupportedModelError(
            f"{type(model).__name__} was fitted on several outputs; only single-output "
            "ensembles can be pruned"
        )
    return kind


def n_members(model: object) -> int:
    """Number of base learners (for boosting: number of stages)."""
    kind = ensemble_kind(model)
    if kind == "hist_gradient_boosting":
        return len(model._predictors)  # type: ignore[attr-defined]
    if kind == "gradient_boosting":
        return int(model.estimators_.shape[0])  # type: ignore[attr-defined]
    return len(model.estimators_)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class MemberMatrix:
    """Every member's (weighted) vote on every pruning sample; see the module docstring.

    ``votes``: float array ``[n_members, n_samples, n_classes]`` (regression: ``n_classes == 1``);
    ``weight``: ``[n_members]`` voting weights (already folded into ``votes``);
    ``y``: class indices ``0..n_classes-1`` (classification) or targets (regression);
    ``mask``: ``[n_members, n_samples]`` bool or None (None means every entry is usable).
    """

    task: Literal["classification", "regression"]
    votes: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    mask: np.ndarray | None = None
    fingerprint: str | None = None  # :func:`model_fingerprint` of the model it was built from
    #: Additive models (gradient-boosted trees): ``[n_samples, n_classes]`` sums of the empty
    #: sub-ensemble (the base margin); a sub-ensemble's prediction is ``offset + sum(votes)``
    #: (regression: without dividing by the weights). None for voting ensembles.
    offset: np.ndarray | None = None
    labels: np.ndarray = field(init=False, repr=False)
    correct: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.votes.ndim != 3 or self.votes.shape[1] != len(self.y):
            raise ShapeMismatchError(
                f"votes must have shape [n_members, n_samples, n_classes] with n_samples="
                f"{len(self.y)}; got {self.votes.shape}"
            )
        if self.task == "classification":
            labels = self.votes.argmax(axis=2)
            correct = labels == self.y[None, :]
        else:
            w = np.where(self.weight == 0, 1.0, self.weight)[:, None]
            labels = self.votes[:, :, 0] / w
            correct = np.zeros(labels.shape, dtype=bool)
        if self.mask is not None:
            correct &= self.mask
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "correct", correct)

    @property
    def n_members(self) -> int:
        return int(self.votes.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.votes.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.votes.shape[2])

    @property
    def valid(self) -> np.ndarray:
        """``[n_members, n_samples]`` bool: where a member's prediction may be used."""
        if self.mask is None:
            return np.ones(self.votes.shape[:2], dtype=bool)
        return self.mask

    @property
    def den(self) -> np.ndarray:
        """Regression: ``[n_members, n_samples]`` prediction weights (0 where masked)."""
        return self.weight[:, None] * self.valid

    @cached_property
    def vote_bound(self) -> np.ndarray:
        """``[n_samples]``: the largest vote any one member casts for any class on each sample.

        Adding or removing one member cannot change a sample's predicted class when the gap
        between its two best classes exceeds this bound (used to skip settled samples).
        """
        return self.votes.max(axis=(0, 2)).astype(np.float64)

    @cached_property
    def true_support(self) -> np.ndarray:
        """``[n_members]``: each member's total vote for the true classes (classification)."""
        rows = np.arange(self.n_samples)
        return self.votes[:, rows, self.y].sum(axis=1, dtype=np.float64)

    @cached_property
    def total_support(self) -> np.ndarray:
        """``[n_members]``: each member's total vote mass."""
        return self.votes.sum(axis=(1, 2), dtype=np.float64)

    def signatures(self) -> np.ndarray:
        """Classification: ``c[i, s] = +1`` if member ``i`` is right on ``s``, -1 if wrong, 0 if
        masked (the signature vectors of Martínez-Muñoz & Suárez)."""
        sig = np.where(self.correct, 1.0, -1.0)
        if self.mask is not None:
            sig[~self.mask] = 0.0
        return sig

    def subset(self, samples: np.ndarray) -> MemberMatrix:
        """The same matrix restricted to some samples (used for cross-checks and tests)."""
        mask = None if self.mask is None else self.mask[:, samples]
        return MemberMatrix(
            self.task, self.votes[:, samples], self.y[samples], self.weight, mask, self.fingerprint,
            None if self.offset is None else self.offset[samples],
        )


def _member_digest(member: object, h: Any) -> None:
    h.update(type(member).__name__.encode())
    tree = getattr(member, "tree_", None)
    arrays = (
        [tree.threshold, tree.feature, tree.value]
        if tree is not None
        else [getattr(member, a) for a in ("coef_", "intercept_", "classes_") if hasattr(member, a)]
    )
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    try:
        params = member.get_params(deep=False)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any object may be a member; its params are only a hint
        params = {}
    h.update(repr(sorted((k, v) for k, v in params.items() if isinstance(v, int | float | str)))
             .encode())


def model_fingerprint(model: object, n_sampled: int = 5) -> str:
    """A short digest identifying a fitted ensemble: class, member count, classes, width and the
    fitted state of a few members spread over the ensemble. Cheap (a handful of members)."""
    h = hashlib.sha1(usedforsecurity=False)
    total = n_members(model)
    h.update(f"{type(model).__name__}:{total}:{getattr(model, 'n_features_in_', None)}".encode())
    classes = getattr(model, "classes_", None)
    if classes is not None:
        h.update(repr(np.asarray(classes).tolist()).encode())
    members = getattr(model, "estimators_", None)
    if members is not None and ensemble_kind(model) not in BOOSTING_KINDS:
        members = list(members)
        spread = np.linspace(0, len(members) - 1, min(n_sampled, len(members)))
        picks = np.unique(spread.astype(int))
        for i in picks.tolist():
            _member_digest(members[i], h)
    return h.hexdigest()[:16]


def encode_targets(model: object, y: np.ndarray, name: str = "y") -> np.ndarray:
    """Map class labels to indices into ``model.classes_`` (classifiers) or to floats.

    Labels of another type or unknown to the model, and non-finite regression targets, raise
    :class:`InvalidParameterError` (the checks shared with :func:`prunekit.trees.prune_tree`).
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ShapeMismatchError(f"{name} must be one-dimensional, got shape {y.shape}")
    if not is_classifier(model):
        return check_target(name, y, model, y.shape[0])
    return check_class_labels(name, y, model.classes_).astype(np.int64)  # type: ignore[attr-defined]


def check_pruning_data(
    model: object, X: object, y: object, names: tuple[str, str] = ("X_val", "y_val")
) -> tuple[object, np.ndarray]:
    """Validate pruning data for ``model``: features aligned by name, finite, of the model's
    width (a data frame stays a frame for members with their own preprocessing); targets the
    model knows. Returns ``(X, y)`` with ``y`` 1-D."""
    float32 = ensemble_kind(model) in ("forest", "gradient_boosting")
    Xc = check_features(names[0], X, model, allow_nan=True, float32=float32, keep_frame=True)
    if not hasattr(Xc, "shape") or len(Xc.shape) != 2:
        Xc = np.asarray(Xc)
    if getattr(model, "feature_names_in_", None) is None and hasattr(Xc, "to_numpy"):
        values = Xc.to_numpy()  # a frame for a model fitted without names: used by position
        if values.dtype.kind in "biuf":
            Xc = values
    yc = check_target(names[1], y, model, int(Xc.shape[0]))
    return Xc, yc


def _as_2d(X: object) -> np.ndarray:
    if hasattr(X, "toarray") or hasattr(X, "iloc"):
        return X  # type: ignore[return-value]  # sparse matrices and data frames pass through
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ShapeMismatchError(f"X must be two-dimensional, got shape {arr.shape}")
    return arr


def check_n_features(model: object, X: object) -> None:
    """Raise :class:`ShapeMismatchError` if ``X`` has another width than the model was fitted on."""
    expected = getattr(model, "n_features_in_", None)
    shape = getattr(X, "shape", None)
    if expected is not None and shape is not None and len(shape) == 2 and shape[1] != expected:
        raise ShapeMismatchError(
            f"X has {shape[1]} features but {type(model).__name__} was fitted on {expected}"
        )


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def _bagging_member_votes(model: object, X: np.ndarray) -> np.ndarray:
    """Votes of every bagging member exactly as ``BaggingClassifier.predict_proba`` sums them."""
    n_classes = int(model.n_classes_)  # type: ignore[attr-defined]
    out = np.zeros((len(model.estimators_), X.shape[0], n_classes), dtype=np.float32)  # type: ignore[attr-defined]
    for i, (est, feats) in enumerate(
        zip(model.estimators_, model.estimators_features_, strict=True)  # type: ignore[attr-defined]
    ):
        Xf = X[:, feats]
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(Xf)
            out[i][:, np.asarray(est.classes_, dtype=int)] = proba
        else:
            out[i] = _one_hot(np.asarray(est.predict(Xf), dtype=int), n_classes)
    return out


def member_votes(model: object, X: object) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(votes, weight)`` of every member of a forest, bagging or voting ensemble on X."""
    kind = check_fitted_ensemble(model)
    if kind in BOOSTING_KINDS:
        raise UnsupportedModelError(
            f"{type(model).__name__} is a boosting ensemble: its stages are not independent "
            "voters, so it has no member-vote matrix (prune it with method='stages')"
        )
    X = _as_2d(X)
    clf = is_classifier(model)
    members = list(model.estimators_)  # type: ignore[attr-defined]
    weight = np.ones(len(members), dtype=np.float64)
    if kind == "forest":
        X32 = np.asarray(X, dtype=np.float32) if not hasattr(X, "toarray") else X.astype(np.float32)
        if clf:
            votes = np.stack([t.predict_proba(X32) for t in members]).astype(np.float32)
        else:
            votes = np.stack([t.predict(X32) for t in members])[:, :, None]
    elif kind == "bagging":
        if hasattr(X, "iloc"):  # members were fitted on the validated numpy array
            X = X.to_numpy()
        if clf:
            votes = _bagging_member_votes(model, X)
        else:
            votes = np.stack(
                [
                    e.predict(X[:, f])
                    for e, f in zip(members, model.estimators_features_, strict=True)  # type: ignore[attr-defined]
                ]
            )[:, :, None]
    else:  # voting
        if model.weights is not None:  # type: ignore[attr-defined]
            weight = np.asarray(model._weights_not_none, dtype=np.float64)  # type: ignore[attr-defined]
        if clf and model.voting == "soft":  # type: ignore[attr-defined]
            votes = np.stack([e.predict_proba(X) for e in members]).astype(np.float32)
        elif clf:
            n_classes = len(model.classes_)  # type: ignore[attr-defined]
            votes = np.stack(
                [_one_hot(np.asarray(e.predict(X), dtype=int), n_classes) for e in members]
            )
        else:
            votes = np.stack([np.asarray(e.predict(X), dtype=np.float64) for e in members])[
                :, :, None
            ]
    votes = votes * weight[:, None, None].astype(votes.dtype)
    return votes, weight


def oob_mask(model: object, n_samples: int) -> np.ndarray:
    """``[n_members, n_samples]`` bool, True where the sample is out of the member's bootstrap."""
    kind = check_fitted_ensemble(model)
    if kind not in ("forest", "bagging"):
        raise InvalidParameterError(
            f"use_oob=True needs a bootstrap ensemble (RandomForest, ExtraTrees, Bagging); "
            f"{type(model).__name__} has no out-of-bag samples"
        )
    fitted_n = getattr(model, "_n_samples", None)
    if fitted_n is not None and fitted_n != n_samples:
        raise ShapeMismatchError(
            f"use_oob=True needs the training data the ensemble was fitted on "
            f"({fitted_n} samples) as X_val/y_val; got {n_samples} samples"
        )
    samples = model.estimators_samples_  # type: ignore[attr-defined]
    mask = np.ones((len(samples), n_samples), dtype=bool)
    for i, idx in enumerate(samples):
        mask[i, idx] = False
    if not mask.any():
        raise InvalidParameterError(
            f"use_oob=True: {type(model).__name__} was fitted without bootstrap (every sample is "
            "in every member's training set); pass a validation set instead"
        )
    return mask


def build_member_matrix(model: object, X: object, y: object, *, oob: bool = False) -> MemberMatrix:
    """Ask every member for its predictions on ``X`` once and return the :class:`MemberMatrix`.

    With ``oob=True``, ``X, y`` must be the training data; entries where a sample was in a
    member's bootstrap are masked out.
    """
    X, y_arr = check_pruning_data(model, X, y)
    n = X.shape[0]
    with sklearn_errors("X_val", model):
        votes, weight = member_votes(model, X)
    y_enc = encode_targets(model, y_arr, "y_val")
    mask = None
    if oob:
        mask = oob_mask(model, n)
        votes = votes * mask[:, :, None]
    task = "classification" if is_classifier(model) else "regression"
    return MemberMatrix(task, votes, y_enc, weight, mask, fingerprint=model_fingerprint(model))
