"""Bad pruning data for trees and ensembles: one shared check, clear errors, never misaligned."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.ensembles import build_member_matrix, prune_ensemble
from prunekit.errors import InvalidParameterError, PrunekitError, ShapeMismatchError
from prunekit.trees import prune_tree

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def _models(X, y):
    return [
        DecisionTreeClassifier(random_state=0).fit(X, y),
        RandomForestClassifier(n_estimators=8, random_state=0).fit(X, y),
    ]


@pytest.mark.parametrize("bad", ["strings", "unseen", "float_unseen", "nan"])
def test_labels_the_model_never_saw_are_rejected_by_trees_and_ensembles(data, bad):
    X, y = data
    y_bad = {
        "strings": y.astype(str),
        "unseen": np.where(y == 1, 7, 0),
        "float_unseen": y + 0.5,
        "nan": np.where(y == 1, np.nan, 0.0),
    }[bad]
    tree, forest = _models(X, y)
    with pytest.raises(InvalidParameterError, match=r"y_val .*classes_"):
        prune_tree(tree, "reduced_error", X_val=X, y_val=y_bad)
    with pytest.raises(InvalidParameterError, match=r"y_val .*classes_"):
        prune_ensemble(forest, "reduce_error", 0.5, X_val=X, y_val=y_bad)
    with pytest.raises(InvalidParameterError, match=r"y_train .*classes_"):
        prune_tree(tree, "cost_complexity", select="cv", X_train=X, y_train=y_bad)


def test_string_labelled_tree_rejects_integer_labels(data):
    X, y = data
    tree = DecisionTreeClassifier(random_state=0).fit(X, np.array(["no", "yes"])[y])
    with pytest.raises(InvalidParameterError, match=r"another type.*'no', 'yes'"):
        prune_tree(tree, "reduced_error", X_val=X, y_val=y)
    ok = prune_tree(tree, "reduced_error", X_val=X, y_val=np.array(["no", "yes"], object)[y])
    assert ok.get_n_leaves() >= 2


def test_float_labels_equal_to_the_classes_are_accepted(data):
    X, y = data
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    a = prune_tree(tree, "reduced_error", X_val=X[:100], y_val=y[:100])
    b = prune_tree(tree, "reduced_error", X_val=X[:100], y_val=y[:100].astype(float))
    assert a.tree_.node_count == b.tree_.node_count


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_regression_targets_must_be_finite(data, bad):
    X, y = data
    yr = X[:, 0] * 2.0
    yb = yr.copy()
    yb[3] = bad
    tree = DecisionTreeRegressor(random_state=0).fit(X, yr)
    forest = RandomForestRegressor(n_estimators=4, random_state=0).fit(X, yr)
    with pytest.raises(InvalidParameterError, match="y_val contains NaN or infinity"):
        prune_tree(tree, "reduced_error", X_val=X, y_val=yb)
    with pytest.raises(InvalidParameterError, match="y_val contains NaN or infinity"):
        prune_ensemble(forest, "reduce_error", 0.5, X_val=X, y_val=yb)


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e39])
def test_infinite_features_are_rejected_naming_the_argument(data, value):
    X, y = data
    Xb = X.copy()
    Xb[5, 2] = value
    tree, forest = _models(X, y)
    with pytest.raises(InvalidParameterError, match="X_val contains infinity"):
        prune_tree(tree, "reduced_error", X_val=Xb, y_val=y)
    with pytest.raises(InvalidParameterError, match="X_train contains infinity"):
        prune_tree(tree, "cost_complexity", select="cv", X_train=Xb, y_train=y)
    with pytest.raises(InvalidParameterError, match="X_val contains infinity"):
        prune_ensemble(forest, "reduce_error", 0.5, X_val=Xb, y_val=y)


def test_wrong_width_and_non_numeric_features(data):
    X, y = data
    tree, forest = _models(X, y)
    with pytest.raises(ShapeMismatchError, match="X_train has 4 features"):
        prune_tree(tree, "c45", subtree_raising=True, X_train=X[:, :4], y_train=y)
    with pytest.raises(InvalidParameterError, match="X_val must hold numbers"):
        prune_tree(tree, "reduced_error", X_val=X.astype(str).astype(object) + "x", y_val=y)
    with pytest.raises(ShapeMismatchError, match="X_val must be 2-D"):
        prune_tree(tree, "reduced_error", X_val=X[:, 0], y_val=y)
    with pytest.raises(ShapeMismatchError, match="X_val has 6 features"):
        build_member_matrix(forest, np.c_[X, X[:, 0]], y)


# ------------------------------------------------------------------ feature names (pandas)


def _frames(X):
    cols = [f"f{i}" for i in range(X.shape[1])]
    return pd.DataFrame(X, columns=cols), cols


def test_reordered_columns_are_aligned_by_name_for_trees(data):
    X, y = data
    df, cols = _frames(X)
    tree = DecisionTreeClassifier(random_state=0, max_depth=6).fit(df, y)
    shuffled = df[cols[::-1]]
    a = prune_tree(tree, "reduced_error", X_val=df.iloc[:150], y_val=y[:150])
    b = prune_tree(tree, "reduced_error", X_val=shuffled.iloc[:150], y_val=y[:150])
    assert a.tree_.node_count == b.tree_.node_count
    np.testing.assert_array_equal(a.tree_.feature, b.tree_.feature)
    with pytest.raises(ShapeMismatchError, match=r"missing \['f4'\]"):
        prune_tree(tree, "reduced_error", X_val=df[cols[:4]], y_val=y)
    with pytest.raises(ShapeMismatchError, match=r"unexpected \['zz'\]"):
        prune_tree(tree, "reduced_error", X_val=df.assign(zz=1.0), y_val=y)


def test_array_for_a_named_model_warns_like_sklearn(data):
    X, y = data
    df, _ = _frames(X)
    tree = DecisionTreeClassifier(random_state=0).fit(df, y)
    with pytest.warns(UserWarning, match="X_val has no feature names"):
        prune_tree(tree, "reduced_error", X_val=X, y_val=y)
    plain = DecisionTreeClassifier(random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="X_val has feature names"):
        prune_tree(plain, "reduced_error", X_val=df, y_val=y)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestClassifier(n_estimators=6, random_state=0),
        lambda: GradientBoostingClassifier(n_estimators=6, random_state=0),
        lambda: HistGradientBoostingClassifier(max_iter=6, random_state=0),
    ],
)
def test_reordered_columns_are_aligned_by_name_for_ensembles(data, make):
    X, y = data
    df, cols = _frames(X)
    model = make().fit(df, y)
    method = "stages" if "Gradient" in type(model).__name__ else "reduce_error"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn feature-name warning either
        warnings.filterwarnings("ignore", message="the full ensemble is")  # training data
        a = prune_ensemble(model, method, 0.5, X_val=df, y_val=y)
        b = prune_ensemble(model, method, 0.5, X_val=df[cols[::-1]], y_val=y)
    assert a.prune_report_.kept_indices == b.prune_report_.kept_indices
    assert a.prune_report_.score_before == b.prune_report_.score_before
    with pytest.raises(ShapeMismatchError, match="missing"):
        prune_ensemble(model, method, 0.5, X_val=df[cols[1:]], y_val=y)


def test_sklearn_value_errors_do_not_leak_from_boosting(data):
    X, y = data
    gb = GradientBoostingClassifier(n_estimators=4, random_state=0).fit(X, y)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    try:
        prune_ensemble(gb, "stages", 0.5, X_val=Xn, y_val=y)
    except PrunekitError:
        pass
    except ValueError as exc:  # pragma: no cover - the failure this test guards against
        pytest.fail(f"raw ValueError leaked: {exc}")


# ------------------------------------------------------------------ MemberMatrix provenance


def test_member_matrix_of_another_model_is_rejected(data):
    X, y = data
    a = RandomForestClassifier(n_estimators=6, random_state=0).fit(X, y)
    b = RandomForestClassifier(n_estimators=6, random_state=1).fit(X, y)
    M = build_member_matrix(a, X, y)
    prune_ensemble(a, "reduce_error", 0.5, members=M)
    with pytest.raises(InvalidParameterError, match="another model"):
        prune_ensemble(b, "reduce_error", 0.5, members=M)
    with pytest.raises(InvalidParameterError, match="not both"):
        prune_ensemble(a, "reduce_error", 0.5, X_val=X, y_val=y, members=M)


def test_cluster_with_fewer_distinct_members_than_size_warns_and_notes():
    from sklearn.ensemble import BaggingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    y = (X[:, 0] > 0).astype(int)
    bag = BaggingClassifier(DecisionTreeClassifier(max_depth=2), n_estimators=10,
                            bootstrap=False, random_state=0).fit(X, y)  # identical members
    with pytest.warns(UserWarning, match="fewer than size=5"):
        small = prune_ensemble(bag, "cluster", 5, X_val=X, y_val=y)
    assert len(small.estimators_) < 5
    assert any("fewer than size=5" in n for n in small.prune_report_.notes)


def test_collapse_nodes_and_estimator_params_reject_bad_values(data):
    from prunekit.trees import PrunedTreeClassifier, collapse_nodes

    X, y = data
    tree = DecisionTreeClassifier(random_state=0, max_depth=3).fit(X, y)
    for bad in ("a", [1.5], [[1]], [True], [-1], [10_000]):
        with pytest.raises(InvalidParameterError, match="nodes"):
            collapse_nodes(tree, bad)
    for params in ({"random_state": 1}, {"X_val": X}, "one_se"):
        with pytest.raises(InvalidParameterError, match="method_params"):
            PrunedTreeClassifier(method_params=params).fit(X, y)
