"""prune_members (pruned-CART bagging) and the no-signal warning."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import BaggingClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from prunekit.ensembles import prune_ensemble, prune_members
from prunekit.errors import InvalidParameterError, UnsupportedModelError


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(400, 10, n_informative=5, flip_y=0.15, random_state=0)
    return X, y


def test_prune_members_ccp_on_oob_bagging(data):
    X, y = data
    bag = BaggingClassifier(DecisionTreeClassifier(), n_estimators=10, max_features=0.7,
                            random_state=0).fit(X, y)
    small = prune_members(bag, X_train=X, y_train=y)
    assert type(small) is BaggingClassifier and len(small.estimators_) == 10
    for before, after in zip(bag.estimators_, small.estimators_, strict=True):
        assert after.get_n_leaves() <= before.get_n_leaves()
        assert after.prune_report_.method == "cost_complexity"
    assert small.members_report_["mean_leaves_after"] < small.members_report_["mean_leaves_before"]
    assert small.members_report_["data"] == "oob"
    assert np.mean(small.predict(X) == y) < 1.0  # no longer memorises its training set
    # the input is untouched and the result still selects on OOB data
    assert bag.estimators_[0].get_n_leaves() > small.estimators_[0].get_n_leaves()
    sub = prune_ensemble(small, "reduce_error", size=0.5, X_val=X, y_val=y, use_oob=True)
    assert sub.n_estimators == 5


def test_prune_members_forest_without_data_and_errors(data):
    X, y = data
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    c45 = prune_members(rf, "c45")
    assert all(t.prune_report_.method == "c45" for t in c45.estimators_)
    assert np.mean(c45.predict(X) == rf.predict(X)) > 0.8
    with pytest.raises(InvalidParameterError, match="not both"):
        prune_members(rf, X_train=X, y_train=y, X_val=X, y_val=y)
    with pytest.raises(InvalidParameterError):
        prune_members(rf, "reduced_error")  # needs data
    with pytest.raises(UnsupportedModelError):
        prune_members(BaggingClassifier(n_estimators=2).fit(X, y).estimators_[0])


def test_warns_when_selection_set_gives_no_signal(data):
    X, y = data
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="no signal|almost no signal"):
        pruned = prune_ensemble(rf, "reduce_error", size=0.2, X_val=X, y_val=y)
    assert any("signal" in n for n in pruned.prune_report_.notes)
    pruned_cart = prune_members(rf, X_train=X, y_train=y)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prune_ensemble(pruned_cart, "reduce_error", size=0.2, X_val=X, y_val=y, use_oob=True)
