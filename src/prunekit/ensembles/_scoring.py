"""Vectorised scores of sub-ensembles from their summed votes (pure numpy).

A sub-ensemble is represented by the sum of its members' votes ``S[s, c]`` (and, for regression,
the summed weights ``D[s]``). Scoring many candidate sums at once (``[k, n, c]``) is the inner
loop of every greedy method, so it is chunked to bound memory.
"""

from __future__ import annotations

import numpy as np

from prunekit.ensembles._members import MemberMatrix

_CHUNK_ELEMENTS = 4_000_000


def _chunk(n_items: int, per_item: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, per_item))


def score_sums(
    M: MemberMatrix, S: np.ndarray, D: np.ndarray | None = None, *, tiebreak: bool = True
) -> np.ndarray:
    """Score vote sums ``S`` of shape ``[k, n, c]`` (regression: also weight sums ``D [k, n]``).

    Classification: accuracy of ``argmax_c S`` (samples with no vote count as errors); with
    ``tiebreak`` a term worth less than one sample of accuracy is added, the share of all votes
    that went to the true classes, so ties between equally accurate sub-ensembles go to the more
    confident one. Regression: minus the mean squared error of ``S / D`` (samples with
    ``D == 0`` predict the mean target).
    """
    n = M.n_samples
    if M.task == "classification":
        rows = np.arange(n)
        acc = (S.argmax(axis=2) == M.y[None, :]).mean(axis=1)
        if not tiebreak:
            return acc
        true = S[:, rows, M.y].sum(axis=1)
        total = S.sum(axis=(1, 2))
        share = np.divide(true, total, out=np.zeros_like(true, dtype=np.float64), where=total > 0)
        return acc + (0.25 / n) * share
    if M.offset is not None:  # additive model: the sums are the predictions
        return -((S[:, :, 0] - M.y[None, :]) ** 2).mean(axis=1)
    if D is None:
        raise ValueError("regression scores need the weight sums D")
    safe = np.where(D > 0, D, 1.0)
    pred = np.where(D > 0, S[:, :, 0] / safe, M.y.mean())
    return -((pred - M.y[None, :]) ** 2).mean(axis=1)


def score_candidates(
    M: MemberMatrix,
    S: np.ndarray,
    D: np.ndarray | None,
    candidates: np.ndarray,
    sign: float = 1.0,
) -> np.ndarray:
    """Scores (as :func:`score_sums`) of ``S + sign * votes[i]`` for every ``i`` in ``candidates``.

    Classification skips settled samples: where the gap between the two best classes of ``S``
    exceeds :attr:`MemberMatrix.vote_bound`, no single member can change the prediction, so only
    the unsettled samples are re-evaluated; the tie-break term is linear and needs no samples.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if M.task != "classification":
        out = np.empty(len(candidates), dtype=np.float64)
        step = _chunk(len(candidates), M.n_samples)
        den = M.den
        for lo in range(0, len(candidates), step):
            idx = candidates[lo : lo + step]
            out[lo : lo + step] = score_sums(
                M,
                S[None] + sign * M.votes[idx],
                D[None] + sign * den[idx],  # type: ignore[index]
            )
        return out
    n, C = M.n_samples, M.n_classes
    pred = S.argmax(axis=1)
    base_correct = pred == M.y
    if C > 1:
        top2 = np.partition(S, C - 2, axis=1)[:, C - 2 :]
        gap = top2[:, 1] - top2[:, 0]
        unsettled = np.flatnonzero(gap <= M.vote_bound)
    else:
        unsettled = np.arange(0)
    fixed = float(np.delete(base_correct, unsettled).sum())
    correct = np.zeros(len(candidates), dtype=np.float64)
    if len(unsettled):
        Su = S[unsettled].astype(np.float32)
        yu = M.y[unsettled]
        step = _chunk(len(candidates), len(unsettled) * C)
        for lo in range(0, len(candidates), step):
            idx = candidates[lo : lo + step]
            Sc = M.votes[idx[:, None], unsettled[None, :]]
            Sc *= sign
            Sc += Su[None]
            correct[lo : lo + step] = (Sc.argmax(axis=2) == yu[None, :]).sum(axis=1)
    acc = (fixed + correct) / n
    rows = np.arange(n)
    true = S[rows, M.y].sum() + sign * M.true_support[candidates]
    total = S.sum() + sign * M.total_support[candidates]
    share = np.divide(true, total, out=np.zeros_like(true), where=total > 0)
    return acc + (0.25 / n) * share


def empty_sums(M: MemberMatrix) -> tuple[np.ndarray, np.ndarray | None]:
    """Vote sums of the empty sub-ensemble."""
    S = np.zeros((M.n_samples, M.n_classes), dtype=np.float64)
    if M.offset is not None:
        S += M.offset
    D = np.zeros(M.n_samples, dtype=np.float64) if M.task == "regression" else None
    return S, D


def prefix_scores(M: MemberMatrix, order: np.ndarray, *, tiebreak: bool = False) -> np.ndarray:
    """Score of every prefix ``order[:1], order[:2], ...`` of an ordering (repeats allowed)."""
    order = np.asarray(order, dtype=np.int64)
    out = np.empty(len(order), dtype=np.float64)
    S, D = empty_sums(M)
    step = _chunk(len(order), M.n_samples * M.n_classes)
    den = M.den if M.task == "regression" else None
    for lo in range(0, len(order), step):
        idx = order[lo : lo + step]
        Sc = S[None] + np.cumsum(M.votes[idx], axis=0, dtype=np.float64)
        Dc = None
        if den is not None and D is not None:
            Dc = D[None] + np.cumsum(den[idx], axis=0)
            D = Dc[-1]
        S = Sc[-1]
        out[lo : lo + step] = score_sums(M, Sc, Dc, tiebreak=tiebreak)
    return out


def subset_score(M: MemberMatrix, members: np.ndarray, *, tiebreak: bool = False) -> float:
    """Score of the sub-ensemble made of ``members`` (a multiset of indices)."""
    members = np.asarray(members, dtype=np.int64)
    S = M.votes[members].sum(axis=0, dtype=np.float64)[None]
    if M.offset is not None:
        S = S + M.offset[None]
    D = M.den[members].sum(axis=0)[None] if M.task == "regression" else None
    return float(score_sums(M, S, D, tiebreak=tiebreak)[0])


def individual_scores(M: MemberMatrix) -> np.ndarray:
    """Each member's own score on the samples where it may be used (accuracy or minus MSE)."""
    valid = M.valid
    count = np.maximum(valid.sum(axis=1), 1)
    if M.task == "classification":
        return M.correct.sum(axis=1) / count
    err = np.where(valid, (M.labels - M.y[None, :]) ** 2, 0.0)
    return -err.sum(axis=1) / count


def r2_from_neg_mse(M: MemberMatrix, neg_mse: np.ndarray | float) -> np.ndarray | float:
    """Convert minus-MSE scores to R² on the pruning targets (for reports)."""
    var = float(np.var(M.y))
    if var == 0:
        return np.asarray(neg_mse) * 0.0
    return 1.0 + np.asarray(neg_mse) / var
