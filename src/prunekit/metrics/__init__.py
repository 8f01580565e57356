"""One metrics API for scikit-learn estimators and PyTorch modules.

- quality: :func:`predict`, :func:`accuracy`, :func:`f1`, :func:`confusion_matrix`,
  :func:`evaluate`, :func:`scores`;
- importance: :func:`permutation_importance`, :func:`feature_importances`;
- size: :func:`complexity` (-> :class:`Complexity`), :func:`count_macs`, :func:`count_params`,
  :func:`layer_sparsity`, :func:`serialized_size`;
- speed: :func:`measure_latency` (-> :class:`Latency`), :func:`measure_latency_pair`;
- before/after: :func:`compare` (-> :class:`Comparison`).

MACs = FLOPs / 2 throughout (one multiply-accumulate is two floating-point operations).
"""

from prunekit.metrics.classification import (
    PermutationImportance,
    accuracy,
    confusion_matrix,
    evaluate,
    f1,
    feature_importances,
    infer_task,
    loader_targets,
    permutation_importance,
    predict,
    scores,
)
from prunekit.metrics.compare import Comparison, compare, markdown_table
from prunekit.metrics.complexity import (
    Complexity,
    complexity,
    count_macs,
    count_params,
    effective_parameters,
    ensemble_members,
    layer_macs,
    layer_sparsity,
    nonzero_macs,
    serialized_size,
)
from prunekit.metrics.latency import Latency, measure_latency, measure_latency_pair

__all__ = [
    "Comparison",
    "Complexity",
    "Latency",
    "PermutationImportance",
    "accuracy",
    "compare",
    "complexity",
    "confusion_matrix",
    "count_macs",
    "count_params",
    "effective_parameters",
    "ensemble_members",
    "evaluate",
    "f1",
    "feature_importances",
    "infer_task",
    "layer_macs",
    "layer_sparsity",
    "loader_targets",
    "markdown_table",
    "measure_latency",
    "measure_latency_pair",
    "nonzero_macs",
    "permutation_importance",
    "predict",
    "scores",
    "serialized_size",
]
