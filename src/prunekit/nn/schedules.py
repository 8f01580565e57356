"""Sparsity schedules: when to (re)compute masks during training, and to what sparsity.

A schedule answers two questions for an integer ``step`` (number of optimizer steps done):
``should_prune(step)`` and ``sparsity_at(step)``. :class:`ConstantSparsity` and
:class:`PolynomialDecay` follow TF-MOT's ``tfmot.sparsity.keras`` schedules exactly
(``_should_prune_in_step``: ``begin <= step <= end`` (or ``end == -1``) and
``(step - begin) % frequency == 0``). The polynomial schedule is the automated gradual pruner
(AGP) of Zhu & Gupta 2017, "To prune, or not to prune":

    s_t = s_f + (s_i - s_f) * (1 - p)^power,   p = clip((t - begin) / (end - begin), 0, 1)

``power=3`` is AGP ("cubic"), ``power=1`` linear. As in TF-MOT the final sparsity is reached
only if ``end - begin`` is a multiple of ``frequency`` (``Pruner.finalize`` enforces the final
sparsity either way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prunekit._validation import (
    check_choice,
    check_fraction,
    check_positive_int,
    check_sparsity,
)
from prunekit.errors import InvalidParameterError

__all__ = [
    "Schedule",
    "OneShot",
    "ConstantSparsity",
    "PolynomialDecay",
    "Iterative",
    "agp",
    "linear",
    "cubic",
    "make_schedule",
    "SCHEDULES",
]


class Schedule:
    """Base: subclasses define :meth:`should_prune`, :meth:`sparsity_at`, ``final_sparsity``."""

    final_sparsity: float

    def should_prune(self, step: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def sparsity_at(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, step: int) -> tuple[bool, float]:
        """TF-MOT style: ``(should_prune, sparsity)`` at ``step``."""
        return self.should_prune(step), self.sparsity_at(step)

    @property
    def last_step(self) -> int:
        """The last step at which the schedule prunes (``-1``: open-ended)."""
        return -1


def _check_steps(begin_step: int, end_step: int, frequency: int, allow_open: bool) -> None:
    if isinstance(begin_step, bool) or not isinstance(begin_step, int) or begin_step < 0:
        raise InvalidParameterError(f"begin_step must be an integer >= 0, got {begin_step!r}")
    if not isinstance(end_step, int) or isinstance(end_step, bool):
        raise InvalidParameterError(f"end_step must be an integer, got {end_step!r}")
    if end_step == -1 and not allow_open:
        raise InvalidParameterError("end_step=-1 (open-ended) is not allowed for this schedule")
    if end_step != -1 and end_step < begin_step:
        raise InvalidParameterError(
            f"end_step={end_step} must be >= begin_step={begin_step} (or -1: no end)"
        )
    check_positive_int("frequency", frequency)


def _tfmot_should_prune(step: int, begin: int, end: int, frequency: int) -> bool:
    in_range = step >= begin and (step <= end or end < 0)
    return in_range and (step - begin) % frequency == 0


@dataclass(frozen=True)
class OneShot(Schedule):
    """Prune once, at ``step`` (0: when the pruner is prepared), to ``sparsity``."""

    sparsity: float
    step: int = 0

    def __post_init__(self) -> None:
        check_sparsity(self.sparsity)

    @property
    def final_sparsity(self) -> float:  # type: ignore[override]
        return self.sparsity

    def should_prune(self, step: int) -> bool:
        return step == self.step

    def sparsity_at(self, step: int) -> float:
        return self.sparsity if step >= self.step else 0.0

    @property
    def last_step(self) -> int:
        return self.step


@dataclass(frozen=True)
class ConstantSparsity(Schedule):
    """TF-MOT ``ConstantSparsity``: ``target_sparsity`` every ``frequency`` steps, begin..end."""

    target_sparsity: float
    begin_step: int = 0
    end_step: int = -1
    frequency: int = 100

    def __post_init__(self) -> None:
        check_sparsity(self.target_sparsity, "target_sparsity")
        _check_steps(self.begin_step, self.end_step, self.frequency, allow_open=True)

    @property
    def final_sparsity(self) -> float:  # type: ignore[override]
        return self.target_sparsity

    def should_prune(self, step: int) -> bool:
        return _tfmot_should_prune(step, self.begin_step, self.end_step, self.frequency)

    def sparsity_at(self, step: int) -> float:
        return self.target_sparsity

    @property
    def last_step(self) -> int:
        return self.end_step


@dataclass(frozen=True)
class PolynomialDecay(Schedule):
    """TF-MOT ``PolynomialDecay`` / AGP (Zhu & Gupta 2017); ``power=3`` by default."""

    initial_sparsity: float
    final_sparsity: float  # type: ignore[misc]
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self) -> None:
        check_sparsity(self.initial_sparsity, "initial_sparsity")
        check_sparsity(self.final_sparsity, "final_sparsity")
        _check_steps(self.begin_step, self.end_step, self.frequency, allow_open=False)
        if self.end_step == self.begin_step:
            raise InvalidParameterError("PolynomialDecay needs end_step > begin_step")
        if not (isinstance(self.power, int | float) and self.power > 0):
            raise InvalidParameterError(f"power must be a positive number, got {self.power!r}")

    def should_prune(self, step: int) -> bool:
        return _tfmot_should_prune(step, self.begin_step, self.end_step, self.frequency)

    def sparsity_at(self, step: int) -> float:
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        s = (self.initial_sparsity - self.final_sparsity) * (1.0 - p) ** self.power
        return s + self.final_sparsity

    @property
    def last_step(self) -> int:
        return self.end_step


def agp(
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    *,
    initial_sparsity: float = 0.0,
    frequency: int = 100,
) -> PolynomialDecay:
    """Automated gradual pruning (Zhu & Gupta 2017): cubic :class:`PolynomialDecay`."""
    return PolynomialDecay(initial_sparsity, final_sparsity, begin_step, end_step, 3.0, frequency)


cubic = agp


def linear(
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    *,
    initial_sparsity: float = 0.0,
    frequency: int = 100,
) -> PolynomialDecay:
    """Linear ramp from ``initial_sparsity`` to ``final_sparsity`` (power 1)."""
    return PolynomialDecay(initial_sparsity, final_sparsity, begin_step, end_step, 1.0, frequency)


@dataclass(frozen=True)
class Iterative(Schedule):
    """``rounds`` pruning rounds ``steps_per_round`` apart, fine-tuning in between.

    Round ``r`` (0-based, at step ``begin_step + r * steps_per_round``) prunes to
    ``1 - (1 - final)^((r + 1) / rounds)``: the same fraction of the surviving weights each
    round, as in iterative magnitude pruning (Han et al. 2015; Frankle & Carbin 2019).
    """

    final_sparsity: float  # type: ignore[misc]
    rounds: int
    steps_per_round: int
    begin_step: int = 0

    def __post_init__(self) -> None:
        check_sparsity(self.final_sparsity, "final_sparsity")
        check_positive_int("rounds", self.rounds)
        check_positive_int("steps_per_round", self.steps_per_round)
        _check_steps(self.begin_step, -1, 1, allow_open=True)

    def _round(self, step: int) -> int:
        return (step - self.begin_step) // self.steps_per_round

    def should_prune(self, step: int) -> bool:
        if step < self.begin_step or (step - self.begin_step) % self.steps_per_round:
            return False
        return self._round(step) < self.rounds

    def sparsity_at(self, step: int) -> float:
        if step < self.begin_step:
            return 0.0
        r = min(self._round(step), self.rounds - 1)
        return 1.0 - (1.0 - self.final_sparsity) ** ((r + 1) / self.rounds)

    @property
    def last_step(self) -> int:
        return self.begin_step + (self.rounds - 1) * self.steps_per_round


SCHEDULES = ("oneshot", "constant", "agp", "cubic", "polynomial", "linear", "iterative")


def make_schedule(
    name: str,
    sparsity: float,
    *,
    total_steps: int = 0,
    begin_step: int = 0,
    end_fraction: float = 0.75,
    frequency: int | None = None,
    rounds: int = 3,
    initial_sparsity: float = 0.0,
    power: float = 3.0,
) -> Schedule:
    """Build a schedule by name for a run of ``total_steps`` optimizer steps (CLI and recipes).

    Gradual schedules ramp from ``begin_step`` to ``end_fraction * total_steps`` (the rest is
    fine-tuning at the final sparsity) and prune ``frequency`` steps apart (default: ~20 updates).
    ``iterative`` spreads ``rounds`` rounds evenly over the first ``end_fraction`` of training.
    """
    check_choice("schedule", name, SCHEDULES)
    sparsity = check_sparsity(sparsity)
    if name == "oneshot":
        return OneShot(sparsity, begin_step)
    check_positive_int("total_steps", total_steps)
    check_fraction("end_fraction", end_fraction, low_inclusive=False, high_inclusive=True)
    if frequency is not None:
        check_positive_int("frequency", frequency)
    if name == "iterative":
        check_positive_int("rounds", rounds)
    end = max(begin_step + 1, int(math.floor(end_fraction * total_steps)))
    freq = frequency or max(1, (end - begin_step) // 20)
    # make the last update land exactly on end_step
    end = begin_step + max(1, math.ceil((end - begin_step) / freq)) * freq
    if name == "constant":
        return ConstantSparsity(sparsity, begin_step, -1, freq)
    if name == "iterative":
        return Iterative(sparsity, rounds, max(1, (end - begin_step) // rounds), begin_step)
    p = {"agp": 3.0, "cubic": 3.0, "linear": 1.0, "polynomial": power}[name]
    return PolynomialDecay(initial_sparsity, sparsity, begin_step, end, p, freq)
