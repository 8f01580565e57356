"""Validation at the edge: checks that raise errors naming the argument and accepted values."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any, TypeVar

from prunekit.errors import InvalidParameterError

T = TypeVar("T")


def check_choice(name: str, value: T, choices: Iterable[T]) -> T:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name`` and the choices."""
    choices = list(choices)
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(
            f"{name}={value!r} is not supported; accepted values: {accepted}"
        )
    return value


def check_fraction(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float = 1.0,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
) -> float:
    """Check that ``value`` is a real number in the interval between ``low`` and ``high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    v = float(value)
    ok_low = v >= low if low_inclusive else v > low
    ok_high = v <= high if high_inclusive else v < high
    if not (ok_low and ok_high):
        lb = "[" if low_inclusive else "("
        rb = "]" if high_inclusive else ")"
        raise InvalidParameterError(f"{name}={value!r} must lie in {lb}{low}, {high}{rb}")
    return v


def check_sparsity(value: Any, name: str = "sparsity") -> float:
    """Sparsity is the fraction of weights removed: a number in [0, 1)."""
    return check_fraction(name, value, low=0.0, high=1.0)


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
