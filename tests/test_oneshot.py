"""One-shot calibration pruning: maths on tiny tensors, the block-by-block walk, HF models."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError
from prunekit.nn.oneshot import (
    find_blocks,
    magnitude_mask,
    oneshot,
    outlier_ratio,
    owl_sparsities,
    reconstruction_error,
    sparsegpt_prune,
    wanda_mask,
)


def _correlated_inputs(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g)
    mix = torch.randn(d, d, generator=g) / d**0.5
    scale = torch.logspace(-1, 1, d)[torch.randperm(d, generator=g)]  # outlier features
    return (base @ mix + 0.3 * base) * scale


# ------------------------------------------------------------------------------------ maths
def test_wanda_mask_equals_direct_score_on_tiny_linear() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(8, 4)
    x = torch.randn(3, 5, 8)  # (batch, seq, in)
    norms = (x.reshape(-1, 8) ** 2).sum(0)
    mask = wanda_mask(layer.weight, norms, 0.5)
    # direct computation: |W_ij| * ||X_j||_2, keep the 4 largest of each row
    score = layer.weight.abs() * x.reshape(-1, 8).norm(dim=0)
    expected = torch.zeros_like(mask)
    for i in range(4):
        expected[i, score[i].argsort(descending=True)[:4]] = True
    assert torch.equal(mask, expected)
    # and through the model walk: the layer's hook statistics give the same mask
    pruned = copy.deepcopy(layer)
    report = oneshot(pruned, x, "wanda", 0.5, blocks=[pruned])
    assert torch.equal(pruned.weight != 0, expected)
    assert torch.allclose(pruned.weight[expected], layer.weight[expected])
    assert report.layers[0].sparsity == 0.5


def test_wanda_differs_from_magnitude_when_inputs_have_outliers() -> None:
    w = torch.ones(2, 4)
    w[:, 0] = 0.5  # small weight on a huge input feature
    norms = torch.tensor([100.0, 1.0, 1.0, 1.0])
    assert wanda_mask(w, norms, 0.25)[:, 0].all()
    assert not magnitude_mask(w, 0.25, per_row=True)[:, 0].any()


@pytest.mark.parametrize("pattern", ["unstructured", "2:4", "4:8"])
def test_sparsegpt_reconstruction_beats_magnitude_at_same_mask(pattern: str) -> None:
    x = _correlated_inputs(512, 64)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(32, 64, generator=g)
    h = 2 * x.T @ x / x.shape[0]
    res = sparsegpt_prune(w, h, 0.5, pattern, blocksize=32, percdamp=0.01)
    # the same mask, no weight update (magnitude's treatment of a given mask)
    err_same_mask = ((x @ (w * res.mask).T - x @ w.T) ** 2).sum()
    err_sparsegpt = ((x @ res.weight.T - x @ w.T) ** 2).sum()
    err_magnitude = ((x @ (w * magnitude_mask(w, 0.5, pattern)).T - x @ w.T) ** 2).sum()
    assert err_sparsegpt < 0.95 * err_same_mask  # the OBS update helps on any fixed mask
    assert err_sparsegpt < 0.5 * err_magnitude  # and its mask + update beat magnitude's mask
    assert torch.equal(res.weight != 0, res.mask)
    assert (~res.mask).sum() == w.numel() // 2
    hx = x.T @ x
    assert reconstruction_error(w, res.weight, hx) == pytest.approx(float(err_sparsegpt), rel=1e-3)


@pytest.mark.parametrize(("pattern", "n", "m"), [("2:4", 2, 4), ("4:8", 4, 8), ("1:4", 1, 4)])
@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_nm_masks_are_exact(pattern: str, n: int, m: int, method: str) -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 64)
    x = _correlated_inputs(256, 64)
    if method == "magnitude":
        keep = magnitude_mask(w, 0.0, pattern)
    elif method == "wanda":
        keep = wanda_mask(w, (x**2).sum(0), 0.0, pattern)
    else:
        keep = sparsegpt_prune(w, 2 * x.T @ x / 256, 0.0, pattern, blocksize=32).mask
    per_group = keep.reshape(16, 64 // m, m).sum(-1)
    assert torch.all(per_group == n)


def test_sparsegpt_handles_dead_inputs_and_exact_sparsity() -> None:
    x = _correlated_inputs(256, 48)
    x[:, 3] = 0.0  # a dead input feature: H_33 = 0
    w = torch.randn(8, 48)
    res = sparsegpt_prune(w, 2 * x.T @ x / 256, 0.3, blocksize=16, mask_blocksize=8)
    assert torch.all(res.weight[:, 3] == 0)
    assert int((~res.mask).sum()) == round(0.3 * w.numel())
    assert torch.isfinite(res.weight).all()


def test_sparsegpt_rejects_bad_arguments() -> None:
    w, h = torch.randn(4, 6), torch.eye(6)
    with pytest.raises(ShapeMismatchError):
        sparsegpt_prune(w, h, 0.5, "2:4")  # 6 inputs not divisible by 4
    with pytest.raises(ShapeMismatchError):
        sparsegpt_prune(w, torch.eye(5), 0.5)
    with pytest.raises(InvalidParameterError, match="mask_blocksize"):
        sparsegpt_prune(w, h, 0.5, blocksize=8, mask_blocksize=3)
    with pytest.raises(InvalidParameterError, match="pattern"):
        sparsegpt_prune(w, h, 0.5, "block:2x2")


def test_owl_sparsities_mean_and_order() -> None:
    s = owl_sparsities([0.01, 0.05, 0.03], 0.6, lam=0.1)
    assert sum(s) / 3 == pytest.approx(0.6)
    assert s[1] < s[2] < s[0]  # most outliers → lowest sparsity
    assert max(s) - min(s) == pytest.approx(0.2)
    assert owl_sparsities([0.1, 0.1], 0.5) == [0.5, 0.5]
    assert outlier_ratio(torch.tensor([1.0, 1.0, 1.0, 100.0]), m=2) == 0.25


# ------------------------------------------------------------------------------- model walk
def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8)
    )


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_blockwise_equals_all_at_once_on_sequential(method: str) -> None:
    model = _mlp()
    x = torch.randn(40, 16)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    ra = oneshot(a, x, method, 0.5, batch_size=16)
    oneshot(b, x, method, 0.5, batch_size=16, blockwise=False)
    assert ra.block_path == "<sequential children>" and ra.n_blocks == 5
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)
    assert ra.sparsity == pytest.approx(0.5)
    assert ra.n_calibration_samples == 40 and ra.n_calibration_batches == 3


def test_sequential_pruning_uses_pruned_inputs() -> None:
    """Block 2's statistics come from the *pruned* block 0 (SparseGPT's sequential scheme)."""
    model = _mlp()
    x = torch.randn(64, 16)
    seq = copy.deepcopy(model)
    oneshot(seq, x, "wanda", 0.5)
    # all-from-dense variant: statistics of every layer taken from the dense model
    dense_stats = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, k=k: dense_stats.__setitem__(k, i[0]))
        for k, m in enumerate(model) if isinstance(m, nn.Linear)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    w2 = model[2].weight
    from_dense = wanda_mask(w2, (dense_stats[2] ** 2).sum(0), 0.5)
    with torch.no_grad():
        h1 = torch.relu(seq[0](x))
    from_pruned = wanda_mask(w2, (h1**2).sum(0), 0.5)
    assert torch.equal(seq[2].weight != 0, from_pruned)
    assert not torch.equal(from_pruned, from_dense)


def test_magnitude_needs_no_data_and_hooks_are_removed() -> None:
    model = _mlp()
    report = oneshot(model, None, "magnitude", 0.7)
    assert report.sparsity == pytest.approx(0.7, abs=1e-3)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    model2 = _mlp()
    oneshot(model2, torch.randn(8, 16), "sparsegpt", 0.5)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model2.modules())
    assert model2.training  # training flag restored


def test_ignore_and_errors() -> None:
    model = _mlp()
    report = oneshot(model, torch.randn(8, 16), "wanda", 0.5, ignore=["4"])
    assert ("4", "matched an ignore= pattern") in report.skipped
    assert torch.all(model[4].weight != 0)
    with pytest.raises(InvalidParameterError, match="method"):
        oneshot(_mlp(), torch.randn(4, 16), "obs")
    with pytest.raises(InvalidParameterError, match="calibration_data"):
        oneshot(_mlp(), None, "wanda")
    with pytest.raises(InvalidParameterError, match="contradicts"):
        oneshot(_mlp(), torch.randn(4, 16), "wanda", 0.7, pattern="2:4")
    with pytest.raises(InvalidParameterError, match="owl"):
        oneshot(_mlp(), torch.randn(4, 16), "wanda", pattern="2:4", owl=True)
    with pytest.raises(InvalidParameterError, match="blocks"):
        find_blocks(_mlp(), "no.such.path")
    with pytest.raises(UnsupportedModelError):
        oneshot("not a model", torch.randn(4, 16))  # type: ignore[arg-type]


def test_owl_gives_non_uniform_block_sparsity() -> None:
    model = _mlp()
    x = _correlated_inputs(64, 16)
    report = oneshot(model, x, "wanda", 0.5, owl=True, owl_lambda=0.1)
    assert len(report.block_sparsities) == 5
    linear = [report.block_sparsities[i] for i in (0, 2, 4)]
    assert len({round(s, 6) for s in linear}) == 3
    assert sum(linear) / 3 == pytest.approx(0.5)
    assert max(linear) - min(linear) == pytest.approx(0.2)
    for layer in report.layers:
        assert layer.sparsity == pytest.approx(report.block_sparsities[layer.block], abs=0.035)
