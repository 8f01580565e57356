"""size="auto" with a tolerance, and held-out (test-style) scores beside the selection scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    BaggingClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

from prunekit.ensembles import prune_ensemble
from prunekit.errors import InvalidParameterError


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(600, 10, n_informative=4, flip_y=0.1, random_state=0)
    return X[:300], y[:300], X[300:450], y[300:450], X[450:], y[450:]


@pytest.fixture(scope="module")
def forest(data):
    X, y, *_ = data
    return RandomForestClassifier(60, max_depth=5, random_state=0).fit(X, y)


def _first_within(scores, tol):
    scores = np.asarray(scores)
    return int(np.flatnonzero(scores >= scores.max() - tol - 1e-12)[0])


@pytest.mark.parametrize("method", ["reduce_error", "orientation", "cluster"])
def test_auto_with_tolerance_is_the_smallest_size_within_tolerance(forest, data, method):
    _, _, Xv, yv, _, _ = data
    strict = prune_ensemble(forest, method, "auto", Xv, yv).prune_report_
    loose = prune_ensemble(forest, method, "auto", Xv, yv, tolerance=0.02).prune_report_
    sizes, scores = zip(*strict.curve, strict=True)
    assert strict.n_members_after == sizes[_first_within(scores, 0.0)]
    assert loose.n_members_after == sizes[_first_within(scores, 0.02)]
    assert loose.n_members_after <= strict.n_members_after
    assert loose.score_after >= max(scores) - 0.02 - 1e-12
    assert strict.tolerance == 0.0 and loose.tolerance == 0.02
    huge = prune_ensemble(forest, method, "auto", Xv, yv, tolerance=1.0).prune_report_
    assert huge.n_members_after == sizes[0]


def test_tolerance_on_regression_is_in_r2_points_and_boosting_stages(data):
    X, y = make_regression(300, 6, noise=20.0, random_state=0)
    rf = RandomForestRegressor(30, max_depth=4, random_state=0).fit(X[:150], y[:150])
    rep = prune_ensemble(rf, "reduce_error", "auto", X[150:], y[150:],
                         tolerance=0.05).prune_report_
    sizes, r2 = zip(*rep.curve, strict=True)
    assert rep.n_members_after == sizes[_first_within(r2, 0.05)]
    Xc, yc, Xv, yv, _, _ = data
    gb = GradientBoostingClassifier(n_estimators=40, random_state=0).fit(Xc, yc)
    for tol in (0.0, 0.03):
        st = prune_ensemble(gb, "stages", "auto", Xv, yv, tolerance=tol).prune_report_
        assert st.n_members_after == _first_within([s for _, s in st.curve], tol) + 1


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "0.01", True, None])
def test_bad_tolerance_is_rejected(forest, data, bad):
    _, _, Xv, yv, _, _ = data
    with pytest.raises(InvalidParameterError, match="tolerance"):
        prune_ensemble(forest, "reduce_error", "auto", Xv, yv, tolerance=bad)


def test_held_out_scores_beside_the_optimistic_selection_scores(forest, data):
    _, _, Xv, yv, Xt, yt = data
    small = prune_ensemble(forest, "reduce_error", "auto", Xv, yv, X_eval=Xt, y_eval=yt)
    rep = small.prune_report_
    assert rep.eval_score_before == pytest.approx(forest.score(Xt, yt))
    assert rep.eval_score_after == pytest.approx(small.score(Xt, yt))
    # the selection-set score is optimistic: it was maximised on that very set
    assert rep.score_after >= rep.eval_score_after
    text = rep.summary()
    assert "held-out accuracy" in text and "optimistic" in text
    assert f"{rep.eval_score_after:.4f}" in text
    assert rep.to_dict()["eval_score_after"] == rep.eval_score_after
    plain = prune_ensemble(forest, "reduce_error", "auto", Xv, yv).prune_report_
    assert plain.eval_score_after is None and "pass X_eval" in plain.summary()


def test_held_out_scores_with_oob_selection_and_boosting(data):
    X, y, _, _, Xt, yt = data
    bag = BaggingClassifier(n_estimators=20, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        small = prune_ensemble(bag, "orientation", 0.5, X, y, use_oob=True, X_eval=Xt, y_eval=yt)
    rep = small.prune_report_
    assert rep.data == "oob" and "out-of-bag" in rep.summary()
    assert rep.eval_score_after == pytest.approx(small.score(Xt, yt))
    gb = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y)
    st = prune_ensemble(gb, "stages", 5, Xt, yt, X_eval=Xt, y_eval=yt).prune_report_
    assert st.eval_score_after == pytest.approx(st.score_after)  # same data: same number


def test_bad_held_out_data_is_rejected(forest, data):
    _, _, Xv, yv, Xt, yt = data
    with pytest.raises(InvalidParameterError, match="X_eval"):
        prune_ensemble(forest, "reduce_error", 5, Xv, yv, X_eval=Xt)
    with pytest.raises(Exception, match="X_eval"):
        prune_ensemble(forest, "reduce_error", 5, Xv, yv, X_eval=Xt[:, :3], y_eval=yt)
    with pytest.raises(InvalidParameterError, match="y_eval"):
        prune_ensemble(forest, "reduce_error", 5, Xv, yv, X_eval=Xt, y_eval=yt + 7)


def test_held_out_scores_and_tolerance_for_xgboost(data):
    xgb = pytest.importorskip("xgboost")
    X, y, Xv, yv, Xt, yt = data
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    small = prune_ensemble(model, "reduce_error", "auto", Xv, yv, tolerance=0.01,
                           X_eval=Xt, y_eval=yt)
    rep = small.prune_report_
    assert rep.tolerance == 0.01
    assert rep.eval_score_before == pytest.approx(model.score(Xt, yt))
    assert rep.eval_score_after == pytest.approx(small.score(Xt, yt))
