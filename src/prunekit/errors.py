"""prunekit's exception hierarchy: every error a user can cause is a :class:`PrunekitError`."""

from __future__ import annotations


class PrunekitError(Exception):
    """Base class of every error prunekit raises on purpose."""


class InvalidParameterError(PrunekitError, ValueError):
    """An argument has a value outside the accepted ones; the message names both."""


def _make_not_fitted_error() -> type:
    # A subclass of scikit-learn's NotFittedError (itself a ValueError and AttributeError) so that
    # the ``except`` clauses users already write keep working. Built on first use: importing
    # scikit-learn here would make ``import prunekit`` (and ``prunekit --help``) slow.
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(PrunekitError, SklearnNotFittedError):
        """A model must be fitted (trained) before it can be pruned or evaluated."""

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"
    return NotFittedError


class UnsupportedModelError(PrunekitError, TypeError):
    """The model (or one of its modules) is of a kind this method cannot handle."""


class ShapeMismatchError(PrunekitError, ValueError):
    """Inputs do not have the shape the model or the method expects."""


class OptionalDependencyError(PrunekitError, ImportError):
    """A feature needs an optional extra that is not installed."""


class CorruptFileError(PrunekitError, ValueError):
    """A file is truncated, mutated or not of the expected format; nothing was allocated for it."""


def __getattr__(name: str) -> type:
    if name == "NotFittedError":
        cls = _make_not_fitted_error()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
