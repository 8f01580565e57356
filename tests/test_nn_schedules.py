"""Schedules: TF-MOT's PolynomialDecay / ConstantSparsity formulas at every step."""

from __future__ import annotations

import pytest
import torch

from prunekit.errors import InvalidParameterError
from prunekit.nn.schedules import (
    ConstantSparsity,
    Iterative,
    OneShot,
    PolynomialDecay,
    agp,
    linear,
    make_schedule,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~10x slower."""
    torch.set_num_threads(1)


def tfmot_polynomial(step, initial, final, begin, end, power, frequency):  # type: ignore[no-untyped-def]
    """TF-MOT's formula, written out independently (tfmot.sparsity.keras.PolynomialDecay)."""
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    sparsity = final + (initial - final) * (1 - p) ** power
    should = begin <= step and (step <= end or end == -1) and (step - begin) % frequency == 0
    return should, sparsity


@pytest.mark.parametrize(
    ("initial", "final", "begin", "end", "power", "frequency"),
    [
        (0.0, 0.9, 0, 1000, 3, 100),
        (0.5, 0.8, 20, 143, 3, 7),
        (0.1, 0.95, 5, 60, 1, 1),
        (0.0, 0.5, 0, 10, 2.5, 3),
    ],
)
def test_polynomial_matches_tfmot_at_every_step(initial, final, begin, end, power, frequency):  # type: ignore[no-untyped-def]
    sched = PolynomialDecay(initial, final, begin, end, power, frequency)
    for step in range(0, end + 50):
        should, sparsity = tfmot_polynomial(step, initial, final, begin, end, power, frequency)
        assert sched.should_prune(step) == should, step
        assert sched.sparsity_at(step) == pytest.approx(sparsity, abs=1e-12), step
        assert sched(step) == (sched.should_prune(step), sched.sparsity_at(step))


def test_agp_is_cubic_and_hand_values() -> None:
    s = agp(0.9, 0, 100, frequency=10)
    assert s.power == 3 and s.sparsity_at(0) == 0.0 and s.sparsity_at(100) == pytest.approx(0.9)
    # Zhu & Gupta: s_t = s_f (1 - (1 - t/T)^3); t = 50 -> 0.9 * 0.875
    assert s.sparsity_at(50) == pytest.approx(0.9 * 0.875)
    assert linear(0.8, 0, 100).sparsity_at(25) == pytest.approx(0.2)


def test_constant_sparsity_tfmot_semantics() -> None:
    s = ConstantSparsity(0.7, begin_step=10, end_step=40, frequency=10)
    assert [t for t in range(60) if s.should_prune(t)] == [10, 20, 30, 40]
    assert all(s.sparsity_at(t) == 0.7 for t in range(60))
    open_ended = ConstantSparsity(0.5, begin_step=0, frequency=25)
    assert open_ended.should_prune(10_000) and not open_ended.should_prune(10_001)


def test_one_shot_and_iterative() -> None:
    o = OneShot(0.6)
    assert o.should_prune(0) and not o.should_prune(1) and o.final_sparsity == 0.6
    it = Iterative(0.875, rounds=3, steps_per_round=10)
    turns = [t for t in range(50) if it.should_prune(t)]
    assert turns == [0, 10, 20]
    # half of the survivors each round: 0.5, 0.75, 0.875
    assert [round(it.sparsity_at(t), 6) for t in turns] == [0.5, 0.75, 0.875]


def test_make_schedule_lands_on_final() -> None:
    for name in ("agp", "linear", "cubic", "polynomial"):
        s = make_schedule(name, 0.9, total_steps=237)
        turns = [t for t in range(300) if s.should_prune(t)]
        assert s.sparsity_at(turns[-1]) == pytest.approx(0.9)
    assert isinstance(make_schedule("oneshot", 0.3), OneShot)
    assert isinstance(make_schedule("constant", 0.3, total_steps=10), ConstantSparsity)


@pytest.mark.parametrize(
    "build",
    [
        lambda: PolynomialDecay(0.0, 0.9, 10, 5),
        lambda: PolynomialDecay(0.0, 0.9, 0, -1),
        lambda: PolynomialDecay(0.0, 1.0, 0, 10),
        lambda: PolynomialDecay(0.0, 0.5, 0, 10, frequency=0),
        lambda: ConstantSparsity(0.5, begin_step=-1),
        lambda: make_schedule("exponential", 0.5, total_steps=10),
        lambda: make_schedule("agp", 0.5),
    ],
)
def test_schedule_validation(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameterError):
        build()


def test_make_schedule_rejects_bad_arguments_by_name() -> None:
    with pytest.raises(InvalidParameterError, match="end_fraction"):
        make_schedule("agp", 0.5, total_steps=100, end_fraction=2.0)
    with pytest.raises(InvalidParameterError, match="end_fraction"):
        make_schedule("agp", 0.5, total_steps=100, end_fraction="half")
    with pytest.raises(InvalidParameterError, match="frequency"):
        make_schedule("agp", 0.5, total_steps=100, frequency=0)
    with pytest.raises(InvalidParameterError, match="rounds"):
        make_schedule("iterative", 0.5, total_steps=100, rounds=0)
