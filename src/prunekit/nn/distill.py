"""Recovery after pruning: fine-tuning, optionally distilling from the unpruned model.

``distillation_loss`` is the knowledge-distillation objective of Hinton, Vinyals & Dean,
"Distilling the Knowledge in a Neural Network" (2015): a mix of the hard-label cross-entropy and
the KL divergence between temperature-softened teacher and student distributions, scaled by
``T**2`` so its gradients keep their size as ``T`` changes.

``distill_hidden_states`` recovers a pruned *encoder* (no labels, no classifier head) by matching
its pooled sentence embedding to the unpruned teacher's, as in multilingual sentence-embedding
distillation (Reimers & Gurevych, "Making Monolingual Sentence Embeddings Multilingual using
Knowledge Distillation", EMNLP 2020: MSE between student and teacher embeddings), optionally
adding TinyBERT's intermediate-layer loss (Jiao et al., "TinyBERT: Distilling BERT for Natural
Language Understanding", Findings of EMNLP 2020: MSE between mapped hidden states) and offering
DistilBERT's cosine loss (Sanh et al., "DistilBERT, a distilled version of BERT", 2019).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from prunekit._modes import eval_mode
from prunekit._progress import ProgressBar
from prunekit._validation import check_choice, check_fraction, check_positive_int
from prunekit.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError
from prunekit.nn.training import train_classifier


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None = None,
    T: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)``.

    With ``targets=None`` only the distillation term is used (``alpha`` is then ignored).
    """
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or T <= 0:
        raise InvalidParameterError(f"T must be a number > 0, got {T!r}")
    alpha = check_fraction("alpha", alpha, high_inclusive=True)
    if student_logits.shape != teacher_logits.shape:
        raise InvalidParameterError(
            f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
            f"{tuple(teacher_logits.shape)}"
        )
    kd = F.kl_div(
        F.log_softmax(student_logits / T, dim=-1),
        F.log_softmax(teacher_logits.detach() / T, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * (T * T)
    if targets is None:
        return kd
    return alpha * kd + (1.0 - alpha) * F.cross_entropy(student_logits, targets)


def _moved(t: Any, device: torch.device) -> Any:
    return t.to(device) if isinstance(t, torch.Tensor) else t


class _OnDevice:
    """Re-iterable loader yielding its ``(x, y)`` batches moved to ``device``."""

    def __init__(self, loader: Iterable[Any], device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for xb, yb in self.loader:
            yield _moved(xb, self.device), _moved(yb, self.device)


class _WithTeacher:
    """Re-iterable loader yielding ``(x, (y, teacher_logits))``; the teacher runs on its own
    device and its logits are moved to the student's."""

    def __init__(self, loader: Iterable[Any], teacher: nn.Module,
                 device: torch.device | None = None) -> None:
        self.loader, self.teacher, self.device = loader, teacher, device

    def __iter__(self) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
        t_dev = next(iter(self.teacher.parameters()), None)
        with eval_mode(self.teacher):  # the teacher's own mode is restored afterwards
            for xb, yb in self.loader:
                with torch.no_grad():
                    t = self.teacher(xb if t_dev is None else _moved(xb, t_dev.device))
                if self.device is not None:
                    xb, yb = _moved(xb, self.device), _moved(yb, self.device)
                    t = _moved(t, self.device)
                yield xb, (yb, t)


def finetune(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    teacher: nn.Module | None = None,
    T: float = 4.0,
    alpha: float = 0.5,
    optimizer: torch.optim.Optimizer | str = "adam",
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> list[float]:
    """Fine-tune ``model`` in place (cross-entropy, or KD from ``teacher``); return epoch losses.

    Built on :func:`prunekit.nn.training.train_classifier`; the teacher's logits are computed
    per batch under ``no_grad`` and fed to :func:`distillation_loss`. ``device`` (default: the
    model's) is where the model trains: it is moved there (and stays); batches are moved to it,
    the teacher runs on its own device.
    """
    from prunekit.nn.oneshot.core import _model_device, check_device

    dev = check_device(device, _model_device(model))
    model.to(dev)
    if teacher is None:
        return train_classifier(model, _OnDevice(loader, dev), epochs=epochs, lr=lr,
                                optimizer=optimizer,
                                max_steps=max_steps, on_step=on_step, progress=progress,
                                description="fine-tuning")
    T_, alpha_ = float(T), float(alpha)
    distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), None, T_, alpha_)  # validate early

    def loss_fn(logits: torch.Tensor, target: Any) -> torch.Tensor:
        y, t = target
        return distillation_loss(logits, t, y, T_, alpha_)

    return train_classifier(model, _WithTeacher(loader, teacher, dev), epochs=epochs, lr=lr,
                            optimizer=optimizer, loss_fn=loss_fn, max_steps=max_steps,
                            on_step=on_step, progress=progress, description="distilling")


# --------------------------------------------------------------------------- feature distillation


def pool_hidden_states(
    states: torch.Tensor, attention_mask: torch.Tensor | None, pool: str = "mean"
) -> torch.Tensor:
    """``(N, L, H)`` token states to ``(N, H)``: attention-masked mean (``"mean"``) or first token.

    ``"mean"`` is the sentence-transformers pooling of MiniLM / SBERT (Reimers & Gurevych 2019).
    """
    check_choice("pool", pool, ("mean", "cls"))
    if pool == "cls":
        return states[:, 0]
    if attention_mask is None:
        return states.mean(1)
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def _match_loss(s: torch.Tensor, t: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean over rows of ``1 - cos(s, t)`` or of the per-row mean squared error."""
    if loss == "cosine":
        return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()
    return F.mse_loss(s, t)


def _masked_token_mse(s: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """TinyBERT's hidden-state MSE, averaged over real (non-padding) tokens only."""
    if mask is None:
        return F.mse_loss(s, t)
    m = mask.unsqueeze(-1).to(s.dtype)
    return ((s - t) ** 2 * m).sum() / (m.sum() * s.shape[-1]).clamp_min(1.0)


def _encoder_outputs(
    model: nn.Module, batch: dict[str, torch.Tensor], hidden: bool, who: str
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """``(last_hidden_state, hidden_states or None)`` of a Hugging Face encoder call."""
    out = model(**batch, output_hidden_states=True) if hidden else model(**batch)
    states = getattr(out, "hidden_states", None) if hidden else None
    last = getattr(out, "last_hidden_state", None)
    if last is None and isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        last = out[0]
    if last is None and states:
        last = states[-1]
    if not isinstance(last, torch.Tensor) or last.dim() != 3:
        raise UnsupportedModelError(
            f"the {who} must return token states (an output with last_hidden_state, e.g. a "
            f"transformers AutoModel such as BertModel); pass the base encoder (model.bert)"
        )
    if hidden and not states:
        raise UnsupportedModelError(f"the {who} returned no hidden_states; layer_map needs them")
    return last, states


def _cycle(batches: Iterable[Any]) -> Iterator[dict[str, torch.Tensor]]:
    """Repeat ``batches`` forever (a one-pass iterator is kept in memory for the next passes)."""
    if not isinstance(batches, Iterable) or isinstance(batches, Mapping):
        raise InvalidParameterError(
            f"batches must be an iterable of tokenizer outputs (dicts of tensors), got "
            f"{type(batches).__name__}"
        )
    source: Iterable[Any] = batches
    if iter(batches) is batches:  # a generator/iterator: remember it for the next epochs
        source = list(batches)
    while True:
        n = 0
        for b in source:
            if not isinstance(b, Mapping):
                raise InvalidParameterError(
                    f"batches must yield tokenizer outputs (dicts of tensors), got "
                    f"{type(b).__name__}"
                )
            n += 1
            yield dict(b)
        if n == 0:
            raise InvalidParameterError("batches is empty")


def _check_layer_map(layer_map: Any) -> dict[int, int]:
    if layer_map is None:
        return {}
    if not isinstance(layer_map, Mapping) or not layer_map:
        raise InvalidParameterError(
            f"layer_map must be a non-empty dict {{student_layer: teacher_layer}} or None, "
            f"got {layer_map!r}"
        )
    out = {}
    for k, v in layer_map.items():
        for name, i in (("student layer", k), ("teacher layer", v)):
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0:
                raise InvalidParameterError(
                    f"layer_map: {name} {i!r} must be an integer >= 0 (an index into "
                    f"hidden_states, 0 = the embedding output)"
                )
        out[int(k)] = int(v)
    return out


def _check_real(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if allow_none and value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0
            or not math.isfinite(value)):
        accepted = "a number > 0 or None" if allow_none else "a number > 0"
        raise InvalidParameterError(f"{name} must be {accepted}, got {value!r}")
    return float(value)


def distill_hidden_states(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    steps: int,
    lr: float = 1e-4,
    loss: str = "mse",
    pool: str = "mean",
    layer_map: Mapping[int, int] | None = None,
    layer_weight: float = 1.0,
    warmup: float = 0.1,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    dropout: bool = True,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> list[float]:
    """Train a pruned encoder in place to reproduce the teacher's embeddings; return step losses.

    Unlabelled recovery for encoders after :func:`prunekit.nn.structured.prune_transformer`
    (which keeps the hidden width, so teacher and student states compare directly):

    - embedding loss (Reimers & Gurevych 2020): ``loss="mse"`` between the pooled last hidden
      states (``pool="mean"``: attention-masked mean, the sentence-transformers pooling;
      ``"cls"``: first token), or ``loss="cosine"``, ``1 - cos`` (DistilBERT's cosine loss,
      Sanh et al. 2019);
    - optional ``layer_map={student_layer: teacher_layer}`` (indices into ``hidden_states``,
      0 = embedding output): TinyBERT's intermediate-layer MSE over real tokens (Jiao et al. 2020),
      mean over the pairs, added with weight ``layer_weight``; widths must be equal.

    ``batches`` yields tokenizer outputs (dicts of tensors, ``attention_mask`` used for pooling)
    and is cycled until ``steps`` optimizer steps are done. AdamW with linear warm-up over the
    first ``warmup`` fraction of steps, then linear decay to 0; gradients clipped to
    ``max_grad_norm``. The teacher runs under ``inference_mode`` in eval mode (its own modes are
    restored afterwards) and is never updated. The student trains in train mode (``dropout=False``
    keeps it in eval mode while training); submodules a user froze in eval inside a model in
    training mode stay in eval. The student is left in eval mode. ``device`` (default: the
    student's) is where the student trains (moved there, and stays); batches follow it, the
    teacher runs on its own device.
    """
    check_positive_int("steps", steps)
    lr_ = _check_real("lr", lr)
    check_choice("loss", loss, ("mse", "cosine"))
    check_choice("pool", pool, ("mean", "cls"))
    lmap = _check_layer_map(layer_map)
    layer_weight_ = _check_real("layer_weight", layer_weight)
    warmup_ = check_fraction("warmup", warmup)
    if (isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real)
            or not weight_decay >= 0):
        raise InvalidParameterError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    clip = _check_real("max_grad_norm", max_grad_norm, allow_none=True)
    for name, m in (("student", student), ("teacher", teacher)):
        if not isinstance(m, nn.Module):
            raise InvalidParameterError(f"{name} must be a torch nn.Module, got {type(m).__name__}")
    if student is teacher or {p.data_ptr() for p in teacher.parameters()} & {
        p.data_ptr() for p in student.parameters()
    }:
        raise InvalidParameterError(
            "student and teacher share parameters; distil a copy (prune_transformer returns one)"
        )
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise InvalidParameterError("the student has no trainable parameters (requires_grad)")
    from prunekit.nn.oneshot.core import check_device

    student.to(check_device(device, params[0].device))
    device = params[0].device
    t_device = next(iter(teacher.parameters()), params[0]).device

    opt = torch.optim.AdamW(params, lr=lr_, weight_decay=float(weight_decay))
    n_warm = int(warmup_ * steps)

    def schedule(i: int) -> float:
        if i < n_warm:
            return (i + 1) / n_warm
        return max(0.0, (steps - i) / max(1, steps - n_warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    # per-module modes: a root in training mode with frozen-eval children keeps those children
    frozen = [m for m in student.modules() if not m.training] if student.training else []
    losses: list[float] = []
    data = _cycle(batches)
    try:
        with ProgressBar(steps, "distilling", enabled=progress) as bar, eval_mode(teacher):
            for _ in range(steps):
                batch = next(data)
                mask = batch.get("attention_mask")
                with torch.inference_mode():
                    t_last, t_states = _encoder_outputs(
                        teacher, {k: v.to(t_device) for k, v in batch.items()}, bool(lmap),
                        "teacher",
                    )
                    t_emb = pool_hidden_states(t_last, None if mask is None else
                                               mask.to(t_device), pool)
                # clone outside inference_mode: inference tensors can't enter autograd
                t_emb = t_emb.to(device).clone()
                t_layers = {j: t_states[j].to(device).clone() for j in set(lmap.values())
                            if j < len(t_states)} if t_states is not None else {}
                student.train(dropout)
                for m in frozen:
                    m.training = False
                sb = {k: v.to(device) for k, v in batch.items()}
                s_last, s_states = _encoder_outputs(student, sb, bool(lmap), "student")
                smask = sb.get("attention_mask")
                s_emb = pool_hidden_states(s_last, smask, pool)
                if s_emb.shape != t_emb.shape:
                    raise ShapeMismatchError(
                        f"student and teacher embeddings differ in shape: "
                        f"{tuple(s_emb.shape)} vs {tuple(t_emb.shape)}"
                    )
                total = _match_loss(s_emb, t_emb, loss)
                if lmap:
                    assert s_states is not None  # checked by _encoder_outputs
                    terms = []
                    for i, j in lmap.items():
                        if i >= len(s_states) or j not in t_layers:
                            raise InvalidParameterError(
                                f"layer_map {i}->{j} is out of range: the student has "
                                f"{len(s_states)} hidden states, the teacher "
                                f"{len(t_states or ())}"
                            )
                        if s_states[i].shape != t_layers[j].shape:
                            raise ShapeMismatchError(
                                f"layer_map {i}->{j}: hidden states differ in shape "
                                f"{tuple(s_states[i].shape)} vs {tuple(t_layers[j].shape)}; "
                                f"layer matching needs equal widths"
                            )
                        terms.append(_masked_token_mse(s_states[i], t_layers[j], smask))
                    total = total + layer_weight_ * torch.stack(terms).mean()
                losses.append(optimizer_step(total, opt, sched, params, clip))
                bar.advance()
    finally:
        student.eval()
    return losses


def optimizer_step(total: torch.Tensor, opt: torch.optim.Optimizer, sched: Any,
                   params: list[torch.nn.Parameter], max_grad_norm: float | None) -> float:
    """One step on ``total``: zero the gradients, backward, clip to ``max_grad_norm`` (None:
    no clipping), optimiser and scheduler step; returns the loss as a float."""
    opt.zero_grad(set_to_none=True)
    total.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    sched.step()
    return float(total.detach())
