"""PrunedTreeClassifier / PrunedTreeRegressor: scikit-learn estimator checks, Pipeline, search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from prunekit.errors import UnsupportedModelError
from prunekit.trees import PrunedTreeClassifier, PrunedTreeRegressor, TreePruneReport


@parametrize_with_checks(
    [
        PrunedTreeClassifier(random_state=0),
        PrunedTreeClassifier(method="reduced_error", random_state=0),
        PrunedTreeRegressor(random_state=0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_pipeline_and_grid_search():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), PrunedTreeClassifier(random_state=0))
    search = GridSearchCV(
        pipe,
        {"prunedtreeclassifier__method": ["c45", "pessimistic", "mdl"]},
        cv=3,
    ).fit(X, y)
    best = search.best_estimator_[-1]
    assert isinstance(best.estimator_, DecisionTreeClassifier)
    assert isinstance(best.prune_report_, TreePruneReport)
    assert search.best_score_ > 0.85
    assert best.get_n_leaves() == best.estimator_.get_n_leaves()
    assert best.predict_proba(X[:5]).shape == (5, 2)


def test_classifier_methods_and_params():
    X, y = load_breast_cancer(return_X_y=True)
    full = DecisionTreeClassifier(random_state=0).fit(X, y)
    for method, params in [("c45", {"confidence": 0.1}), ("reduced_error", None),
                           ("cost_complexity", {"one_se": True}), ("pre_pruning", {"cv": 3})]:
        est = PrunedTreeClassifier(method=method, method_params=params, random_state=0).fit(X, y)
        assert est.get_n_leaves() < full.get_n_leaves(), method
        assert est.prune_report_.method == method
        np.testing.assert_array_equal(est.apply(X), est.estimator_.apply(X))
        assert est.feature_importances_.shape == (30,)


def test_regressor_and_unsupported_method():
    X, y = load_diabetes(return_X_y=True)
    est = PrunedTreeRegressor(method="reduced_error", random_state=0).fit(X, y)
    assert isinstance(est.estimator_, DecisionTreeRegressor)
    assert est.get_n_leaves() < DecisionTreeRegressor(random_state=0).fit(X, y).get_n_leaves()
    with pytest.raises(UnsupportedModelError, match="classification only"):
        PrunedTreeRegressor(method="c45").fit(X, y)
    with pytest.raises(UnsupportedModelError, match="DecisionTreeRegressor"):
        PrunedTreeRegressor(estimator=DecisionTreeClassifier()).fit(X, y)
