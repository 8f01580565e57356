"""One-shot calibration pruning (Wanda, SparseGPT, magnitude; OWL layer sparsities).

>>> report = oneshot(model, calibration_texts, tokenizer=tok, method="sparsegpt", sparsity=0.5)

The pure maths lives in :mod:`prunekit.nn.oneshot.algorithms`; the block-by-block model walk in
:mod:`prunekit.nn.oneshot.core`; :mod:`~prunekit.nn.oneshot.export` saves/loads pruned models
(compact safetensors); :mod:`~prunekit.nn.oneshot.minilm` (bundled sentence model),
:mod:`~prunekit.nn.oneshot.tiny_lm` (small GPT-2 + perplexity) and
:mod:`~prunekit.nn.oneshot.corpus` (local text) serve evaluation, the CLI and the benchmark.
"""

from __future__ import annotations

from prunekit.nn.oneshot.algorithms import (
    magnitude_mask,
    outlier_ratio,
    owl_sparsities,
    reconstruction_error,
    sparsegpt_prune,
    wanda_mask,
    wanda_scores,
)
from prunekit.nn.oneshot.core import (
    METHODS,
    LayerReport,
    OneShotReport,
    find_blocks,
    oneshot,
    prepare_calibration,
    prunable_layers,
)
from prunekit.nn.oneshot.export import load_pruned, save_pruned
from prunekit.nn.oneshot.offload import oneshot_from_checkpoint

__all__ = [
    "METHODS",
    "LayerReport",
    "OneShotReport",
    "find_blocks",
    "load_pruned",
    "magnitude_mask",
    "oneshot",
    "oneshot_from_checkpoint",
    "outlier_ratio",
    "owl_sparsities",
    "prepare_calibration",
    "prunable_layers",
    "reconstruction_error",
    "save_pruned",
    "sparsegpt_prune",
    "wanda_mask",
    "wanda_scores",
]
