"""Ranking and ordered-aggregation methods: pure functions from a member matrix to an ordering.

Each function takes a :class:`~prunekit.ensembles._members.MemberMatrix` and the number of
members to order (``n_steps``) and returns member indices, best first. The pruned ensemble of
size ``k`` is the first ``k`` of the ordering (Martínez-Muñoz, Hernández-Lobato & Suárez 2009,
"An analysis of ensemble pruning techniques based on ordered aggregation", IEEE TPAMI 31(2)).
Greedy methods evaluate every candidate at once on the vote matrix, so each step is a few
vectorised numpy operations.
"""

from __future__ import annotations

import numpy as np

from prunekit.ensembles._members import MemberMatrix
from prunekit.ensembles._scoring import empty_sums, individual_scores, score_candidates


def _stable_argsort_desc(values: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")


def rank_by_accuracy(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Rank members by their own validation accuracy (regression: by their own MSE).

    The "best individuals" baseline of Margineantu & Dietterich (1997), "Pruning adaptive
    boosting", ICML; ties keep the fit order.
    """
    return _stable_argsort_desc(individual_scores(M))[:n_steps]


def label_agreement(M: MemberMatrix) -> np.ndarray:
    """``[N, N]`` number of samples (usable by both) on which two members predict the same label.

    A one-hot product over (sample, class) columns, restricted to the columns some member uses
    and without the columns every member shares (those add the same count to every pair), so
    the product is over far fewer than ``n_samples * n_classes`` columns when members mostly
    agree. Exact.
    """
    N, n, C = M.n_members, M.n_samples, M.n_classes
    cols = M.labels.astype(np.int64) + C * np.arange(n, dtype=np.int64)[None, :]
    valid = M.valid
    used, inverse = np.unique(cols[valid], return_inverse=True)
    members = np.broadcast_to(np.arange(N)[:, None], (N, n))[valid]
    per_col = np.bincount(inverse, minlength=used.size)
    shared = per_col == N  # every member predicts this label here: +1 for every pair
    keep = np.flatnonzero(~shared)
    new_col = np.full(used.size, -1, dtype=np.int64)
    new_col[keep] = np.arange(keep.size)
    onehot = np.zeros((N, keep.size), dtype=np.float32)
    sel = new_col[inverse] >= 0
    onehot[members[sel], new_col[inverse][sel]] = 1.0
    return (onehot @ onehot.T).astype(np.float64) + float(shared.sum())


def pairwise_kappa(M: MemberMatrix) -> np.ndarray:
    """Cohen's kappa agreement between every pair of members' label predictions ``[N, N]``.

    kappa = (theta1 - theta2) / (1 - theta2) with theta1 the observed agreement and theta2 the
    agreement expected by chance from each member's class frequencies (Cohen 1960). With an OOB
    mask, theta1 is measured on the samples both members may use.
    """
    N, C = M.n_members, M.n_classes
    valid = M.valid.astype(np.float32)
    theta1 = label_agreement(M)
    if M.mask is None:  # every pair shares every sample
        theta1 /= max(M.n_samples, 1)
    else:
        both = (valid @ valid.T).astype(np.float64)
        np.divide(theta1, both, out=theta1, where=both > 0)
        theta1[both <= 0] = 0.0
    freq = np.zeros((N, C))
    np.add.at(freq, (np.broadcast_to(np.arange(N)[:, None], M.labels.shape)[M.valid],
                     M.labels[M.valid].astype(np.int64)), 1.0)
    freq /= np.maximum(valid.sum(axis=1), 1.0)[:, None]
    theta2 = freq @ freq.T
    theta1 -= theta2  # theta1 - theta2, in place (N x N temporaries dominate at large N)
    np.subtract(1.0, theta2, out=theta2)  # the denominator 1 - theta2
    degenerate = theta2 <= 1e-12
    np.divide(theta1, theta2, out=theta1, where=~degenerate)
    theta1[degenerate] = 1.0
    return theta1


def rank_by_kappa(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Kappa pruning (Margineantu & Dietterich 1997, "Pruning adaptive boosting", ICML).

    Pairs of members are taken in increasing order of Cohen's kappa (most diverse pairs first);
    each pair adds its members not chosen yet, until ``n_steps`` members are ordered.
    """
    if M.task != "classification":
        raise ValueError("kappa pruning needs class predictions")
    N = M.n_members
    if N == 1:
        return np.zeros(1, dtype=np.int64)
    kappa = pairwise_kappa(M)
    # Walking the pairs in increasing kappa, a member first appears in its own lowest-kappa pair,
    # so the order is the members sorted by that pair (kappa, then pair index, then position in
    # the pair): O(N^2) numbers but no sort of the N^2/2 pairs. Same order as the pair walk.
    upper = np.triu(np.ones((N, N), dtype=bool), k=1)
    K = np.where(upper, kappa, kappa.T)  # the upper triangle's value for both (i, j) and (j, i)
    np.fill_diagonal(K, np.inf)
    kmin = K.min(axis=1)
    partner = np.argmax(kmin[:, None] == K, axis=1)  # smallest partner at the minimum
    me = np.arange(N)
    first = np.minimum(me, partner)
    second = np.maximum(me, partner)
    pos = (partner < me).astype(np.int64)
    order = np.lexsort((pos, second, first, kmin))
    return order[:n_steps].astype(np.int64)


def reduce_error(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Reduce-error ordering: greedily add the member that most lowers the sub-ensemble's error.

    Margineantu & Dietterich (1997), "Pruning adaptive boosting", ICML; as ordered aggregation in
    Martínez-Muñoz, Hernández-Lobato & Suárez (2009), IEEE TPAMI 31(2). The sub-ensemble combines
    votes with the ensemble's own rule (soft vote for forests); ties go to the larger margin.
    Regression: the member whose addition most lowers the mean squared error (Hernández-Lobato,
    Martínez-Muñoz & Suárez 2011, "Empirical analysis and evaluation of approximate techniques
    for pruning regression bagging ensembles", Neurocomputing 74).
    """
    S, D = empty_sums(M)
    remaining = np.ones(M.n_members, dtype=bool)
    order = np.empty(n_steps, dtype=np.int64)
    for t in range(n_steps):
        cand = np.flatnonzero(remaining)
        best = cand[int(np.argmax(score_candidates(M, S, D, cand)))]
        order[t] = best
        remaining[best] = False
        S += M.votes[best]
        if D is not None:
            D += M.den[best]
    return order


def _ensemble_wrong(M: MemberMatrix, S: np.ndarray, t: int) -> np.ndarray:
    if t == 0:
        return np.ones(M.n_samples, dtype=bool)
    return S.argmax(axis=1) != M.y


def complementarity(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Complementarity measure ordering (Martínez-Muñoz & Suárez 2004, "Aggregation ordering in
    bagging", Proc. IASTED AIA).

    At each step add the member that is right on the most samples the current sub-ensemble gets
    wrong (the first pick is therefore the most accurate member).
    """
    S, _ = empty_sums(M)
    correct = M.correct.astype(np.float64)
    remaining = np.ones(M.n_members, dtype=bool)
    order = np.empty(n_steps, dtype=np.int64)
    for t in range(n_steps):
        gain = correct @ _ensemble_wrong(M, S, t).astype(np.float64)
        gain[~remaining] = -np.inf
        best = int(np.argmax(gain))
        order[t] = best
        remaining[best] = False
        S += M.votes[best]
    return order


def margin_distance(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None, *, p: float = 0.075
) -> np.ndarray:
    """Margin distance minimisation (Martínez-Muñoz & Suárez 2004, "Aggregation ordering in
    bagging", Proc. IASTED AIA).

    With signature vectors ``c_i[s] = +1/-1`` (member right/wrong on ``s``), add the member that
    brings the sub-ensemble's mean signature closest to the objective point ``(p, ..., p)``, a
    point in the first quadrant: every sample classified right by a small margin ``p``.
    """
    sig = M.signatures()
    sum_sig = np.zeros(M.n_samples)
    sq = (sig**2).sum(axis=1)
    remaining = np.ones(M.n_members, dtype=bool)
    order = np.empty(n_steps, dtype=np.int64)
    for t in range(n_steps):
        u = t + 1.0
        a = p - sum_sig / u
        dist = (a @ a) - 2.0 / u * (sig @ a) + sq / u**2
        dist[~remaining] = np.inf
        best = int(np.argmin(dist))
        order[t] = best
        remaining[best] = False
        sum_sig += sig[best]
    return order


def orientation_angles(M: MemberMatrix) -> np.ndarray | None:
    """Angle (radians) between each member's signature and the orientation reference vector;
    None when the reference vanishes (every member errs identically)."""
    sig = M.signatures()
    ens = sig.sum(axis=0)
    ones = np.ones(M.n_samples)
    ref = ones.copy()
    ens_sq = float(ens @ ens)
    if ens_sq > 0:
        ref = ones - (ones @ ens) / ens_sq * ens
    ref_norm = float(np.linalg.norm(ref))
    if ref_norm < 1e-12:
        return None
    norms = np.linalg.norm(sig, axis=1)
    cos = np.divide(sig @ ref, norms * ref_norm, out=np.zeros(M.n_members), where=norms > 0)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def orientation(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Orientation ordering (Martínez-Muñoz & Suárez 2006, "Pruning in ordered bagging
    ensembles", ICML).

    Members are sorted by increasing angle between their signature vector and a reference
    vector: the projection of the first diagonal onto the hyperplane orthogonal to the whole
    ensemble's signature. A single sort, no greedy loop. (The paper keeps the members whose
    angle is below pi/2; :func:`prune_ensemble` records that count in the report's details.)
    """
    angle = orientation_angles(M)
    if angle is None:  # every member identical in its errors: fall back to accuracy
        return rank_by_accuracy(M, n_steps)
    return np.argsort(angle, kind="stable")[:n_steps]


def boosting_based(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Boosting-based ordering (Martínez-Muñoz & Suárez 2007, "Using boosting to prune bagging
    ensembles", Pattern Recognition Letters 28).

    AdaBoost sample weights drive the choice: each step adds the unchosen member with the lowest
    weighted error, then re-weights the samples as AdaBoost does. If the best weighted error
    reaches 0.5 the weights are reset to uniform and the choice is repeated; a zero error also
    resets them. Masked (in-bag) samples do not count for a member.
    """
    n = M.n_samples
    wrong = (~M.correct & M.valid).astype(np.float64)
    valid = M.valid.astype(np.float64)
    w = np.full(n, 1.0 / n)
    remaining = np.ones(M.n_members, dtype=bool)
    order = np.empty(n_steps, dtype=np.int64)

    def errors(weights: np.ndarray) -> np.ndarray:
        err = (wrong @ weights) / np.maximum(valid @ weights, 1e-300)
        err[~remaining] = np.inf
        return err

    for t in range(n_steps):
        err = errors(w)
        best = int(np.argmin(err))
        if err[best] >= 0.5:
            w = np.full(n, 1.0 / n)
            err = errors(w)
            best = int(np.argmin(err))
        order[t] = best
        remaining[best] = False
        e = float(err[best])
        if e <= 0.0 or e >= 0.5:
            w = np.full(n, 1.0 / n)
            continue
        is_wrong = wrong[best] > 0
        is_used = valid[best] > 0
        w = np.where(is_used & is_wrong, w / (2.0 * e), w)
        w = np.where(is_used & ~is_wrong, w / (2.0 * (1.0 - e)), w)
        w /= w.sum()
    return order


def random_order(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A uniformly random ordering: the baseline every pruning method must beat."""
    rng = rng if rng is not None else np.random.default_rng()
    return rng.permutation(M.n_members)[:n_steps]


def fit_order(M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The order the members were fitted in (for bagging: a smaller ensemble of the same kind)."""
    return np.arange(n_steps)
