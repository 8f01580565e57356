"""Sparsity patterns: turn element scores into *keep masks* (bool tensors, ``True`` = weight kept).

Pure functions on tensors, no model walking. Higher score = more important = kept.
Ties are broken deterministically: among equal scores the element with the lower flat index is
pruned first (stable sort), so the same scores always give the same mask.

Patterns
--------
* ``unstructured`` — any element may go (Han et al. 2015, "Learning both Weights and
  Connections").
* ``N:M`` — NVIDIA semi-structured sparsity (Mishra et al. 2021, "Accelerating Sparse Deep
  Neural Networks"; Zhou et al. 2021): in every group of ``M`` consecutive weights along the
  *input* dimension the ``N`` largest are **kept**. For 2:4 and 4:8 that is also exactly N zeros
  per group. Linear weights ``[out, in]`` group along ``in``; convolution weights
  ``[out, in, kh, kw]`` group along the flattened ``in*kh*kw``.
* ``block:RxC`` — whole ``R x C`` tiles of the 2-D weight view are kept or pruned together,
  scored by the mean of their element scores (Narang et al. 2017, "Block-Sparse Recurrent
  Neural Networks"; Gray et al. 2017, block-sparse GPU kernels).
* ``rowwise`` — the same fraction is pruned in every output row (the comparison group of
  Wanda, Sun et al. 2023).

:func:`global_masks` ranks several layers together (one threshold) with per-layer bounds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from prunekit._validation import check_positive_int, check_sparsity
from prunekit.errors import InvalidParameterError, ShapeMismatchError

PatternKind = Literal["unstructured", "nm", "block", "rowwise"]

__all__ = [
    "Pattern",
    "parse_pattern",
    "unstructured_mask",
    "nm_mask",
    "block_mask",
    "rowwise_mask",
    "mask_from_scores",
    "global_masks",
    "weight_view_2d",
    "count_zeros",
]


@dataclass(frozen=True)
class Pattern:
    """A parsed sparsity pattern. Build it with :func:`parse_pattern`.

    ``n``/``m`` are set for N:M patterns, ``block`` (rows, cols) for block patterns.
    """

    kind: PatternKind
    n: int = 0
    m: int = 0
    block: tuple[int, int] = (1, 1)

    def __str__(self) -> str:
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        if self.kind == "block":
            return f"block:{self.block[0]}x{self.block[1]}"
        return self.kind

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity the pattern itself implies (``1 - N/M`` for N:M), else ``None``."""
        return 1.0 - self.n / self.m if self.kind == "nm" else None


_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_BLOCK_RE = re.compile(r"^\s*block\s*[:=]?\s*(\d+)\s*[xX*]\s*(\d+)\s*$")
PATTERN_HELP = (
    "'unstructured', 'rowwise', 'N:M' (e.g. '2:4', '4:8'), 'block:RxC' (e.g. 'block:1x4')"
)


def parse_pattern(pattern: str | Pattern) -> Pattern:
    """Parse ``"unstructured"``, ``"rowwise"``, ``"N:M"`` (``"2:4"``) or ``"block:RxC"``."""
    if isinstance(pattern, Pattern):
        return pattern
    if not isinstance(pattern, str):
        raise InvalidParameterError(f"pattern={pattern!r} must be a string: {PATTERN_HELP}")
    text = pattern.strip().lower()
    if text in ("unstructured", "element", "none"):
        return Pattern("unstructured")
    if text in ("rowwise", "row", "per_row", "per-row"):
        return Pattern("rowwise")
    if match := _NM_RE.match(text):
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m:
            raise InvalidParameterError(
                f"pattern={pattern!r}: N:M needs 0 < N < M (e.g. '2:4'), got N={n}, M={m}"
            )
        return Pattern("nm", n=n, m=m)
    if match := _BLOCK_RE.match(text):
        r, c = int(match.group(1)), int(match.group(2))
        if r < 1 or c < 1:
            raise InvalidParameterError(f"pattern={pattern!r}: block sides must be >= 1")
        if (r, c) == (1, 1):
            return Pattern("unstructured")
        return Pattern("block", block=(r, c))
    raise InvalidParameterError(
        f"pattern={pattern!r} is not supported; accepted values: {PATTERN_HELP}"
    )


def _n_prune(numel: int, sparsity: float) -> int:
    # round half away from zero on exact .5 is irrelevant here; Python's round is fine and
    # documented: exactly round(sparsity * numel) zeros.
    return min(numel, max(0, int(round(sparsity * numel))))


def _clean(scores: torch.Tensor) -> torch.Tensor:
    s = scores.detach().to(torch.float64) if not scores.is_floating_point() else scores.detach()
    # NaN scores rank lowest (pruned first) so a broken score never keeps a weight by accident.
    return torch.nan_to_num(s, nan=-math.inf)


def unstructured_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep mask with exactly ``round(sparsity * numel)`` pruned (False) elements.

    The lowest scores are pruned; ties go by flat index (lower index pruned first).
    """
    sparsity = check_sparsity(sparsity)
    flat = _clean(scores).reshape(-1)
    k = _n_prune(flat.numel(), sparsity)
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if k:
        order = torch.argsort(flat, stable=True)
        keep[order[:k]] = False
    return keep.reshape(scores.shape)


def weight_view_2d(t: torch.Tensor) -> torch.Tensor:
    """The ``[out, in*...]`` view of a weight: rows are outputs, columns the flattened inputs."""
    if t.ndim == 0:
        return t.reshape(1, 1)
    if t.ndim == 1:
        return t.reshape(1, -1)
    return t.reshape(t.shape[0], -1)


def nm_mask(scores: torch.Tensor, n: int, m: int, dim: int = -1) -> torch.Tensor:
    """N:M keep mask: the ``n`` largest scores of every ``m`` consecutive ones along ``dim`` kept.

    With ``dim=-1`` a weight of more than two dimensions (convolution ``[out, in, kh, kw]``) is
    grouped along its flattened input ``in*kh*kw``. Any other ``dim`` moves that axis last.
    Raises :class:`ShapeMismatchError` when the grouped size is not divisible by ``m``.
    """
    check_positive_int("m", m, minimum=2)
    check_positive_int("n", n)
    if n >= m:
        raise InvalidParameterError(f"N:M needs N < M, got n={n}, m={m}")
    s = _clean(scores)
    if s.ndim == 0:
        raise ShapeMismatchError("nm_mask needs a tensor with at least one dimension")
    flatten_inputs = s.ndim > 2 and dim in (-1, s.ndim - 1)
    view = s.reshape(s.shape[0], -1) if flatten_inputs else s.movedim(dim, -1)
    size = view.shape[-1]
    if size % m:
        what = "flattened input size" if flatten_inputs else f"size along dim={dim}"
        raise ShapeMismatchError(
            f"N:M pattern {n}:{m} needs the {what} ({size}) to be divisible by m={m} "
            f"(tensor shape {tuple(scores.shape)})"
        )
    groups = view.reshape(*view.shape[:-1], size // m, m)
    order = torch.argsort(groups, dim=-1, descending=True, stable=True)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(-1, order[..., :n], True)
    keep = keep.reshape(view.shape)
    if flatten_inputs:
        return keep.reshape(scores.shape)
    return keep.movedim(-1, dim).contiguous()


def _block_scores(s2: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """Mean element score of every ``block`` tile of a 2-D tensor (edge tiles may be partial)."""
    r, c = block
    rows, cols = s2.shape
    pr, pc = (-rows) % r, (-cols) % c
    finite = torch.where(torch.isinf(s2), torch.zeros_like(s2), s2)
    padded = torch.nn.functional.pad(finite, (0, pc, 0, pr))
    ones = torch.nn.functional.pad(torch.ones_like(s2), (0, pc, 0, pr))
    br, bc = padded.shape[0] // r, padded.shape[1] // c
    total = padded.reshape(br, r, bc, c).sum(dim=(1, 3))
    count = ones.reshape(br, r, bc, c).sum(dim=(1, 3))
    return total / count


def _expand_blocks(
    block_keep: torch.Tensor, block: tuple[int, int], shape2d: torch.Size
) -> torch.Tensor:
    r, c = block
    full = block_keep.repeat_interleave(r, dim=0).repeat_interleave(c, dim=1)
    return full[: shape2d[0], : shape2d[1]]


def block_mask(
    scores: torch.Tensor, sparsity: float, block: tuple[int, int] = (1, 4)
) -> torch.Tensor:
    """Block keep mask: ``round(sparsity * n_blocks)`` whole ``block`` tiles of the 2-D view pruned.

    A block's score is the mean of its element scores; edge tiles may be partial when the
    shape is not divisible by the block.
    """
    sparsity = check_sparsity(sparsity)
    if not isinstance(block, tuple | list) or len(block) != 2:
        raise InvalidParameterError(f"block must be a (rows, cols) pair, got {block!r}")
    r, c = (check_positive_int("block rows", block[0]), check_positive_int("block cols", block[1]))
    s2 = weight_view_2d(_clean(scores))
    bs = _block_scores(s2, (r, c))
    keep_b = unstructured_mask(bs, sparsity)
    return _expand_blocks(keep_b, (r, c), s2.shape).reshape(scores.shape)


def rowwise_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Per output row, prune the ``round(sparsity * row_size)`` lowest scores (Wanda's groups)."""
    sparsity = check_sparsity(sparsity)
    s2 = weight_view_2d(_clean(scores))
    k = _n_prune(s2.shape[1], sparsity)
    keep = torch.ones_like(s2, dtype=torch.bool)
    if k:
        order = torch.argsort(s2, dim=1, stable=True)
        keep.scatter_(1, order[:, :k], False)
    return keep.reshape(scores.shape)


def mask_from_scores(
    scores: torch.Tensor, sparsity: float | None, pattern: str | Pattern = "unstructured"
) -> torch.Tensor:
    """Dispatch to the mask builder of ``pattern``.

    For N:M patterns the sparsity is set by the pattern (``1 - N/M``) and ``sparsity`` is
    ignored (it may be ``None``).
    """
    pat = parse_pattern(pattern)
    if pat.kind == "nm":
        return nm_mask(scores, pat.n, pat.m)
    if sparsity is None:
        raise InvalidParameterError(f"pattern={str(pat)!r} needs a sparsity")
    if pat.kind == "block":
        return block_mask(scores, sparsity, pat.block)
    if pat.kind == "rowwise":
        return rowwise_mask(scores, sparsity)
    return unstructured_mask(scores, sparsity)


def global_masks(
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    *,
    min_sparsity: float | Mapping[str, float] = 0.0,
    max_sparsity: float | Mapping[str, float] = 1.0,
    pattern: str | Pattern = "unstructured",
) -> dict[str, torch.Tensor]:
    """One threshold over all tensors: exactly ``round(sparsity * total)`` elements pruned.

    Each tensor's own sparsity stays within ``[min_sparsity, max_sparsity]`` (a number for all or
    a dict by name). The lowest ``ceil(min * n)`` of each tensor are pruned first; the rest of the
    budget goes to the globally lowest remaining scores, capping each tensor at
    ``floor(max * n)``. The requested overall sparsity is met exactly (to the element; to the block
    for block patterns) whenever the bounds allow it, else the nearest feasible count is used.
    Supports ``unstructured`` and ``block:RxC`` patterns (blocks count as units).
    """
    sparsity = check_sparsity(sparsity)
    pat = parse_pattern(pattern)
    if pat.kind not in ("unstructured", "block"):
        raise InvalidParameterError(
            f"global scope supports pattern 'unstructured' or 'block:RxC', got {str(pat)!r}; "
            "use scope='layer' for N:M and rowwise patterns"
        )
    names = list(scores)
    if not names:
        return {}
    units: list[torch.Tensor] = []
    for name in names:
        s = _clean(scores[name]).to(torch.float64)
        if pat.kind == "block":
            s = _block_scores(weight_view_2d(s), pat.block)
        units.append(s.reshape(-1))

    def bound(b: float | Mapping[str, float], name: str, default: float) -> float:
        v = b.get(name, default) if isinstance(b, Mapping) else b
        return min(max(float(v), 0.0), 1.0)

    sizes = [u.numel() for u in units]
    lo = [
        min(n, math.ceil(bound(min_sparsity, name, 0.0) * n - 1e-9))
        for name, n in zip(names, sizes, strict=True)
    ]
    hi = [
        max(lo_i, math.floor(bound(max_sparsity, name, 1.0) * n + 1e-9))
        for name, n, lo_i in zip(names, sizes, lo, strict=True)
    ]
    k = _n_prune(sum(sizes), sparsity)
    k = min(max(k, sum(lo)), sum(hi))

    # rank of each element inside its own tensor (ascending, stable)
    orders = [torch.argsort(u, stable=True) for u in units]
    sorted_scores = [u[o] for u, o in zip(units, orders, strict=True)]
    forced = sum(lo)
    cand_scores, cand_owner = [], []
    for i, ss in enumerate(sorted_scores):
        cand_scores.append(ss[lo[i] : hi[i]])
        cand_owner.append(torch.full((hi[i] - lo[i],), i, dtype=torch.long, device=ss.device))
    n_pruned = list(lo)
    extra = k - forced
    if extra > 0:
        cs = torch.cat(cand_scores)
        owner = torch.cat(cand_owner)
        # stable sort; ties across tensors go to the tensor listed first
        pick = torch.argsort(cs, stable=True)[:extra]
        counts = torch.bincount(owner[pick], minlength=len(names))
        n_pruned = [lo[i] + int(counts[i]) for i in range(len(names))]
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(names):
        keep = torch.ones(sizes[i], dtype=torch.bool, device=units[i].device)
        keep[orders[i][: n_pruned[i]]] = False
        if pat.kind == "block":
            s2_shape = weight_view_2d(scores[name]).shape
            r, c = pat.block
            bshape = (-(-s2_shape[0] // r), -(-s2_shape[1] // c))
            keep = _expand_blocks(keep.reshape(bshape), pat.block, s2_shape)
        out[name] = keep.reshape(scores[name].shape).to(scores[name].device)
    return out


def count_zeros(mask: torch.Tensor) -> int:
    """Number of pruned (False) entries of a keep mask."""
    return int((~mask).sum())
