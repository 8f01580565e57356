"""XGBoost / LightGBM: arbitrary rounds removed, native model files, prune_ensemble on margins."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from prunekit.ensembles import prune_ensemble
from prunekit.ensembles.boosted import keep_rounds, round_contributions
from prunekit.errors import InvalidParameterError

KEEP = [0, 3, 4, 9, 17, 19]  # non-contiguous


def _data(task):
    if task == "reg":
        return make_regression(300, 6, noise=5, random_state=0)
    n_classes = 3 if task == "multi" else 2
    return make_classification(300, 6, n_informative=4, n_classes=n_classes, random_state=0)


def _check_saved(model, pruned, X, raw, load, tmp_path, tol_scale):
    c, b = round_contributions(model, X)
    expected = b + c[KEEP].sum(axis=0)
    got = np.asarray(raw(pruned, X)).reshape(len(X), -1)
    # float32 libraries (XGBoost) sum in float32: allow its rounding, scaled by the terms
    atol = 1e-6 + tol_scale * (np.abs(b) + np.abs(c[KEEP]).sum(axis=0)).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
    again = np.asarray(load(pruned, tmp_path, X)).reshape(len(X), -1)
    np.testing.assert_allclose(again, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("task", ["binary", "multi", "reg"])
def test_xgboost_keep_rounds_native_file(task, tmp_path):
    xgb = pytest.importorskip("xgboost")
    X, y = _data(task)
    cls = xgb.XGBRegressor if task == "reg" else xgb.XGBClassifier
    model = cls(n_estimators=20, max_depth=3, random_state=0, n_jobs=1).fit(X, y)
    pruned = keep_rounds(model, KEEP)
    assert type(pruned) is cls
    assert len(pruned.get_booster().get_dump()) == len(KEEP) * (3 if task == "multi" else 1)

    def raw(m, X):
        return m.predict(X, output_margin=True)

    def load(m, tmp, X):
        path = tmp / "model.json"
        m.save_model(path)
        booster = xgb.Booster(model_file=str(path))
        return booster.predict(xgb.DMatrix(X.astype(np.float32)), output_margin=True)

    _check_saved(model, pruned, X, raw, load, tmp_path, 2e-7)
    assert len(model.get_booster().get_dump()) == 20 * (3 if task == "multi" else 1)  # untouched


@pytest.mark.parametrize("task", ["binary", "multi", "reg"])
def test_lightgbm_keep_rounds_native_file(task, tmp_path):
    lgb = pytest.importorskip("lightgbm")
    X, y = _data(task)
    cls = lgb.LGBMRegressor if task == "reg" else lgb.LGBMClassifier
    model = cls(n_estimators=20, num_leaves=8, verbose=-1, random_state=0, n_jobs=1).fit(X, y)
    pruned = keep_rounds(model, KEEP)
    assert type(pruned) is cls
    assert pruned.booster_.num_trees() == len(KEEP) * (3 if task == "multi" else 1)

    def raw(m, X):
        return m.predict(X, raw_score=True)

    def load(m, tmp, X):
        path = tmp / "model.txt"
        m.booster_.save_model(str(path))
        return lgb.Booster(model_file=str(path)).predict(X, raw_score=True)

    _check_saved(model, pruned, X, raw, load, tmp_path, 1e-12)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_prune_ensemble_on_boosted(lib):
    mod = pytest.importorskip(lib)
    X, y = _data("binary")
    if lib == "xgboost":
        model = mod.XGBClassifier(n_estimators=20, max_depth=2, random_state=0, n_jobs=1)
    else:
        model = mod.LGBMClassifier(n_estimators=20, num_leaves=4, verbose=-1, random_state=0,
                                   n_jobs=1)
    model.fit(X[:200], y[:200])
    for method in ("reduce_error", "orientation", "margin_distance", "boosting"):
        small = prune_ensemble(model, method, size=0.3, X_val=X[200:], y_val=y[200:])
        assert type(small) is type(model)
        assert small.prune_report_.n_members_after == 6
        acc = float(np.mean(small.predict(X[200:]) == y[200:]))
        assert acc == pytest.approx(small.prune_report_.score_after, abs=1e-9)
    best = prune_ensemble(model, "reduce_error", size=0.3, X_val=X[200:], y_val=y[200:])
    rand = prune_ensemble(model, "random", size=0.3, X_val=X[200:], y_val=y[200:],
                          random_state=0)
    assert best.prune_report_.score_after >= rand.prune_report_.score_after
    with pytest.raises(InvalidParameterError, match="method"):
        prune_ensemble(model, "gasen", size=0.3, X_val=X[200:], y_val=y[200:])
    with pytest.raises(InvalidParameterError, match="rounds"):
        keep_rounds(model, [25])
