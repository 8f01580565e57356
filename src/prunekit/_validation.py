"""Validation at the edge: checks that raise errors naming the argument and accepted values."""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from prunekit.errors import InvalidParameterError, PrunekitError, ShapeMismatchError

if TYPE_CHECKING:  # numpy is imported inside the checks that need it: the CLI's option
    import numpy as np  # checks must not pay for it (`prunekit nn compact-info` stays light)

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


# ------------------------------------------------------------------ data given with a fitted model
# One set of checks for every entry point that takes pruning data next to a fitted scikit-learn
# model (prune_tree, prune_ensemble, build_member_matrix): features aligned by name, finite,
# the right width; labels the model knows, of the model's type; finite regression targets.


def _n_rows(name: str, X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            return len(X)
        except TypeError:
            raise InvalidParameterError(
                f"{name} must be a 2-D array-like (samples x features), got {type(X).__name__}"
            ) from None
    if len(shape) != 2:
        raise ShapeMismatchError(f"{name} must be 2-D (samples x features), got shape {shape}")
    return int(shape[0])


def _frame_names(X: Any) -> list[str] | None:
    """Column names of a data frame when they are all strings (scikit-learn's rule), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "shape"):
        return None
    names = list(columns)
    return names if names and all(isinstance(c, str) for c in names) else None


def align_features(name: str, X: Any, model: Any) -> Any:
    """Match ``X``'s columns to the names the model was fitted with (``feature_names_in_``).

    A data frame with the same columns in another order is reordered by name; missing or extra
    columns raise :class:`ShapeMismatchError` naming them. As in scikit-learn, a frame given to a
    model fitted without names (or an array given to a model fitted with names) is used by
    position, with a warning.
    """
    fitted = getattr(model, "feature_names_in_", None)
    names = _frame_names(X)
    if fitted is None:
        if names is not None:
            warnings.warn(
                f"{name} has feature names, but {type(model).__name__} was fitted without "
                "feature names; its columns are used by position",
                UserWarning,
                stacklevel=3,
            )
        return X
    fitted = [str(c) for c in fitted]
    if names is None:
        if hasattr(X, "columns"):
            raise ShapeMismatchError(
                f"{name} has non-string column names, but {type(model).__name__} was fitted with "
                f"feature names {fitted[:10]}"
            )
        warnings.warn(
            f"{name} has no feature names, but {type(model).__name__} was fitted with feature "
            "names; its columns are used by position",
            UserWarning,
            stacklevel=3,
        )
        return X
    if names == fitted:
        return X
    missing = [c for c in fitted if c not in set(names)]
    extra = [c for c in names if c not in set(fitted)]
    if missing or extra or len(set(names)) != len(names):
        raise ShapeMismatchError(
            f"{name} columns do not match the feature names the model was fitted with: "
            f"missing {missing[:10]}, unexpected {extra[:10]}"
            + ("" if len(set(names)) == len(names) else ", duplicated column names")
        )
    return X[fitted]  # same columns in another order: reorder by name


def check_features(
    name: str,
    X: Any,
    model: Any,
    *,
    allow_nan: bool = True,
    float32: bool = False,
    keep_frame: bool = False,
) -> Any:
    """Validate pruning features against a fitted model and return them.

    Checks: 2-D, at least one row, aligned by name (:func:`align_features`), the model's width
    (``n_features_in_``), numeric, no infinity (and NaN only with ``allow_nan``; ``float32``: no
    value beyond float32's range, where scikit-learn's trees would see infinity). Returns a float64
    numpy array, or with ``keep_frame`` the (reordered) data frame / sparse matrix / array as given
    (non-numeric frames are passed on unchecked for models with their own preprocessing).
    """
    import numpy as np
    if X is None:
        raise InvalidParameterError(f"{name} is required")
    if isinstance(X, str | bytes):
        raise InvalidParameterError(f"{name} must be a 2-D array-like, got {type(X).__name__}")
    if not hasattr(X, "shape"):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ShapeMismatchError(f"{name} is not a rectangular 2-D array: {exc}") from None
    n = _n_rows(name, X)
    if n == 0:
        raise InvalidParameterError(f"{name} is empty: it needs at least one sample")
    X = align_features(name, X, model)
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and X.shape[1] != expected:
        raise ShapeMismatchError(
            f"{name} has {X.shape[1]} features but {type(model).__name__} was fitted on {expected}"
        )
    sparse = hasattr(X, "toarray") and hasattr(X, "tocsr")
    if sparse:
        values = np.asarray(X.data)
    elif hasattr(X, "to_numpy"):
        try:
            values = X.to_numpy()
        except (ValueError, TypeError) as exc:
            raise InvalidParameterError(f"{name} could not be read as an array: {exc}") from None
    else:
        values = np.asarray(X)
    if values.dtype.kind not in "biuf" and keep_frame:
        return X
    values = _as_float64(name, values)
    _check_finite(name, values, allow_nan=allow_nan, float32=float32)
    if keep_frame:
        return X
    if sparse:
        raise InvalidParameterError(f"{name} must be a dense array here, got a sparse matrix")
    return np.ascontiguousarray(values)


def _as_float64(name: str, values: Any) -> Any:
    """``values`` as float64, or an error naming ``name`` when they are not numbers."""
    import numpy as np

    try:
        return values.astype(np.float64, copy=False)
    except (ValueError, TypeError):
        raise InvalidParameterError(f"{name} must hold numbers; got dtype {values.dtype}") \
            from None


def _check_finite(name: str, values: np.ndarray, *, allow_nan: bool, float32: bool) -> None:
    import numpy as np
    nan = np.isnan(values)
    if not allow_nan and nan.any():
        raise InvalidParameterError(f"{name} contains NaN; this model cannot use missing values")
    limit = float(np.finfo(np.float32).max) if float32 else np.inf
    big = np.abs(np.where(nan, 0.0, values)) >= limit if float32 else np.isinf(values)
    if big.any():
        raise InvalidParameterError(
            f"{name} contains infinity"
            + (" or a value too large for float32 (the trees' dtype)" if float32 else "")
            + f" (first at flat index {int(np.flatnonzero(big.ravel())[0])})"
        )


def check_class_labels(name: str, y: Any, classes: Any) -> np.ndarray:
    """Return the index into ``classes`` of every label in ``y``; raise for unknown labels.

    Labels of another kind than ``classes`` (strings for a model fitted on numbers, or the
    reverse) and labels the model never saw raise :class:`InvalidParameterError` naming ``name``
    and the model's ``classes_``.
    """
    import numpy as np
    classes = np.asarray(classes)
    y = np.asarray(y)
    numeric = "biuf"
    shown = classes.tolist()[:20]
    if y.dtype.kind != "O" and (classes.dtype.kind in numeric) != (y.dtype.kind in numeric):
        raise InvalidParameterError(
            f"{name} holds labels of another type ({y.dtype}) than the model's classes_ "
            f"({classes.dtype}): {shown}"
        )
    if classes.dtype.kind in numeric and y.dtype.kind in numeric:
        codes = np.clip(np.searchsorted(classes, y), 0, classes.size - 1)
        bad = classes[codes] != y
        if bad.any():
            raise InvalidParameterError(
                f"{name} holds labels the model never saw: {_few(y[bad])}; "
                f"the model's classes_: {shown}"
            )
        return codes.astype(np.intp)
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    try:
        codes = np.fromiter((lookup.get(v, -1) for v in y.tolist()), dtype=np.intp, count=y.size)
    except TypeError:  # unhashable labels
        raise InvalidParameterError(
            f"{name} holds labels that are not class labels; the model's classes_: {shown}"
        ) from None
    if (codes < 0).any():
        wrong = y[codes < 0]
        kinds = sorted({type(v).__name__ for v in wrong.tolist()})
        raise InvalidParameterError(
            f"{name} holds labels the model never saw: {_few(wrong)} (type {', '.join(kinds)}); "
            f"the model's classes_: {shown}"
        )
    return codes


def _few(values: np.ndarray, k: int = 5) -> list:
    out: list = []
    for v in values.tolist():
        if v not in out and not (isinstance(v, float) and v != v and any(o != o for o in out)):
            out.append(v)
        if len(out) == k:
            break
    return out


def check_target(name: str, y: Any, model: Any, n_rows: int) -> np.ndarray:
    """Validate a target vector for a fitted model: 1-D, ``n_rows`` long, and for classifiers only
    labels in ``model.classes_`` (returned unchanged), for regressors finite numbers (float64)."""
    import numpy as np
    if y is None:
        raise InvalidParameterError(f"{name} is required")
    if isinstance(y, str | bytes):
        raise InvalidParameterError(f"{name} must be a 1-D array-like, got {type(y).__name__}")
    try:
        ya = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise ShapeMismatchError(f"{name} is not a 1-D array: {exc}") from None
    if ya.ndim == 2 and ya.shape[1] == 1:
        ya = ya.ravel()
    if ya.ndim != 1 or ya.shape[0] != n_rows:
        raise ShapeMismatchError(
            f"{name} must be 1-D with one value per sample ({n_rows}), got shape {ya.shape}"
        )
    classes = getattr(model, "classes_", None)
    if classes is not None and np.ndim(classes) == 1:
        check_class_labels(name, ya, classes)
        return ya
    ya = _as_float64(name, ya)
    if not np.isfinite(ya).all():
        raise InvalidParameterError(f"{name} contains NaN or infinity; it must be finite")
    return ya


@contextlib.contextmanager
def sklearn_errors(name: str, model: Any) -> Iterator[None]:
    """Turn a ``ValueError`` scikit-learn raises on user data into :class:`InvalidParameterError`.

    For the calls into a fitted model after :func:`check_features` (whose own checks come first),
    so that nothing a user passes ends in a raw traceback from deep inside scikit-learn.
    """
    try:
        yield
    except PrunekitError:
        raise
    except ValueError as exc:
        raise InvalidParameterError(f"{name} rejected by {type(model).__name__}: {exc}") from exc


def check_real(name: str, value: Any, *, minimum: float | None = None) -> float:
    """Check that ``value`` is a finite real number (not a bool), at least ``minimum``."""
    import numpy as np
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidParameterError(f"{name} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is True or False (numpy booleans accepted)."""
    import numpy as np
    if not isinstance(value, bool | np.bool_):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(name: str, value: Any) -> int | None:
    """Check a ``random_state``: None or an int >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidParameterError(f"{name} must be None or an int >= 0, got {value!r}")
    return int(value)
