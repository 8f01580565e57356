"""Ensemble pruning: keep the members of a fitted scikit-learn ensemble that matter.

>>> small = prune_ensemble(forest, method="margin_distance", size=0.2, X_val=X_val, y_val=y_val)
>>> small.prune_report_.summary()

The pruned model is an ordinary fitted ensemble of the same class (RandomForest/ExtraTrees,
Bagging, Voting; boosting truncated by stages) with the report attached as ``prune_report_``.
Methods (see :data:`METHODS`): ranking (``accuracy``, ``kappa``), ordered aggregation
(``reduce_error``, ``complementarity``, ``margin_distance``, ``orientation``, ``boosting``),
optimisation (``forward_selection``, ``backward_elimination``, ``gasen``), ``cluster``, and the
baselines ``random`` and ``stages``. The pure methods live in :mod:`.ordering`,
:mod:`.optimisation` and :mod:`.clustering` and work on a :class:`MemberMatrix`.
"""

from __future__ import annotations

from prunekit.ensembles._members import (
    SUPPORTED_CLASSES,
    MemberMatrix,
    build_member_matrix,
    ensemble_kind,
)
from prunekit.ensembles._rebuild import rebuild
from prunekit.ensembles._scoring import prefix_scores, subset_score
from prunekit.ensembles.boosted import keep_rounds
from prunekit.ensembles.members_pruning import prune_members
from prunekit.ensembles.prune import (
    METHODS,
    EnsemblePruneReport,
    MethodInfo,
    available_methods,
    prune_ensemble,
    resolve_size,
)
from prunekit.ensembles.refine import prune_lr_l1, refine_leaves

__all__ = [
    "METHODS",
    "SUPPORTED_CLASSES",
    "EnsemblePruneReport",
    "MemberMatrix",
    "MethodInfo",
    "available_methods",
    "build_member_matrix",
    "ensemble_kind",
    "keep_rounds",
    "prefix_scores",
    "prune_lr_l1",
    "prune_ensemble",
    "prune_members",
    "rebuild",
    "refine_leaves",
    "resolve_size",
    "subset_score",
]
