"""Pure maths of one-shot pruning: scores, masks and the SparseGPT solver on one weight matrix.

All functions take a weight ``W`` of shape ``(out_features, in_features)`` (the ``nn.Linear``
layout) and calibration statistics of the layer's inputs; they never touch a model. Keep masks
are boolean tensors, ``True`` = kept (the convention of :mod:`prunekit.nn.patterns`).

References
----------
- Wanda: Sun, Liu, Bair, Kolter, "A Simple and Effective Pruning Approach for Large Language
  Models", ICLR 2024 (arXiv:2306.11695).
- SparseGPT: Frantar, Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
  One-Shot", ICML 2023 (arXiv:2301.00774), Algorithm 1.
- OWL: Yin et al., "Outlier Weighed Layerwise Sparsity (OWL): A Missing Secret Sauce for Pruning
  LLMs to High Sparsity", ICML 2024 (arXiv:2310.05175).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from prunekit._validation import check_positive_int, check_sparsity
from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.nn.patterns import Pattern, nm_mask, parse_pattern, rowwise_mask, unstructured_mask

SUPPORTED_PATTERNS = ("unstructured", "N:M (e.g. '2:4', '4:8')")


def check_oneshot_pattern(pattern: str | Pattern) -> Pattern:
    """Parse ``pattern`` and accept only the kinds one-shot pruning supports."""
    pat = parse_pattern(pattern)
    if pat.kind not in ("unstructured", "nm"):
        raise InvalidParameterError(
            f"pattern={str(pat)!r} is not supported by one-shot pruning; accepted values: "
            + ", ".join(SUPPORTED_PATTERNS)
        )
    return pat


def _check_weight(weight: torch.Tensor) -> None:
    if weight.ndim != 2:
        raise ShapeMismatchError(
            f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}"
        )


def _n_pruned(numel: int, sparsity: float) -> int:
    return int(round(numel * sparsity))


def wanda_scores(weight: torch.Tensor, input_sq_norms: torch.Tensor) -> torch.Tensor:
    """Wanda importance ``|W_ij| * ||X_j||_2`` (Sun et al. 2024, eq. 1).

    ``input_sq_norms[j]`` is the sum over calibration tokens of the squared j-th input feature.
    """
    _check_weight(weight)
    if input_sq_norms.shape != (weight.shape[1],):
        raise ShapeMismatchError(
            f"input_sq_norms must have shape ({weight.shape[1]},), "
            f"got {tuple(input_sq_norms.shape)}"
        )
    return weight.detach().abs().float() * input_sq_norms.float().clamp_min(0).sqrt()[None, :]


def _mask(scores: torch.Tensor, sparsity: float, pattern: Pattern, per_row: bool) -> torch.Tensor:
    if pattern.kind == "nm":
        return nm_mask(scores, pattern.n, pattern.m)
    return rowwise_mask(scores, sparsity) if per_row else unstructured_mask(scores, sparsity)


def wanda_mask(
    weight: torch.Tensor,
    input_sq_norms: torch.Tensor,
    sparsity: float,
    pattern: str | Pattern = "unstructured",
    per_row: bool = True,
) -> torch.Tensor:
    """Wanda keep mask: the smallest ``|W|·||X||`` removed per output row (Wanda's comparison
    group; ``per_row=False`` compares the whole layer) or per N:M group."""
    pat = check_oneshot_pattern(pattern)
    return _mask(wanda_scores(weight, input_sq_norms), sparsity, pat, per_row)


def magnitude_mask(
    weight: torch.Tensor,
    sparsity: float,
    pattern: str | Pattern = "unstructured",
    per_row: bool = False,
) -> torch.Tensor:
    """Magnitude keep mask: the smallest ``|W|`` removed per layer (Han et al. 2015, the
    baseline of Wanda/SparseGPT) or per output row, or per N:M group."""
    _check_weight(weight)
    pat = check_oneshot_pattern(pattern)
    return _mask(weight.detach().abs().float(), sparsity, pat, per_row)


@dataclass(frozen=True)
class SparseGPTResult:
    """Output of :func:`sparsegpt_prune`: the reconstructed weight, its keep mask, the OBS loss."""

    weight: torch.Tensor
    mask: torch.Tensor
    loss: float


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    pattern: str | Pattern = "unstructured",
    *,
    blocksize: int = 128,
    mask_blocksize: int | None = None,
    percdamp: float = 0.01,
    overwrite_hessian: bool = False,
) -> SparseGPTResult:
    """SparseGPT (Frantar & Alistarh 2023, Algorithm 1): prune and reconstruct one layer.

    Minimises ``||W X - Ŵ X||²`` column by column with the Optimal Brain Surgeon update, using
    the upper Cholesky factor of the inverse of the dampened Hessian ``H = 2 X Xᵀ / n``.

    - dampening: ``λ = percdamp · mean(diag H)`` added to the diagonal;
    - dead inputs (``H_ii = 0``): ``H_ii := 1`` and their weights are set to zero;
    - lazy batch updates over column blocks of ``blocksize`` (B);
    - adaptive mask selection every ``mask_blocksize`` (Bs, default B; must divide B) columns,
      removing the ``sparsity`` fraction of smallest ``w² / [H⁻¹]²_cc`` of the block;
    - N:M patterns choose, at the first column of every group of M, the N columns per row to keep.

    Returns the new weight (same dtype as ``weight``), the keep mask and the summed OBS loss
    ``Σ (w - ŵ)² / [H⁻¹]_cc² / 2``. ``overwrite_hessian=True`` lets the function use
    ``hessian``'s memory (a float32 Hessian is then destroyed) instead of a copy; the factor
    matrices are freed as soon as used, so the peak is about two ``cols x cols`` matrices.
    """
    _check_weight(weight)
    rows, cols = weight.shape
    if hessian.shape != (cols, cols):
        raise ShapeMismatchError(
            f"hessian must have shape ({cols}, {cols}), got {tuple(hessian.shape)}"
        )
    pat = check_oneshot_pattern(pattern)
    sparsity = check_sparsity(sparsity) if pat.kind == "unstructured" else pat.fixed_sparsity
    blocksize = check_positive_int("blocksize", blocksize)
    bs = blocksize if mask_blocksize is None else check_positive_int("mask_blocksize",
                                                                     mask_blocksize)
    if blocksize % bs:
        raise InvalidParameterError(
            f"mask_blocksize={bs} must divide blocksize={blocksize}"
        )
    if pat.kind == "nm":
        if cols % pat.m:
            raise ShapeMismatchError(
                f"N:M sparsity needs in_features divisible by M={pat.m}; got in_features={cols}"
            )
        if blocksize % pat.m:
            raise InvalidParameterError(f"blocksize={blocksize} must be a multiple of M={pat.m}")
    if percdamp < 0:
        raise InvalidParameterError(f"percdamp must be >= 0, got {percdamp!r}")

    W = weight.detach().clone().float()
    H = hessian.detach()
    H = H.float() if overwrite_hessian and H.dtype == torch.float32 else H.clone().float()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    damp = percdamp * torch.mean(torch.diag(H))
    idx = torch.arange(cols, device=H.device)
    H[idx, idx] += damp
    # Upper Cholesky factor of H^-1: row i holds the OBS update for eliminating column i.
    # Each intermediate is dropped once used (peak: two cols x cols matrices, not four).
    L = torch.linalg.cholesky(H)
    del H
    H_inv = torch.cholesky_inverse(L)
    del L
    Hinv = torch.linalg.cholesky(H_inv, upper=True)
    del H_inv

    pruned = torch.zeros(rows, cols, dtype=torch.bool, device=W.device)
    losses = torch.zeros(rows, device=W.device)
    n_remove_total = _n_pruned(rows * cols, sparsity)
    removed_so_far = 0
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d1 = torch.diag(Hinv1)
        mask1 = torch.zeros_like(W1, dtype=torch.bool)  # True = pruned
        for i in range(count):
            if pat.kind == "unstructured" and i % bs == 0:
                j2 = min(i + bs, count)
                tmp = W1[:, i:j2] ** 2 / d1[None, i:j2] ** 2
                # Exact count: cumulative target up to column i1 + j2 minus what is removed.
                target = _n_pruned(rows * (i1 + j2), sparsity) if i1 + j2 < cols else (
                    n_remove_total)
                k = min(max(target - removed_so_far, 0), tmp.numel())
                if k:
                    sel = torch.topk(tmp.flatten(), k, largest=False).indices
                    block_mask = torch.zeros(tmp.numel(), dtype=torch.bool, device=W.device)
                    block_mask[sel] = True
                    mask1[:, i:j2] = block_mask.view_as(tmp)
                removed_so_far += k
            elif pat.kind == "nm" and i % pat.m == 0:
                tmp = W1[:, i:i + pat.m] ** 2 / d1[None, i:i + pat.m] ** 2
                sel = torch.topk(tmp, pat.m - pat.n, dim=1, largest=False).indices
                mask1[:, i:i + pat.m].scatter_(1, sel, True)
            w = W1[:, i]
            d = Hinv1[i, i]
            q = w.clone()
            q[mask1[:, i]] = 0.0
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d**2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        losses += Losses1.sum(dim=1) / 2
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    keep = ~pruned
    W = W * keep  # exact zeros where pruned (dead inputs are zero already)
    return SparseGPTResult(W.to(weight.dtype), keep, float(losses.sum()))


def reconstruction_error(
    weight: torch.Tensor, new_weight: torch.Tensor, hessian: torch.Tensor
) -> float:
    """Layer-wise error ``tr((W-Ŵ) H (W-Ŵ)ᵀ)``; with ``H = X Xᵀ`` it equals ``||WX - ŴX||²_F``."""
    delta = (weight.float() - new_weight.float())
    return float(torch.einsum("ij,jk,ik->", delta, hessian.float(), delta))


def outlier_ratio(scores: torch.Tensor | Sequence[torch.Tensor], m: float = 5.0) -> float:
    """OWL layerwise outlier distribution: fraction of scores larger than ``m`` × their mean."""
    if not isinstance(scores, torch.Tensor):
        scores = torch.cat([s.flatten().float() for s in scores])
    scores = scores.flatten().float()
    if scores.numel() == 0:
        return 0.0
    return float((scores > m * scores.mean()).float().mean())


def owl_sparsities(
    outlier_ratios: Sequence[float], sparsity: float, lam: float = 0.08
) -> list[float]:
    """OWL non-uniform sparsities: more outliers → lower sparsity, within ``sparsity ± lam``.

    Follows the reference implementation: the outlier ratios are min-max scaled to
    ``[0, 2·lam]``, shifted to average ``1 - sparsity`` (the kept fraction), and
    ``1 - ratio`` is each block's sparsity; the mean sparsity equals ``sparsity``.
    """
    sparsity = check_sparsity(sparsity)
    r = torch.tensor(list(outlier_ratios), dtype=torch.float64)
    if r.numel() == 0:
        return []
    span = float(r.max() - r.min())
    scaled = (r - r.min()) / span * (2 * lam) if span > 0 else torch.zeros_like(r)
    keep = scaled - scaled.mean() + (1.0 - sparsity)
    return [float(min(max(1.0 - k, 0.0), 0.99)) for k in keep]
