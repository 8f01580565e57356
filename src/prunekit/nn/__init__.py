"""Neural-network pruning for PyTorch: weight sparsity, structured removal, one-shot calibration.

Main entry points (weight-level sparsity, this package):

* :func:`prune_model` — prune once, in place; returns a :class:`SparsityReport`.
* :class:`Pruner` — masks kept through training (``prepare`` / ``step`` / ``finalize``) with
  one-shot, iterative, constant or polynomial (AGP) :mod:`~prunekit.nn.schedules`.
* :func:`lottery_ticket` — iterative magnitude pruning with weight rewinding.
* :func:`save_compact` / :func:`load_compact` — compact sparse safetensors checkpoints;
  :func:`import_torch_prune` / :func:`export_torch_prune` — ``torch.nn.utils.prune`` interop.

Subpackages :mod:`prunekit.nn.structured` and :mod:`prunekit.nn.oneshot` load lazily.

Importing this package also makes a plain ``import torchvision`` work where torchvision's compiled
ops do not load beside the installed torch
(see :func:`prunekit._compat.prepare_torchvision_import`).
"""

from __future__ import annotations

import importlib
from typing import Any

from prunekit._compat import prepare_torchvision_import

prepare_torchvision_import()

_EXPORTS = {
    # sparsity
    "Pruner": "prunekit.nn.sparsity",
    "SparsityConfig": "prunekit.nn.sparsity",
    "SparsityReport": "prunekit.nn.sparsity",
    "LayerSparsity": "prunekit.nn.sparsity",
    "prune_model": "prunekit.nn.sparsity",
    "model_sparsity": "prunekit.nn.sparsity",
    # schedules
    "Schedule": "prunekit.nn.schedules",
    "OneShot": "prunekit.nn.schedules",
    "ConstantSparsity": "prunekit.nn.schedules",
    "PolynomialDecay": "prunekit.nn.schedules",
    "Iterative": "prunekit.nn.schedules",
    "agp": "prunekit.nn.schedules",
    "make_schedule": "prunekit.nn.schedules",
    # patterns
    "Pattern": "prunekit.nn.patterns",
    "parse_pattern": "prunekit.nn.patterns",
    "mask_from_scores": "prunekit.nn.patterns",
    "unstructured_mask": "prunekit.nn.patterns",
    "nm_mask": "prunekit.nn.patterns",
    "block_mask": "prunekit.nn.patterns",
    "rowwise_mask": "prunekit.nn.patterns",
    "global_masks": "prunekit.nn.patterns",
    # importance
    "get_criterion": "prunekit.nn.importance",
    "register_criterion": "prunekit.nn.importance",
    "CRITERIA": "prunekit.nn.importance",
    # io
    "save_compact": "prunekit.nn.io",
    "load_compact": "prunekit.nn.io",
    "load_compact_into": "prunekit.nn.io",
    "import_torch_prune": "prunekit.nn.io",
    "export_torch_prune": "prunekit.nn.io",
    # lottery
    "lottery_ticket": "prunekit.nn.lottery",
    "LotteryResult": "prunekit.nn.lottery",
    # showcase models and training loop
    "LeNet300100": "prunekit.nn.models",
    "DigitsCNN": "prunekit.nn.models",
    "MnistCNN": "prunekit.nn.models",
    "train_classifier": "prunekit.nn.training",
    "evaluate_accuracy": "prunekit.nn.training",
}

_SUBMODULES = {
    "allocation",
    "sensitivity",
    "importance",
    "patterns",
    "sparsity",
    "schedules",
    "io",
    "lottery",
    "lightning",
    "models",
    "training",
    "structured",
    "oneshot",
    "distill",
}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"prunekit.nn.{name}")
    raise AttributeError(f"module 'prunekit.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
