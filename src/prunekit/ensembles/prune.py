"""``prune_ensemble``: choose the members of a fitted ensemble and rebuild it smaller.

Three steps, kept apart: (1) :mod:`._members` asks every member for its predictions on the
pruning data once; (2) a pure method from :mod:`.ordering`, :mod:`.optimisation` or
:mod:`.clustering` orders or selects members on that matrix; (3) :mod:`._rebuild` makes a new
fitted ensemble of the same class with only the chosen members.
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.base import is_classifier

from prunekit._validation import check_choice, sklearn_errors
from prunekit.ensembles import boosted, clustering, optimisation, ordering
from prunekit.ensembles._auto import DEFAULT_TOLERANCE, auto_index, check_tolerance, eval_scores
from prunekit.ensembles._members import (
    BOOSTING_KINDS,
    MemberMatrix,
    build_member_matrix,
    check_fitted_ensemble,
    check_pruning_data,
    encode_targets,
    model_fingerprint,
    n_members,
)
from prunekit.ensembles._rebuild import rebuild
from prunekit.ensembles._scoring import prefix_scores, r2_from_neg_mse, subset_score
from prunekit.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError

OrderFn = Callable[[MemberMatrix, int, np.random.Generator], Any]


@dataclass(frozen=True)
class MethodInfo:
    """A registered pruning method: its family, function and where it applies."""

    name: str
    family: str  # ranking | ordered_aggregation | optimisation | clustering | baseline | boosting
    func: OrderFn | None
    regression: bool
    summary: str


def _gasen(M: MemberMatrix, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """GASEN (Zhou, Wu & Tang 2002): order by evolved weight; record the 1/N threshold count."""
    w = optimisation.gasen_weights(M, rng)
    order = np.argsort(-w, kind="stable")[:n_steps]
    return order, {
        "weights": [round(float(v), 6) for v in w],
        "n_above_threshold": int((w > 1.0 / M.n_members).sum()),
    }


def _orientation(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """Orientation ordering (Martínez-Muñoz & Suárez 2006) plus the paper's pi/2 cut-off count."""
    order = ordering.orientation(M, n_steps, rng)
    angle = ordering.orientation_angles(M)
    below = None if angle is None else int((angle < np.pi / 2).sum())
    return order, {"n_below_right_angle": below}


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        MethodInfo(
            "accuracy",
            "ranking",
            ordering.rank_by_accuracy,
            True,
            "rank members by their own validation accuracy",
        ),
        MethodInfo(
            "kappa",
            "ranking",
            ordering.rank_by_kappa,
            False,
            "most diverse pairs first (Cohen's kappa; Margineantu & Dietterich 1997)",
        ),
        MethodInfo(
            "reduce_error",
            "ordered_aggregation",
            ordering.reduce_error,
            True,
            "greedy: add the member that most lowers the sub-ensemble error",
        ),
        MethodInfo(
            "complementarity",
            "ordered_aggregation",
            ordering.complementarity,
            False,
            "add the member right where the sub-ensemble is wrong",
        ),
        MethodInfo(
            "margin_distance",
            "ordered_aggregation",
            ordering.margin_distance,
            False,
            "move the mean signature towards a small positive margin",
        ),
        MethodInfo(
            "orientation",
            "ordered_aggregation",
            _orientation,
            False,
            "sort by angle to the reference vector (one pass)",
        ),
        MethodInfo(
            "boosting",
            "ordered_aggregation",
            ordering.boosting_based,
            False,
            "AdaBoost re-weighting chooses the next member",
        ),
        MethodInfo(
            "forward_selection",
            "optimisation",
            optimisation.forward_selection,
            True,
            "Caruana et al. 2004: greedy selection with replacement",
        ),
        MethodInfo(
            "backward_elimination",
            "optimisation",
            optimisation.backward_elimination,
            True,
            "drop the member whose removal helps most, repeatedly",
        ),
        MethodInfo(
            "gasen",
            "optimisation",
            _gasen,
            True,
            "GASEN: genetic algorithm over member weights (Zhou et al. 2002)",
        ),
        MethodInfo(
            "cluster",
            "clustering",
            None,
            True,
            "cluster members by predictions, keep the best of each cluster",
        ),
        MethodInfo("random", "baseline", ordering.random_order, True, "a random subset (baseline)"),
        MethodInfo(
            "stages",
            "boosting",
            ordering.fit_order,
            True,
            "keep the first k members/stages in fit order (boosting: stage truncation)",
        ),
    ]
}


@dataclass(frozen=True)
class EnsemblePruneReport:
    """What :func:`prune_ensemble` did; attached to the pruned model as ``prune_report_``.

    ``n_members_after`` counts the pruned ensemble's slots (``len(estimators_)``); with forward
    selection a member may fill several slots, so ``n_unique_members`` can be smaller.
    ``curve`` holds ``(size, validation score)`` along the method's ordering (accuracy for
    classifiers, R² for regressors); ``ordering`` is the full ordering when the method has one.
    ``score_before``/``score_after`` are measured on the data the members were selected on and
    are optimistic; ``eval_score_before``/``eval_score_after`` are the same scores on the
    held-out ``X_eval, y_eval`` (None when none were given), the test-style estimate.
    """

    method: str
    model_class: str
    data: str  # "validation" or "oob"
    metric: str  # "accuracy" or "r2"
    size_rule: str
    n_members_before: int
    n_members_after: int
    n_unique_members: int
    kept_indices: tuple[int, ...]
    score_before: float
    score_after: float
    curve: tuple[tuple[int, float], ...]
    ordering: tuple[int, ...] | None
    time_s: float
    notes: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    tolerance: float = DEFAULT_TOLERANCE
    eval_score_before: float | None = None
    eval_score_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        sel = "out-of-bag" if self.data == "oob" else "selection-set"
        text = (
            f"{self.method}: {self.n_members_before} -> {self.n_members_after} members "
            f"({self.n_unique_members} unique); {sel} {self.metric} "
            f"{self.score_before:.4f} -> {self.score_after:.4f} (optimistic: selected on it)"
        )
        if self.eval_score_before is not None and self.eval_score_after is not None:
            text += (
                f"; held-out {self.metric} {self.eval_score_before:.4f} -> "
                f"{self.eval_score_after:.4f}"
            )
        else:
            text += "; no held-out estimate (pass X_eval, y_eval)"
        return f"{text} in {self.time_s:.3f}s"


def available_methods(model: object) -> list[str]:
    """Names of the methods that apply to ``model`` (a fitted supported ensemble)."""
    kind = check_fitted_ensemble(model)
    if kind in BOOSTING_KINDS:
        return ["stages"]
    regression = not is_classifier(model)
    return [name for name, m in METHODS.items() if m.regression or not regression]


def resolve_size(size: object, total: int) -> int | None:
    """Turn ``size`` (count, fraction in (0, 1], or "auto") into a member count (None = auto)."""
    if isinstance(size, str):
        check_choice("size", size, ["auto"])
        return None
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise InvalidParameterError(
            f"size must be a count (int), a fraction in (0, 1] (float) or 'auto'; got {size!r}"
        )
    if isinstance(size, numbers.Integral):
        if size < 1 or size > total:
            raise InvalidParameterError(
                f"size={size} must lie between 1 and the ensemble's {total} members"
            )
        return int(size)
    frac = float(size)
    if not 0.0 < frac <= 1.0:
        raise InvalidParameterError(f"size={size!r} as a fraction must lie in (0, 1]")
    return max(1, min(total, int(round(frac * total))))


def _to_metric(M: MemberMatrix, values: np.ndarray) -> np.ndarray:
    """Scores as reported: accuracy for classifiers, R² (from minus MSE) for regressors."""
    if M.task == "classification":
        return values
    return np.asarray(r2_from_neg_mse(M, values))


def prune_ensemble(
    model: object,
    method: str = "reduce_error",
    size: int | float | str = 0.2,
    X_val: object = None,
    y_val: object = None,
    *,
    use_oob: bool = False,
    random_state: int | np.random.Generator | None = None,
    members: MemberMatrix | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    X_eval: object = None,
    y_eval: object = None,
) -> object:
    """Prune a fitted scikit-learn ensemble; return a new fitted ensemble of the same class.

    Parameters
    ----------
    model : a fitted RandomForest/ExtraTrees, Bagging or Voting classifier/regressor, or a
        (Hist)GradientBoosting classifier/regressor (boosting supports ``method="stages"``).
    method : one of :data:`METHODS` (``available_methods(model)`` lists those that apply).
    size : members to keep: an ``int`` count, a ``float`` fraction in (0, 1], or ``"auto"``: the
        smallest size along the method's ordering whose selection score is within ``tolerance``
        of the best.
    tolerance : for ``size="auto"``, in accuracy (classifiers) or R² (regressors) points;
        default 0.0 (the best score, smallest size among ties). ``0.01`` trades up to one point
        of selection score for fewer members; on a small selection set one sample is already
        about a point, so check the held-out score.
    X_val, y_val : pruning data. With ``use_oob=True`` they must be the training data the
        ensemble was fitted on: each member is then judged only on its out-of-bag samples.
    random_state : seed for the stochastic methods (``gasen``, ``random``).
    members : a :class:`MemberMatrix` from ``build_member_matrix(model, X_val, y_val)`` to reuse
        across calls (comparing methods or sizes asks the members for predictions only once);
        replaces ``X_val``/``y_val``/``use_oob``.
    X_eval, y_eval : held-out data never used for selection (e.g. a test split); the report then
        gives the full and pruned ensemble's scores on them (``eval_score_before``/``_after``)
        beside the optimistic selection-set scores.

    Returns
    -------
    The pruned ensemble; its ``prune_report_`` attribute holds an :class:`EnsemblePruneReport`.
    The input model is not modified.
    """
    start = time.perf_counter()
    tolerance = check_tolerance(tolerance)
    if boosted.boosted_library(model) is not None:
        pruned = _prune_boosted(model, method, size, X_val, y_val, use_oob, members,
                                random_state, start, tolerance)
        return _with_eval(model, pruned, X_eval, y_eval)
    kind = check_fitted_ensemble(model)
    check_choice("method", method, METHODS)
    info = METHODS[method]
    total = n_members(model)
    k = resolve_size(size, total)
    if members is not None:
        _check_members(model, members, total, X_val, y_val, use_oob)
        use_oob = members.mask is not None
    elif X_val is None or y_val is None:
        raise InvalidParameterError(
            "X_val and y_val are required (a validation set, or the training set with use_oob=True)"
        )
    classifier = is_classifier(model)
    allowed = available_methods(model)
    if method not in allowed:
        raise UnsupportedModelError(
            f"method={method!r} does not apply to {type(model).__name__}; methods for it: "
            + ", ".join(repr(a) for a in allowed)
        )
    if not (
        random_state is None
        or isinstance(random_state, np.random.Generator)
        or (
            isinstance(random_state, numbers.Integral)
            and not isinstance(random_state, bool)
            and random_state >= 0
        )
    ):
        raise InvalidParameterError(
            f"random_state must be None, an int >= 0 or a numpy Generator, got {random_state!r}"
        )
    rng = (
        random_state
        if isinstance(random_state, np.random.Generator)
        else (np.random.default_rng(random_state))
    )
    if kind in BOOSTING_KINDS:
        if use_oob or members is not None:
            raise InvalidParameterError(
                "use_oob=True and members= are not available for boosting ensembles"
            )
        return _with_eval(model, _prune_boosting(model, k, size, X_val, y_val, start, tolerance),
                          X_eval, y_eval)

    M = members if members is not None else build_member_matrix(model, X_val, y_val, oob=use_oob)
    details: dict[str, Any] = {}
    ordering_: np.ndarray | None = None
    extra_notes: list[str] = []
    if info.family == "clustering":
        selector = clustering.ClusterSelector(M)
        sizes = np.arange(1, total + 1) if k is None else np.array([k])
        if k is None and total > 100:
            sizes = np.unique(np.linspace(1, total, 100).round().astype(int))
        selections = [selector.select(int(s)) for s in sizes]
        raw = np.array([subset_score(M, sel) for sel in selections])
        kept = selections[auto_index(_to_metric(M, raw), tolerance)]
        curve_sizes = np.array([len(s) for s in selections])
        if k is not None and len(kept) < k:
            msg = (
                f"cluster found only {len(kept)} groups of members that predict differently on "
                f"the pruning data, fewer than size={k}: kept {len(kept)} members (members with "
                "identical predictions fall into one cluster)"
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
            extra_notes.append(msg)
    else:
        out = info.func(M, total if k is None else k, rng)  # type: ignore[misc]
        if isinstance(out, tuple):
            out, details = out
        ordering_ = np.asarray(out, dtype=np.int64)
        raw = prefix_scores(M, ordering_)
        curve_sizes = np.arange(1, len(ordering_) + 1)
        length = auto_index(_to_metric(M, raw), tolerance) + 1 if k is None else k
        kept = ordering_[:length]
    metric_vals = _to_metric(M, raw)
    full_score = float(_to_metric(M, np.array([subset_score(M, np.arange(total))]))[0])
    after_score = float(_to_metric(M, np.array([subset_score(M, kept)]))[0])
    if classifier and method != "random" and full_score >= NO_SIGNAL_ACCURACY:
        msg = (
            f"the full ensemble is {full_score:.3f} accurate on the {report_data(use_oob)}: "
            "it gives the selection almost no signal (every subset looks equally good). Select on "
            "out-of-bag data (use_oob=True with the training set), on held-out data, or prune the "
            "members first (prunekit.ensembles.prune_members)"
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        extra_notes.append(msg)
    pruned, notes = rebuild(model, kept)
    notes = [*extra_notes, *notes]
    report = EnsemblePruneReport(
        method=method,
        model_class=type(model).__name__,
        data="oob" if use_oob else "validation",
        metric="accuracy" if classifier else "r2",
        size_rule=_size_rule(size),
        n_members_before=total,
        n_members_after=len(kept),
        n_unique_members=len(set(kept.tolist())),
        kept_indices=tuple(int(i) for i in kept),
        score_before=full_score,
        score_after=after_score,
        curve=tuple((int(s), float(v)) for s, v in zip(curve_sizes, metric_vals, strict=True)),
        ordering=None if ordering_ is None else tuple(int(i) for i in ordering_),
        time_s=time.perf_counter() - start,
        notes=tuple(notes),
        details=details,
        tolerance=tolerance,
    )
    pruned.prune_report_ = report  # type: ignore[attr-defined]
    return _with_eval(model, pruned, X_eval, y_eval)


def _with_eval(model: object, pruned: object, X_eval: object, y_eval: object) -> object:
    """Add the held-out scores to ``pruned.prune_report_`` when ``X_eval, y_eval`` are given."""
    scores = eval_scores(model, pruned, X_eval, y_eval)
    if scores is not None:
        pruned.prune_report_ = replace(  # type: ignore[attr-defined]
            pruned.prune_report_,  # type: ignore[attr-defined]
            eval_score_before=scores[0],
            eval_score_after=scores[1],
        )
    return pruned


#: Methods that apply to XGBoost/LightGBM rounds (additive members).
BOOSTED_METHODS = {
    "classification": ("accuracy", "kappa", "reduce_error", "complementarity", "margin_distance",
                       "orientation", "boosting", "forward_selection", "backward_elimination",
                       "cluster", "random", "stages"),
    "regression": ("reduce_error", "forward_selection", "backward_elimination", "random",
                   "stages"),
}


def _prune_boosted(model, method, size, X_val, y_val, use_oob, members, random_state,
                   start: float, tolerance: float = DEFAULT_TOLERANCE):
    """prune_ensemble for XGBoost/LightGBM: order rounds on their raw-score contributions."""
    task = "classification" if boosted.is_classifier_model(model) else "regression"
    check_choice("method", method, BOOSTED_METHODS[task])
    if use_oob or members is not None:
        raise InvalidParameterError(
            "use_oob=True and members= are not available for XGBoost/LightGBM models")
    if X_val is None or y_val is None:
        raise InvalidParameterError("X_val and y_val are required for XGBoost/LightGBM models")
    X = np.asarray(X_val.to_numpy() if hasattr(X_val, "iloc") else X_val, dtype=np.float64)
    y = np.asarray(y_val)
    n_feat = getattr(model, "n_features_in_", X.shape[1] if X.ndim == 2 else None)
    if X.ndim != 2 or X.shape[1] != n_feat or y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ShapeMismatchError(
            f"X_val must be 2-D with {n_feat} columns and y_val 1-D with one label per row; got "
            f"X_val {X.shape}, y_val {y.shape}")
    if task == "classification":
        classes = np.asarray(model.classes_)
        codes = np.searchsorted(classes, y)
        bad = (codes >= classes.size) | (classes[np.minimum(codes, classes.size - 1)] != y)
        if bad.any():
            raise InvalidParameterError(
                f"y_val has labels not among the model's classes_ {classes.tolist()}: "
                f"{np.unique(y[bad]).tolist()[:5]}")
        y = codes
    M = boosted.member_matrix(model, X, y)
    total = M.n_members
    k = resolve_size(size, total)
    rng = np.random.default_rng(random_state)
    info = METHODS[method]
    if info.family == "clustering":
        kept = clustering.ClusterSelector(M).select(total if k is None else k)
        ordering_ = None
    else:
        out = info.func(M, total if k is None else k, rng)  # type: ignore[misc]
        ordering_ = np.asarray(out[0] if isinstance(out, tuple) else out, dtype=np.int64)
        raw = prefix_scores(M, ordering_)
        kept = ordering_[: auto_index(_to_metric(M, raw), tolerance) + 1 if k is None else k]
    kept_unique = np.unique(kept)
    pruned = boosted.keep_rounds(model, kept_unique)
    full = float(_to_metric(M, np.array([subset_score(M, np.arange(total))]))[0])
    after = float(_to_metric(M, np.array([subset_score(M, kept_unique)]))[0])
    pruned.prune_report_ = EnsemblePruneReport(
        method=method, model_class=type(model).__name__, data="validation",
        metric="accuracy" if task == "classification" else "r2", size_rule=_size_rule(size),
        n_members_before=total, n_members_after=len(kept_unique),
        n_unique_members=len(kept_unique), kept_indices=tuple(int(i) for i in kept_unique),
        score_before=full, score_after=after, curve=(),
        ordering=None if ordering_ is None else tuple(int(i) for i in ordering_),
        time_s=time.perf_counter() - start,
        notes=("members are boosting rounds; kept rounds keep their trees unchanged",),
        tolerance=tolerance,
    )
    return pruned


#: Selection-set accuracy of the full ensemble at or above which prune_ensemble warns.
NO_SIGNAL_ACCURACY = 0.99


def report_data(use_oob: bool) -> str:
    return "out-of-bag data" if use_oob else "selection data"


def _check_members(
    model: object, members: object, total: int, X_val: object, y_val: object, use_oob: bool
) -> None:
    """``members=`` must come from this very model, and replaces the pruning-data arguments."""
    how = "build it with build_member_matrix(model, X_val, y_val)"
    if not isinstance(members, MemberMatrix) or members.n_members != total:
        raise InvalidParameterError(
            f"members must be the MemberMatrix of this model ({total} members); {how}"
        )
    if members.fingerprint is None or members.fingerprint != model_fingerprint(model):
        raise InvalidParameterError(
            f"members was built from another model than this {type(model).__name__} (its "
            f"fingerprint differs); {how}"
        )
    if X_val is not None or y_val is not None or use_oob:
        raise InvalidParameterError(
            "members= replaces X_val, y_val and use_oob (it was built from its own data); "
            "pass either members or the pruning data, not both"
        )


def _size_rule(size: object) -> str:
    if isinstance(size, str):
        return "auto"
    return "count" if isinstance(size, numbers.Integral) else "fraction"


def _staged_scores(model: object, X: object, y: np.ndarray) -> tuple[np.ndarray, str]:
    """Validation score after every boosting stage (accuracy, or R² for regressors)."""
    if is_classifier(model):
        yc = encode_targets(model, y)
        classes = np.asarray(model.classes_)  # type: ignore[attr-defined]
        vals = [
            float((np.searchsorted(classes, p) == yc).mean())
            for p in model.staged_predict(X)  # type: ignore[attr-defined]
        ]
        return np.asarray(vals), "accuracy"
    yf = y.astype(np.float64)
    var = float(np.var(yf))
    vals = [
        1.0 - float(((p - yf) ** 2).mean()) / var if var > 0 else 0.0
        for p in model.staged_predict(X)  # type: ignore[attr-defined]
    ]
    return np.asarray(vals), "r2"


def _prune_boosting(
    model: object, k: int | None, size: object, X_val: object, y_val: object, start: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> object:
    X, y = check_pruning_data(model, X_val, y_val)
    total = n_members(model)
    with sklearn_errors("X_val", model):
        curve, metric = _staged_scores(model, X, y)
    length = auto_index(curve, tolerance) + 1 if k is None else k
    pruned, notes = rebuild(model, list(range(length)))
    report = EnsemblePruneReport(
        method="stages",
        model_class=type(model).__name__,
        data="validation",
        metric=metric,
        size_rule=_size_rule(size),
        n_members_before=total,
        n_members_after=length,
        n_unique_members=length,
        kept_indices=tuple(range(length)),
        score_before=float(curve[-1]),
        score_after=float(curve[length - 1]),
        curve=tuple((i + 1, float(v)) for i, v in enumerate(curve)),
        ordering=tuple(range(total)),
        time_s=time.perf_counter() - start,
        notes=tuple(notes),
        tolerance=tolerance,
    )
    pruned.prune_report_ = report  # type: ignore[attr-defined]
    return pruned


__all__ = [
    "METHODS",
    "EnsemblePruneReport",
    "MethodInfo",
    "available_methods",
    "prune_ensemble",
    "resolve_size",
]
