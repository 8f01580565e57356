"""Recovery training for unstructured / one-shot pruned models that keeps pruned weights at zero.

:func:`keep_zeros` wraps *any* training loop: gradients of pruned entries are masked (so Adam's
moments stay zero there) and after every optimizer step the masks are re-applied (so weight decay
or a user's stale momentum cannot regrow them). :func:`masked_finetune` runs
:func:`prunekit.nn.distill.finetune` (cross-entropy or knowledge distillation from the dense
teacher) and :func:`masked_distill_hidden_states` runs
:func:`prunekit.nn.distill.distill_hidden_states` (embedding distillation for encoders) inside
it. :func:`masked_distill_outputs` is the recovery loop for one-shot pruned transformers
(encoders and decoders): per-layer normalised hidden-state error plus pooled cosine or logit KL,
teacher outputs cached, embedding tables frozen. Masks come from a
:class:`prunekit.nn.Pruner` (``pruner.masks``), a ``SparsityReport`` (``report.masks``), a dict
``{param_name: keep_mask}`` or, by default, the model's zeros.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from prunekit.deploy._common import fmt
from prunekit.errors import InvalidParameterError


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Keep-masks (``True`` = kept) of every weight matrix / kernel that contains zeros."""
    return {name: p.detach() != 0 for name, p in model.named_parameters()
            if p.dim() >= 2 and bool((p == 0).any())}


def _resolve(model: nn.Module, masks: Any) -> dict[str, torch.Tensor]:
    if masks is None:
        out = zero_masks(model)
    else:
        source = getattr(masks, "masks", masks)  # a Pruner or a SparsityReport
        if not isinstance(source, Mapping):
            raise InvalidParameterError(
                "masks must be a dict {param_name: bool mask}, a prunekit.nn.Pruner, a "
                f"SparsityReport or None (use the model's zeros), got {type(masks).__name__}"
            )
        params = dict(model.named_parameters())
        out = {}
        for name, m in source.items():
            if name not in params or tuple(m.shape) != tuple(params[name].shape):
                raise InvalidParameterError(
                    f"mask {name!r} does not match a parameter of the model (name and shape)"
                )
            out[name] = m.to(device=params[name].device, dtype=torch.bool)
    if not out:
        raise InvalidParameterError("the model has no pruned (zero) weights; nothing to keep")
    return out


@contextlib.contextmanager
def keep_zeros(model: nn.Module, masks: Any = None) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, pruned weights of ``model`` stay exactly zero whatever trains it."""
    masks = _resolve(model, masks)
    params = dict(model.named_parameters())
    targets = [(params[n], m) for n, m in masks.items()]
    handles = [p.register_hook(lambda g, m=m: g.masked_fill(~m, 0)) for p, m in targets]

    @torch.no_grad()
    def reapply(*_: Any) -> None:
        for p, m in targets:
            p.masked_fill_(~m, 0)

    reapply()
    handles.append(register_optimizer_step_post_hook(reapply))
    try:
        yield masks
    finally:
        for h in handles:
            h.remove()
        reapply()


@dataclass
class RecoveryReport:
    """What a masked recovery run did: losses, and that the pruned weights stayed zero."""

    method: str
    masked_params: int
    pruned_weights: int
    zeros_kept: bool
    sparsity: float
    losses: list[float] = field(default_factory=list)
    metric: str | None = None
    before: float | None = None
    after: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        rows = {"method": self.method, "masked weight tensors": self.masked_params,
                "pruned weights": self.pruned_weights, "sparsity of masked tensors": self.sparsity,
                "pruned weights still zero": self.zeros_kept,
                "first / last loss": (f"{self.losses[0]:.4g} / {self.losses[-1]:.4g}"
                                      if self.losses else None),
                f"{self.metric} before": self.before, f"{self.metric} after": self.after}
        lines = ["### Masked recovery", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in rows.items()
                  if v is not None and not k.startswith("None")]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)


def _summary(model: nn.Module, masks: dict[str, torch.Tensor], method: str,
             losses: list[float]) -> RecoveryReport:
    params = dict(model.named_parameters())
    pruned = sum(int((~m).sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    kept = all(bool((params[n][~m] == 0).all()) for n, m in masks.items())
    return RecoveryReport(method, len(masks), pruned, kept, pruned / max(total, 1), list(losses))


def masked_finetune(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    masks: Any = None,
    teacher: nn.Module | None = None,
    epochs: int = 1,
    lr: float = 1e-4,
    T: float = 4.0,
    alpha: float = 0.5,
    max_steps: int | None = None,
    eval_loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    progress: bool = False,
) -> RecoveryReport:
    """Fine-tune (or distil from ``teacher``) a sparse classifier in place, keeping its zeros.

    Runs :func:`prunekit.nn.distill.finetune` inside :func:`keep_zeros`. With ``eval_loader``
    the top-1 accuracy before and after is reported.
    """
    from prunekit.nn.distill import finetune
    from prunekit.nn.training import evaluate_accuracy

    before = evaluate_accuracy(model, eval_loader) if eval_loader is not None else None
    with keep_zeros(model, masks) as m:
        losses = finetune(model, loader, epochs=epochs, lr=lr, teacher=teacher, T=T, alpha=alpha,
                          max_steps=max_steps, progress=progress)
    report = _summary(model, m, "distillation" if teacher is not None else "fine-tuning", losses)
    if eval_loader is not None:
        report.metric, report.before = "accuracy", before
        report.after = evaluate_accuracy(model, eval_loader)
    return report


def masked_distill_hidden_states(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    steps: int,
    masks: Any = None,
    **kwargs: Any,
) -> RecoveryReport:
    """Embedding distillation of a sparse (one-shot pruned) encoder that keeps its zeros.

    :func:`prunekit.nn.distill.distill_hidden_states` (all its keyword options accepted) inside
    :func:`keep_zeros`; the teacher is usually the dense model before pruning.
    """
    from prunekit.nn.distill import distill_hidden_states

    with keep_zeros(student, masks) as m:
        losses = distill_hidden_states(student, teacher, batches, steps=steps, **kwargs)
    return _summary(student, m, "hidden-state distillation", losses)


# ----------------------------------------------------------------------------- output distillation

_OUTPUT_LOSSES = ("cosine", "mse", "kl", "none")
_SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class _Target:
    """The teacher's outputs for one batch (computed once when ``cache_teacher``)."""

    pooled: torch.Tensor | None
    states: dict[int, torch.Tensor]
    logits: torch.Tensor | None


def _forward(model: nn.Module, batch: dict[str, torch.Tensor], hidden: bool,
             who: str) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor | None]:
    """``(last token states, hidden_states or (), logits or None)`` of a Hugging Face model."""
    from prunekit.errors import UnsupportedModelError

    out = model(**batch, output_hidden_states=True) if hidden else model(**batch)
    states = tuple(getattr(out, "hidden_states", None) or ())
    last = getattr(out, "last_hidden_state", None)
    if last is None and states:
        last = states[-1]
    if last is None and isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        last = out[0]
    logits = getattr(out, "logits", None)
    if not isinstance(last, torch.Tensor) or last.dim() != 3:
        if not hidden:  # a causal / masked LM head: the token states come with hidden_states
            return _forward(model, batch, True, who)
        raise UnsupportedModelError(
            f"the {who} must return token states (last_hidden_state or hidden_states of a "
            f"transformers model, e.g. BertModel or GPT2LMHeadModel)"
        )
    if hidden and not states:
        raise UnsupportedModelError(f"the {who} returned no hidden_states; layers needs them")
    return last, states, logits


def _layer_pairs(layers: Any, n_states: int) -> dict[int, int]:
    """``{student index: teacher index}`` into ``hidden_states`` from the ``layers`` option."""
    if layers is None:
        return {}
    if layers == "all":
        return {i: i for i in range(1, n_states)}
    if isinstance(layers, Mapping):
        pairs = dict(layers)
    elif isinstance(layers, Iterable) and not isinstance(layers, str | bytes):
        pairs = {i: i for i in layers}
    else:
        raise InvalidParameterError(
            f"layers must be None, 'all', a list of hidden-state indices or a dict "
            f"{{student index: teacher index}}, got {layers!r}"
        )
    for k, v in pairs.items():
        for i in (k, v):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_states:
                raise InvalidParameterError(
                    f"layers: index {i!r} must be an integer in [0, {n_states - 1}] (an index "
                    f"into hidden_states, 0 = the embedding output)"
                )
    if not pairs:
        raise InvalidParameterError("layers is empty; pass None for no hidden-state term")
    return {int(k): int(v) for k, v in pairs.items()}


def _relative_state_error(s: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None,
                          ) -> torch.Tensor:
    """``||s - t||² / ||t||²`` over real (non-padding) tokens: a per-layer normalised MSE, so
    layers whose states are large (or carry outlier features) do not dominate the sum."""
    if mask is None:
        return (s - t).pow(2).sum() / t.pow(2).sum().clamp_min(1e-12)
    m = mask.unsqueeze(-1).to(s.dtype)
    return ((s - t).pow(2) * m).sum() / (t.pow(2) * m).sum().clamp_min(1e-12)


def _token_kl(s: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None,
              temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the token distributions, mean over real tokens, × T²."""
    from torch.nn import functional as F

    kl = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                  log_target=True, reduction="none").sum(-1)
    if mask is not None:
        m = mask.to(kl.dtype)
        kl = (kl * m).sum() / m.sum().clamp_min(1.0)
    else:
        kl = kl.mean()
    return kl * temperature**2


def _check_batches(batches: Any) -> list[dict[str, torch.Tensor]]:
    if not isinstance(batches, Iterable) or isinstance(batches, Mapping | torch.Tensor):
        raise InvalidParameterError(
            f"batches must be an iterable of tokenizer outputs (dicts of tensors), got "
            f"{type(batches).__name__}"
        )
    out = []
    for b in batches:
        if not isinstance(b, Mapping) or not all(isinstance(v, torch.Tensor) for v in b.values()):
            raise InvalidParameterError(
                f"batches must yield tokenizer outputs (dicts of tensors), got {type(b).__name__}"
            )
        out.append(dict(b))
    if not out:
        raise InvalidParameterError("batches is empty")
    return out


def _lr_lambda(steps: int, warmup: float, schedule: str) -> Any:
    import math

    n_warm = int(warmup * steps)

    def factor(i: int) -> float:
        if i < n_warm:
            return (i + 1) / n_warm
        frac = (i - n_warm) / max(1, steps - n_warm)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * frac))
        return 1.0 - frac if schedule == "linear" else 1.0

    return factor


@contextlib.contextmanager
def _trainable(model: nn.Module, embeddings: bool) -> Iterator[list[nn.Parameter]]:
    """The parameters to train (those with ``requires_grad``; embedding tables only if
    ``embeddings``); flags changed here are restored afterwards."""
    frozen = [] if embeddings else [p for m in model.modules() if isinstance(m, nn.Embedding)
                                    for p in m.parameters(recurse=False) if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield [p for p in model.parameters() if p.requires_grad]
    finally:
        for p in frozen:
            p.requires_grad_(True)


def masked_distill_outputs(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    steps: int,
    masks: Any = None,
    lr: float = 1e-4,
    loss: str = "cosine",
    pool: str = "mean",
    layers: Any = "all",
    layer_weight: float = 1.0,
    temperature: float = 1.0,
    warmup: float = 0.1,
    schedule: str = "cosine",
    max_grad_norm: float | None = 1.0,
    dropout: bool = False,
    train_embeddings: bool = False,
    cache_teacher: bool = True,
    progress: bool = False,
    augment: float = 0.0,
    token_pool: Any = None,
    seed: int = 0,
) -> RecoveryReport:
    """Distil a dense ``teacher`` into its sparse copy ``student`` in place, keeping the zeros.

    Unlabelled recovery for one-shot pruned Hugging Face encoders and decoders. The loss is an
    output term plus ``layer_weight`` × a hidden-state term:

    - ``loss``: ``"cosine"`` (``1 - cos`` of the attention-masked mean of the last token states,
      padding ignored; ``pool="cls"``: first token), ``"mse"`` of the same pooled vectors,
      ``"kl"`` (token-level KL divergence of the logits at ``temperature``, real tokens only;
      models with an LM head) or ``"none"``;
    - ``layers``: hidden states matched token by token over real tokens as the relative error
      ``||s - t||² / ||t||²`` per layer (normalised, so no layer or outlier feature dominates),
      averaged over layers: ``"all"`` (every block output), a list of indices into
      ``hidden_states`` (0 = embedding output), a dict ``{student index: teacher index}`` or None.

    AdamW (no weight decay) over the parameters with ``requires_grad`` — weights, biases and
    LayerNorms; embedding tables only with ``train_embeddings`` — with linear warm-up over the
    first ``warmup`` fraction of ``steps`` then ``schedule`` decay (cosine / linear to 0, or
    constant), gradients clipped to ``max_grad_norm``. ``batches`` (tokenizer outputs) is cycled;
    with ``cache_teacher`` the teacher's outputs are computed once per batch. The student trains
    in eval mode unless ``dropout``; pruned weights stay exactly zero (:func:`keep_zeros`).

    ``augment`` (a fraction, default 0): at every step that fraction of each batch's real tokens
    (not the first and last of a row: [CLS]/[SEP]/BOS/EOS) is replaced by random ids from
    ``token_pool`` (default: the ids the batches contain; a tokenizer's whole-word tokens widen
    the vocabulary: :func:`word_token_ids`), seeded by ``seed``; the teacher labels the very same
    corrupted text, so its outputs are recomputed every step. The student then sees far more
    word contexts than the few hundred sentences hold, which generalises better to unseen text.
    """
    from prunekit._modes import eval_mode
    from prunekit._progress import ProgressBar
    from prunekit.nn.distill import optimizer_step, pool_hidden_states

    lr, layer_weight, temperature, warmup, max_grad_norm = _check_options(
        student, teacher, steps=steps, lr=lr, loss=loss, pool=pool, layers=layers,
        layer_weight=layer_weight, temperature=temperature, warmup=warmup, schedule=schedule,
        max_grad_norm=max_grad_norm, flags={"dropout": dropout, "cache_teacher": cache_teacher,
                                            "train_embeddings": train_embeddings,
                                            "progress": progress})
    data = _check_batches(batches)
    augment, pool_ids = _check_augment(augment, token_pool, seed, data)
    gen = torch.Generator().manual_seed(seed)
    s_dev = next(student.parameters()).device
    t_dev = next(teacher.parameters()).device
    hidden = layers is not None
    cache: dict[int, _Target] = {}
    pairs: dict[int, int] = {}

    def target(i: int | None, raw: dict[str, torch.Tensor]) -> _Target:
        if i is not None and i in cache:
            return cache[i]
        batch = {k: v.to(t_dev) for k, v in raw.items()}
        with torch.inference_mode():
            last, states, logits = _forward(teacher, batch, hidden, "teacher")
            if hidden and not pairs:
                pairs.update(_layer_pairs(layers, len(states)))
            pooled = (None if loss in ("kl", "none")
                      else pool_hidden_states(last, batch.get("attention_mask"), pool))
        if loss == "kl" and logits is None:
            raise InvalidParameterError("loss='kl' needs logits: the teacher has no LM head")
        # clone outside inference mode: inference tensors cannot enter autograd
        tgt = _Target(None if pooled is None else pooled.to(s_dev).clone(),
                      {j: states[j].to(s_dev).clone() for j in set(pairs.values())},
                      logits.to(s_dev).clone() if loss == "kl" else None)
        if cache_teacher and i is not None:
            cache[i] = tgt
        return tgt

    losses: list[float] = []
    with keep_zeros(student, masks) as kept, _trainable(student, train_embeddings) as params, \
            eval_mode(teacher), ProgressBar(steps, "distilling", enabled=progress) as bar:
        if not params:
            raise InvalidParameterError("the student has no trainable parameters (requires_grad)")
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, warmup, schedule))
        try:
            student.train(dropout)
            for step in range(steps):
                if augment:  # a new corrupted batch every step, labelled afresh
                    data_i = _corrupt(data[step % len(data)], augment, pool_ids, gen)
                    tgt = target(None, data_i)
                else:
                    data_i = data[step % len(data)]
                    tgt = target(step % len(data), data_i)
                batch = {k: v.to(s_dev) for k, v in data_i.items()}
                total = _step_loss(student, batch, tgt, pairs, loss, pool, layer_weight,
                                   temperature)
                losses.append(optimizer_step(total, opt, sched, params, max_grad_norm))
                bar.advance()
        finally:
            student.eval()
    report = _summary(student, kept, "output distillation", losses)
    cached = cache_teacher and not augment
    report.notes.append(f"{sum(p.numel() for p in params)} trainable parameters; teacher "
                        f"outputs {'cached' if cached else 'recomputed every step'}"
                        + (f"; {augment:.0%} of the tokens replaced every step" if augment else ""))
    return report


def word_token_ids(tokenizer: Any, min_chars: int = 3) -> list[int]:
    """Ids of ``tokenizer``'s whole-word tokens (alphabetic, at least ``min_chars`` letters once
    decoded, not special, not a word piece): a wide vocabulary for :func:`masked_distill_outputs`'
    ``augment``."""
    vocab = getattr(tokenizer, "get_vocab", None)
    if vocab is None:
        raise InvalidParameterError("tokenizer must be a Hugging Face tokenizer (get_vocab), "
                                    f"got {type(tokenizer).__name__}")
    special = set(getattr(tokenizer, "all_special_ids", ()))
    ids = []
    for token, i in sorted(vocab().items(), key=lambda kv: kv[1]):
        if i in special or token.startswith("##"):
            continue
        text = tokenizer.convert_tokens_to_string([token])
        word = text.strip()
        if len(word) >= min_chars and word.isalpha() and (word.islower() or word.istitle()):
            ids.append(i)
    if not ids:
        raise InvalidParameterError("the tokenizer has no whole-word tokens to sample from")
    return ids


def _check_augment(augment: Any, token_pool: Any, seed: Any,
                   data: list[dict[str, torch.Tensor]]) -> tuple[float, torch.Tensor | None]:
    from prunekit._validation import check_fraction, check_seed

    augment = check_fraction("augment", augment)
    if augment >= 1.0:
        raise InvalidParameterError(f"augment must be a fraction in [0, 1), got {augment!r}")
    check_seed("seed", seed)
    if not augment:
        return 0.0, None
    if any("input_ids" not in b for b in data):
        raise InvalidParameterError("augment needs token batches with input_ids")
    if token_pool is None:
        pool = torch.unique(torch.cat([_inner_ids(b) for b in data]))
    else:
        try:
            pool = torch.as_tensor(list(token_pool), dtype=torch.long).unique()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InvalidParameterError(f"token_pool must be a sequence of token ids ({exc})") \
                from exc
        if pool.numel() and int(pool.min()) < 0:
            raise InvalidParameterError("token_pool holds a negative token id")
    if not pool.numel():
        raise InvalidParameterError("token_pool is empty: no token ids to sample from")
    return augment, pool


def _inner(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Real-token positions other than each row's first and last (special tokens)."""
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    real = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
    pos = torch.arange(ids.shape[-1]).expand_as(ids)
    first = torch.where(real, pos, ids.shape[-1]).amin(-1, keepdim=True)
    last = torch.where(real, pos, -1).amax(-1, keepdim=True)
    return real & (pos > first) & (pos < last)


def _inner_ids(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return batch["input_ids"][_inner(batch)]


def _corrupt(batch: dict[str, torch.Tensor], fraction: float, pool: torch.Tensor,
             gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``batch`` with ``fraction`` of its inner real tokens replaced by random ``pool`` ids."""
    ids = batch["input_ids"].clone()
    hit = _inner(batch) & (torch.rand(ids.shape, generator=gen) < fraction)
    ids[hit] = pool[torch.randint(len(pool), (int(hit.sum()),), generator=gen)].to(ids.dtype)
    return {**batch, "input_ids": ids}


def _check_options(student: Any, teacher: Any, *, steps: Any, lr: Any, loss: Any, pool: Any,
                   layers: Any, layer_weight: Any, temperature: Any, warmup: Any, schedule: Any,
                   max_grad_norm: Any, flags: dict[str, Any]) -> tuple[Any, ...]:
    """Validate :func:`masked_distill_outputs`' options; return the numbers as floats."""
    from prunekit._validation import (
        check_bool,
        check_choice,
        check_fraction,
        check_positive_int,
        check_real,
    )

    check_positive_int("steps", steps)
    lr = check_real("lr", lr, minimum=0.0)
    check_choice("loss", loss, _OUTPUT_LOSSES)
    check_choice("pool", pool, ("mean", "cls"))
    check_choice("schedule", schedule, _SCHEDULES)
    layer_weight = check_real("layer_weight", layer_weight, minimum=0.0)
    temperature = check_real("temperature", temperature, minimum=1e-6)
    warmup = check_fraction("warmup", warmup)
    if max_grad_norm is not None:
        max_grad_norm = check_real("max_grad_norm", max_grad_norm, minimum=1e-12)
    for name, flag in flags.items():
        check_bool(name, flag)
    for name, m in (("student", student), ("teacher", teacher)):
        if not isinstance(m, nn.Module):
            raise InvalidParameterError(f"{name} must be a torch nn.Module, got {type(m).__name__}")
    if {p.data_ptr() for p in teacher.parameters()} & {p.data_ptr() for p in student.parameters()}:
        raise InvalidParameterError("student and teacher share parameters; distil a copy")
    if loss == "none" and layers is None:
        raise InvalidParameterError("loss='none' needs layers (otherwise nothing is matched)")
    return lr, layer_weight, temperature, warmup, max_grad_norm


def _step_loss(student: nn.Module, batch: dict[str, torch.Tensor], tgt: _Target,
               lmap: dict[int, int], loss: str, pool: str, layer_weight: float,
               temperature: float) -> torch.Tensor:
    from torch.nn import functional as F

    from prunekit.errors import ShapeMismatchError
    from prunekit.nn.distill import pool_hidden_states

    last, states, logits = _forward(student, batch, bool(lmap), "student")
    mask = batch.get("attention_mask")
    terms = []
    if tgt.pooled is not None:
        s = pool_hidden_states(last, mask, pool)
        if s.shape != tgt.pooled.shape:
            raise ShapeMismatchError(f"student and teacher embeddings differ in shape: "
                                     f"{tuple(s.shape)} vs {tuple(tgt.pooled.shape)}")
        terms.append((1.0 - F.cosine_similarity(s, tgt.pooled, dim=-1)).mean() if loss == "cosine"
                     else F.mse_loss(s, tgt.pooled))
    if tgt.logits is not None:
        if logits is None or logits.shape != tgt.logits.shape:
            raise ShapeMismatchError("loss='kl': student and teacher logits differ in shape")
        terms.append(_token_kl(logits, tgt.logits, mask, temperature))
    if lmap:
        errs = []
        for i, j in lmap.items():
            if i >= len(states) or states[i].shape != tgt.states[j].shape:
                raise ShapeMismatchError(
                    f"layers {i}->{j}: student and teacher hidden states differ (the student has "
                    f"{len(states)} states); layer matching needs equal depth indices and widths"
                )
            errs.append(_relative_state_error(states[i], tgt.states[j], mask))
        terms.append(layer_weight * torch.stack(errs).mean())
    return torch.stack(terms).sum()
