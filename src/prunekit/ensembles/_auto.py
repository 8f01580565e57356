"""Helpers of :func:`prunekit.ensembles.prune_ensemble`: the ``size="auto"`` rule with a
``tolerance`` and the held-out (test-style) scores reported beside the selection-set scores."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from prunekit._validation import sklearn_errors
from prunekit.errors import InvalidParameterError

#: Default ``tolerance`` of ``size="auto"``: the best selection score (smallest size among ties).
#: On breast_cancer (114 validation rows, one row = 0.0088 accuracy) a tolerance of 0.01 picked
#: 1-5 members that lost up to 5 test points, so the default stays strict.
DEFAULT_TOLERANCE = 0.0


def check_tolerance(tolerance: Any) -> float:
    """``tolerance`` must be a finite number >= 0 (in the report's metric: accuracy or R²)."""
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, numbers.Real)
        or not math.isfinite(float(tolerance))
        or tolerance < 0
    ):
        raise InvalidParameterError(
            f"tolerance must be a finite number >= 0 (accuracy or R² points), got {tolerance!r}"
        )
    return float(tolerance)


def auto_index(scores: np.ndarray, tolerance: float) -> int:
    """Index of the first (smallest) entry of ``scores`` within ``tolerance`` of the best."""
    scores = np.asarray(scores, dtype=np.float64)
    best = float(np.nanmax(scores))
    return int(np.flatnonzero(scores >= best - tolerance - 1e-12)[0])


def eval_scores(
    model: object, pruned: object, X_eval: Any, y_eval: Any
) -> tuple[float, float] | None:
    """``(full, pruned)`` scores on held-out data (``estimator.score``: accuracy or R²), or None
    when no held-out data were given. The data get the same checks as the pruning data."""
    if X_eval is None and y_eval is None:
        return None
    if X_eval is None or y_eval is None:
        raise InvalidParameterError("give both X_eval and y_eval (held-out data), or neither")
    from prunekit.ensembles import boosted
    from prunekit.ensembles._members import check_pruning_data

    if boosted.boosted_library(model) is None:
        X_eval, y_eval = check_pruning_data(model, X_eval, y_eval, names=("X_eval", "y_eval"))
    with sklearn_errors("X_eval", model):
        return float(model.score(X_eval, y_eval)), float(pruned.score(X_eval, y_eval))
