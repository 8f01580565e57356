"""prune_ensemble on real scikit-learn ensembles: rebuild, manual-vote equality, errors, CLI."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Perceptron, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.ensembles import METHODS, available_methods, build_member_matrix, prune_ensemble
from prunekit.errors import (
    InvalidParameterError,
    NotFittedError,
    ShapeMismatchError,
    UnsupportedModelError,
)


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(
        n_samples=240, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    y = np.array(["a", "b", "c"])[y]  # string labels: exercises the label encoding
    return X[:120], y[:120], X[120:180], y[120:180], X[180:], y[180:]


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=200, n_features=6, noise=5.0, random_state=0)
    return X[:100], y[:100], X[100:150], y[100:150], X[150:], y[150:]


@pytest.fixture(scope="module")
def rf(clf_data):
    X, y = clf_data[:2]
    return RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0).fit(X, y)


def _manual_soft_vote(members, X, classes):
    proba = np.mean([m.predict_proba(X) for m in members], axis=0)
    return classes[proba.argmax(axis=1)], proba


CLASSIFIERS = {
    "rf": lambda: RandomForestClassifier(n_estimators=12, max_depth=4, random_state=0),
    "et": lambda: ExtraTreesClassifier(n_estimators=12, max_depth=4, random_state=0),
    "bagging": lambda: BaggingClassifier(
        DecisionTreeClassifier(max_depth=3), n_estimators=12, max_features=0.7, random_state=0
    ),
    "bagging_hard": lambda: BaggingClassifier(Perceptron(), n_estimators=12, random_state=0),
    "voting_soft": lambda: VotingClassifier(
        [
            ("lr", LogisticRegression(max_iter=500)),
            ("nb", GaussianNB()),
            ("dt", DecisionTreeClassifier(max_depth=3, random_state=0)),
            ("dt2", DecisionTreeClassifier(max_depth=5, random_state=1)),
        ],
        voting="soft",
        weights=[2, 1, 1, 1],
    ),
    "voting_hard": lambda: VotingClassifier(
        [
            ("lr", LogisticRegression(max_iter=500)),
            ("nb", GaussianNB()),
            ("dt", DecisionTreeClassifier(max_depth=3, random_state=0)),
        ],
        voting="hard",
    ),
}

REGRESSORS = {
    "rf": lambda: RandomForestRegressor(n_estimators=12, max_depth=4, random_state=0),
    "et": lambda: ExtraTreesRegressor(n_estimators=12, max_depth=4, random_state=0),
    "bagging": lambda: BaggingRegressor(
        DecisionTreeRegressor(max_depth=4), n_estimators=12, random_state=0
    ),
    "voting": lambda: VotingRegressor(
        [("lr", LinearRegression()), ("ridge", Ridge()), ("dt", DecisionTreeRegressor(max_depth=3))]
    ),
}


def _members_of(model):
    return list(model.estimators_)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("method", ["reduce_error", "forward_selection", "orientation"])
def test_classifier_matches_manual_vote_over_kept_members(clf_data, name, method):
    X, y, Xv, yv, Xt, yt = clf_data
    model = CLASSIFIERS[name]().fit(X, y)
    before = pickle.dumps(model)
    size = 2 if name.startswith("voting") else 4
    pruned = prune_ensemble(model, method, size=size, X_val=Xv, y_val=yv, random_state=0)
    rep = pruned.prune_report_
    assert type(pruned) is type(model)
    assert pickle.dumps(model) == before, "the input model must not change"
    kept = list(rep.kept_indices)
    assert rep.n_members_after == len(kept) == size
    # manual vote over the kept members, with the ensemble's own rule
    M_test = build_member_matrix(model, Xt, yt)
    manual = model.classes_[M_test.votes[kept].sum(axis=0).argmax(axis=1)]
    np.testing.assert_array_equal(pruned.predict(Xt), manual)
    if name.startswith("voting"):
        weights = pruned.weights if pruned.weights is not None else [1] * len(pruned.estimators_)
        old = np.asarray(model.weights if model.weights is not None else [1] * 9, dtype=float)
        assert sum(weights) == pytest.approx(old[kept].sum())
        assert list(pruned.named_estimators_) == [n for n, _ in pruned.estimators]
    else:
        assert len(pruned.estimators_) == pruned.n_estimators == size
    if name in ("rf", "et"):  # forests average the kept trees' probabilities (soft vote)
        labels, proba = _manual_soft_vote([model.estimators_[i] for i in kept], Xt, model.classes_)
        np.testing.assert_allclose(pruned.predict_proba(Xt), proba, atol=1e-12)
        np.testing.assert_array_equal(pruned.predict(Xt), labels)
    clone_ = pickle.loads(pickle.dumps(pruned))
    np.testing.assert_array_equal(clone_.predict(Xt), pruned.predict(Xt))
    assert clone_.prune_report_.kept_indices == rep.kept_indices


@pytest.mark.parametrize("name", sorted(REGRESSORS))
@pytest.mark.parametrize("method", ["reduce_error", "backward_elimination", "gasen", "cluster"])
def test_regressor_matches_manual_average(reg_data, name, method):
    X, y, Xv, yv, Xt, yt = reg_data
    model = REGRESSORS[name]().fit(X, y)
    size = 2 if name == "voting" else 5
    pruned = prune_ensemble(model, method, size=size, X_val=Xv, y_val=yv, random_state=0)
    kept = list(pruned.prune_report_.kept_indices)
    assert 1 <= len(kept) <= size
    M_test = build_member_matrix(model, Xt, yt)
    manual = M_test.votes[kept, :, 0].sum(0) / M_test.weight[kept].sum()
    np.testing.assert_allclose(pruned.predict(Xt), manual, rtol=1e-9, atol=1e-9)
    assert pruned.prune_report_.metric == "r2"


def test_every_method_runs_on_a_forest_and_is_consistent(rf, clf_data):
    X, y, Xv, yv, Xt, yt = clf_data
    for method in available_methods(rf):
        pruned = prune_ensemble(rf, method, size=0.4, X_val=Xv, y_val=yv, random_state=0)
        rep = pruned.prune_report_
        assert rep.n_members_after == len(pruned.estimators_) == pruned.n_estimators
        assert rep.n_members_after <= 6  # round(0.4 * 15)
        # the reported validation score is the pruned model's real accuracy
        assert rep.score_after == pytest.approx(np.mean(pruned.predict(Xv) == yv))
        assert rep.score_before == pytest.approx(np.mean(rf.predict(Xv) == yv))
        json.dumps(rep.to_dict())


def test_broken_and_duplicated_trees_are_pruned_away(clf_data):
    """A forest whose members include trees fit on shuffled labels and copies of one tree."""
    X, y = make_classification(
        n_samples=180, n_features=8, n_informative=5, n_classes=3, class_sep=2.5, random_state=0
    )
    X, y, Xv, yv = X[:120], y[:120], X[120:], y[120:]
    good = RandomForestClassifier(n_estimators=6, max_depth=5, random_state=0).fit(X, y)
    y_enc = np.searchsorted(good.classes_, y)
    broken = [  # trained on rotated labels: confidently wrong
        DecisionTreeClassifier(max_depth=5, random_state=i).fit(X, (y_enc + 1) % 3)
        for i in range(6)
    ]
    forest = copy.deepcopy(good)
    forest.estimators_ = [*good.estimators_, *broken, *[good.estimators_[0]] * 3]
    forest.n_estimators = len(forest.estimators_)
    good_idx = set(range(6))
    # margin_distance is left out: it pulls mean margins towards a small positive point, so an
    # always-wrong member paired with a right one looks attractive (it assumes members better
    # than chance, as bagging's are); the synthetic tests cover it.
    for method in [
        "reduce_error",
        "complementarity",
        "boosting",
        "backward_elimination",
        "accuracy",
    ]:
        rep = prune_ensemble(forest, method, size=5, X_val=Xv, y_val=yv).prune_report_
        assert set(rep.kept_indices) <= good_idx | {12, 13, 14}, (method, rep.kept_indices)
        assert not set(rep.kept_indices) & set(range(6, 12)), method
    cl = prune_ensemble(forest, "cluster", size=8, X_val=Xv, y_val=yv).prune_report_
    assert len(set(cl.kept_indices) & {0, 12, 13, 14}) == 1  # one copy of the duplicated tree


def test_auto_size_is_the_best_prefix(rf, clf_data):
    X, y, Xv, yv, Xt, yt = clf_data
    pruned = prune_ensemble(rf, "reduce_error", size="auto", X_val=Xv, y_val=yv)
    rep = pruned.prune_report_
    sizes, scores = zip(*rep.curve, strict=True)
    assert sizes == tuple(range(1, 16))
    assert rep.n_members_after == sizes[int(np.argmax(scores))]
    assert rep.score_after == pytest.approx(max(scores))
    assert rep.size_rule == "auto" and rep.ordering is not None and len(rep.ordering) == 15


def test_forward_selection_repeats_members_by_reference(rf, clf_data):
    X, y, Xv, yv, Xt, yt = clf_data
    pruned = prune_ensemble(rf, "forward_selection", size=15, X_val=Xv, y_val=yv)
    rep = pruned.prune_report_
    assert rep.n_members_after == 15
    if rep.n_unique_members < 15:  # repeated members share one object (pickled once)
        assert len({id(t) for t in pruned.estimators_}) == rep.n_unique_members


@pytest.mark.parametrize("Model", [RandomForestClassifier, BaggingClassifier])
def test_out_of_bag_pruning(clf_data, Model):
    X, y, Xv, yv, Xt, yt = clf_data
    model = Model(n_estimators=15, random_state=0).fit(X, y)
    pruned = prune_ensemble(model, "margin_distance", size=5, X_val=X, y_val=y, use_oob=True)
    rep = pruned.prune_report_
    assert rep.data == "oob" and rep.n_members_after == 5
    assert not hasattr(pruned, "oob_score_")
    M = build_member_matrix(model, X, y, oob=True)
    in_bag = model.estimators_samples_[0]
    assert not M.mask[0, in_bag].any() and M.votes[0, in_bag].sum() == 0
    with pytest.raises(ShapeMismatchError, match="training data"):
        prune_ensemble(model, "reduce_error", size=3, X_val=Xv, y_val=yv, use_oob=True)
    no_boot = RandomForestClassifier(n_estimators=4, bootstrap=False, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="bootstrap"):
        prune_ensemble(no_boot, "reduce_error", size=2, X_val=X, y_val=y, use_oob=True)


@pytest.mark.parametrize(
    "Model, kw",
    [
        (GradientBoostingClassifier, {"n_estimators": 20, "max_depth": 2}),
        (GradientBoostingRegressor, {"n_estimators": 20, "max_depth": 2, "subsample": 0.8}),
        (HistGradientBoostingClassifier, {"max_iter": 20, "early_stopping": False}),
        (
            HistGradientBoostingRegressor,
            {"max_iter": 20, "early_stopping": True, "n_iter_no_change": 50},
        ),
    ],
)
def test_boosting_is_truncated_by_stages(clf_data, reg_data, Model, kw):
    # HistGradientBoosting's OpenMP threads crawl on an oversubscribed machine: use one
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="openmp"):
        _check_stage_truncation(clf_data, reg_data, Model, kw)


def _check_stage_truncation(clf_data, reg_data, Model, kw):
    data = clf_data if "Classifier" in Model.__name__ else reg_data
    X, y, Xv, yv, Xt, yt = data
    model = Model(random_state=0, **kw).fit(X, y)
    assert available_methods(model) == ["stages"]
    pruned = prune_ensemble(model, "stages", size=7, X_val=Xv, y_val=yv)
    staged = list(model.staged_predict(Xt))
    if "Classifier" in Model.__name__:
        np.testing.assert_array_equal(pruned.predict(Xt), staged[6])
    else:
        np.testing.assert_allclose(pruned.predict(Xt), staged[6], rtol=1e-12)
    assert pruned.prune_report_.n_members_after == 7
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(pruned)).predict(Xt), pruned.predict(Xt)
    )
    auto = prune_ensemble(model, "stages", size="auto", X_val=Xv, y_val=yv).prune_report_
    scores = [s for _, s in auto.curve]
    assert auto.n_members_after == int(np.argmax(scores)) + 1
    with pytest.raises(UnsupportedModelError, match="stages"):
        prune_ensemble(model, "reduce_error", size=3, X_val=Xv, y_val=yv)


def test_bad_input_raises_clear_errors(rf, clf_data, reg_data):
    X, y, Xv, yv, Xt, yt = clf_data
    with pytest.raises(InvalidParameterError, match="between 1 and the ensemble's 15"):
        prune_ensemble(rf, "reduce_error", size=16, X_val=Xv, y_val=yv)
    for bad in [0, -1, 1.5, 0.0, "big", True, None]:
        with pytest.raises(InvalidParameterError, match="size"):
            prune_ensemble(rf, "reduce_error", size=bad, X_val=Xv, y_val=yv)
    with pytest.raises(InvalidParameterError, match="accepted values"):
        prune_ensemble(rf, "reduce-error", size=3, X_val=Xv, y_val=yv)
    with pytest.raises(NotFittedError, match="not fitted"):
        prune_ensemble(RandomForestClassifier(), "reduce_error", size=3, X_val=Xv, y_val=yv)
    for unsupported in [
        AdaBoostClassifier(n_estimators=3).fit(X, y),
        DecisionTreeClassifier().fit(X, y),
        IsolationForest(n_estimators=3).fit(X),
        "not a model",
    ]:
        with pytest.raises(UnsupportedModelError, match="supported"):
            prune_ensemble(unsupported, "reduce_error", size=2, X_val=Xv, y_val=yv)
    with pytest.raises(InvalidParameterError, match="X_val and y_val"):
        prune_ensemble(rf, "reduce_error", size=3)
    with pytest.raises(ShapeMismatchError):
        prune_ensemble(rf, "reduce_error", size=3, X_val=Xv, y_val=yv[:-1])
    with pytest.raises(InvalidParameterError, match="never saw"):
        prune_ensemble(rf, "reduce_error", size=3, X_val=Xv, y_val=np.full(len(yv), "z"))
    Xr, yr, Xrv, yrv = reg_data[:4]
    reg = RandomForestRegressor(n_estimators=4, random_state=0).fit(Xr, yr)
    for method in ["kappa", "margin_distance", "orientation", "complementarity", "boosting"]:
        with pytest.raises(UnsupportedModelError, match="does not apply"):
            prune_ensemble(reg, method, size=2, X_val=Xrv, y_val=yrv)
    multi = RandomForestRegressor(n_estimators=3, random_state=0).fit(Xr, np.c_[yr, yr])
    with pytest.raises(UnsupportedModelError, match="several outputs"):
        prune_ensemble(multi, "reduce_error", size=2, X_val=Xrv, y_val=yrv)
    voting = clone(CLASSIFIERS["voting_hard"]()).fit(X, y)
    with pytest.raises(InvalidParameterError, match="bootstrap"):
        prune_ensemble(voting, "reduce_error", size=2, X_val=X, y_val=y, use_oob=True)


def test_methods_registry_is_documented():
    for name, info in METHODS.items():
        assert info.name == name and info.summary
        func = info.func
        if func is not None:
            doc = func.__doc__ or ""
            assert any(ch.isdigit() for ch in doc) or name in ("random", "stages"), name


def test_cli_writes_table_and_report(tmp_path):
    from typer.testing import CliRunner

    from prunekit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["ensemble", "--help"])
    assert res.exit_code == 0 and "--methods" in res.output
    out = tmp_path / "rep"
    res = runner.invoke(
        app,
        [
            "ensemble",
            "--data",
            "iris",
            "--n-estimators",
            "10",
            "--methods",
            "reduce_error,random,cluster",
            "--size",
            "0.3",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].split()[:3] == ["method", "members", "unique"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in res.output.splitlines()[2:] if ln.strip()}
    assert rows["reduce_error"][0] == "3" and rows["full"][0] == "10"
    assert (out / "report.html").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["rows"]] == ["full", "reduce_error", "random", "cluster"]
    assert len(results["curves"]["reduce_error"]) == 10
    res = runner.invoke(
        app, ["ensemble", "--data", "iris", "--methods", "nope", "--quiet", "--out", str(out)]
    )
    assert res.exit_code != 0


def test_member_matrix_can_be_reused_across_calls(rf, clf_data):
    X, y, Xv, yv, Xt, yt = clf_data
    M = build_member_matrix(rf, Xv, yv)
    for method in ["reduce_error", "gasen", "cluster"]:
        a = prune_ensemble(rf, method, size=4, X_val=Xv, y_val=yv, random_state=1)
        b = prune_ensemble(rf, method, size=4, members=M, random_state=1)
        assert a.prune_report_.kept_indices == b.prune_report_.kept_indices
    small = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="members"):
        prune_ensemble(small, "reduce_error", size=2, members=M)


def test_data_frames_are_accepted(clf_data):
    pd = pytest.importorskip("pandas")
    X, y, Xv, yv, Xt, yt = clf_data
    cols = [f"f{i}" for i in range(X.shape[1])]
    for model in [
        RandomForestClassifier(n_estimators=6, random_state=0),
        BaggingClassifier(n_estimators=6, max_features=0.5, random_state=0),
    ]:
        model.fit(pd.DataFrame(X, columns=cols), y)
        pruned = prune_ensemble(
            model, "reduce_error", size=3, X_val=pd.DataFrame(Xv, columns=cols), y_val=pd.Series(yv)
        )
        assert pruned.predict(pd.DataFrame(Xt, columns=cols)).shape == (len(yt),)


@pytest.mark.parametrize("Model", [RandomForestClassifier, BaggingClassifier])
def test_bootstrap_bookkeeping_follows_the_kept_members(clf_data, Model):
    X, y, Xv, yv, Xt, yt = clf_data
    model = Model(n_estimators=8, random_state=0).fit(X, y)
    pruned = prune_ensemble(model, "orientation", size=3, X_val=Xv, y_val=yv)
    kept = pruned.prune_report_.kept_indices
    before = model.estimators_samples_
    for got, i in zip(pruned.estimators_samples_, kept, strict=True):
        np.testing.assert_array_equal(got, before[i])
    if Model is BaggingClassifier:
        for got, i in zip(pruned.estimators_features_, kept, strict=True):
            np.testing.assert_array_equal(got, model.estimators_features_[i])


def test_prune_data_of_the_wrong_width_and_bad_seeds_raise_prunekit_errors(clf_data, rf) -> None:
    X_val, y_val = clf_data[2:4]
    with pytest.raises(ShapeMismatchError, match="features"):
        prune_ensemble(rf, method="accuracy", size=0.2, X_val=X_val[:, :5], y_val=y_val)
    for bad in ("a", -1, 1.5):
        with pytest.raises(InvalidParameterError, match="random_state"):
            prune_ensemble(rf, method="accuracy", size=0.2, X_val=X_val, y_val=y_val,
                           random_state=bad)
