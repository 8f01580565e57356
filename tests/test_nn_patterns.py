"""Mask construction: exact counts, N:M groups, blocks, rows, global threshold with bounds."""

from __future__ import annotations

import pytest
import torch

from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.nn.patterns import (
    Pattern,
    block_mask,
    global_masks,
    mask_from_scores,
    nm_mask,
    parse_pattern,
    rowwise_mask,
    unstructured_mask,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~10x slower."""
    torch.set_num_threads(1)


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.73, 0.9, 0.99])
def test_unstructured_exact_count(sparsity: float) -> None:
    s = torch.randn(37, 23)
    keep = unstructured_mask(s, sparsity)
    assert keep.dtype == torch.bool and keep.shape == s.shape
    assert int((~keep).sum()) == round(sparsity * s.numel())
    # every pruned score <= every kept score
    if sparsity > 0:
        assert s[~keep].max() <= s[keep].min()


def test_unstructured_ties_are_deterministic() -> None:
    s = torch.ones(10)
    keep = unstructured_mask(s, 0.3)
    assert keep.tolist() == [False] * 3 + [True] * 7  # lower index pruned first
    assert torch.equal(keep, unstructured_mask(s.clone(), 0.3))


def test_unstructured_nan_pruned_first() -> None:
    s = torch.tensor([1.0, float("nan"), 3.0, 2.0])
    assert unstructured_mask(s, 0.25).tolist() == [True, False, True, True]


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4), (3, 8), (1, 2)])
def test_nm_linear_exact_per_group(n: int, m: int) -> None:
    s = torch.randn(6, 32)
    keep = nm_mask(s, n, m)
    groups = keep.reshape(6, 32 // m, m)
    assert (groups.sum(-1) == n).all()  # exactly N kept per group of M
    assert ((~groups).sum(-1) == m - n).all()
    # the kept ones are the N largest of each group
    sg = s.reshape(6, -1, m)
    kept_min = torch.where(groups, sg, torch.tensor(float("inf"))).amin(-1)
    pruned_max = torch.where(~groups, sg, torch.tensor(float("-inf"))).amax(-1)
    assert (kept_min >= pruned_max).all()


def test_nm_2to4_hand_example() -> None:
    s = torch.tensor([[0.1, 0.9, 0.5, 0.2, 4.0, 3.0, 2.0, 1.0]])
    assert nm_mask(s, 2, 4).tolist() == [[False, True, True, False, True, True, False, False]]


def test_nm_conv_groups_run_over_flattened_input() -> None:
    s = torch.randn(5, 4, 3, 3)  # in*kh*kw = 36, divisible by 4
    keep = nm_mask(s, 2, 4)
    assert keep.shape == s.shape
    assert (keep.reshape(5, 9, 4).sum(-1) == 2).all()


def test_nm_errors() -> None:
    with pytest.raises(ShapeMismatchError, match="divisible"):
        nm_mask(torch.randn(3, 10), 2, 4)
    with pytest.raises(InvalidParameterError):
        nm_mask(torch.randn(3, 8), 4, 4)


def test_nm_other_dim() -> None:
    s = torch.randn(8, 3)
    keep = nm_mask(s, 1, 4, dim=0)
    assert (keep.reshape(2, 4, 3).sum(1) == 1).all()


def test_block_mask_whole_blocks() -> None:
    s = torch.rand(8, 8)
    keep = block_mask(s, 0.5, (2, 4))
    tiles = keep.reshape(4, 2, 2, 4).permute(0, 2, 1, 3).reshape(8, 8)
    assert ((tiles.sum(-1) == 0) | (tiles.sum(-1) == 8)).all()
    assert int((~keep).sum()) == 32
    # the pruned blocks have the lowest mean scores
    means = s.reshape(4, 2, 2, 4).mean(dim=(1, 3))
    kept_blocks = keep.reshape(4, 2, 2, 4)[:, 0, :, 0]
    assert means[~kept_blocks].max() <= means[kept_blocks].min()


def test_block_mask_partial_edges() -> None:
    keep = block_mask(torch.rand(5, 6), 0.5, (1, 4))
    assert keep.shape == (5, 6)


def test_rowwise_same_fraction_per_row() -> None:
    s = torch.randn(7, 20)
    keep = rowwise_mask(s, 0.25)
    assert ((~keep).sum(1) == 5).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unstructured", Pattern("unstructured")),
        ("2:4", Pattern("nm", n=2, m=4)),
        (" 4:8 ", Pattern("nm", n=4, m=8)),
        ("block:4x4", Pattern("block", block=(4, 4))),
        ("block:1x4", Pattern("block", block=(1, 4))),
        ("rowwise", Pattern("rowwise")),
    ],
)
def test_parse_pattern(text: str, expected: Pattern) -> None:
    assert parse_pattern(text) == expected
    assert parse_pattern(str(expected)) == expected


@pytest.mark.parametrize("bad", ["4:2", "0:4", "2-4", "block:0x4", "sparse", 3])
def test_parse_pattern_rejects(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="pattern"):
        parse_pattern(bad)  # type: ignore[arg-type]


def test_mask_from_scores_dispatch() -> None:
    s = torch.randn(4, 8)
    assert torch.equal(mask_from_scores(s, 0.5, "unstructured"), unstructured_mask(s, 0.5))
    assert torch.equal(mask_from_scores(s, None, "2:4"), nm_mask(s, 2, 4))
    assert torch.equal(mask_from_scores(s, 0.5, "block:1x4"), block_mask(s, 0.5, (1, 4)))


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.8, 0.95])
def test_global_exact_total(sparsity: float) -> None:
    scores = {"a": torch.randn(30, 20), "b": torch.randn(17, 3) * 5, "c": torch.rand(11)}
    masks = global_masks(scores, sparsity)
    total = sum(s.numel() for s in scores.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert abs(pruned - sparsity * total) <= 1
    # one threshold: every pruned score <= every kept score
    allp = torch.cat([scores[k][~masks[k]].reshape(-1) for k in scores])
    allk = torch.cat([scores[k][masks[k]].reshape(-1) for k in scores])
    assert allp.max() <= allk.min()


def test_global_bounds() -> None:
    scores = {"small": torch.full((100,), 0.01), "big": torch.full((100,), 10.0)}
    masks = global_masks(scores, 0.5, min_sparsity=0.2, max_sparsity=0.7)
    assert int((~masks["small"]).sum()) == 70
    assert int((~masks["big"]).sum()) == 30
    per = global_masks(scores, 0.5, max_sparsity={"small": 0.1})
    assert int((~per["small"]).sum()) == 10 and int((~per["big"]).sum()) == 90


def test_global_rejects_nm() -> None:
    with pytest.raises(InvalidParameterError, match="global"):
        global_masks({"a": torch.randn(4, 8)}, 0.5, pattern="2:4")


def test_global_blocks() -> None:
    scores = {"a": torch.rand(8, 8), "b": torch.rand(4, 8) + 0.5}
    masks = global_masks(scores, 0.5, pattern="block:2x4")
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == 48  # 6 of 12 blocks of 8


def test_block_mask_needs_a_rows_cols_pair() -> None:
    with pytest.raises(InvalidParameterError, match="block"):
        block_mask(torch.ones(4, 4), 0.5, 4)  # type: ignore[arg-type]
