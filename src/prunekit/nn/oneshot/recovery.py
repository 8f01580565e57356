"""Recovery for one-shot pruned encoders: masked embedding distillation on unlabelled text.

After :func:`prunekit.nn.oneshot.oneshot` (SparseGPT / Wanda / magnitude) the zeros of every
pruned weight matrix are kept while the surviving weights learn to reproduce the dense model's
sentence embeddings (and optionally its intermediate hidden states) with
:func:`prunekit.nn.distill.distill_hidden_states`. The masks are enforced by zeroing the
gradients of pruned positions (AdamW without weight decay then never moves them) and re-applied
at the end, so the sparsity is exactly what the one-shot step produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from prunekit.errors import InvalidParameterError


def sparse_masks(model: nn.Module, min_sparsity: float = 0.01) -> dict[str, torch.Tensor]:
    """``{parameter name: keep mask}`` of the Linear / ``Conv1D`` weights with at least
    ``min_sparsity`` zeros (the layers a one-shot pass prunes; embeddings are not masked)."""
    out = {}
    for mod_name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if not (isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"):
            continue
        if isinstance(w, torch.Tensor) and w.dim() == 2:
            keep = w.detach() != 0
            if float((~keep).float().mean()) >= min_sparsity:
                out[f"{mod_name}.weight" if mod_name else "weight"] = keep
    return out


def masked_distill(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    steps: int,
    lr: float = 1e-4,
    loss: str = "cosine",
    layer_map: Mapping[int, int] | None = None,
    masks: Mapping[str, torch.Tensor] | None = None,
    **options: Any,
) -> list[float]:
    """Distil ``teacher``'s embeddings into the sparse ``student`` in place, keeping its zeros.

    ``masks`` (default: :func:`sparse_masks` of the student) name the positions that must stay
    zero. Other ``options`` go to :func:`prunekit.nn.distill.distill_hidden_states` (its
    ``weight_decay`` must stay 0 so masked weights cannot drift). Returns the step losses.
    """
    from prunekit.deploy.recover import masked_distill_hidden_states

    if options.get("weight_decay", 0.0):
        raise InvalidParameterError("weight_decay must be 0 for masked distillation (decay "
                                    "would move the pruned weights)")
    masks = sparse_masks(student) if masks is None else dict(masks)
    if not masks:
        raise InvalidParameterError("the student has no sparse weight matrix; prune it first")
    # one implementation of "train but keep the zeros": prunekit.deploy.recover.keep_zeros
    report = masked_distill_hidden_states(student, teacher, batches, steps=steps, masks=masks,
                                          lr=lr, loss=loss, layer_map=layer_map, **options)
    return report.losses
