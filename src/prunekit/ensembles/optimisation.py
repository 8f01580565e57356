"""Optimisation-based selection: forward selection with replacement, backward elimination, GASEN.

Pure functions over a :class:`~prunekit.ensembles._members.MemberMatrix`, like the orderings:
each returns member indices, best first, so that the first ``k`` are the selection of size ``k``.
"""

from __future__ import annotations

import numpy as np

from prunekit.ensembles._members import MemberMatrix
from prunekit.ensembles._scoring import (
    empty_sums,
    individual_scores,
    prefix_scores,
    score_candidates,
    score_sums,
)


def forward_selection(
    M: MemberMatrix,
    n_steps: int,
    rng: np.random.Generator | None = None,
    *,
    sorted_init: bool = True,
) -> np.ndarray:
    """Greedy forward selection with replacement (Caruana, Niculescu-Mizil, Crew & Ksikes 2004,
    "Ensemble selection from libraries of models", ICML).

    Each step adds the member (any member, chosen before or not) whose addition gives the best
    validation score. A member picked ``r`` times votes ``r`` times: the result is a multiset, and
    the pruned ensemble repeats that member ``r`` times (see :func:`prune_ensemble`). With
    ``sorted_init`` (the paper's "sorted ensemble initialisation") the selection starts from the
    best prefix of the members ranked by their own accuracy, which curbs over-fitting of the
    validation set by the first few greedy steps.
    """
    S, D = empty_sums(M)
    order: list[int] = []
    if sorted_init:
        ranked = np.argsort(-individual_scores(M), kind="stable")[:n_steps]
        init = int(np.argmax(prefix_scores(M, ranked, tiebreak=True))) + 1
        order = [int(i) for i in ranked[:init]]
        S += M.votes[ranked[:init]].sum(axis=0)
        if D is not None:
            D += M.den[ranked[:init]].sum(axis=0)
    all_idx = np.arange(M.n_members)
    while len(order) < n_steps:
        best = int(np.argmax(score_candidates(M, S, D, all_idx)))
        order.append(best)
        S += M.votes[best]
        if D is not None:
            D += M.den[best]
    return np.asarray(order, dtype=np.int64)


def backward_elimination(
    M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Greedy backward elimination: start from the whole ensemble and repeatedly drop the member
    whose removal gives the best validation score (the backward search of Caruana et al. 2004 and
    of Banfield, Hall, Bowyer & Kegelmeyer 2005, "Ensemble diversity measures and their
    application to thinning", Information Fusion 6; reviewed in Tsoumakas, Partalas & Vlahavas
    2009, "An ensemble pruning primer").

    The ordering is the reverse elimination order (last survivor first), so each prefix is a
    set the search visited.
    """
    N = M.n_members
    S = M.votes.sum(axis=0, dtype=np.float64)
    if M.offset is not None:
        S += M.offset
    D = M.den.sum(axis=0) if M.task == "regression" else None
    remaining = np.ones(N, dtype=bool)
    removed: list[int] = []
    for _ in range(N - 1):
        cand = np.flatnonzero(remaining)
        worst = cand[int(np.argmax(score_candidates(M, S, D, cand, sign=-1.0)))]
        removed.append(int(worst))
        remaining[worst] = False
        S -= M.votes[worst]
        if D is not None:
            D -= M.den[worst]
    removed.append(int(np.flatnonzero(remaining)[0]))
    return np.asarray(removed[::-1][:n_steps], dtype=np.int64)


def gasen_weights(
    M: MemberMatrix,
    rng: np.random.Generator | None = None,
    *,
    population: int = 32,
    generations: int = 50,
    mutation_scale: float = 0.1,
    tournament: int = 3,
    elite: int = 2,
) -> np.ndarray:
    """Evolve member weights with a genetic algorithm (GASEN: Zhou, Wu & Tang 2002, "Ensembling
    neural networks: many could be better than all", Artificial Intelligence 137).

    Individuals are non-negative weight vectors normalised to sum 1; fitness is the validation
    score of the weighted ensemble (accuracy with a margin tie-break; minus MSE for regression).
    Tournament selection, blend crossover, Gaussian mutation and elitism; the population's
    fitness is evaluated in one matrix product per generation. Returns the best weights found.
    """
    rng = rng if rng is not None else np.random.default_rng()
    N = M.n_members
    flat = M.votes.reshape(N, -1).astype(np.float32)
    if np.count_nonzero(flat) < 0.25 * flat.size:  # e.g. fully grown trees: one-hot votes
        from scipy import sparse

        flat_t = sparse.csr_matrix(flat.T)
    else:
        flat_t = flat.T
    den = M.den.astype(np.float32) if M.task == "regression" else None

    def fitness(pop: np.ndarray) -> np.ndarray:
        pop32 = pop.astype(np.float32)
        S = np.asarray(flat_t @ pop32.T).T.reshape(len(pop), M.n_samples, M.n_classes)
        D = None if den is None else pop32 @ den
        return score_sums(M, S, D)

    def normalise(pop: np.ndarray) -> np.ndarray:
        pop = np.clip(pop, 0.0, None)
        sums = pop.sum(axis=1, keepdims=True)
        pop = np.where(sums > 0, pop / np.where(sums > 0, sums, 1.0), 1.0 / N)
        return pop

    pop = normalise(rng.random((population, N)))
    pop[0] = 1.0 / N  # the plain average is always a candidate
    fit = fitness(pop)
    for _ in range(generations):
        elite_idx = np.argsort(-fit, kind="stable")[:elite]
        n_child = population - elite
        contenders = rng.integers(0, population, size=(2 * n_child, tournament))
        winners = contenders[np.arange(2 * n_child), np.argmax(fit[contenders], axis=1)]
        pa, pb = pop[winners[:n_child]], pop[winners[n_child:]]
        alpha = rng.random((n_child, 1))
        children = alpha * pa + (1.0 - alpha) * pb
        mutate = rng.random(children.shape) < min(1.0, 3.0 / N)
        children = children + mutate * rng.normal(0.0, mutation_scale / np.sqrt(N), children.shape)
        children = normalise(children)
        pop = np.concatenate([pop[elite_idx], children])
        fit = np.concatenate([fit[elite_idx], fitness(children)])
    return pop[int(np.argmax(fit))]


def gasen(M: MemberMatrix, n_steps: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """GASEN selection (Zhou, Wu & Tang 2002): members ordered by their evolved weight.

    The paper keeps the members whose weight exceeds ``1/N`` and combines them with equal
    weights; here the ordering by weight lets any target size be met (``size="auto"`` picks the
    best prefix on validation data; the paper's threshold count is recorded in the report).
    """
    w = gasen_weights(M, rng)
    return np.argsort(-w, kind="stable")[:n_steps]
