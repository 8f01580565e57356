"""Meta-estimators that grow a decision tree and prune it in ``fit`` (Pipeline, GridSearchCV)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from prunekit._validation import check_positive_int, sklearn_errors
from prunekit.errors import InvalidParameterError, UnsupportedModelError
from prunekit.trees.api import METHODS, prune_tree, resolve_method

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(est, *args, **kwargs):
        return est._validate_data(*args, **kwargs)


_RESERVED = ("X_val", "y_val", "X_train", "y_train", "random_state", "sample_weight", "method")


def _check_method_params(method_params: Any) -> dict[str, Any]:
    if method_params is None:
        return {}
    if not isinstance(method_params, dict) or not all(isinstance(k, str) for k in method_params):
        raise InvalidParameterError(
            f"method_params must be a dict of method parameters, got {method_params!r}"
        )
    reserved = sorted(set(method_params) & set(_RESERVED))
    if reserved:
        raise InvalidParameterError(
            f"method_params may not set {reserved}: the estimator passes the data, its own "
            "method and random_state"
        )
    return dict(method_params)


class _PrunedTreeBase(MetaEstimatorMixin, BaseEstimator):
    """Shared ``fit``: split off validation data when the method needs it, grow, prune."""

    _tree_class: type = DecisionTreeClassifier
    #: the method options this estimator takes as plain keyword parameters (None: method default)
    _method_keywords: tuple[str, ...] = ()

    def _method_options(self) -> dict[str, Any]:
        """The method's parameters: ``method_params`` merged with the keyword parameters."""
        params = _check_method_params(self.method_params)
        for key in self._method_keywords:
            value = getattr(self, key)
            if value is None:
                continue
            if key in params and params[key] is not value and params[key] != value:
                raise InvalidParameterError(
                    f"{key}={value!r} contradicts method_params[{key!r}]={params[key]!r}; "
                    "give it once"
                )
            params[key] = value
        return params

    def _needs_validation(self, name: str, params: dict[str, Any]) -> bool:
        if name == "reduced_error":
            return True
        if name == "cost_complexity":
            return params.get("select") == "validation" and params.get("ccp_alpha") is None
        if name == "pre_pruning":
            return params.get("cv") is None
        return False

    def _fit(self, X: np.ndarray, y: np.ndarray, is_classifier: bool):
        name = resolve_method(self.method)
        if not is_classifier and not METHODS[name].regression:
            raise UnsupportedModelError(f"method={name!r} is defined for classification only")
        params = self._method_options()
        if self.estimator is None:
            base = self._tree_class(random_state=self.random_state)
        else:
            if not isinstance(self.estimator, self._tree_class):
                raise UnsupportedModelError(
                    f"estimator must be a {self._tree_class.__name__}, "
                    f"got {type(self.estimator).__name__}"
                )
            base = clone(self.estimator)
        n = X.shape[0]
        X_grow, y_grow, X_val, y_val = X, y, None, None
        if self._needs_validation(name, params):
            frac = self.validation_fraction
            if not (isinstance(frac, float | int) and 0 < frac < 1):
                raise InvalidParameterError(
                    f"validation_fraction must lie in (0, 1), got {frac!r}"
                )
            if n >= 4:
                stratify = y if is_classifier and np.unique(y, return_counts=True)[1].min() >= 2 \
                    else None
                try:
                    X_grow, X_val, y_grow, y_val = train_test_split(
                        X, y, test_size=frac, random_state=self.random_state, stratify=stratify
                    )
                except ValueError:
                    X_grow, X_val, y_grow, y_val = train_test_split(
                        X, y, test_size=frac, random_state=self.random_state
                    )
            else:  # too few samples to hold any out: validate on the training data
                X_val, y_val = X, y
        notes: list[str] = []
        if X_val is X:
            notes.append(f"only {n} samples: validated on the training data")
        elif (
            name == "cost_complexity"
            and params.get("ccp_alpha") is None
            and not self._needs_validation(name, params)
        ):
            cv = params.get("cv")
            cv = 5 if cv is None else check_positive_int("cv", cv, minimum=2)
            if n < 2 * cv:
                if n >= 4:
                    params["cv"] = max(2, n // 2)
                    notes.append(f"only {n} samples: cv reduced from {cv} to {params['cv']}")
                else:
                    params = {"ccp_alpha": 0.0}
                    notes.append(f"only {n} samples: too few to choose alpha; not pruned")
        grown = base.fit(X_grow, y_grow)
        pruned = prune_tree(
            grown,
            name,
            X_val=X_val,
            y_val=y_val,
            X_train=X_grow,
            y_train=y_grow,
            random_state=self.random_state,
            **params,
        )
        if notes:
            pruned.prune_report_ = dataclasses.replace(
                pruned.prune_report_, notes=pruned.prune_report_.notes + tuple(notes)
            )
        self.estimator_ = pruned
        self.prune_report_ = pruned.prune_report_
        # what sklearn.tree.export_graphviz reads from a fitted tree
        self.tree_ = pruned.tree_
        self.n_outputs_ = pruned.n_outputs_
        return self

    @property
    def criterion(self) -> str:
        """The fitted tree's split criterion (read by ``sklearn.tree.export_graphviz``)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.criterion

    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        with sklearn_errors("X", self):
            return _validate_data(self, X, reset=False)

    def predict(self, X: Any) -> np.ndarray:
        X = self._check_X(X)
        return self.estimator_.predict(X)

    def apply(self, X: Any) -> np.ndarray:
        """Leaf index of each sample in the pruned tree."""
        X = self._check_X(X)
        return self.estimator_.apply(X)

    def decision_path(self, X: Any):
        X = self._check_X(X)
        return self.estimator_.decision_path(X)

    def get_depth(self) -> int:
        check_is_fitted(self, "estimator_")
        return self.estimator_.get_depth()

    def get_n_leaves(self) -> int:
        check_is_fitted(self, "estimator_")
        return self.estimator_.get_n_leaves()

    @property
    def feature_importances_(self) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.feature_importances_


class PrunedTreeClassifier(ClassifierMixin, _PrunedTreeBase):
    """Grow a ``DecisionTreeClassifier`` and prune it with any :mod:`prunekit.trees` method.

    Parameters
    ----------
    estimator : DecisionTreeClassifier, optional
        The (unfitted) tree to grow; cloned. Default ``DecisionTreeClassifier(random_state=...)``.
    method : str
        A :data:`prunekit.trees.METHODS` name (default ``"cost_complexity"``, alpha by 5-fold CV).
    ccp_alpha, select, cv, one_se : optional
        ``cost_complexity`` options (``cv`` also for ``pre_pruning``).
    confidence, subtree_raising, collapse : optional
        ``c45`` options (J48 defaults: 0.25, raising on, collapse on).
    m, prior : optional
        ``min_error`` options.
    value_bits : optional
        ``mdl`` option.
    param_grid : optional
        ``pre_pruning`` option.
    tol : optional
        ``simplify`` option.
    method_params : dict, optional
        The same options as a dict (``{"confidence": 0.1}``); the keyword parameters above are
        the plain way. Every option left at ``None`` takes the method's default; an option the
        method does not take is an error at ``fit``.
    validation_fraction : float
        Share of the training data held out when the method needs a validation set
        (``reduced_error``, ``pre_pruning``, ``cost_complexity`` with ``select="validation"``).
    random_state : int, optional
        Seeds the tree (when ``estimator`` is None), the split and the CV folds.

    Attributes: ``estimator_`` (the pruned, ordinary ``DecisionTreeClassifier``),
    ``prune_report_``, ``classes_``, ``n_features_in_``, ``feature_names_in_`` (fitted on a data
    frame), ``tree_``, ``n_outputs_`` and ``criterion`` (those of ``estimator_``).

    Drawing: ``sklearn.tree.export_graphviz(est)`` works directly; ``plot_tree`` and
    ``export_text`` accept only scikit-learn's own tree classes, so pass the pruned tree:
    ``export_text(est.estimator_, feature_names=list(est.feature_names_in_))``.
    """

    _tree_class = DecisionTreeClassifier
    _method_keywords = ("ccp_alpha", "select", "cv", "one_se", "confidence", "subtree_raising",
                        "collapse", "m", "prior", "value_bits", "param_grid", "tol")

    def __init__(
        self,
        estimator: Any = None,
        method: str = "cost_complexity",
        *,
        ccp_alpha: float | None = None,
        select: str | None = None,
        cv: int | None = None,
        one_se: bool | None = None,
        confidence: float | None = None,
        subtree_raising: bool | None = None,
        collapse: bool | None = None,
        m: float | None = None,
        prior: Any = None,
        value_bits: float | None = None,
        param_grid: Any = None,
        tol: float | None = None,
        method_params: dict[str, Any] | None = None,
        validation_fraction: float = 0.25,
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.ccp_alpha = ccp_alpha
        self.select = select
        self.cv = cv
        self.one_se = one_se
        self.confidence = confidence
        self.subtree_raising = subtree_raising
        self.collapse = collapse
        self.m = m
        self.prior = prior
        self.value_bits = value_bits
        self.param_grid = param_grid
        self.tol = tol
        self.method_params = method_params
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> PrunedTreeClassifier:
        with sklearn_errors("X, y", self):
            X, y = _validate_data(self, X, y)
            check_classification_targets(y)
        self._fit(X, y, is_classifier=True)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._check_X(X)
        return self.estimator_.predict_proba(X)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        X = self._check_X(X)
        return self.estimator_.predict_log_proba(X)


class PrunedTreeRegressor(RegressorMixin, _PrunedTreeBase):
    """Grow a ``DecisionTreeRegressor`` and prune it (methods defined for regression only).

    Same parameters as :class:`PrunedTreeClassifier` less the classification-only options;
    ``estimator`` is a ``DecisionTreeRegressor``. Drawing as for the classifier:
    ``export_graphviz(est)``, ``plot_tree(est.estimator_)``, ``export_text(est.estimator_)``.
    """

    _tree_class = DecisionTreeRegressor
    _method_keywords = ("ccp_alpha", "select", "cv", "one_se", "param_grid", "tol")

    def __init__(
        self,
        estimator: Any = None,
        method: str = "cost_complexity",
        *,
        ccp_alpha: float | None = None,
        select: str | None = None,
        cv: int | None = None,
        one_se: bool | None = None,
        param_grid: Any = None,
        tol: float | None = None,
        method_params: dict[str, Any] | None = None,
        validation_fraction: float = 0.25,
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.ccp_alpha = ccp_alpha
        self.select = select
        self.cv = cv
        self.one_se = one_se
        self.param_grid = param_grid
        self.tol = tol
        self.method_params = method_params
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> PrunedTreeRegressor:
        with sklearn_errors("X, y", self):
            X, y = _validate_data(self, X, y, y_numeric=True)
        self._fit(X, y, is_classifier=False)
        return self
