"""Structural pruning: physically remove channels, neurons, attention heads and residual blocks.

>>> slim, report = prune(model, torch.randn(1, 3, 32, 32), ratio=0.5)  # doctest: +SKIP
>>> fresh = apply_plan(Architecture(), report.plan); fresh.load_state_dict(slim.state_dict())
... # doctest: +SKIP

Groups of coupled dimensions come from a torch.fx trace (:mod:`.graph`), per-layer removal
from small registered handlers (:mod:`.handlers`), unit importance from :mod:`.importance`.
Hugging Face transformers (which do not trace) have :func:`prune_transformer`
(:mod:`.transformers`): attention heads and FFN neurons found by module structure.
"""

from __future__ import annotations

from .blocks import BlockReport, drop_blocks
from .core import (
    StructuredReport,
    apply_plan,
    count_params,
    dependency_groups,
    load_plan,
    prune,
    save_plan,
    select_units,
)
from .graph import DependencyGraph, Group, attention_units
from .handlers import Handler, Slice, register_handler
from .hf_io import load_pruned_pretrained, save_pruned_pretrained
from .importance import CRITERIA, unit_scores
from .transformers import TransformerPruneReport, apply_transformer_plan, prune_transformer

__all__ = [
    "CRITERIA",
    "BlockReport",
    "DependencyGraph",
    "Group",
    "Handler",
    "Slice",
    "StructuredReport",
    "TransformerPruneReport",
    "apply_plan",
    "apply_transformer_plan",
    "attention_units",
    "count_params",
    "dependency_groups",
    "drop_blocks",
    "load_plan",
    "load_pruned_pretrained",
    "prune",
    "prune_transformer",
    "register_handler",
    "save_plan",
    "save_pruned_pretrained",
    "select_units",
    "unit_scores",
]
