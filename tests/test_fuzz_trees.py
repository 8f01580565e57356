"""Fuzzing the tree and ensemble entry points with careless and hostile inputs.

Every call must either raise a :class:`PrunekitError` subclass or succeed with a usable model
whose predictions have the right shape and labels. Anything else (a raw ValueError/TypeError/
IndexError from deep inside, a silent misalignment) fails.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.ensembles import METHODS as ENSEMBLE_METHODS
from prunekit.ensembles import build_member_matrix, prune_ensemble
from prunekit.errors import PrunekitError
from prunekit.trees import ALIASES, METHODS, PrunedTreeClassifier, PrunedTreeRegressor, prune_tree

pd = pytest.importorskip("pandas")

FUZZ = settings(derandomize=True, max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
N_FEATURES = 4
FUZZ_FIT = settings(FUZZ, max_examples=30)  # each example grows and prunes a tree
COLUMNS = [f"c{i}" for i in range(N_FEATURES)]


def _data(n: int = 80, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int) + (X[:, 1] > 1)
    return X, y


@functools.cache
def models():
    X, y = _data()
    df = pd.DataFrame(X, columns=COLUMNS)
    return {
        "tree": DecisionTreeClassifier(random_state=0).fit(X, y),
        "tree_str": DecisionTreeClassifier(random_state=0).fit(X, np.array(["a", "b", "c"])[y]),
        "tree_df": DecisionTreeClassifier(random_state=0).fit(df, y),
        "tree_bal": DecisionTreeClassifier(class_weight="balanced", random_state=0).fit(X, y),
        "reg": DecisionTreeRegressor(random_state=0, max_depth=6).fit(X, X[:, 0] * 3.0),
        "leaf": DecisionTreeClassifier().fit(X, np.zeros(len(y), dtype=int)),
        "rf": RandomForestClassifier(n_estimators=6, random_state=0).fit(X, y),
        "rf_df": RandomForestClassifier(n_estimators=6, random_state=0).fit(df, y),
        "rfr": RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X[:, 0]),
        "gb": GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y),
    }


# ------------------------------------------------------------------ input strategies


@st.composite
def features(draw, n: int, broken: bool = True):
    """A feature matrix: valid (array, list or data frame) unless ``broken``, then often broken."""
    if not broken:
        X = np.random.default_rng(draw(st.integers(0, 3))).normal(size=(n, N_FEATURES))
        kind = draw(st.sampled_from(["array", "list", "frame", "frame_reordered", "int"]))
        if kind == "list":
            return X.tolist()
        if kind == "int":
            return np.round(X * 3).astype(np.int64)
        df = pd.DataFrame(X, columns=COLUMNS)
        return X if kind == "array" else df if kind == "frame" else df[COLUMNS[::-1]]
    width = draw(st.sampled_from([N_FEATURES] * 4 + [0, 1, N_FEATURES + 1]))
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    X = rng.normal(size=(n, width)) * draw(st.sampled_from([1.0, 1e30]))
    if n and width:
        bad = draw(st.sampled_from([None] * 4 + [np.nan, np.inf, -np.inf, 1e39]))
        if bad is not None:
            X[draw(st.integers(0, n - 1)), draw(st.integers(0, width - 1))] = bad
    kind = draw(st.sampled_from(["array", "array", "list", "int", "str", "object", "frame",
                                 "frame_reordered", "frame_renamed", "1d", "3d", "none",
                                 "scalar", "bool"]))
    if kind == "list":
        return X.tolist()
    if kind == "int":
        return np.clip(np.nan_to_num(X), -1e6, 1e6).astype(np.int64)
    if kind == "str":
        return X.astype(str)
    if kind == "object":
        out = X.astype(object)
        if out.size:
            out.flat[0] = "x"
        return out
    if kind.startswith("frame") and width == N_FEATURES:
        df = pd.DataFrame(X, columns=COLUMNS)
        if kind == "frame_reordered":
            return df[COLUMNS[::-1]]
        if kind == "frame_renamed":
            return df.rename(columns={"c0": "zz"})
        return df
    if kind == "1d":
        return X.ravel()
    if kind == "3d":
        return X[:, :, None]
    if kind == "none":
        return None
    if kind == "scalar":
        return 3.0
    if kind == "bool":
        return X > 0
    return X


@st.composite
def targets(draw, n: int, broken: bool = True):
    kinds = ["str", "unseen", "float", "nan", "short", "2d", "none", "object_mix", "bool"]
    kind = draw(st.sampled_from(kinds if broken else ["ok", "ok", "float_ok", "column"]))
    if kind == "float_ok":
        return np.random.default_rng(1).integers(0, 3, size=n).astype(float)
    if kind == "column":
        return np.random.default_rng(0).integers(0, 3, size=n)[:, None]
    y = np.random.default_rng(draw(st.integers(0, 3))).integers(0, 3, size=n)
    if kind == "str":
        return y.astype(str)
    if kind == "unseen":
        return y + 5
    if kind == "float":
        return y + draw(st.sampled_from([0.0, 0.5]))
    if kind == "nan":
        return np.where(y == 0, np.nan, y)
    if kind == "short":
        return y[: max(0, n - 1)]
    if kind == "2d":
        return np.c_[y, y]
    if kind == "none":
        return None
    if kind == "object_mix":
        out = y.astype(object)
        if n:
            out[0] = "a"
        return out
    if kind == "bool":
        return y > 0
    return y


KWARGS = st.dictionaries(
    st.sampled_from(["ccp_alpha", "one_se", "cv", "select", "confidence", "subtree_raising", "m",
                     "prior", "value_bits", "param_grid", "bogus", "random_state",
                     "sample_weight"]),
    st.sampled_from([None, 0, 1, 2, 3, -1, 0.0, 0.25, 0.5, 1e-3, float("nan"), float("inf"),
                     True, False, "auto", "cv", "validation", "uniform", "x", [],
                     {"max_depth": [1, 2]}, {"max_depth": []}, [{"max_leaf_nodes": [2, 3]}]]),
    max_size=3,
)


def _check_success(model, out, X_ok) -> None:
    with warnings.catch_warnings():  # X_ok is an array; some models were fitted on frames
        warnings.simplefilter("ignore")
        pred = out.predict(X_ok)
    assert pred.shape == (X_ok.shape[0],)
    if hasattr(model, "classes_"):
        assert set(np.unique(pred)) <= set(np.asarray(model.classes_).tolist())
    else:
        assert np.isfinite(pred).all()


#: What one example breaks: nothing (must succeed unless the method needs other data), or one
#: argument.
BROKEN = st.sampled_from(["nothing", "nothing", "X", "y", "kwargs", "method", "size"])

VALID_KWARGS = {
    "cost_complexity": [{}, {"one_se": True}, {"ccp_alpha": 0.01}, {"select": "cv", "cv": 3}],
    "c45": [{}, {"confidence": 0.1}, {"subtree_raising": True}],
    "min_error": [{}, {"m": 0.5, "prior": "uniform"}],
    "mdl": [{}, {"value_bits": 2.0}],
    "pre_pruning": [{}, {"cv": 3}, {"param_grid": {"max_depth": [1, 2, 3]}}],
}


def _call(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except PrunekitError as exc:
            assert str(exc)  # a message, never an empty error
            return None


# ------------------------------------------------------------------ the fuzz tests


@FUZZ
@given(
    name=st.sampled_from(["tree", "tree_str", "tree_df", "tree_bal", "reg", "leaf"]),
    broken=BROKEN,
    data=st.data(),
)
def test_prune_tree_raises_prunekit_errors_or_works(name, broken, data):
    model = models()[name]
    method = data.draw(st.sampled_from([*METHODS, *ALIASES]))
    if broken == "method":
        method = data.draw(st.sampled_from(["bogus", 3, None, "", "C45"]))
    n = data.draw(st.sampled_from([0, 1, 5, 40])) if broken in ("X", "y") else 40
    X_val = data.draw(features(n, broken == "X"))
    y_val = data.draw(targets(n, broken == "y"))
    if name == "tree_str" and broken != "y":
        y_val = np.array(["a", "b", "c"])[np.asarray(y_val, dtype=int).ravel()]
    if name == "reg" and broken != "y":
        y_val = np.asarray(y_val, dtype=float).ravel() * 0.7
    if name == "leaf" and broken != "y":
        y_val = np.zeros(n, dtype=int)
    kwargs = data.draw(KWARGS) if broken == "kwargs" else data.draw(
        st.sampled_from(VALID_KWARGS.get(ALIASES.get(method, method), [{}])))
    if kwargs.get("sample_weight") is not None:
        kwargs["sample_weight"] = np.ones(3)  # wrong length unless it fails earlier
    Xt, yt = _data()
    if name == "tree_str":
        yt = np.array(["a", "b", "c"])[yt]
    if name == "reg":
        yt = Xt[:, 0] * 3.0
    if name == "leaf":
        yt = np.zeros_like(yt)
    out = _call(prune_tree, model, method, X_val=X_val, y_val=y_val, X_train=Xt, y_train=yt,
                **kwargs)
    if out is not None:
        assert type(out) is type(model)
        _check_success(model, out, Xt)
    elif broken == "nothing" and not (name == "reg" and method in
                                      ("pessimistic", "pep", "c45", "ebp", "error_based",
                                       "min_error", "mep", "mdl")):
        pytest.fail(f"valid call failed: {name} {method} {kwargs}")


@FUZZ_FIT
@given(
    method=st.sampled_from([*METHODS, "bogus"]),
    regression=st.booleans(),
    data=st.data(),
)
def test_pruned_tree_estimators_raise_prunekit_errors_or_work(method, regression, data):
    broken = data.draw(BROKEN)
    n = data.draw(st.sampled_from([1, 2, 3, 6, 30]))
    X = data.draw(features(n, broken == "X"))
    y = data.draw(targets(n, broken == "y"))
    params = data.draw(KWARGS) if broken == "kwargs" else {}
    params.pop("sample_weight", None)
    est_cls = PrunedTreeRegressor if regression else PrunedTreeClassifier
    est = est_cls(method=method, method_params=params, random_state=0,
                  validation_fraction=data.draw(st.sampled_from([0.25, 0.0, 1.5, "x"]))
                  if broken == "size" else 0.25)
    out = _call(est.fit, X, y)
    if out is not None:
        Xq = X if hasattr(X, "iloc") else np.asarray(X, dtype=float)
        pred = out.predict(Xq)
        assert pred.shape == (Xq.shape[0],)


@FUZZ
@given(
    name=st.sampled_from(["rf", "rf_df", "rfr", "gb"]),
    method=st.sampled_from([*ENSEMBLE_METHODS, "bogus"]),
    data=st.data(),
)
def test_prune_ensemble_raises_prunekit_errors_or_works(name, method, data):
    model = models()[name]
    broken = data.draw(BROKEN)
    size = data.draw(st.sampled_from([0.5, 1, 3, "auto"]))
    if broken == "size":
        size = data.draw(st.sampled_from([0, -1, 1.5, 7, "x", None, float("nan"), True]))
    n = data.draw(st.sampled_from([0, 1, 5, 40])) if broken in ("X", "y") else 40
    X = data.draw(features(n, broken == "X"))
    y = data.draw(targets(n, broken == "y"))
    if name == "rfr" and broken != "y":
        y = np.asarray(y, dtype=float).ravel()
    if name == "rfr" and y is not None and data.draw(st.booleans()):
        y = np.asarray(y, dtype=object)
    out = _call(prune_ensemble, model, method, size, X_val=X, y_val=y,
                use_oob=data.draw(st.booleans()) if broken == "kwargs" else False,
                random_state=data.draw(st.sampled_from([None, 0, -1, 1.5, "x"]))
                if broken == "kwargs" else 0)
    if out is not None:
        _check_success(model, out, _data()[0])


@FUZZ
@given(name=st.sampled_from(["rf", "rf_df", "rfr", "gb"]), data=st.data())
def test_build_member_matrix_raises_prunekit_errors_or_works(name, data):
    model = models()[name]
    broken = data.draw(BROKEN)
    n = data.draw(st.sampled_from([0, 1, 5, 40])) if broken in ("X", "y") else 40
    X = data.draw(features(n, broken == "X"))
    y = data.draw(targets(n, broken == "y"))
    if name == "rfr" and broken != "y":
        y = np.asarray(y, dtype=float).ravel()
    M = _call(build_member_matrix, model, X, y, oob=data.draw(st.booleans()))
    if M is not None:
        assert M.n_samples == n and M.n_members == len(model.estimators_)
        out = _call(prune_ensemble, models()["rf"] if name == "rf_df" else model,
                    "reduce_error", 0.5, members=M)
        if out is not None:
            _check_success(model, out, _data()[0])


@settings(derandomize=True, max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_classes=st.integers(2, 4),
    leaf=st.integers(1, 12),
    regression=st.booleans(),
    depth=st.integers(0, 6),
)
def test_simplify_and_where_properties(seed, n_classes, leaf, regression, depth):
    """simplify never changes predict; where=depth>=d leaves a tree of depth <= d."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 3))
    if regression:
        y = np.round(X[:, 0] + rng.normal(size=120) * 0.3)
        tree = DecisionTreeRegressor(min_samples_leaf=leaf, random_state=0).fit(X, y)
    else:
        y = (X[:, 0] * 2 + rng.normal(size=120)).round().astype(int) % n_classes
        tree = DecisionTreeClassifier(min_samples_leaf=leaf, random_state=0).fit(X, y)
    R = rng.normal(size=(500, 3)) * 2
    simple = prune_tree(tree, "simplify")
    assert np.array_equal(simple.predict(R), tree.predict(R))
    assert simple.tree_.node_count <= tree.tree_.node_count
    cut = prune_tree(tree, where=lambda node: node.depth >= depth)
    assert cut.get_depth() <= depth
    assert cut.get_depth() == min(depth, tree.get_depth())
