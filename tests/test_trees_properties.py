"""Property tests for prunekit.trees over random data sets and trees (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.trees import METHODS, prune_tree

SETTINGS = settings(
    max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _data(seed: int, n: int, n_features: int, n_classes: int, noise: float):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    X[:, 0] = np.round(X[:, 0], 1)  # ties in a feature exercise threshold handling
    score = X[:, 0] + 0.5 * X[:, 1] ** 2
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    flip = rng.random(n) < noise
    y[flip] = rng.integers(0, n_classes, flip.sum())
    return X, y


def _walk(model, X):
    t = model.tree_
    Xf = np.asarray(X, dtype=np.float32)
    leaves = np.empty(len(Xf), dtype=int)
    for r, x in enumerate(Xf):
        i = 0
        while t.children_left[i] != -1:
            i = t.children_left[i] if x[t.feature[i]] <= t.threshold[i] else t.children_right[i]
        leaves[r] = i
    return leaves


def _reachable(model) -> int:
    t = model.tree_
    seen, stack = 0, [0]
    while stack:
        i = stack.pop()
        seen += 1
        if t.children_left[i] != -1:
            stack += [t.children_left[i], t.children_right[i]]
    return seen


CASES = st.tuples(
    st.integers(0, 10_000),  # seed
    st.integers(20, 120),  # samples
    st.integers(2, 4),  # features
    st.integers(2, 4),  # classes
    st.sampled_from([0.0, 0.1, 0.3]),  # label noise
    st.sampled_from(["gini", "entropy"]),
)


@SETTINGS
@given(CASES)
def test_every_method_shrinks_and_predicts_by_walking(case):
    seed, n, d, k, noise, criterion = case
    X, y = _data(seed, n, d, k, noise)
    h = n // 2
    model = DecisionTreeClassifier(random_state=seed, criterion=criterion).fit(X[:h], y[:h])
    for method in METHODS:
        pruned = prune_tree(model, method, X_val=X[h:], y_val=y[h:], X_train=X[:h],
                            y_train=y[:h], **({"cv": 3} if method == "cost_complexity" else {}))
        assert pruned.get_n_leaves() <= model.get_n_leaves(), method
        assert pruned.tree_.node_count == _reachable(pruned), method
        leaves = _walk(pruned, X)
        np.testing.assert_array_equal(pruned.apply(X), leaves)
        expected = pruned.classes_[pruned.tree_.value[leaves, 0].argmax(axis=1)]
        np.testing.assert_array_equal(pruned.predict(X), expected)
    raised = prune_tree(model, "c45", subtree_raising=True, X_train=X[:h], y_train=y[:h])
    assert raised.get_n_leaves() <= model.get_n_leaves()
    assert raised.tree_.node_count == _reachable(raised)
    np.testing.assert_array_equal(raised.apply(X), _walk(raised, X))


@SETTINGS
@given(CASES)
def test_reduced_error_never_increases_validation_error(case):
    seed, n, d, k, noise, criterion = case
    X, y = _data(seed, n, d, k, noise)
    h = n // 2
    model = DecisionTreeClassifier(random_state=seed, criterion=criterion).fit(X[:h], y[:h])
    pruned = prune_tree(model, "reduced_error", X_val=X[h:], y_val=y[h:])
    assert np.sum(pruned.predict(X[h:]) != y[h:]) <= np.sum(model.predict(X[h:]) != y[h:])
    # and it is a subtree: every surviving split is one of the original splits
    orig = {(f, t) for f, t in zip(model.tree_.feature, model.tree_.threshold, strict=True)}
    kept = set(zip(pruned.tree_.feature, pruned.tree_.threshold, strict=True))
    assert kept <= orig


@SETTINGS
@given(st.integers(0, 10_000), st.integers(30, 120))
def test_regression_rep_never_increases_validation_mse(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X[:, 0] + rng.normal(scale=0.5, size=n)
    h = n // 2
    model = DecisionTreeRegressor(random_state=seed).fit(X[:h], y[:h])
    pruned = prune_tree(model, "reduced_error", X_val=X[h:], y_val=y[h:])
    sse = lambda m: float(np.sum((m.predict(X[h:]) - y[h:]) ** 2))  # noqa: E731
    assert sse(pruned) <= sse(model) + 1e-9
    np.testing.assert_allclose(pruned.predict(X), pruned.tree_.value[_walk(pruned, X), 0, 0])


@pytest.mark.parametrize("seed", range(3))
def test_ccp_path_is_monotone_and_nested(seed):
    X, y = _data(seed, 150, 3, 3, 0.2)
    model = DecisionTreeClassifier(random_state=seed).fit(X, y)
    from prunekit.trees import cost_complexity_path

    path = cost_complexity_path(model)
    assert np.all(np.diff(path["impurities"]) >= -1e-12)
    leaves = [prune_tree(model, "ccp", ccp_alpha=float(a)).get_n_leaves()
              for a in path["ccp_alphas"]]
    assert leaves == sorted(leaves, reverse=True) and leaves[-1] == 1
