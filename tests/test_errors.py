"""The error hierarchy and the core validators: bad input gets a clear, documented error."""

from __future__ import annotations

import numpy as np
import pytest

from prunekit import errors
from prunekit._validation import check_choice, check_fraction, check_positive_int, check_sparsity
from prunekit.errors import (
    InvalidParameterError,
    NotFittedError,
    OptionalDependencyError,
    PrunekitError,
    ShapeMismatchError,
    UnsupportedModelError,
)


def test_hierarchy_keeps_builtin_bases():
    # users can catch PrunekitError, or the builtin they would expect
    assert issubclass(InvalidParameterError, PrunekitError)
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(NotFittedError, ValueError)
    assert issubclass(ShapeMismatchError, ValueError)
    assert issubclass(UnsupportedModelError, TypeError)
    assert issubclass(OptionalDependencyError, ImportError)
    for name in ("InvalidParameterError", "NotFittedError", "UnsupportedModelError",
                 "ShapeMismatchError", "OptionalDependencyError"):
        assert issubclass(getattr(errors, name), PrunekitError)


@pytest.mark.parametrize("value", [0.0, 0.5, 0.999, 0, np.float32(0.25)])
def test_check_sparsity_accepts_unit_interval(value):
    assert check_sparsity(value) == pytest.approx(float(value))


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.5", None, True])
def test_check_sparsity_rejects(value):
    with pytest.raises(InvalidParameterError, match="sparsity"):
        check_sparsity(value)


def test_check_sparsity_message_names_interval():
    with pytest.raises(InvalidParameterError, match=r"sparsity=1\.0 must lie in \[0\.0, 1\.0\)"):
        check_sparsity(1.0)
    with pytest.raises(InvalidParameterError, match="ratio"):
        check_sparsity(2, name="ratio")


def test_check_fraction_bounds():
    assert check_fraction("size", 1.0, high_inclusive=True) == 1.0
    with pytest.raises(InvalidParameterError, match=r"size=0 must lie in \(0\.0"):
        check_fraction("size", 0, low_inclusive=False)
    with pytest.raises(InvalidParameterError, match="must be a number"):
        check_fraction("size", [0.5])


def test_check_choice_lists_accepted_values():
    assert check_choice("criterion", "magnitude", ["magnitude", "random"]) == "magnitude"
    with pytest.raises(InvalidParameterError) as info:
        check_choice("criterion", "magnitud", ["magnitude", "random"])
    msg = str(info.value)
    assert "criterion='magnitud'" in msg and "'magnitude', 'random'" in msg


@pytest.mark.parametrize("value", [0, -1, 1.5, "3", True, None])
def test_check_positive_int_rejects(value):
    with pytest.raises(InvalidParameterError, match="epochs must be an integer >= 1"):
        check_positive_int("epochs", value)


def test_check_positive_int_minimum():
    assert check_positive_int("warmup", 0, minimum=0) == 0
    assert check_positive_int("n", np.int64(4)) == 4


def test_metrics_raise_documented_errors():
    from sklearn.tree import DecisionTreeClassifier

    from prunekit import metrics

    with pytest.raises(NotFittedError, match=r"call model\.fit"):
        metrics.evaluate(DecisionTreeClassifier(), np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(UnsupportedModelError, match="torch.nn.Module"):
        metrics.complexity("not a model")
    with pytest.raises(ShapeMismatchError, match="same number of samples"):
        metrics.f1([0, 1, 1], [0, 1])
    with pytest.raises(InvalidParameterError, match="task"):
        metrics.scores([0, 1], [0, 1], task="ranking")  # type: ignore[arg-type]


def test_optional_import_names_the_extra():
    from prunekit._compat import optional_import

    with pytest.raises(OptionalDependencyError, match=r"prunekit\[bench\]"):
        optional_import("surely_not_a_module_xyz", "bench")
