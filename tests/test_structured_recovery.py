"""Calibration-only recovery for structured pruning: scores, least squares, BatchNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.errors import InvalidParameterError
from prunekit.nn.structured import apply_plan, dependency_groups, prune
from prunekit.nn.structured.core import make_plan
from prunekit.nn.structured.recovery import (
    activation_scorer,
    activation_scores,
    calibration_inputs,
    calibration_repair,
    prune_calibrated,
    recalibrate_batchnorm,
    reconstruct,
)


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 6, 3, padding=1, stride=2)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.c1(x)))
        x = torch.relu(self.c2(x))
        return self.fc(x.flatten(1))


def _dup_net() -> ConvNet:
    """Channels 4..7 of c1 copy channels 0..3: removing them loses nothing c2 cannot refit."""
    torch.manual_seed(0)
    m = ConvNet().eval()
    with torch.no_grad():
        m.c1.weight[4:] = m.c1.weight[:4]
        m.c1.bias[4:] = m.c1.bias[:4]
        m.bn.weight[4:] = m.bn.weight[:4]
        m.bn.bias[4:] = m.bn.bias[:4]
    return m


def _remove(m: nn.Module, x: torch.Tensor, layer: str, positions: list[int]):
    graph = dependency_groups(m, x)
    use = graph.uses[(layer, "out")]
    units = graph.unit_of(use)
    removed = {int(units[p]) for p in positions}
    plan = make_plan(m, graph, removed)
    return apply_plan(m, plan), plan, graph


def test_least_squares_recovers_removed_duplicate_channels():
    m = _dup_net()
    x = torch.randn(64, 3, 8, 8)
    pruned, plan, _ = _remove(m, x, "c1", [4, 5, 6, 7])
    assert pruned.c2.in_channels == 4
    with torch.no_grad():
        before = (pruned(x) - m(x)).abs().max().item()
    done = reconstruct(m, pruned, plan, [x[:32], x[32:]], ridge=1e-8)
    assert "c2" in done
    with torch.no_grad():
        after = (pruned(x) - m(x)).abs().max().item()
    assert before > 0.05
    assert after < 1e-3 * max(before, 1.0)


def test_reconstruction_linear_with_kept_output_subset():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 3))
    with torch.no_grad():
        m[0].weight[5:] = m[0].weight[:5]
        m[0].bias[5:] = m[0].bias[:5]
    x = torch.randn(200, 6)
    graph = dependency_groups(m, x[:1])
    u0 = graph.unit_of(graph.uses[("0", "out")])
    u2 = graph.unit_of(graph.uses[("2", "out")])
    removed = {int(u0[p]) for p in range(5, 10)} | {int(u2[6])}
    plan = make_plan(m, graph, removed)
    pruned = apply_plan(m, plan)
    reconstruct(m, pruned, plan, [x], ridge=1e-9)
    with torch.no_grad():
        h_dense = m[:3](x)[:, :6]
        h_pruned = pruned[:3](x)
    torch.testing.assert_close(h_pruned, h_dense, atol=1e-4, rtol=1e-4)


def test_batchnorm_recalibration_matches_batch_statistics():
    m = _dup_net()
    m.bn.momentum = 0.1
    x = torch.randn(64, 3, 8, 8) * 3 + 1
    assert recalibrate_batchnorm(m, [x[:32], x[32:]]) == 1
    with torch.no_grad():
        z = m.c1(x)
    torch.testing.assert_close(m.bn.running_mean, z.mean((0, 2, 3)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.bn.running_var, z.var((0, 2, 3), unbiased=True), atol=1e-3,
                               rtol=1e-3)
    assert m.bn.momentum == 0.1 and not m.bn.training


def test_activation_scores_see_dead_channels():
    torch.manual_seed(0)
    m = ConvNet().eval()
    with torch.no_grad():
        m.c2.weight[2] *= 50  # huge weights...
        m.c2.bias[2] = -1e4  # ...but the channel is always zero after ReLU
    x = torch.randn(16, 3, 8, 8)
    graph = dependency_groups(m, x[:1])
    units = graph.unit_of(graph.uses[("c2", "out")])
    scores = activation_scores(m, graph, [x])
    per = [scores[int(u)] for u in units]
    assert per[2] == 0.0 and min(per[:2] + per[3:]) > 0
    slim, _ = prune_calibrated(m, x[:1], [x], ratio=1 / 6, reconstruct_weights=False,
                               batchnorm=False, ignored_layers=["c1"])
    assert slim.c2.out_channels == 5 and slim.c1.out_channels == 8
    with torch.no_grad():  # the dead channel went and nothing changed
        torch.testing.assert_close(slim(x), m(x))


def test_prune_calibrated_beats_magnitude_on_trained_cnn():
    from prunekit.data import load_dataset
    from prunekit.nn.models import DigitsCNN
    from prunekit.nn.training import train_classifier

    d = load_dataset("digits")
    torch.manual_seed(0)
    tr, va, te = d.loaders(64, images=True)
    m = DigitsCNN(width=8)
    train_classifier(m, tr, epochs=4)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    x = next(iter(va))[0][:1]
    xs = torch.cat([b[0] for b in te])

    def agree(p):
        with torch.no_grad():
            return float((p(xs).argmax(1) == m(xs).argmax(1)).float().mean())

    plain, rep0 = prune(m, x, target_macs=0.5)
    cal, rep = prune_calibrated(m, x, va, target_macs=0.5, max_inputs=256)
    assert rep.macs_after <= 0.5 * rep.macs_before
    assert agree(cal) > agree(plain) + 0.05
    assert any("reconstruction" in n for n in rep.notes)
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())


def test_bad_inputs():
    m = ConvNet()
    x = torch.randn(4, 3, 8, 8)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        prune_calibrated(m, x[:1], [x])
    with pytest.raises(InvalidParameterError, match="criterion"):
        prune_calibrated(m, x[:1], [x], ratio=0.5, criterion="taylor")
    with pytest.raises(InvalidParameterError, match="no inputs"):
        calibration_inputs([])
    with pytest.raises(InvalidParameterError, match="tensors"):
        calibration_inputs([["a"]])
    assert sum(len(t) for t in calibration_inputs([x, x, x], max_inputs=6)) == 6


def test_prune_hooks_score_and_repair_inside_one_target_search():
    torch.manual_seed(0)
    m = ConvNet().eval()
    x = torch.randn(16, 3, 8, 8)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    seen = {}

    def scorer(model, graph):  # prefer removing the highest-index units
        return {u: -float(u) for g in graph.groups for u in g.units}

    def repair(dense, pruned, plan):
        seen.update(dense=dense, pruned=pruned, plan=plan)
        return ["repaired"]

    slim, rep = prune(m, x[:1], target_macs=0.6, criterion="mine", scorer=scorer, repair=repair)
    assert rep.criterion == "mine" and rep.notes[-1] == "repaired"
    assert rep.macs_after <= 0.6 * rep.macs_before
    assert seen["pruned"] is slim and seen["plan"] is rep.plan
    assert seen["dense"] is not m and seen["dense"].c1.out_channels == 8  # dense private copy
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    # ratio mode: the dense copy handed to repair is not the one shrunk in place
    slim, _ = prune(m, x[:1], ratio=0.5, scorer=scorer, criterion="mine", repair=repair)
    assert seen["dense"].c2.out_channels == 6 and slim.c2.out_channels == 3
    # the calibrated wrapper is exactly these hooks
    calib = calibration_inputs([x])
    a, ra = prune_calibrated(m, x[:1], [x], target_macs=0.5)
    b, rb = prune(m, x[:1], target_macs=0.5, criterion="activation",
                  scorer=activation_scorer(calib), repair=calibration_repair(calib))
    assert ra.plan == rb.plan and ra.notes == rb.notes
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_prune_hook_errors_are_clear():
    m = ConvNet()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(InvalidParameterError, match="scorer must be a callable"):
        prune(m, x, ratio=0.5, scorer="activation")
    with pytest.raises(InvalidParameterError, match="repair must be a callable"):
        prune(m, x, ratio=0.5, repair=1)
    with pytest.raises(InvalidParameterError, match="no score for"):
        prune(m, x, ratio=0.5, criterion="mine", scorer=lambda model, graph: {})
    with pytest.raises(InvalidParameterError, match="non-finite"):
        prune(m, x, ratio=0.5, criterion="mine",
              scorer=lambda model, graph: {u: float("nan") for g in graph.groups for u in g.units})
    with pytest.raises(InvalidParameterError, match="return a dict"):
        prune(m, x, ratio=0.5, criterion="mine", scorer=lambda model, graph: [1.0])
    with pytest.raises(InvalidParameterError, match="criterion"):
        prune(m, x, ratio=0.5, criterion="mine")  # a custom name needs a scorer
