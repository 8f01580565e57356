"""Weighted trees, contradictory arguments, deep trees, single leaves and the fast pre-pruning."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.trees import PrunedTreeClassifier, prune_tree
from prunekit.trees._sktree import RawTree, read_tree, write_tree
from prunekit.trees._structure import build_structure, compact


@pytest.fixture(scope="module")
def skewed():
    return make_classification(600, 6, weights=[0.8], flip_y=0.1, random_state=0)


def _same_tree(a, b) -> None:
    assert a.tree_.node_count == b.tree_.node_count
    np.testing.assert_array_equal(a.tree_.feature, b.tree_.feature)
    np.testing.assert_allclose(a.tree_.threshold, b.tree_.threshold)
    np.testing.assert_allclose(a.tree_.value, b.tree_.value, atol=1e-12)


# ------------------------------------------------------------------ weights


@pytest.mark.parametrize("method,kw", [
    ("c45", {}), ("c45", {"subtree_raising": True}), ("pessimistic", {}), ("min_error", {}),
    ("mdl", {}),
])
def test_sample_weight_tree_prunes_like_the_replicated_data(skewed, method, kw):
    X, y = skewed
    sw = np.random.default_rng(0).integers(1, 4, size=y.shape[0])
    weighted = DecisionTreeClassifier(random_state=0).fit(X, y, sample_weight=sw.astype(float))
    Xr, yr = np.repeat(X, sw, axis=0), np.repeat(y, sw)
    replicated = DecisionTreeClassifier(random_state=0).fit(Xr, yr)
    _same_tree(weighted, replicated)
    a = prune_tree(weighted, method, X_train=X, y_train=y, sample_weight=sw, **kw)
    b = prune_tree(replicated, method, X_train=Xr, y_train=yr, **kw)
    _same_tree(a, b)
    np.testing.assert_allclose(a.tree_.weighted_n_node_samples, b.tree_.weighted_n_node_samples)


def test_class_weight_tree_raising_keeps_the_weighted_class_balance(skewed):
    X, y = skewed
    cw = {0: 1, 1: 3}
    weighted = DecisionTreeClassifier(class_weight=cw, random_state=0).fit(X, y)
    rep = np.where(y == 1, 3, 1)
    replicated = DecisionTreeClassifier(random_state=0).fit(np.repeat(X, rep, 0), np.repeat(y, rep))
    a = prune_tree(weighted, "c45", subtree_raising=True, X_train=X, y_train=y)
    b = prune_tree(replicated, "c45", subtree_raising=True, X_train=np.repeat(X, rep, 0),
                   y_train=np.repeat(y, rep))
    _same_tree(a, b)
    # with class_weight="balanced" raising keeps the minority share of the plain C4.5 pruning
    bal = DecisionTreeClassifier(class_weight="balanced", random_state=0).fit(X, y)
    plain = prune_tree(bal, "c45").predict(X).mean()
    raised = prune_tree(bal, "c45", subtree_raising=True, X_train=X, y_train=y)
    assert abs(raised.predict(X).mean() - plain) < 0.02
    root = bal.tree_.weighted_n_node_samples[0]
    assert raised.tree_.weighted_n_node_samples[0] == pytest.approx(root)


def test_refitting_methods_need_the_sample_weight_a_tree_was_grown_with(skewed):
    X, y = skewed
    sw = np.random.default_rng(1).uniform(0.5, 2.0, size=y.shape[0])
    tree = DecisionTreeClassifier(random_state=0, max_depth=6).fit(X, y, sample_weight=sw)
    for method, kw in [("cost_complexity", {"select": "cv"}), ("pre_pruning", {"cv": 3})]:
        with pytest.raises(InvalidParameterError, match="sample_weight"):
            prune_tree(tree, method, X_train=X, y_train=y, **kw)
        prune_tree(tree, method, X_train=X, y_train=y, sample_weight=sw, **kw)
    with pytest.raises(ShapeMismatchError, match="sample_weight"):
        prune_tree(tree, "c45", subtree_raising=True, X_train=X, y_train=y)
    with pytest.raises(InvalidParameterError, match="sample_weight"):
        prune_tree(tree, "c45", X_train=X, y_train=y, sample_weight=-sw)


# ------------------------------------------------------------------ contradictory arguments


@pytest.mark.parametrize("kw", [
    {"ccp_alpha": float("nan")}, {"ccp_alpha": float("inf")}, {"ccp_alpha": -0.1},
    {"ccp_alpha": "0.1"}, {"ccp_alpha": 0.01, "one_se": True}, {"ccp_alpha": 0.01, "cv": 3},
    {"ccp_alpha": 0.01, "select": "cv"}, {"select": "validation", "cv": 3},
    {"one_se": "yes"}, {"cv": 1},
])
def test_cost_complexity_rejects_bad_or_contradictory_arguments(skewed, kw):
    X, y = skewed
    tree = DecisionTreeClassifier(random_state=0, max_depth=5).fit(X, y)
    with pytest.raises(InvalidParameterError):
        prune_tree(tree, "cost_complexity", X_val=X, y_val=y, X_train=X, y_train=y, **kw)


def test_auto_selection_uses_cv_when_cv_is_given(skewed):
    X, y = skewed
    tree = DecisionTreeClassifier(random_state=0, max_depth=5).fit(X, y)
    p = prune_tree(tree, "ccp", X_val=X, y_val=y, X_train=X, y_train=y, cv=3)
    assert p.prune_report_.params["select"] == "cv"


@pytest.mark.parametrize("kw", [
    {"random_state": -1}, {"random_state": 1.5}, {"m": float("nan")}, {"m": float("inf")},
])
def test_other_bad_arguments(skewed, kw):
    X, y = skewed
    tree = DecisionTreeClassifier(random_state=0, max_depth=5).fit(X, y)
    method = "min_error" if "m" in kw else "cost_complexity"
    with pytest.raises(InvalidParameterError):
        prune_tree(tree, method, X_train=X, y_train=y, **kw)


@pytest.mark.parametrize("grid", [
    {"max_depth": []}, {"max_depth": 3}, {"max_depth": [0]}, [{"max_depth": [2]}, 5], "x",
    {"bogus": [1]},
])
def test_pre_pruning_rejects_bad_grids(skewed, grid):
    X, y = skewed
    tree = DecisionTreeClassifier(random_state=0, max_depth=5).fit(X, y)
    with pytest.raises(InvalidParameterError, match="param_grid"):
        prune_tree(tree, "pre_pruning", X_train=X, y_train=y, param_grid=grid)


# ------------------------------------------------------------------ deep trees, single leaves


def chain_tree(depth: int):
    """A hand-built tree of the given depth (a chain) and the cases it was 'grown' on."""
    n = 2 * depth + 1
    X = np.arange(depth + 1, dtype=float)[:, None]
    y = (np.arange(depth + 1) * 7 % 3 == 0).astype(int)
    left, right = np.full(n, -1), np.full(n, -1)
    feat, thr = np.full(n, -2), np.full(n, -2.0)
    counts = np.zeros((n, 2))
    for d in range(depth):
        left[2 * d], right[2 * d], feat[2 * d], thr[2 * d] = 2 * d + 1, 2 * d + 2, 0, d + 0.5
        counts[2 * d + 1, y[d]] = 1
    counts[n - 1, y[depth]] = 1
    for d in reversed(range(depth)):
        counts[2 * d] = counts[2 * d + 1] + counts[2 * d + 2]
    w = counts.sum(1)
    p = counts / w[:, None]
    base = DecisionTreeClassifier().fit(X[:4], [0, 1, 0, 1])
    raw = RawTree(left, right, feat, thr, 1 - (p**2).sum(1), w.astype(np.intp), w,
                  np.zeros(n, np.uint8), p[:, None, :])
    return write_tree(base, raw), X, y


def test_every_method_handles_a_tree_deeper_than_the_recursion_limit():
    model, X, y = chain_tree(1500)
    assert model.get_depth() == 1500
    raised = prune_tree(model, "c45", subtree_raising=True, X_train=X, y_train=y)
    assert raised.get_depth() < 1500
    for method in ("c45", "pessimistic", "min_error", "mdl", "reduced_error", "cost_complexity"):
        p = prune_tree(model, method, X_val=X, y_val=y, X_train=X, y_train=y)
        np.testing.assert_array_equal(p.apply(X), p.apply(X))  # a usable sklearn tree


def test_pre_pruning_a_single_leaf_returns_it_with_a_note():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.zeros(20, dtype=int)
    leaf = DecisionTreeClassifier().fit(X, y)
    p = prune_tree(leaf, "pre_pruning", X_train=X, y_train=y, X_val=X, y_val=y)
    assert p.tree_.node_count == 1
    assert any("single leaf" in n for n in p.prune_report_.notes)
    est = PrunedTreeClassifier(method="pre_pruning", random_state=0).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), y)
    reg = DecisionTreeRegressor().fit(X, np.ones(20))
    assert prune_tree(reg, "pre_pruning", X_train=X, y_train=np.ones(20)).tree_.node_count == 1


# ------------------------------------------------------------------ pre-pruning by truncation


@pytest.mark.parametrize("cand", [
    {"max_depth": 3}, {"min_samples_split": 40}, {"max_leaf_nodes": 9},
    {"min_impurity_decrease": 0.004}, {"max_depth": 5, "max_leaf_nodes": 12},
])
def test_truncating_the_grown_tree_equals_regrowing_it(cand):
    from prunekit.trees.pre_pruning import truncation_mask

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(500, 1))  # one feature: no ties between features to break at random
    y = (np.sin(12 * X[:, 0]) + rng.normal(scale=0.6, size=500) > 0).astype(int)
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    struct = build_structure(read_tree(tree), True)
    cut = write_tree(tree, compact(struct.raw, truncation_mask(struct, cand)))
    regrown = clone(tree).set_params(**cand).fit(X, y)
    assert cut.tree_.node_count == regrown.tree_.node_count
    np.testing.assert_array_equal(cut.predict(X), regrown.predict(X))


def test_pre_pruning_does_not_refit_on_the_grown_data(skewed, monkeypatch):
    X, y = skewed
    tree = DecisionTreeClassifier(random_state=0).fit(X[:400], y[:400])
    calls = []
    original = DecisionTreeClassifier.fit
    monkeypatch.setattr(DecisionTreeClassifier, "fit",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    p = prune_tree(tree, "pre_pruning", X_train=X[:400], y_train=y[:400], X_val=X[400:],
                   y_val=y[400:])
    assert calls == []
    assert p.prune_report_.params["search"] == "truncation of the grown tree"
    assert p.get_n_leaves() < tree.get_n_leaves()
    chosen = {k: v for k, v in p.prune_report_.params.items() if k in p.get_params()}
    assert all(p.get_params()[k] == v for k, v in chosen.items())
