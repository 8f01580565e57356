"""Leaf refinement (LR) and joint L1 selection (LR+L1)."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import BaggingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import log_loss
from sklearn.tree import DecisionTreeClassifier

from prunekit.ensembles import prune_lr_l1, refine_leaves
from prunekit.errors import InvalidParameterError, UnsupportedModelError


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(500, 8, n_informative=5, n_classes=3, random_state=0)


def test_refine_lowers_log_loss_and_keeps_structure(clf_data):
    X, y = clf_data
    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    refined = refine_leaves(rf, X, y, epochs=60)
    assert type(refined) is RandomForestClassifier
    assert log_loss(y, refined.predict_proba(X)) < log_loss(y, rf.predict_proba(X)) - 0.01
    for a, b in zip(rf.estimators_, refined.estimators_, strict=True):
        assert a.tree_.node_count == b.tree_.node_count
        assert np.array_equal(a.apply(X.astype(np.float32)), b.apply(X.astype(np.float32)))
    proba = refined.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba >= 0).all()
    # the input keeps its leaves
    assert rf.estimators_[0].tree_.value is not refined.estimators_[0].tree_.value


def test_refine_regressor_least_squares():
    X, y = make_regression(300, 5, noise=10, random_state=0)
    rf = RandomForestRegressor(n_estimators=8, max_depth=3, random_state=0).fit(X, y)
    refined = refine_leaves(rf, X, y)
    mse = lambda m: np.mean((m.predict(X) - y) ** 2)  # noqa: E731
    assert mse(refined) < 0.9 * mse(rf)


def test_refine_bagging_with_feature_subsets(clf_data):
    X, y = clf_data
    bag = BaggingClassifier(DecisionTreeClassifier(max_depth=3), n_estimators=6,
                            max_features=0.6, random_state=0).fit(X, y)
    refined = refine_leaves(bag, X, y, epochs=40)
    assert log_loss(y, refined.predict_proba(X)) < log_loss(y, bag.predict_proba(X))


def test_lr_l1_selects_size_members(clf_data):
    X, y = clf_data
    rf = RandomForestClassifier(n_estimators=12, max_depth=4, random_state=0).fit(X, y)
    small = prune_lr_l1(rf, X, y, size=4, epochs=40)
    assert type(small) is RandomForestClassifier and len(small.estimators_) == 4
    assert small.lr_l1_weights_.shape == (12,)
    kept = small.lr_l1_kept_
    assert set(np.argsort(-small.lr_l1_weights_)[:4]) == set(kept.tolist())
    assert np.mean(small.predict(X) == y) > 0.7


def test_refine_errors(clf_data):
    X, y = clf_data
    rf = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError):
        refine_leaves(rf, X, y, epochs=0)
    with pytest.raises(UnsupportedModelError):
        refine_leaves(DecisionTreeClassifier().fit(X, y), X, y)
    with pytest.raises(InvalidParameterError):
        prune_lr_l1(rf, X, y, size="auto")
