"""Recovery for one-shot pruned transformers: masked distillation on unlabelled text.

After :func:`prunekit.nn.oneshot.oneshot` (SparseGPT / Wanda / magnitude) the zeros of every
pruned weight matrix are kept while the surviving weights, biases and LayerNorms learn to
reproduce the dense model's outputs with
:func:`prunekit.deploy.recover.masked_distill_outputs`: the per-layer normalised hidden-state
error of every block (real tokens only) plus ``1 - cos`` of the attention-masked mean embedding
(or the KL of an LM's logits). The masks are enforced by :func:`prunekit.deploy.recover.keep_zeros`
(gradients of pruned positions zeroed, masks re-applied after every step), so the sparsity is
exactly what the one-shot step produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from prunekit.errors import InvalidParameterError

DEFAULT_STEPS = 400
DEFAULT_LR = 1e-4
DEFAULT_AUGMENT = 0.2


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


_ENGINE_OPTIONS = ("pool", "layer_weight", "temperature", "warmup", "schedule", "max_grad_norm",
                   "dropout", "train_embeddings", "cache_teacher", "progress", "token_pool",
                   "seed")


def masked_distill(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    loss: str = "cosine",
    layer_map: Mapping[int, int] | None = None,
    masks: Mapping[str, torch.Tensor] | None = None,
    layers: Any = "all",
    device: torch.device | str | None = None,
    augment: float = DEFAULT_AUGMENT,
    tokenizer: Any = None,
    **options: Any,
) -> list[float]:
    """Distil ``teacher``'s outputs into the sparse ``student`` in place, keeping its zeros.

    Runs :func:`prunekit.deploy.recover.masked_distill_outputs`: ``1 - cos`` of the
    attention-masked mean embeddings (``loss``; ``"kl"`` on the logits of an LM) plus the
    per-layer normalised hidden-state error of every block output (``layers="all"``; a
    ``layer_map={student: teacher}`` replaces it, ``layers=None`` drops it). The defaults are
    the best settings measured on MiniLM at 50 % SparseGPT (``benchmarks/budget.py --parts
    oneshot``). ``masks`` (default: :func:`sparse_masks` of the student) name the positions that
    must stay zero; ``device`` moves the student there first. ``augment``: the fraction of
    tokens replaced at random every step (the teacher labels the same corrupted text), drawn
    from ``tokenizer``'s whole-word tokens when it is given (:func:`prunekit.deploy.recover.
    word_token_ids`), else from the ids in ``batches``; 0 turns it off. Other ``options``: ``pool``,
    ``layer_weight``, ``temperature``, ``warmup``, ``schedule``, ``max_grad_norm``, ``dropout``,
    ``train_embeddings``, ``cache_teacher``, ``progress`` (``weight_decay`` is accepted only as
    0: decay would shrink the surviving weights). Returns the step losses.
    """
    from prunekit.deploy.recover import masked_distill_outputs
    from prunekit.nn.oneshot.core import check_device

    if options.pop("weight_decay", 0.0):
        raise InvalidParameterError("weight_decay must be 0 for masked distillation (decay "
                                    "would move the pruned weights)")
    unknown = sorted(set(options) - set(_ENGINE_OPTIONS))
    if unknown:
        raise InvalidParameterError(
            f"masked_distill: unknown option(s) {unknown}; accepted: {list(_ENGINE_OPTIONS)}"
        )
    masks = sparse_masks(student) if masks is None else dict(masks)
    if not masks:
        raise InvalidParameterError("the student has no sparse weight matrix; prune it first")
    if device is not None:
        student.to(check_device(device, next(student.parameters()).device))
    if tokenizer is not None and augment and "token_pool" not in options:
        from prunekit.deploy.recover import word_token_ids

        options["token_pool"] = word_token_ids(tokenizer)
    report = masked_distill_outputs(student, teacher, batches, steps=steps, masks=masks, lr=lr,
                                    loss=loss, layers=layers if layer_map is None else layer_map,
                                    augment=augment, **options)
    return report.losses
