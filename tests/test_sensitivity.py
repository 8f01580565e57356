"""Sensitivity curves, their cache and proxies, and the allocation of ratios to a target."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch

from prunekit._evaluation import Accuracy, BatchLoss, EvaluationError
from prunekit.errors import InvalidParameterError
from prunekit.nn import model_sparsity, prune_model
from prunekit.nn.allocation import allocate, owl_allocation, solve
from prunekit.nn.models import DigitsCNN, LeNet300100
from prunekit.nn.sensitivity import (
    SensitivityResult,
    clear_cache,
    group_sensitivity,
    layer_sensitivity,
    plot_sensitivity,
)
from prunekit.nn.structured import prune
from prunekit.nn.training import train_classifier


@pytest.fixture(scope="module")
def digits():
    from prunekit.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def lenet(digits):
    torch.manual_seed(0)
    tr, va, _ = digits.loaders(64)
    m = LeNet300100(64)
    train_classifier(m, tr, epochs=4)
    return m, Accuracy(va), va


@pytest.fixture(scope="module")
def cnn(digits):
    torch.manual_seed(0)
    tr, va, _ = digits.loaders(64, images=True)
    m = DigitsCNN(width=8)
    train_classifier(m, tr, epochs=5)
    return m, Accuracy(va), va


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_layer_sensitivity_restores_model_and_degrades(lenet):
    m, acc, _ = lenet
    clear_cache()
    before = _state(m)
    res = layer_sensitivity(m, acc, grid=(0.2, 0.95))
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert res.names == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert res.baseline == pytest.approx(acc(m))
    # pruning 95 % of the 10-way output layer hurts far more than 20 % of it
    assert res.drop("fc3.weight")[1] > res.drop("fc3.weight")[0] + 0.05
    assert res.savings["params"]["fc1.weight"][1] == round(0.95 * 64 * 300)


def test_cache_skips_evaluation_and_disk_cache(lenet, tmp_path):
    m, acc, _ = lenet
    clear_cache()
    calls = []

    def metric(model):
        calls.append(1)
        return acc(model)

    metric.cache_name = "val-accuracy"  # a stable name: results reusable from the disk cache

    a = layer_sensitivity(m, metric, grid=(0.5,), cache_dir=tmp_path)
    n = len(calls)
    assert n == 1 + 3
    b = layer_sensitivity(m, metric, grid=(0.5,), cache_dir=tmp_path)
    assert len(calls) == n and b.metrics == a.metrics
    clear_cache()  # memory gone, the JSON file answers
    c = layer_sensitivity(m, metric, grid=(0.5,), cache_dir=tmp_path)
    assert len(calls) == n and c.metrics == a.metrics
    m2 = copy.deepcopy(m)
    with torch.no_grad():
        m2.fc1.weight[0, 0] += 1.0  # another model: recomputed
    layer_sensitivity(m2, metric, grid=(0.5,), cache_dir=tmp_path)
    assert len(calls) == 2 * n


def test_cache_tells_metrics_apart(lenet, digits):
    m, acc, va = lenet
    clear_cache()
    _, _, te = digits.loaders(64)
    a = layer_sensitivity(m, acc, grid=(0.9,))
    b = layer_sensitivity(m, Accuracy(te), grid=(0.9,))  # same class, other data: recomputed
    assert a.baseline != b.baseline or a.metrics != b.metrics
    assert layer_sensitivity(m, Accuracy(va), grid=(0.9,)).metrics == a.metrics  # same data

    def f(model):
        return acc(model)

    def g(model):
        return 1.0 - acc(model)

    assert layer_sensitivity(m, f, grid=(0.9,)).metrics != layer_sensitivity(
        m, g, grid=(0.9,)).metrics


def test_eval_fn_errors_are_named(lenet):
    m, _, _ = lenet
    clear_cache()

    def boom(model):
        raise RuntimeError("disk on fire")

    with pytest.raises(EvaluationError, match="dense model: disk on fire"):
        layer_sensitivity(m, boom, grid=(0.5,))
    state = {"n": 0}

    def nan_later(model):
        state["n"] += 1
        return 0.9 if state["n"] == 1 else float("nan")

    before = _state(m)
    with pytest.raises(InvalidParameterError, match="nan on layer 'fc1.weight'"):
        layer_sensitivity(m, nan_later, grid=(0.5,))
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    with pytest.raises(InvalidParameterError, match="grid"):
        layer_sensitivity(m, lambda _m: 1.0, grid=(0.0, 1.0))


def test_taylor_proxy_ranks_like_the_measured_loss(lenet):
    m, _, va = lenet
    clear_cache()
    full = layer_sensitivity(m, data=va, grid=(0.3, 0.6, 0.9))  # loss on batches
    assert full.higher_is_better is False
    proxy = layer_sensitivity(m, data=va, grid=(0.3, 0.6, 0.9), method="taylor")
    a = np.concatenate([full.drop(n) for n in full.names])
    b = np.concatenate([proxy.drop(n) for n in proxy.names])
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    rho = np.corrcoef(rank(a), rank(b))[0, 1]
    assert rho > 0.6, rho


def test_group_sensitivity_exact_savings(cnn):
    m, acc, _ = cnn
    clear_cache()
    x = torch.randn(1, 1, 8, 8)
    before = _state(m)
    res = group_sensitivity(m, x, acc, grid=(0.25, 0.75))
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    assert set(res.names) == {"features.0", "features.3", "features.7", "classifier.1"}
    for n in res.names:
        macs = res.savings["macs"][n]
        assert 0 < macs[0] < macs[1] < res.totals["macs"]
    # one channel group pruned alone by its own removal gives the recorded MACs
    slim, rep = prune(m, x, ratio=0.25)
    assert rep.macs_before == res.totals["macs"]


def _synthetic(drops: dict[str, list[float]], sizes: dict[str, float], grid) -> SensitivityResult:
    return SensitivityResult(
        kind="weights", grid=list(grid), baseline=1.0, higher_is_better=True,
        metrics={n: [1.0 - d for d in v] for n, v in drops.items()},
        savings={"params": {n: [g * sizes[n] for g in grid] for n in drops}},
        totals={"params": float(sum(sizes.values()))},
    )


def test_allocation_spares_the_sensitive_layer():
    grid = (0.2, 0.4, 0.6, 0.8)
    res = _synthetic({"a": [0.0, 0.0, 0.01, 0.02], "b": [0.1, 0.3, 0.5, 0.7]},
                     {"a": 100, "b": 100}, grid)
    al = allocate(res, sparsity=0.4)
    assert al.ratios["a"] == pytest.approx(0.8) and al.ratios["b"] == 0.0
    assert al.predicted_fraction >= 0.4
    al = allocate(res, sparsity=0.4, max_ratio={"a": 0.6})
    assert al.ratios["a"] <= 0.6 + 1e-9 and al.predicted_fraction >= 0.4 - 1e-9
    al = allocate(res, sparsity=0.1, min_ratio={"b": 0.2})
    assert al.ratios["b"] >= 0.2 - 1e-9
    with pytest.raises(InvalidParameterError, match="not reachable.*at most 0.5"):
        allocate(res, sparsity=0.6, max_ratio=0.5)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        allocate(res, sparsity=0.5, target_macs=0.5)
    with pytest.raises(InvalidParameterError, match="no 'macs' savings"):
        allocate(res, target_macs=0.5)


def test_dp_is_optimal_on_small_instances():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n, g = 3, 4
        opts = {}
        for i in range(n):
            r = np.linspace(0, 0.9, g)
            d = np.sort(rng.random(g)) * (i + 1)
            d[0] = 0
            s = np.sort(rng.random(g)) * rng.integers(1, 5)
            s[0] = 0
            opts[f"l{i}"] = (r, d, s)
        need = rng.random() * sum(o[2].max() for o in opts.values())
        best = math.inf
        for combo in itertools.product(range(g), repeat=n):
            sv = sum(opts[f"l{i}"][2][j] for i, j in enumerate(combo))
            if sv >= need:
                best = min(best, sum(opts[f"l{i}"][1][j] for i, j in enumerate(combo)))
        picks = solve(opts, need, buckets=4000)
        got_s = sum(opts[k][2][j] for k, j in picks.items())
        got_d = sum(opts[k][1][j] for k, j in picks.items())
        assert got_s >= need - 1e-9, trial
        assert got_d <= best + 1e-6 + 0.01 * best, (trial, got_d, best)
        g_picks = solve(opts, need, method="greedy")
        assert sum(opts[k][2][j] for k, j in g_picks.items()) >= need - 1e-9
        assert got_d <= sum(opts[k][1][j] for k, j in g_picks.items()) + 1e-9


def test_allocation_scope_in_prune_model_beats_uniform(lenet):
    m, acc, _ = lenet
    clear_cache()
    res = layer_sensitivity(m, acc, grid=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98))
    al = allocate(res, sparsity=0.9)
    a = copy.deepcopy(m)
    prune_model(a, scope=al.scope, prune_first_last=True)
    w = [a.fc1.weight, a.fc2.weight, a.fc3.weight]
    frac = sum(int((t == 0).sum()) for t in w) / sum(t.numel() for t in w)
    assert frac >= 0.9 - 1e-3
    u = copy.deepcopy(m)
    prune_model(u, scope={n: 0.9 for n in al.scope}, prune_first_last=True)
    assert acc(a) >= acc(u)
    assert model_sparsity(a) > 0.5


def test_structured_sensitivity_allocation_meets_target_and_helps(cnn):
    m, acc, _ = cnn
    clear_cache()
    x = torch.randn(1, 1, 8, 8)
    g = group_sensitivity(m, x, acc, grid=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8))
    sens, rep = prune(m, x, target_macs=0.4, allocation="sensitivity", sensitivity=g)
    uni, rep_u = prune(m, x, target_macs=0.4)
    assert rep.macs_after <= 0.4 * rep.macs_before
    assert rep.allocation == "sensitivity"
    assert acc(sens) > acc(uni)
    with pytest.raises(InvalidParameterError, match="sensitivity=group_sensitivity"):
        prune(m, x, ratio=0.3, allocation="sensitivity")


def test_plots_lines_and_heatmap(lenet):
    grid = (0.5, 0.9)
    small = _synthetic({"a": [0.1, 0.2], "b": [0.0, 0.3]}, {"a": 1, "b": 1}, grid)
    fig = plot_sensitivity(small)
    assert len(fig.axes[0].lines) == 3  # two curves + dense line
    many = _synthetic({f"l{i}": [0.0, i / 20] for i in range(20)}, {f"l{i}": 1 for i in range(20)},
                      grid)
    fig = plot_sensitivity(many)
    assert len(fig.axes[0].images) == 1


def test_owl_allocation_keeps_the_mean():
    al = owl_allocation({"a": 0.01, "b": 0.05, "c": 0.02}, 0.5, lam=0.1)
    assert np.mean(list(al.ratios.values())) == pytest.approx(0.5)
    assert al.ratios["b"] < al.ratios["a"]  # more outliers, less pruning


def test_batch_loss_reads_data_once():
    x = torch.randn(8, 4)
    y = torch.randint(0, 2, (8,))
    it = iter([(x, y)])
    bl = BatchLoss(it)
    lin = torch.nn.Linear(4, 2)
    assert bl(lin) == pytest.approx(bl(lin))
