"""Accuracy-budget search over trees, ensembles and neural networks."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch
from sklearn.ensemble import BaggingClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from prunekit import budget
from prunekit._evaluation import Accuracy, EvaluationError
from prunekit.errors import InvalidParameterError
from prunekit.nn.models import DigitsCNN, LeNet300100
from prunekit.nn.training import train_classifier


@pytest.fixture(scope="module")
def cancer():
    from prunekit.data import load_dataset

    return load_dataset("breast_cancer")


@pytest.fixture(scope="module")
def tree(cancer):
    return DecisionTreeClassifier(random_state=0).fit(cancer.X_train, cancer.y_train)


@pytest.fixture(scope="module")
def lenet():
    from prunekit.data import load_dataset

    d = load_dataset("digits")
    torch.manual_seed(0)
    tr, va, _ = d.loaders(64)
    m = LeNet300100(64)
    train_classifier(m, tr, epochs=4)
    return m, Accuracy(va), tr


def _data(d):
    return {"X_val": d.X_val, "y_val": d.y_val, "X_eval": d.X_test, "y_eval": d.y_test}


def test_tree_search_picks_the_smallest_tree_within_budget(tree, cancer):
    res = budget.search_tree(tree, max_drop=0.02, **_data(cancer))
    base = tree.score(cancer.X_test, cancer.y_test)
    assert res.baseline == pytest.approx(base) and res.threshold == pytest.approx(base - 0.02)
    assert res.reachable
    chosen = res.model
    assert chosen.tree_.node_count == res.chosen.size < tree.tree_.node_count
    assert chosen.score(cancer.X_test, cancer.y_test) >= base - 0.02
    smaller = [p for p in res.points if p.size < res.chosen.size]
    assert all(not p.feasible for p in smaller)
    assert {p.setting["method"] for p in res.points} >= {"cost_complexity", "c45", "min_error"}
    front = res.pareto
    assert [p.size for p in front] == sorted(p.size for p in front)
    assert all(b.metric > a.metric for a, b in zip(front, front[1:], strict=False))


def test_relative_budget_and_bad_budget(tree, cancer):
    res = budget.search_tree(tree, max_drop=0.05, relative=True, **_data(cancer))
    assert res.threshold == pytest.approx(res.baseline * 0.95)
    for bad in (-0.1, float("nan"), "1%"):
        with pytest.raises(InvalidParameterError, match="max_drop"):
            budget.search_tree(tree, max_drop=bad, **_data(cancer))


def test_unreachable_budget_is_explicit(tree, cancer):
    # a metric only the unpruned tree satisfies: every candidate misses the budget
    def nodes(model):
        return float(model.tree_.node_count)

    res = budget.search_tree(tree, max_drop=0.0, eval_fn=nodes, X_val=cancer.X_val,
                             y_val=cancer.y_val)
    assert not res.reachable and res.chosen is None
    assert res.closest is not None and res.closest.size == max(p.size for p in res.points)
    with pytest.raises(budget.BudgetNotReachable, match="closest candidate"):
        _ = res.model
    assert "Not reachable" in res.to_markdown()


def test_eval_fn_raising_or_nan_is_an_error(tree, cancer):
    def boom(model):
        if model.tree_.node_count < tree.tree_.node_count:
            raise ValueError("bad batch")
        return 1.0

    with pytest.raises(EvaluationError, match="bad batch"):
        budget.search_tree(tree, eval_fn=boom, X_val=cancer.X_val, y_val=cancer.y_val)
    with pytest.raises(InvalidParameterError, match="nan"):
        budget.search_tree(tree, eval_fn=lambda m: float("nan"), X_val=cancer.X_val,
                           y_val=cancer.y_val)


@pytest.mark.parametrize("kind", ["forest", "bagging"])
def test_ensemble_search_size_is_minimal(cancer, kind):
    if kind == "forest":
        model = RandomForestClassifier(30, random_state=0)
    else:
        model = BaggingClassifier(DecisionTreeClassifier(), n_estimators=30, random_state=0)
    model.fit(cancer.X_train, cancer.y_train)
    res = budget.search_ensemble(model, max_drop=0.01, methods=["reduce_error"], **_data(cancer))
    assert res.reachable
    k = int(res.chosen.size)
    assert len(res.model.estimators_) == k
    assert res.model.score(cancer.X_test, cancer.y_test) >= res.threshold - 1e-12
    if k > 1:  # the size just below was tried by the bisection and failed
        below = [p for p in res.points if p.setting["size"] == k - 1]
        assert below and not below[0].feasible


def test_sparsity_search_keeps_model_and_zeros(lenet):
    m, acc, tr = lenet
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = budget.search_sparsity(m, acc, max_drop=0.02, prune_first_last=True,
                                 grid=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98))
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    assert res.reachable and res.chosen.setting["sparsity"] >= 0.5
    assert acc(res.model) == pytest.approx(res.chosen.metric)
    # early stopping: once two points in a row failed no larger sparsity was evaluated
    order = [p.setting["sparsity"] for p in res.points]
    assert 0.98 not in order or all(p.feasible for p in res.points[:2])

    def finetune(model):
        train_classifier(model, tr, epochs=1, max_steps=5)

    res2 = budget.search_sparsity(m, acc, max_drop=0.02, grid=(0.9,), prune_first_last=True,
                                  finetune=finetune, refine=0)
    p = res2.points[0]
    assert p.size == res.points[0].size if res.points[0].setting["sparsity"] == 0.9 else True
    cand = res2.model if res2.reachable else None
    if cand is not None:
        w = cand.fc1.weight
        assert float((w == 0).float().mean()) >= 0.89


def test_structured_search_reports_macs():
    from prunekit.data import load_dataset

    d = load_dataset("digits")
    torch.manual_seed(0)
    tr, va, _ = d.loaders(64, images=True)
    m = DigitsCNN(width=8)
    train_classifier(m, tr, epochs=4)
    acc = Accuracy(va)
    x = torch.randn(1, 1, 8, 8)
    res = budget.search_structured(m, x, acc, max_drop=0.1, grid=(0.95, 0.8, 0.6), refine=1)
    assert res.size_name == "macs" and res.reachable
    from prunekit.metrics import count_macs

    assert count_macs(res.model, x) == res.chosen.size < res.baseline_size
    fig = res.plot()
    assert fig.axes[0].get_xlabel() == "macs"


def test_n_jobs_validation_and_parallel_same_answer(tree, cancer):
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        budget.search_tree(tree, n_jobs=0, **_data(cancer))
    one = budget.search_tree(tree, max_drop=0.02, methods=["c45", "min_error"], **_data(cancer))
    import joblib

    with joblib.parallel_backend("threading"):  # the backend context reaches the sweep
        two = budget.search_tree(tree, max_drop=0.02, methods=["c45", "min_error"], n_jobs=2,
                                 **_data(cancer))
    assert [p.metric for p in one.points] == [p.metric for p in two.points]
    assert one.chosen.setting == two.chosen.setting


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_backend(tree, cancer):  # pragma: no cover - optional
    import joblib
    import ray
    from ray.util.joblib import register_ray

    register_ray()
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        with joblib.parallel_backend("ray"):
            res = budget.search_tree(tree, max_drop=0.02, methods=["c45"], n_jobs=2,
                                     **_data(cancer))
    finally:
        ray.shutdown()
    assert res.reachable


def test_report_gets_plot_and_table(tree, cancer, tmp_path):
    from prunekit.report import Report

    res = budget.search_tree(tree, max_drop=0.02, **_data(cancer))
    rep = res.add_to_report(Report("budget"))
    html = rep.to_html() if hasattr(rep, "to_html") else ""
    assert "Pareto front" in rep.to_markdown()
    assert html == "" or "<img" in html
    d = res.to_dict()
    assert d["reachable"] and len(d["points"]) == len(res.points)
    assert np.isfinite(d["compression"])
    _ = copy.deepcopy(d)
