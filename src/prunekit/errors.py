"""prunekit's exception hierarchy: every error a user can cause is a :class:`PrunekitError`."""

from __future__ import annotations


class PrunekitError(Exception):
    """Base class of every error prunekit raises on purpose."""


class InvalidParameterError(PrunekitError, ValueError):
    """An argument has a value outside the accepted ones; the message names both."""


class NotFittedError(PrunekitError, ValueError):
    """A model must be fitted (trained) before it can be pruned or evaluated."""


class UnsupportedModelError(PrunekitError, TypeError):
    """The model (or one of its modules) is of a kind this method cannot handle."""


class ShapeMismatchError(PrunekitError, ValueError):
    """Inputs do not have the shape the model or the method expects."""


class OptionalDependencyError(PrunekitError, ImportError):
    """A feature needs an optional extra that is not installed."""


class CorruptFileError(PrunekitError, ValueError):
    """A file is truncated, mutated or not of the expected format; nothing was allocated for it."""
