"""prunekit.trees: compact rebuild, version guard, every method on hand-checkable trees, errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, export_text
from sklearn.tree._tree import Tree

from prunekit.errors import (
    InvalidParameterError,
    NotFittedError,
    ShapeMismatchError,
    UnsupportedModelError,
)
from prunekit.trees import (
    METHODS,
    TreePruneReport,
    _sktree,
    collapse_nodes,
    cost_complexity_path,
    prune_tree,
)
from prunekit.trees._sktree import RawTree, read_tree, write_tree
from prunekit.trees.error_based import c45_added_errors
from prunekit.trees.mdl import stochastic_complexity

# ----------------------------------------------------------------------------- helpers


def make_tree(spec, n_features: int = 2, n_classes: int = 2) -> DecisionTreeClassifier:
    """A fitted DecisionTreeClassifier with a hand-written structure.

    ``spec`` is a list of class counts (a leaf) or ``(feature, threshold, left, right)``.
    """
    rows: list[dict] = []

    def add(node) -> tuple[int, np.ndarray]:
        i = len(rows)
        rows.append({})
        if isinstance(node, list):
            counts = np.asarray(node, dtype=float)
            rows[i] = dict(left=-1, right=-1, feature=-2, threshold=-2.0, counts=counts)
            return i, counts
        f, thr, lspec, rspec = node
        li, lc = add(lspec)
        ri, rc = add(rspec)
        counts = lc + rc
        rows[i] = dict(left=li, right=ri, feature=f, threshold=thr, counts=counts)
        return i, counts

    add(spec)
    counts = np.array([r["counts"] for r in rows])
    n = counts.sum(axis=1)
    p = counts / n[:, None]
    X = np.random.default_rng(0).normal(size=(2 * n_classes, n_features))
    base = DecisionTreeClassifier(random_state=0).fit(X, np.arange(2 * n_classes) % n_classes)
    raw = RawTree(
        left=np.array([r["left"] for r in rows]),
        right=np.array([r["right"] for r in rows]),
        feature=np.array([r["feature"] for r in rows]),
        threshold=np.array([r["threshold"] for r in rows], dtype=float),
        impurity=1.0 - (p**2).sum(axis=1),
        n_node_samples=n.astype(np.intp),
        weighted_n_node_samples=n,
        missing_go_to_left=np.zeros(len(rows), dtype=np.uint8),
        value=p[:, None, :],
    )
    return write_tree(base, raw)


def walk(model, X: np.ndarray) -> np.ndarray:
    """Leaf reached by each row, walking ``tree_`` arrays in plain Python (float32 like sklearn)."""
    t = model.tree_
    Xf = np.asarray(X, dtype=np.float32)
    out = []
    for x in Xf:
        i = 0
        while t.children_left[i] != -1:
            i = t.children_left[i] if x[t.feature[i]] <= t.threshold[i] else t.children_right[i]
        out.append(i)
    return np.array(out)


def reachable(model) -> int:
    t = model.tree_
    seen, stack = 0, [0]
    while stack:
        i = stack.pop()
        seen += 1
        if t.children_left[i] != -1:
            stack += [t.children_left[i], t.children_right[i]]
    return seen


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y, DecisionTreeClassifier(random_state=0).fit(X, y)


# ----------------------------------------------------------------------------- version guard


def test_sklearn_version_is_in_supported_range():
    low, high = _sktree.SUPPORTED_SKLEARN
    assert low <= _sktree.sklearn_version() < high, sklearn.__version__


def test_private_tree_state_layout_is_unchanged(iris):
    """Fails loudly if scikit-learn changes the Tree state that _sktree rebuilds."""
    state = iris[2].tree_.__getstate__()
    assert tuple(state) == _sktree.STATE_KEYS
    assert tuple(state["nodes"].dtype.names) == _sktree.NODE_FIELDS
    assert state["values"].shape == (iris[2].tree_.node_count, 1, 3)
    # classifier values are class fractions (sklearn >= 1.4), so counts = weighted_n * value
    np.testing.assert_allclose(state["values"].sum(axis=2), 1.0)
    assert Tree.__reduce__(iris[2].tree_)[0] is Tree


def test_version_guard_raises_outside_range(monkeypatch, iris):
    monkeypatch.setattr(sklearn, "__version__", "1.99.0")
    with pytest.raises(UnsupportedModelError, match="supports scikit-learn"):
        prune_tree(iris[2], "pessimistic")


# ----------------------------------------------------------------------------- compact rebuild


def test_collapse_rebuilds_a_compact_working_estimator(iris):
    X, y, model = iris
    internal = np.flatnonzero(model.tree_.children_left != -1)
    pruned = collapse_nodes(model, internal[2])
    t = pruned.tree_
    assert type(pruned) is DecisionTreeClassifier and pruned is not model
    assert t.node_count == reachable(pruned) < model.tree_.node_count
    assert model.tree_.node_count == 17  # input untouched
    leaves = walk(pruned, X)
    np.testing.assert_array_equal(pruned.apply(X), leaves)
    np.testing.assert_array_equal(pruned.predict(X), pruned.classes_[t.value[leaves, 0].argmax(1)])
    np.testing.assert_allclose(pruned.predict_proba(X), t.value[leaves, 0])
    path = pruned.decision_path(X).toarray()
    assert path.shape == (X.shape[0], t.node_count) and np.all(path[np.arange(len(X)), leaves] == 1)
    assert pruned.get_n_leaves() == int((t.children_left == -1).sum())
    assert pruned.get_depth() == t.max_depth
    assert export_text(pruned).count("class:") == pruned.get_n_leaves()
    fi = pruned.feature_importances_
    assert fi.shape == (4,) and math.isclose(fi.sum(), 1.0)
    again = pickle.loads(pickle.dumps(pruned))
    np.testing.assert_array_equal(again.predict(X), pruned.predict(X))
    assert again.tree_.node_count == t.node_count


def test_collapse_matches_sklearn_build_pruned_tree(iris):
    from sklearn.tree._tree import _build_pruned_tree_py

    X, y, model = iris
    nodes = [2, 12]
    pruned = collapse_nodes(model, nodes)
    leaves = np.zeros(model.tree_.node_count, dtype=np.uint8)
    ref_mask = _sktree_leaf_mask(model, nodes)
    leaves[ref_mask] = 1
    ref = Tree(4, np.array([3], dtype=np.intp), 1)
    _build_pruned_tree_py(ref, model.tree_, leaves)
    for f in ("children_left", "children_right", "feature", "threshold", "value", "impurity"):
        np.testing.assert_array_equal(getattr(pruned.tree_, f), getattr(ref, f), err_msg=f)


def _sktree_leaf_mask(model, collapse):
    """Leaves of the pruned tree (sklearn's leaves_in_subtree semantics)."""
    t = model.tree_
    mask = np.zeros(t.node_count, dtype=bool)
    stack = [0]
    while stack:
        i = stack.pop()
        if t.children_left[i] == -1 or i in collapse:
            mask[i] = True
        else:
            stack += [t.children_left[i], t.children_right[i]]
    return mask


def test_regressor_rebuild_keeps_means():
    X, y = load_diabetes(return_X_y=True)
    model = DecisionTreeRegressor(max_depth=4, random_state=0).fit(X, y)
    pruned = collapse_nodes(model, [1])
    leaves = walk(pruned, X)
    np.testing.assert_allclose(pruned.predict(X), pruned.tree_.value[leaves, 0, 0])
    assert pruned.tree_.node_count == reachable(pruned)


def test_write_tree_rejects_orphans(iris):
    raw = read_tree(iris[2])
    raw.left[0] = raw.right[0] = -1  # root becomes a leaf; the rest would be orphaned
    with pytest.raises(ShapeMismatchError, match="compact"):
        write_tree(iris[2], raw)


# ----------------------------------------------------------------------------- cost complexity


DATASETS = {
    "iris": (load_iris, DecisionTreeClassifier, {}),
    "wine": (load_wine, DecisionTreeClassifier, {"criterion": "entropy"}),
    "breast_cancer": (load_breast_cancer, DecisionTreeClassifier, {}),
    "diabetes": (load_diabetes, DecisionTreeRegressor, {"min_samples_leaf": 3}),
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_ccp_path_and_trees_match_sklearn_exactly(name):
    loader, cls, kw = DATASETS[name]
    X, y = loader(return_X_y=True)
    model = cls(random_state=0, **kw).fit(X, y)
    ours = cost_complexity_path(model)
    ref = model.cost_complexity_pruning_path(X, y)
    assert ours["ccp_alphas"].shape == ref.ccp_alphas.shape
    np.testing.assert_allclose(ours["ccp_alphas"], ref.ccp_alphas, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["impurities"], ref.impurities, rtol=0, atol=1e-12)
    alphas = ref.ccp_alphas
    picks = np.unique(np.linspace(0, alphas.size - 1, num=min(alphas.size, 12)).astype(int))
    for a in alphas[picks]:
        pruned = prune_tree(model, "cost_complexity", ccp_alpha=float(a))
        refit = cls(random_state=0, ccp_alpha=float(a), **kw).fit(X, y)
        for f in ("children_left", "children_right", "feature", "threshold", "value",
                  "impurity", "n_node_samples", "weighted_n_node_samples"):
            np.testing.assert_array_equal(getattr(pruned.tree_, f), getattr(refit.tree_, f))
        assert pruned.tree_.max_depth == refit.tree_.max_depth
        np.testing.assert_allclose(pruned.feature_importances_, refit.feature_importances_)
        assert pruned.prune_report_.params["ccp_alpha"] == float(a)


def test_ccp_weakest_link_on_hand_tree():
    # N = 8, gini. B = [1, 3] splits into pure leaves: R(B) = 4/8 * 0.375 = 0.1875 = g(B).
    # root = [5, 3]: R(root) = 0.46875, g(root) = 0.46875 / 2 = 0.234 > g(B), so B goes first;
    # then g(root) = (0.46875 - 0.1875) / (2 - 1) = 0.28125.
    model = make_tree((0, 0.5, [4, 0], (1, 0.5, [0, 3], [1, 0])))
    path = cost_complexity_path(model)
    np.testing.assert_allclose(path["ccp_alphas"], [0.0, 0.1875, 0.28125], atol=1e-15)
    np.testing.assert_allclose(path["impurities"], [0.0, 0.1875, 0.46875], atol=1e-15)
    assert prune_tree(model, "ccp", ccp_alpha=0.2).tree_.node_count == 3
    assert prune_tree(model, "ccp", ccp_alpha=0.28125).tree_.node_count == 1


def test_ccp_selection_by_validation_cv_and_one_se():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, ytr, Xva, yva = X[:380], y[:380], X[380:], y[380:]
    model = DecisionTreeClassifier(random_state=0).fit(Xtr, ytr)
    alphas = cost_complexity_path(model)["ccp_alphas"]
    val = prune_tree(model, "ccp", X_val=Xva, y_val=yva)
    se1 = prune_tree(model, "ccp", X_val=Xva, y_val=yva, one_se=True)
    cv = prune_tree(model, "ccp", select="cv", cv=4, X_train=Xtr, y_train=ytr, random_state=0)
    for p in (val, se1, cv):
        assert p.prune_report_.params["ccp_alpha"] in alphas
    assert se1.get_n_leaves() <= val.get_n_leaves() < model.get_n_leaves()
    # validation choice is the best subtree on the validation set among the path's subtrees
    best = min(
        np.mean(prune_tree(model, "ccp", ccp_alpha=float(a)).predict(Xva) != yva) for a in alphas
    )
    assert np.mean(val.predict(Xva) != yva) == pytest.approx(best)
    r = se1.prune_report_.params
    assert r["error"] <= r["min_error"] + r["error_se"] + 1e-12
    assert cv.prune_report_.params["select"] == "cv"


# ----------------------------------------------------------------------------- textbook trees

# Quinlan (1993), C4.5 sec. 4.2: a subtree with leaves of (6, 0), (9, 0), (1, 0) cases/errors
# (3.273 predicted errors) is replaced by a leaf covering 16 cases with 1 error (2.512 predicted).
QUINLAN = (0, 0.5, [6, 0], (1, 0.5, [9, 0], [0, 1]))


def test_c45_confidence_limits_match_quinlan_table():
    for n, e, u in [(6, 0, 0.206), (9, 0, 0.143), (1, 0, 0.750)]:
        assert (c45_added_errors(n, e, 0.25) + e) / n == pytest.approx(u, abs=1e-3)
    # E >= 1 uses the normal approximation (Weka J48): close to the exact binomial 0.157
    assert (c45_added_errors(16, 1, 0.25) + 1) / 16 == pytest.approx(0.157, abs=0.005)


def test_c45_prunes_quinlans_example_to_a_leaf():
    model = make_tree(QUINLAN)
    pruned = prune_tree(model, "c45")
    assert pruned.get_n_leaves() == 1 and pruned.tree_.node_count == 1
    assert pruned.predict(np.zeros((1, 2)))[0] == 0
    # a clean, well-populated split survives
    kept = prune_tree(make_tree((0, 0.5, [30, 0], [0, 30])), "c45", confidence=0.25)
    assert kept.get_n_leaves() == 2


def test_c45_subtree_raising_replaces_node_by_largest_branch():
    # root splits x0 <= 0 into a tiny left leaf (1 case of class 1 among 3) and a big right
    # subtree that separates the classes on x1; raising the right subtree to the root and
    # redistributing the three left cases through it is cheaper than keeping the root split.
    rng = np.random.default_rng(0)
    n = 40
    X = np.c_[np.r_[np.full(3, -1.0), rng.uniform(0.5, 1, n)], rng.uniform(-1, 1, n + 3)]
    X[:3, 1] = [-0.5, -0.4, 0.6]
    y = (X[:, 1] > 0).astype(int)
    # the shape C4.5 might grow: root on x0, right child on x1
    spec = (0, 0.0, [2, 1], (1, 0.0, [int((y[3:] == 0).sum()), 0], [0, int((y[3:] == 1).sum())]))
    hand = make_tree(spec)
    no_raise = prune_tree(hand, "c45")
    raised = prune_tree(hand, "c45", subtree_raising=True, X_train=X, y_train=y)
    assert no_raise.tree_.node_count == 5
    assert raised.prune_report_.params["subtrees_raised"] == 1
    assert raised.tree_.node_count == 3 and raised.tree_.feature[0] == 1
    # leaves' distributions were rebuilt from all 43 cases
    assert raised.tree_.n_node_samples[0] == 43
    np.testing.assert_array_equal(raised.predict(X), y)


def test_reduced_error_on_hand_tree():
    # x0 <= 0.5 -> leaf [5, 0]; else x1 <= 0.5 -> [0, 3] / [2, 0]
    model = make_tree((0, 0.5, [5, 0], (1, 0.5, [0, 3], [2, 0])))
    X_val = np.array([[0, 0], [1, 0], [1, 0], [1, 1], [1, 1], [1, 1]], dtype=float)
    # the right subtree errs on the 3 validation cases in its right leaf (labelled 1);
    # as a leaf it predicts class 1 (3 vs 2 training cases) and errs on the 2 cases in its left
    y_val = np.array([0, 0, 0, 1, 1, 1])
    pruned = prune_tree(model, "reduced_error", X_val=X_val, y_val=y_val)
    assert pruned.get_n_leaves() == 2 and pruned.tree_.node_count == 3
    np.testing.assert_array_equal(pruned.predict(X_val), [0, 1, 1, 1, 1, 1])
    # when validation agrees with the split, nothing is pruned
    kept = prune_tree(model, "reduced_error", X_val=X_val, y_val=np.array([0, 1, 1, 0, 0, 0]))
    assert kept.get_n_leaves() == 3


def test_pessimistic_on_hand_tree():
    # Quinlan (1987): root [11, 9] (e'=9.5) vs subtree with errors 0 + 1 + 0 over 3 leaves
    # (e'=2.5, SE=1.479): keep. Right child [1, 9] (e'=1.5) vs [1, 5] + [0, 4] (e'=2, SE=1.265):
    # prune.
    model = make_tree((0, 0.5, [10, 0], (1, 0.5, [1, 5], [0, 4])))
    pruned = prune_tree(model, "pep")
    assert pruned.tree_.node_count == 3
    np.testing.assert_allclose(pruned.tree_.value[2, 0] * 10, [1, 9])


def test_min_error_laplace_on_hand_tree():
    # Niblett & Bratko's Laplace estimate (m = k = 2, uniform prior): node B [1, 2] has static
    # error (3 - 2 + 1)/(3 + 2) = 0.4 < dynamic 2/3 * 0.5 + 1/3 * 1/3 = 0.444 -> prune;
    # root [6, 2]: static 0.3 > dynamic 5/8 * 1/7 + 3/8 * 0.4 = 0.239 -> keep.
    model = make_tree((0, 0.5, [5, 0], (1, 0.5, [1, 1], [0, 1])))
    pruned = prune_tree(model, "min_error", m=2, prior="uniform")
    assert pruned.tree_.node_count == 3
    # a very large m pulls every estimate to the uniform prior, so the root is pruned too
    assert prune_tree(model, "mep", m=1000.0, prior="uniform").tree_.node_count == 1


def test_mdl_costs_and_decisions():
    # C([5, 0]) = 0 + 1/2 log2(5/2) + log2(pi / Gamma(1))
    assert stochastic_complexity([[5, 0]])[0] == pytest.approx(
        0.5 * math.log2(2.5) + math.log2(math.pi)
    )
    # a pure split of [10, 10] pays for itself (10.6 bits vs 24.3 as a leaf); a useless
    # [2, 2] / [2, 2] split does not (17.3 bits vs 11.7); the root then costs 25.3 < 32.6 bits
    model = make_tree((0, 0.5, (1, 0.5, [2, 2], [2, 2]), (1, 0.5, [10, 0], [0, 10])))
    pruned = prune_tree(model, "mdl")
    assert pruned.tree_.node_count == 5
    assert pruned.tree_.children_left[1] == -1  # the useless split is gone
    assert pruned.prune_report_.params["description_length_bits"] > 0


def test_pre_pruning_returns_best_early_stopped_tree():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, ytr, Xva, yva = X[:380], y[:380], X[380:], y[380:]
    model = DecisionTreeClassifier(random_state=0).fit(Xtr, ytr)
    pre = prune_tree(model, "pre_pruning", X_train=Xtr, y_train=ytr, X_val=Xva, y_val=yva)
    rep = pre.prune_report_
    assert isinstance(pre, DecisionTreeClassifier)
    assert np.mean(pre.predict(Xva) == yva) >= np.mean(model.predict(Xva) == yva)
    assert pre.get_n_leaves() <= model.get_n_leaves()
    assert rep.params["select"] == "validation" and rep.params["n_candidates"] > 10
    grid = {"max_depth": [1, 2]}
    small = prune_tree(model, "pre_pruning", X_train=Xtr, y_train=ytr, X_val=Xva, y_val=yva,
                       param_grid=grid)
    assert small.get_depth() <= 2
    with pytest.raises(InvalidParameterError, match="unknown parameters"):
        prune_tree(model, "pre_pruning", X_train=Xtr, y_train=ytr, X_val=Xva, y_val=yva,
                   param_grid={"max_dept": [1]})


@pytest.mark.parametrize("method", ["reduced_error", "cost_complexity", "pre_pruning"])
def test_regression_methods(method):
    X, y = load_diabetes(return_X_y=True)
    model = DecisionTreeRegressor(random_state=0).fit(X[:300], y[:300])
    pruned = prune_tree(model, method, X_val=X[300:], y_val=y[300:], X_train=X[:300],
                        y_train=y[:300])
    assert isinstance(pruned, DecisionTreeRegressor)
    assert pruned.get_n_leaves() < model.get_n_leaves()
    mse = lambda m: np.mean((m.predict(X[300:]) - y[300:]) ** 2)  # noqa: E731
    assert mse(pruned) < mse(model)


def test_report_is_attached_and_serialisable(iris):
    pruned = prune_tree(iris[2], "pessimistic")
    rep = pruned.prune_report_
    assert isinstance(rep, TreePruneReport)
    assert rep.n_leaves_before == 9 and rep.n_leaves_after == pruned.get_n_leaves()
    assert rep.nodes_removed == 17 - pruned.tree_.node_count
    assert rep.to_dict()["method"] == "pessimistic" and "pessimistic: leaves 9 ->" in str(rep)
    assert not hasattr(iris[2], "prune_report_")


# ----------------------------------------------------------------------------- errors


def test_bad_input_raises_clear_errors(iris):
    X, y, model = iris
    with pytest.raises(NotFittedError, match="not fitted"):
        prune_tree(DecisionTreeClassifier(), "pessimistic")
    with pytest.raises(UnsupportedModelError, match="DecisionTreeClassifier"):
        prune_tree(object(), "pessimistic")
    with pytest.raises(ShapeMismatchError, match="X_val has 3 features but DecisionTree"):
        prune_tree(model, "reduced_error", X_val=X[:, :3], y_val=y)
    with pytest.raises(InvalidParameterError, match="empty"):
        prune_tree(model, "reduced_error", X_val=np.empty((0, 4)), y_val=np.empty(0))
    with pytest.raises(InvalidParameterError, match="needs a validation set"):
        prune_tree(model, "reduced_error")
    with pytest.raises(InvalidParameterError, match="accepted values"):
        prune_tree(model, "prune_harder")
    with pytest.raises(InvalidParameterError, match="unknown parameters"):
        prune_tree(model, "c45", confidance=0.1)
    with pytest.raises(InvalidParameterError, match="confidence"):
        prune_tree(model, "c45", confidence=0.9)
    with pytest.raises(InvalidParameterError, match="both"):
        prune_tree(model, "reduced_error", X_val=X)
    with pytest.raises(ShapeMismatchError, match="one value per sample"):
        prune_tree(model, "reduced_error", X_val=X, y_val=y[:5])
    with pytest.raises(ShapeMismatchError, match="grown on"):
        prune_tree(model, "c45", subtree_raising=True, X_train=X[:10], y_train=y[:10])
    reg = DecisionTreeRegressor(max_depth=3).fit(X, y.astype(float))
    for method in ("pessimistic", "c45", "min_error", "mdl"):
        with pytest.raises(UnsupportedModelError, match="classification trees only"):
            prune_tree(reg, method)
    multi = DecisionTreeClassifier(max_depth=2).fit(X, np.c_[y, y])
    with pytest.raises(UnsupportedModelError, match="single-output"):
        prune_tree(multi, "pessimistic")


def test_registry_lists_every_method():
    assert set(METHODS) == {
        "reduced_error", "cost_complexity", "pessimistic", "c45", "min_error", "mdl",
        "pre_pruning", "simplify",
    }
    assert {m for m, s in METHODS.items() if s.regression} == {
        "reduced_error", "cost_complexity", "pre_pruning", "simplify"
    }
