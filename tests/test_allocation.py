"""Allocation settings: the pull toward uniform ratios (``balance``), the blend with uniform
ratios (``mix``), SensitivityAllocation in structured ``prune`` and the choice of the blend on
validation data (``select_allocation``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunekit._evaluation import Accuracy, EvaluationError
from prunekit.errors import InvalidParameterError
from prunekit.metrics import count_macs
from prunekit.nn.allocation import (
    SensitivityAllocation,
    allocate,
    group_ratios,
    select_allocation,
)
from prunekit.nn.models import DigitsCNN, LeNet300100
from prunekit.nn.sensitivity import SensitivityResult, group_sensitivity, layer_sensitivity
from prunekit.nn.structured import prune
from prunekit.nn.training import train_classifier

GRID = (0.2, 0.4, 0.6, 0.8)


def _synthetic(drops: dict[str, list[float]], sizes: dict[str, float]) -> SensitivityResult:
    return SensitivityResult(
        kind="weights", grid=list(GRID), baseline=1.0, higher_is_better=True,
        metrics={n: [1.0 - d for d in v] for n, v in drops.items()},
        savings={"params": {n: [g * sizes[n] for g in GRID] for n in drops}},
        totals={"params": float(sum(sizes.values()))},
    )


@pytest.fixture(scope="module")
def two_layers() -> SensitivityResult:
    # "a" is nearly free to prune, "b" costs steadily: the knapsack piles the removal on "a"
    return _synthetic({"a": [0.0, 0.0, 0.01, 0.02], "b": [0.1, 0.3, 0.5, 0.7]},
                      {"a": 100, "b": 100})


@pytest.fixture(scope="module")
def digits():
    from prunekit.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def cnn(digits):
    torch.manual_seed(0)
    tr, va, _ = digits.loaders(64, images=True)
    m = DigitsCNN(width=8)
    train_classifier(m, tr, epochs=1)
    x = torch.randn(1, 1, 8, 8)
    g = group_sensitivity(m.eval(), x, Accuracy(va), grid=(0.25, 0.5, 0.75))
    return m, x, Accuracy(va), g


@pytest.fixture(scope="module")
def lenet(digits):
    torch.manual_seed(0)
    tr, va, _ = digits.loaders(64)
    m = LeNet300100(64)
    train_classifier(m, tr, epochs=2)
    res = layer_sensitivity(m.eval(), Accuracy(va), grid=(0.5, 0.7, 0.9))
    return m, Accuracy(va), res


def test_balance_pulls_the_knapsack_toward_uniform(two_layers):
    devs = []
    for balance in (0.0, 0.5, 5.0, 500.0):
        al = allocate(two_layers, sparsity=0.4, balance=balance)
        assert al.predicted_fraction >= 0.4 - 1e-9
        devs.append(max(abs(r - 0.4) for r in al.ratios.values()))
    assert devs[0] == pytest.approx(0.4)  # unregularised: a at 0.8, b dense
    assert all(b <= a + 1e-9 for a, b in zip(devs, devs[1:], strict=False))
    assert devs[-1] <= 0.05  # a strong pull lands on (about) the uniform ratio
    # the reported drop is the curves' own, never the penalty
    al = allocate(two_layers, sparsity=0.4, balance=500.0)
    exact = sum(float(np.interp(al.ratios[n], [0, *GRID], [0, *two_layers.drop(n)]))
                for n in al.ratios)
    assert al.predicted_drop == pytest.approx(exact, abs=1e-9)


def test_mix_blends_uniform_and_knapsack_ratios(two_layers):
    full = allocate(two_layers, sparsity=0.4)
    uni = allocate(two_layers, sparsity=0.4, mix=0.0)
    half = allocate(two_layers, sparsity=0.4, mix=0.5)
    assert uni.ratios == pytest.approx({"a": 0.4, "b": 0.4})
    assert half.ratios == pytest.approx({"a": 0.6, "b": 0.2})
    for al in (full, uni, half):
        assert al.predicted_fraction >= 0.4 - 1e-9
    assert full.predicted_drop < half.predicted_drop < uni.predicted_drop
    assert "mix 0.5" in half.notes[0] and not full.notes


def test_mix_and_balance_are_validated(two_layers):
    for bad in (-0.1, 1.5, True, "half", float("nan")):
        with pytest.raises(InvalidParameterError, match="mix must be in"):
            allocate(two_layers, sparsity=0.4, mix=bad)
    for bad in (-1.0, float("inf"), float("nan"), False, None):
        with pytest.raises(InvalidParameterError, match="balance must be"):
            allocate(two_layers, sparsity=0.4, balance=bad)
    with pytest.raises(InvalidParameterError, match="kind 'groups'"):
        SensitivityAllocation(two_layers)


def test_sensitivity_allocation_in_structured_prune(cnn):
    m, x, _, g = cnn
    bare, rep_b = prune(m, x, target_macs=0.5, allocation="sensitivity", sensitivity=g)
    same, rep_s = prune(m, x, target_macs=0.5, allocation="sensitivity",
                        sensitivity=SensitivityAllocation(g, mix=1.0))
    assert rep_s.plan == rep_b.plan  # mix 1 is the bare result
    for mix in (0.0, 0.5):
        slim, rep = prune(m, x, target_macs=0.5, allocation="sensitivity",
                          sensitivity=SensitivityAllocation(g, mix=mix))
        assert rep.macs_after <= 0.5 * rep.macs_before
    # mix 0: every group loses about the same fraction of its units, as uniform does
    graph_ratios = _ratios(m, x, g, 0.0)
    assert max(graph_ratios) - min(graph_ratios) <= 0.15
    with pytest.raises(InvalidParameterError, match="mix must be in"):
        SensitivityAllocation(g, mix=2)
    with pytest.raises(InvalidParameterError, match="method"):
        SensitivityAllocation(g, method="annealing")


def _ratios(m, x, g, mix):
    from prunekit.nn.structured.graph import analyze

    work = copy.deepcopy(m)
    graph = analyze(work, (x,), [])
    out = group_ratios(graph, SensitivityAllocation(g, mix=mix), 0.45, resource="macs",
                       max_ratio=0.9)
    return [r for r in out.values()]


def test_select_allocation_keeps_the_best_joint_candidate_weights(lenet):
    m, acc, res = lenet
    before = {k: v.clone() for k, v in m.state_dict().items()}
    choice = select_allocation(m, acc, res, sparsity=0.8)
    assert set(choice.scores) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert choice.metric == max(choice.scores.values())
    assert choice.metric == pytest.approx(acc(choice.model))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # untouched
    w = [choice.model.fc1.weight, choice.model.fc2.weight, choice.model.fc3.weight]
    assert sum(int((t == 0).sum()) for t in w) / sum(t.numel() for t in w) >= 0.8 - 1e-3
    assert "chosen" in choice.to_markdown()

    # a lower-is-better metric: the zeros of fc2 -> the candidate sparing fc2 the most
    def fc2_zeros(model):
        return float((model.fc2.weight == 0).float().mean())

    low = select_allocation(m, fc2_zeros, res, sparsity=0.8, higher_is_better=False)
    assert low.metric == min(low.scores.values())


def test_select_allocation_structured_and_errors(cnn):
    m, x, acc, g = cnn
    choice = select_allocation(m, acc, g, example_inputs=x, target_macs=0.5, mixes=(0, 1))
    assert set(choice.scores) == {0.0, 1.0}
    assert choice.metric == max(choice.scores.values())
    assert count_macs(choice.model, x) <= 0.5 * count_macs(m, x)
    assert choice.report.macs_after <= 0.5 * choice.report.macs_before
    with pytest.raises(InvalidParameterError, match="example_inputs"):
        select_allocation(m, acc, g, target_macs=0.5)
    with pytest.raises(InvalidParameterError, match="allocation= is set"):
        select_allocation(m, acc, g, example_inputs=x, target_macs=0.5, allocation="uniform")
    with pytest.raises(InvalidParameterError, match="mixes must"):
        select_allocation(m, acc, g, example_inputs=x, target_macs=0.5, mixes=())
    with pytest.raises(InvalidParameterError, match="mix must be in"):
        select_allocation(m, acc, g, example_inputs=x, target_macs=0.5, mixes=(0.5, 3))
    with pytest.raises(InvalidParameterError, match="eval_fn"):
        select_allocation(m, None, g, example_inputs=x, target_macs=0.5)


def test_mix_reaches_the_target_on_curved_savings():
    # savings that grow faster than the ratio (convex, e.g. rounding of narrow layers): a blend
    # of two allocations that each reach the target can fall short unless it is topped up
    res = SensitivityResult(
        kind="groups", grid=list(GRID), baseline=1.0, higher_is_better=True,
        metrics={"a": [1.0, 1.0, 0.99, 0.9], "b": [0.95, 0.9, 0.8, 0.6]},
        savings={"macs": {"a": [5.0, 20.0, 45.0, 80.0], "b": [20.0, 40.0, 60.0, 80.0]}},
        totals={"macs": 160.0},
    )
    for keep in (0.3, 0.45, 0.6, 0.75):
        for mix in (0.25, 0.5, 0.75):
            al = allocate(res, target_macs=keep, mix=mix)
            assert al.predicted_fraction >= (1 - keep) - 1e-9, (keep, mix)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.integers(2, 5), st.floats(0.0, 1.0), st.floats(0.05, 0.6), st.floats(0.0, 0.3),
       st.floats(0.0, 4.0), st.integers(0, 10_000))
def test_allocations_meet_target_and_bounds(n, mix, sparsity, lo, balance, seed):
    rng = np.random.default_rng(seed)
    drops = {f"l{i}": list(np.cumsum(rng.random(len(GRID))) * rng.random()) for i in range(n)}
    sizes = {f"l{i}": float(rng.integers(10, 1000)) for i in range(n)}
    res = _synthetic(drops, sizes)
    hi = 0.8
    try:
        al = allocate(res, sparsity=sparsity, mix=mix, balance=balance, min_ratio=lo,
                      max_ratio=hi)
    except InvalidParameterError as exc:  # only when the bounds make the target unreachable
        assert "not reachable" in str(exc)
        return
    assert al.predicted_fraction >= sparsity - 1e-6
    assert all(lo - 1e-9 <= r <= hi + 1e-9 for r in al.ratios.values())


def test_select_allocation_names_a_failing_candidate(lenet):
    m, _, res = lenet

    calls = []

    def flaky(model):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return 1.0

    with pytest.raises(EvaluationError, match="RuntimeError on the allocation with mix 0.5"):
        select_allocation(m, flaky, res, sparsity=0.8)
