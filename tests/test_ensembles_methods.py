"""Pure pruning methods on synthetic member matrices where the right choice is forced."""

from __future__ import annotations

import numpy as np
import pytest

from prunekit.ensembles import (
    MemberMatrix,
    clustering,
    optimisation,
    ordering,
    prefix_scores,
    subset_score,
)
from prunekit.ensembles._scoring import empty_sums, score_candidates, score_sums

N_SAMPLES = 30


def _onehot(labels: np.ndarray, n_classes: int = 2) -> np.ndarray:
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def _matrix(label_rows: list[np.ndarray], y: np.ndarray, n_classes: int = 2) -> MemberMatrix:
    votes = np.stack([_onehot(r, n_classes) for r in label_rows])
    return MemberMatrix("classification", votes, y, np.ones(len(label_rows)))


@pytest.fixture()
def forced() -> tuple[MemberMatrix, dict[str, list[int]]]:
    """Members A, B, C wrong on disjoint thirds (any majority of the three is perfect), two
    duplicates of A, and two broken members wrong everywhere."""
    y = np.tile([0, 1], N_SAMPLES // 2)
    third = N_SAMPLES // 3

    def wrong_on(block: int) -> np.ndarray:
        lab = y.copy()
        sl = slice(block * third, (block + 1) * third)
        lab[sl] = 1 - lab[sl]
        return lab

    rows = [wrong_on(0), wrong_on(1), wrong_on(2), wrong_on(0), wrong_on(0), 1 - y, 1 - y]
    groups = {"A": [0, 3, 4], "B": [1], "C": [2], "broken": [5, 6]}
    return _matrix(rows, y), groups


def _covers_abc(sel: np.ndarray, groups: dict[str, list[int]]) -> bool:
    s = set(int(i) for i in sel)
    return all(s & set(groups[g]) for g in ("A", "B", "C")) and not s & set(groups["broken"])


ORDERINGS = {
    "reduce_error": ordering.reduce_error,
    "complementarity": ordering.complementarity,
    "margin_distance": ordering.margin_distance,
    "boosting": ordering.boosting_based,
    "kappa": ordering.rank_by_kappa,
    "backward_elimination": optimisation.backward_elimination,
}
ALL_ORDERINGS = {**ORDERINGS, "orientation": ordering.orientation}


@pytest.mark.parametrize("name", sorted(ORDERINGS))
def test_ordering_methods_pick_complementary_members(forced, name):
    M, groups = forced
    order = ORDERINGS[name](M, 3, np.random.default_rng(0))
    assert len(order) == 3 and len(set(order.tolist())) == 3
    assert _covers_abc(order, groups), (name, order)
    assert subset_score(M, order) == 1.0


def test_orientation_is_a_ranking_that_drops_broken_members(forced):
    """Orientation sorts once, so duplicates share an angle; without them A, B, C come first."""
    M, groups = forced
    keep = np.array([0, 1, 2, 5, 6])
    sub = MemberMatrix("classification", M.votes[keep], M.y, np.ones(len(keep)))
    order = ordering.orientation(sub, 3)
    assert sorted(order.tolist()) == [0, 1, 2]
    dup_order = ordering.orientation(M, M.n_members).tolist()
    assert set(dup_order[-2:]) == set(groups["broken"])


@pytest.mark.parametrize("name", sorted(ALL_ORDERINGS))
def test_full_orderings_are_permutations(forced, name):
    M, _ = forced
    order = ALL_ORDERINGS[name](M, M.n_members, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(M.n_members))


def test_accuracy_ranking_puts_broken_members_last(forced):
    M, groups = forced
    order = ordering.rank_by_accuracy(M, M.n_members)
    assert set(order[-2:].tolist()) == set(groups["broken"])
    # ties keep fit order
    assert order[:5].tolist() == [0, 1, 2, 3, 4]


def test_kappa_of_duplicates_is_one_and_diverse_pairs_come_first(forced):
    M, groups = forced
    kappa = ordering.pairwise_kappa(M)
    np.testing.assert_allclose(kappa[0, 3], 1.0)
    np.testing.assert_allclose(kappa, kappa.T, atol=1e-6)
    # broken member vs a good one: strong disagreement -> negative kappa
    assert kappa[0, 5] < 0


def test_gasen_weights_favour_good_members(forced):
    M, groups = forced
    w = optimisation.gasen_weights(M, np.random.default_rng(0))
    assert w.shape == (M.n_members,) and np.isclose(w.sum(), 1.0) and (w >= 0).all()
    weighted = score_sums(M, (w[:, None, None] * M.votes).sum(0)[None], tiebreak=False)[0]
    assert weighted == 1.0
    assert w[groups["broken"]].max() < w[groups["B"] + groups["C"]].min()
    order = optimisation.gasen(M, 3, np.random.default_rng(0))
    assert not set(order.tolist()) & set(groups["broken"])


def test_cluster_keeps_one_member_per_group(forced):
    M, groups = forced
    sel = clustering.cluster_select(M, 4)
    # duplicates of A are at distance 0: exactly one of them survives
    assert len(set(sel.tolist()) & set(groups["A"])) == 1
    assert set(groups["B"]) <= set(sel.tolist()) and set(groups["C"]) <= set(sel.tolist())
    dist = clustering.prediction_distances(M)
    assert dist[0, 3] == 0.0 and dist[0, 5] == pytest.approx(2 / 3)


def test_forward_selection_repeats_a_dominant_member():
    y = np.tile([0, 1], N_SAMPLES // 2)
    rng = np.random.default_rng(1)
    weak = [np.where(rng.random(N_SAMPLES) < 0.4, 1 - y, y) for _ in range(4)]
    M = _matrix([*weak, y.copy()], y)  # member 4 is perfect
    order = optimisation.forward_selection(M, 3)
    assert order.tolist() == [4, 4, 4]
    order = optimisation.forward_selection(M, 3, sorted_init=False)
    assert order[0] == 4


def test_random_order_is_seeded(forced):
    M, _ = forced
    a = ordering.random_order(M, 5, np.random.default_rng(3))
    b = ordering.random_order(M, 5, np.random.default_rng(3))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 5


def test_prefix_scores_match_subset_scores(forced):
    M, _ = forced
    order = np.array([5, 0, 1, 2, 3, 6, 4, 1])
    curve = prefix_scores(M, order)
    for k in range(1, len(order) + 1):
        assert curve[k - 1] == pytest.approx(subset_score(M, order[:k]))


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("masked", [False, True])
def test_fast_candidate_scores_equal_brute_force(sign, masked):
    rng = np.random.default_rng(0)
    N, n, C = 12, 50, 4
    votes = rng.dirichlet(np.ones(C), size=(N, n)).astype(np.float32)
    y = rng.integers(0, C, n)
    mask = rng.random((N, n)) < 0.6 if masked else None
    if mask is not None:
        votes = votes * mask[:, :, None]
    M = MemberMatrix("classification", votes, y, np.ones(N), mask)
    S = votes[:5].sum(0, dtype=np.float64) if sign > 0 else votes.sum(0, dtype=np.float64)
    cand = np.arange(N)
    fast = score_candidates(M, S, None, cand, sign=sign)
    brute = score_sums(M, S[None] + sign * votes.astype(np.float64))
    np.testing.assert_allclose(fast, brute, rtol=0, atol=1e-9)


def test_regression_reduce_error_prefers_cancelling_errors():
    rng = np.random.default_rng(0)
    y = rng.normal(size=40)
    rows = [y + 1.0, y - 1.0, y + 1.5, y + 1.4, y + 2.0 + rng.normal(0, 0.01, 40)]
    votes = np.stack(rows)[:, :, None]
    M = MemberMatrix("regression", votes, y, np.ones(5))
    order = ordering.reduce_error(M, 2)
    assert set(order.tolist()) == {0, 1}  # +1 and -1 biases cancel exactly
    assert subset_score(M, order) == pytest.approx(0.0, abs=1e-12)
    back = optimisation.backward_elimination(M, 2)
    assert set(back.tolist()) == {0, 1}
    assert ordering.rank_by_accuracy(M, 5)[-1] == 4  # largest own error
    fwd = optimisation.forward_selection(M, 2, sorted_init=False)
    assert subset_score(M, fwd) <= subset_score(M, order)
    sel = clustering.cluster_select(M, 2)
    assert 1 in sel.tolist()  # the only member below the target is its own cluster


def test_empty_sums_shapes(forced):
    M, _ = forced
    S, D = empty_sums(M)
    assert S.shape == (M.n_samples, M.n_classes) and D is None


@pytest.mark.parametrize("masked", [False, True])
def test_label_agreement_counts_pairs_exactly(masked):
    from prunekit.ensembles.ordering import label_agreement

    rng = np.random.default_rng(3)
    N, n, C = 12, 30, 4
    labels = rng.integers(0, C, (N, n))
    labels[:, :10] = 2  # columns every member shares are added as a constant
    mask = rng.random((N, n)) < 0.7 if masked else None
    M = MemberMatrix("classification", np.eye(C)[labels].astype(np.float32),
                     rng.integers(0, C, n), np.ones(N), mask)
    v = M.valid
    ref = [[np.sum((labels[i] == labels[j]) & v[i] & v[j]) for j in range(N)] for i in range(N)]
    assert np.array_equal(label_agreement(M), np.array(ref, dtype=float))
