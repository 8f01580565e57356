"""Pruning by hand (nodes=, where=), lossless simplify, forests, J48 collapse."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.errors import InvalidParameterError, UnsupportedModelError
from prunekit.trees import NodeInfo, prune_tree


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(600, 8, n_informative=4, flip_y=0.2, random_state=0)
    return X, y


def _random(n_features, seed=1):
    return np.random.default_rng(seed).normal(size=(4000, n_features)) * 3


def test_nodes_collapses_exactly_those_subtrees(data):
    X, y = data
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    node = int(tree.tree_.children_left[0])
    pruned = prune_tree(tree, nodes=[node])
    left_size = int(np.sum(tree.decision_path(X)[:, node].toarray()))
    assert left_size > 0
    # the left subtree is now one leaf: every sample going left lands in the same leaf
    went_left = tree.decision_path(X)[:, node].toarray().ravel() > 0
    assert np.unique(pruned.apply(X[went_left])).size == 1
    assert np.array_equal(pruned.apply(X[~went_left]) > 0, np.ones((~went_left).sum(), bool))
    assert pruned.prune_report_.method == "nodes"
    assert tree.tree_.node_count > pruned.tree_.node_count


def test_where_predicate_gets_node_info(data):
    X, y = data
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    seen = []

    def pick(info):
        seen.append(info)
        return info.n_samples < 30

    pruned = prune_tree(tree, where=pick)
    assert all(isinstance(i, NodeInfo) and not i.is_leaf for i in seen)
    assert {i.id for i in seen} == set(np.flatnonzero(tree.tree_.children_left >= 0))
    internal = pruned.tree_.children_left >= 0
    assert pruned.tree_.n_node_samples[internal].min() >= 30
    depth = prune_tree(tree, where=lambda i: i.depth >= 3)
    assert depth.get_depth() == 3


def test_nodes_where_contradictions(data):
    X, y = data
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="nodes"):
        prune_tree(tree, "c45", nodes=[0])
    with pytest.raises(InvalidParameterError, match="not both"):
        prune_tree(tree, nodes=[0], where=lambda i: True)
    with pytest.raises(InvalidParameterError, match="node ids"):
        prune_tree(tree, nodes=[999])
    with pytest.raises(InvalidParameterError, match="callable"):
        prune_tree(tree, where="depth > 2")


def test_simplify_classifier_keeps_predictions(data):
    X, y = data
    tree = DecisionTreeClassifier(min_samples_leaf=10, random_state=0).fit(X, y)
    simple = prune_tree(tree, "simplify")
    assert simple.get_n_leaves() < tree.get_n_leaves()
    R = _random(X.shape[1])
    assert np.array_equal(simple.predict(R), tree.predict(R))
    assert np.array_equal(simple.predict_proba(R).argmax(1), tree.predict_proba(R).argmax(1))
    # idempotent: nothing left to merge
    again = prune_tree(simple, "simplify")
    assert again.tree_.node_count == simple.tree_.node_count


def test_simplify_regressor_exact_and_tolerance():
    X, y = make_regression(500, 5, random_state=0)
    y = np.round(y / 100)
    tree = DecisionTreeRegressor(min_samples_leaf=5, random_state=0).fit(X, y)
    R = _random(5)
    exact = prune_tree(tree, "simplify")
    assert np.array_equal(exact.predict(R), tree.predict(R))
    loose = prune_tree(tree, "simplify", tol=1.0)
    assert loose.get_n_leaves() < tree.get_n_leaves()
    assert np.abs(loose.predict(R) - tree.predict(R)).max() <= 1.0


def test_simplify_as_last_step_of_a_method(data):
    X, y = data
    tree = DecisionTreeClassifier(min_samples_leaf=5, random_state=0).fit(X, y)
    plain = prune_tree(tree, "pessimistic")
    both = prune_tree(tree, "pessimistic", simplify=True)
    R = _random(X.shape[1])
    assert np.array_equal(plain.predict(R), both.predict(R))
    assert both.get_n_leaves() <= plain.get_n_leaves()
    assert "simplified" in both.prune_report_.params


def test_forest_nodes_where_and_simplify(data):
    X, y = data
    forest = RandomForestClassifier(n_estimators=8, min_samples_leaf=5, random_state=0).fit(X, y)
    shallow = prune_tree(forest, where=lambda i: i.depth >= 2)
    assert type(shallow) is RandomForestClassifier
    assert all(t.get_depth() <= 2 for t in shallow.estimators_)
    assert all(t.get_depth() > 2 for t in forest.estimators_)  # input untouched
    R = _random(X.shape[1])
    simple = prune_tree(forest, "simplify")
    # each tree predicts as before; the forest's soft vote averages the merged probabilities
    for a, b in zip(simple.estimators_, forest.estimators_, strict=True):
        assert np.array_equal(a.predict(R), b.predict(R))
    assert sum(t.tree_.node_count for t in simple.estimators_) < sum(
        t.tree_.node_count for t in forest.estimators_)
    per_tree = prune_tree(forest, nodes={0: [0]})
    assert per_tree.estimators_[0].tree_.node_count == 1
    assert per_tree.estimators_[1].tree_.node_count == forest.estimators_[1].tree_.node_count
    with pytest.raises(UnsupportedModelError, match="prune_members"):
        prune_tree(forest, "c45")
    with pytest.raises(InvalidParameterError, match="one per tree"):
        prune_tree(forest, nodes=[0])


def test_c45_j48_collapse_step():
    # a split whose two leaves predict the same class with the same errors: J48 collapses it
    X = np.array([[0.0], [1], [2], [3], [4], [5]])
    y = np.array([0, 0, 1, 0, 0, 0])
    tree = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    assert tree.tree_.node_count == 3
    with_collapse = prune_tree(tree, "c45")
    assert with_collapse.tree_.node_count == 1
    assert with_collapse.prune_report_.params["collapsed"] == 1
    # a useful split is kept by collapse (fewer training errors below)
    X2 = np.arange(40.0)[:, None]
    y2 = (X2[:, 0] >= 20).astype(int)
    kept = prune_tree(DecisionTreeClassifier(random_state=0).fit(X2, y2), "c45")
    assert kept.tree_.node_count == 3


def test_c45_raises_by_default_when_train_given(data):
    X, y = data
    tree = DecisionTreeClassifier(min_samples_leaf=2, criterion="entropy", random_state=0).fit(X, y)
    auto = prune_tree(tree, "c45", X_train=X, y_train=y)
    assert auto.prune_report_.params["subtree_raising"] is True
    alone = prune_tree(tree, "c45")
    assert alone.prune_report_.params["subtree_raising"] is False
    assert any("X_train" in n for n in alone.prune_report_.notes)
