"""Structured pruning of Hugging Face transformer blocks without tracing.

transformers 5.x models do not trace with ``torch.fx``, so :func:`prune` cannot analyse them.
Their blocks are regular, though: this module finds them by module structure and removes

* whole **attention heads** -- the head's ``head_dim`` rows of the query/key/value projections
  and the matching input columns of the attention output projection (Michel et al., "Are
  Sixteen Heads Really Better than One?", NeurIPS 2019; Voita et al., ACL 2019), and
* **FFN intermediate neurons** -- output rows of the first FFN projection and input columns of
  the second (McCarley et al., "Structured Pruning of a BERT-based Question Answering Model",
  2019; Kwon et al., "A Fast Post-Training Pruning Framework for Transformers", NeurIPS 2022).

Recognised layouts: BERT family (``query``/``key``/``value`` ``nn.Linear`` in ``X.self`` with
the output projection in ``X.output.dense``; FFN ``intermediate.dense`` / ``output.dense``:
BERT, RoBERTa, ELECTRA, MiniLM, ...) and GPT-2 (fused ``c_attn`` / ``c_proj`` ``Conv1D`` whose
weights are ``[in, out]``; FFN ``mlp.c_fc`` / ``mlp.c_proj``). Head counts are written to each
attention module's own attributes (``num_attention_heads``/``all_head_size``, or
``num_heads``/``split_size``), which the forward passes read, so layers may keep different
head counts. ``model.config`` is left unchanged: rebuild a pruned architecture with
:func:`apply_transformer_plan` before ``load_state_dict``.

Importance (per head / neuron, summed over every weight and bias the unit owns):
``"l1"`` sum ``|w|``, ``"l2"`` sum ``w**2`` (Li et al., ICLR 2017), ``"taylor"`` sum ``|w * g|``
with gradients from ``data`` (Molchanov et al., CVPR 2019), ``"random"`` (baseline).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit._validation import check_choice, check_fraction, check_positive_int
from prunekit.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError
from prunekit.metrics import count_macs, markdown_table, measure_latency_pair

from .handlers import _take, get_owner

PLAN_FORMAT = "prunekit.transformers/1"
HF_CRITERIA = ("l1", "l2", "taylor", "random")


# ----------------------------------------------------------------------------- sites


@dataclass
class Site:
    """One prunable set of units: the heads of an attention module or the neurons of an FFN.

    ``slices``: ``(dotted parameter, dim, chunks)``; along ``dim`` the parameter holds
    ``chunks`` stacked copies of ``n_units * unit_size`` positions (fused q/k/v: 3 chunks).
    ``attrs``: ``(dotted module, attribute, multiplier)``: set to ``kept_units * multiplier``.
    """

    name: str
    kind: str  # "heads" | "neurons"
    n_units: int
    unit_size: int
    slices: list[tuple[str, int, int]]
    attrs: list[tuple[str, str, int]] = field(default_factory=list)


def _is_conv1d(m: nn.Module) -> bool:
    return type(m).__name__ == "Conv1D" and hasattr(m, "nf") and hasattr(m, "nx")


def _is_linear(m: Any) -> bool:
    return isinstance(m, nn.Linear)


def _bert_attention(name: str, m: nn.Module) -> Site | None:
    """``X.self.{query,key,value}`` + ``X.output.dense`` (BERT-family attention)."""
    s, o = getattr(m, "self", None), getattr(m, "output", None)
    if not isinstance(s, nn.Module) or not isinstance(o, nn.Module):
        return None
    q, k, v, dense = (getattr(s, "query", None), getattr(s, "key", None),
                      getattr(s, "value", None), getattr(o, "dense", None))
    if not all(_is_linear(x) for x in (q, k, v, dense)):
        return None
    heads = getattr(s, "num_attention_heads", None)
    d = getattr(s, "attention_head_size", None)
    if not isinstance(heads, int) or not isinstance(d, int) or heads * d != q.out_features:
        return None
    p = f"{name}." if name else ""
    slices = [(f"{p}self.{x}.{a}", 0, 1) for x in ("query", "key", "value")
              for a in ("weight", "bias")]
    slices.append((f"{p}output.dense.weight", 1, 1))
    return Site(name, "heads", heads, d, slices,
                [(f"{p}self", "num_attention_heads", 1), (f"{p}self", "all_head_size", d)])


def _gpt2_attention(name: str, m: nn.Module) -> Site | None:
    """Fused ``c_attn`` (``Conv1D``, q|k|v thirds) + ``c_proj`` (GPT-2 attention)."""
    ca, cp = getattr(m, "c_attn", None), getattr(m, "c_proj", None)
    if not (isinstance(ca, nn.Module) and _is_conv1d(ca) and isinstance(cp, nn.Module)
            and _is_conv1d(cp)):
        return None
    heads, d = getattr(m, "num_heads", None), getattr(m, "head_dim", None)
    if not isinstance(heads, int) or not isinstance(d, int):
        return None
    p = f"{name}." if name else ""
    width = heads * d
    q = getattr(m, "q_attn", None)
    if q is not None:  # cross-attention: q in q_attn, k|v in c_attn
        if not _is_conv1d(q) or q.nf != width or ca.nf != 2 * width:
            return None
        slices = [(f"{p}q_attn.weight", 1, 1), (f"{p}q_attn.bias", 0, 1),
                  (f"{p}c_attn.weight", 1, 2), (f"{p}c_attn.bias", 0, 2)]
    else:
        if ca.nf != 3 * width:
            return None
        slices = [(f"{p}c_attn.weight", 1, 3), (f"{p}c_attn.bias", 0, 3)]
    slices.append((f"{p}c_proj.weight", 0, 1))
    return Site(name, "heads", heads, d, slices,
                [(name, "num_heads", 1), (name, "split_size", d)])


def _bert_ffn(name: str, m: nn.Module) -> Site | None:
    """``intermediate.dense`` + ``output.dense`` of a BERT-family layer."""
    i, o = getattr(m, "intermediate", None), getattr(m, "output", None)
    a, b = getattr(i, "dense", None), getattr(o, "dense", None)
    if not (_is_linear(a) and _is_linear(b)) or a.out_features != b.in_features:
        return None
    p = f"{name}." if name else ""
    return Site(name, "neurons", a.out_features, 1,
                [(f"{p}intermediate.dense.weight", 0, 1), (f"{p}intermediate.dense.bias", 0, 1),
                 (f"{p}output.dense.weight", 1, 1)])


def _gpt2_ffn(name: str, m: nn.Module) -> Site | None:
    """``c_fc`` + ``c_proj`` ``Conv1D`` (GPT-2 MLP; weights are ``[in, out]``)."""
    a, b = getattr(m, "c_fc", None), getattr(m, "c_proj", None)
    if not (isinstance(a, nn.Module) and _is_conv1d(a) and isinstance(b, nn.Module)
            and _is_conv1d(b)) or a.nf != b.nx:
        return None
    p = f"{name}." if name else ""
    return Site(name, "neurons", a.nf, 1,
                [(f"{p}c_fc.weight", 1, 1), (f"{p}c_fc.bias", 0, 1), (f"{p}c_proj.weight", 0, 1)])


_DETECTORS = (_bert_attention, _gpt2_attention, _bert_ffn, _gpt2_ffn)
_ATTENTION_HINTS = ("q_proj", "k_proj", "v_proj", "qkv_proj", "query_key_value", "Wqkv", "q_lin",
                    "in_proj_weight")


def _ignored_names(model: nn.Module, ignored: Sequence[str | nn.Module]) -> set[str]:
    ids = {id(x) for x in ignored if isinstance(x, nn.Module)}
    names = {x for x in ignored if isinstance(x, str)}
    known = dict(model.named_modules())
    for n in names:
        if n not in known:
            raise InvalidParameterError(f"ignored_layers names {n!r}, which the model lacks")
    return names | {n for n, m in known.items() if id(m) in ids}


def _under(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") or p == "" for p in prefixes)


def find_sites(model: nn.Module, ignored_layers: Sequence[str | nn.Module] = ()) -> list[Site]:
    """The prunable attention/FFN sites of ``model`` (in module order).

    Raises :class:`UnsupportedModelError` naming any attention-like module of an unknown layout
    (``q_proj``/``k_proj``-style, ``*Attention`` classes) that is not in ``ignored_layers``.
    """
    ignored = _ignored_names(model, ignored_layers)
    sites: list[Site] = []
    for name, m in model.named_modules():
        if _under(name, ignored) if ignored else False:
            continue
        for det in _DETECTORS:
            s = det(name, m)
            if s is not None:
                sites.append(s)
    covered = {s.name for s in sites if s.kind == "heads"}

    def related(name: str) -> bool:  # inside, or a parent of, a recognised attention module
        return any(_under(name, {c}) or _under(c, {name}) for c in covered)

    for name, m in model.named_modules():
        if name and ignored and _under(name, ignored):
            continue
        attn_like = type(m).__name__.lower().endswith(("attention", "selfattention")) or (
            sum(hasattr(m, h) for h in _ATTENTION_HINTS) >= 1 and not _is_linear(m))
        if attn_like and not isinstance(m, nn.MultiheadAttention) and not related(name):
            raise UnsupportedModelError(
                f"prune_transformer: attention module {name!r} ({type(m).__name__}) has a layout "
                "it does not know (supported: BERT-family query/key/value + output.dense, GPT-2 "
                f"c_attn/c_proj); pass ignored_layers=[{name!r}] to leave it unchanged"
            )
        if isinstance(m, nn.MultiheadAttention) and not related(name):
            raise UnsupportedModelError(
                f"prune_transformer: {name!r} is nn.MultiheadAttention; use "
                f"prunekit.nn.structured.prune for it or pass ignored_layers=[{name!r}]"
            )
    if not sites and not ignored:
        raise UnsupportedModelError(
            f"prune_transformer: {type(model).__name__} has no recognised transformer blocks "
            "(BERT-family or GPT-2); use prunekit.nn.structured.prune for traceable models"
        )
    return sites


# ----------------------------------------------------------------------------- maths


def _param(model: nn.Module, dotted: str) -> torch.Tensor | None:
    owner, attr = get_owner(model, dotted)
    t = getattr(owner, attr, None)
    return t if isinstance(t, torch.Tensor) else None


def site_scores(model: nn.Module, site: Site, criterion: str,
                grads: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """One score per unit of ``site``: sum over the unit's weights of ``|w|``, ``w**2`` or
    ``|w * g|`` (``grads`` keyed by parameter name)."""
    total = torch.zeros(site.n_units, dtype=torch.float64)
    for dotted, dim, chunks in site.slices:
        t = _param(model, dotted)
        if t is None:
            continue
        w = t.detach().double()
        if criterion == "l1":
            s = w.abs()
        elif criterion == "l2":
            s = w.pow(2)
        else:
            g = (grads or {}).get(dotted)
            if g is None:
                continue
            s = (w * g.double()).abs()
        total += s.movedim(dim, 0).reshape(chunks, site.n_units, -1).sum((0, 2)).cpu()
    return total.numpy()


def n_keep(n: int, ratio: float, step: int = 1) -> int:
    """Units kept when removing ``floor(n * ratio)`` of ``n``: at least one, rounded up to a
    multiple of ``step`` (at most ``n``)."""
    keep = max(n - int(math.floor(n * ratio + 1e-9)), 1)
    if step > 1 and keep % step:
        keep = min(n, int(math.ceil(keep / step)) * step)
    return keep


def keep_units(scores: np.ndarray, keep: int) -> list[int]:
    """Indices of the ``keep`` highest scores (ties: lower index), sorted."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:keep])


def _positions(site: Site, keep: Sequence[int], chunks: int) -> torch.Tensor:
    k = torch.as_tensor(list(keep), dtype=torch.long)
    within = (k[:, None] * site.unit_size + torch.arange(site.unit_size)[None, :]).reshape(-1)
    width = site.n_units * site.unit_size
    return torch.cat([within + c * width for c in range(chunks)])


def _shrink(model: nn.Module, site: Site, keep: Sequence[int]) -> None:
    touched: dict[int, nn.Module] = {}
    for dotted, dim, chunks in site.slices:
        owner, attr = get_owner(model, dotted)
        _take(owner, attr, dim, _positions(site, keep, chunks))
        touched[id(owner)] = owner
    for m in touched.values():  # keep size attributes in step with the weights
        if _is_linear(m):
            m.out_features, m.in_features = m.weight.shape
        elif _is_conv1d(m):
            m.nx, m.nf = m.weight.shape
    for owner_name, attr, mult in site.attrs:
        m = model.get_submodule(owner_name) if owner_name else model
        setattr(m, attr, len(keep) * mult)


# ----------------------------------------------------------------------------- plans


def apply_transformer_plan(model: nn.Module, plan: dict[str, Any], *,
                           inplace: bool = False) -> nn.Module:
    """Shrink ``model`` (a fresh model of the original architecture) as ``plan`` records, so
    the pruned ``state_dict`` loads into it. Returns a deep copy unless ``inplace``."""
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise InvalidParameterError(f"plan must be a dict with format {PLAN_FORMAT!r}")
    model = model if inplace else copy.deepcopy(model)
    sites = {(s.name, s.kind): s for s in find_sites(model, plan.get("ignored", ()))}
    for rec in plan["sites"]:
        site = sites.get((rec["name"], rec["kind"]))
        if site is None or site.n_units != rec["units"]:
            have = None if site is None else site.n_units
            raise ShapeMismatchError(
                f"plan expects {rec['units']} {rec['kind']} at {rec['name']!r}, the model has "
                f"{have}; was the plan made for another architecture?"
            )
        if len(rec["keep"]) != site.n_units:
            _shrink(model, site, rec["keep"])
    return model


# ----------------------------------------------------------------------------- report


@dataclass
class TransformerPruneReport:
    """What :func:`prune_transformer` removed, per layer, and what it bought."""

    criterion: str
    head_ratio: float
    ffn_ratio: float
    layers: list[dict[str, Any]]  # name, kind, before, after
    params_before: int
    params_after: int
    macs_before: int | None
    macs_after: int | None
    skipped: list[str]
    notes: list[str]
    plan: dict[str, Any] = field(repr=False)
    latency_before_s: float | None = None
    latency_after_s: float | None = None

    def _total(self, kind: str, key: str) -> int:
        return sum(r[key] for r in self.layers if r["kind"] == kind)

    @property
    def heads_before(self) -> int:
        return self._total("heads", "before")

    @property
    def heads_after(self) -> int:
        return self._total("heads", "after")

    @property
    def neurons_before(self) -> int:
        return self._total("neurons", "before")

    @property
    def neurons_after(self) -> int:
        return self._total("neurons", "after")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(heads_before=self.heads_before, heads_after=self.heads_after,
                 neurons_before=self.neurons_before, neurons_after=self.neurons_after,
                 params_reduction=self.params_before / max(self.params_after, 1))
        if self.macs_before is not None and self.macs_after:
            d["macs_reduction"] = self.macs_before / self.macs_after
        return d

    def to_markdown(self) -> str:
        rows: list[tuple[str, float | int | None, float | int | None]] = [
            ("attention heads", self.heads_before, self.heads_after),
            ("FFN neurons", self.neurons_before, self.neurons_after),
            ("parameters", self.params_before, self.params_after),
            ("MACs", self.macs_before, self.macs_after),
        ]
        if self.latency_before_s is not None and self.latency_after_s is not None:
            rows.append(("latency (ms)", self.latency_before_s * 1e3, self.latency_after_s * 1e3))
        table = []
        for name, b, a in rows:
            if b is None or a is None:
                continue
            fb, fa = (f"{b:,}", f"{a:,}") if isinstance(b, int) else (f"{b:.3f}", f"{a:.3f}")
            table.append({"metric": name, "before": fb, "after": fa,
                          "ratio": f"{b / max(a, 1e-12):.2f}x"})
        lines = [f"Transformer pruning: criterion `{self.criterion}`, head_ratio "
                 f"{self.head_ratio:.3f}, ffn_ratio {self.ffn_ratio:.3f}", "",
                 markdown_table(table, right=("before", "after", "ratio")), "",
                 markdown_table([{k: r[k] for k in ("name", "kind", "before", "after")}
                                 for r in self.layers], right=("before", "after"))]
        if self.skipped:
            lines += ["", "Kept unchanged:"] + [f"- {s}" for s in self.skipped]
        if self.notes:
            lines += ["", "Notes:"] + [f"- {s}" for s in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- prune


def _call(model: nn.Module, batch: Any) -> Any:
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _loss(out: Any) -> torch.Tensor:
    loss = getattr(out, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    states = getattr(out, "last_hidden_state", None)
    if states is None:
        states = out[0] if isinstance(out, (tuple, list)) else out
    return states.float().pow(2).mean()


def _gradients(model: nn.Module, data: Iterable[Any], max_batches: int) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    acc = {k: torch.zeros_like(p) for k, p in params.items()}
    n = 0
    with eval_mode(model), torch.enable_grad():
        for batch in data:
            if n >= max_batches:
                break
            model.zero_grad(set_to_none=True)
            _loss(_call(model, batch)).backward()
            for k, p in params.items():
                if p.grad is not None:
                    acc[k] += p.grad.detach()
            n += 1
        model.zero_grad(set_to_none=True)
    if n == 0:
        raise InvalidParameterError("data= yielded no batches for criterion='taylor'")
    return acc


def _example(model: nn.Module, seq_len: int = 128) -> torch.Tensor:
    cfg = getattr(model, "config", None)
    vocab = int(getattr(cfg, "vocab_size", 0) or 100)
    n_pos = int(getattr(cfg, "max_position_embeddings", 0) or getattr(cfg, "n_positions", 0)
                or seq_len)
    return (torch.arange(min(seq_len, n_pos)) % vocab).unsqueeze(0)


def prune_transformer(
    model: nn.Module,
    *,
    head_ratio: float = 0.0,
    ffn_ratio: float = 0.0,
    criterion: str = "l2",
    data: Iterable[Any] | None = None,
    round_to: int | None = None,
    ignored_layers: Sequence[str | nn.Module] = (),
    example_inputs: Any = None,
    measure: bool = False,
    max_batches: int = 8,
    seed: int = 0,
) -> tuple[nn.Module, TransformerPruneReport]:
    """Remove attention heads and FFN neurons of every transformer layer; return
    ``(pruned_copy, report)``. ``model`` itself is not modified.

    ``head_ratio`` / ``ffn_ratio``: fraction of heads / intermediate neurons removed per layer
    (each attention keeps at least one head). ``criterion``: ``"l1"``, ``"l2"``, ``"taylor"``
    (needs ``data``: batches -- dicts of keyword tensors, tuples or ``input_ids`` tensors; the
    loss is ``output.loss`` when the model returns one, e.g. with ``labels``, otherwise the mean
    squared ``last_hidden_state``) or ``"random"``. ``round_to``: kept FFN widths and kept
    attention widths (heads x head_dim) are multiples of it where possible.
    ``ignored_layers``: names or modules left unchanged (with their submodules).
    ``example_inputs`` (default: one 128-token sequence of ids) is used for the MACs count and,
    with ``measure=True``, for an interleaved latency comparison.
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    head_ratio = check_fraction("head_ratio", head_ratio, low=0.0, high=1.0)
    ffn_ratio = check_fraction("ffn_ratio", ffn_ratio, low=0.0, high=1.0)
    check_choice("criterion", criterion, HF_CRITERIA)
    if round_to is not None:
        round_to = check_positive_int("round_to", round_to)
    max_batches = check_positive_int("max_batches", max_batches)
    if criterion == "taylor" and data is None:
        raise InvalidParameterError(
            "criterion='taylor' needs data= (batches: dicts of tensors, tuples or input ids)")

    work = copy.deepcopy(model)
    sites = find_sites(work, ignored_layers)
    grads = _gradients(work, data, max_batches) if criterion == "taylor" else None
    rng = np.random.default_rng(seed)
    records, layers = [], []
    for site in sites:
        ratio = head_ratio if site.kind == "heads" else ffn_ratio
        step = 1
        if round_to and round_to > 1:
            step = round_to // math.gcd(round_to, site.unit_size)
        keep_n = n_keep(site.n_units, ratio, step) if ratio > 0 else site.n_units
        if criterion == "random":
            scores = rng.random(site.n_units)
        else:
            scores = site_scores(work, site, criterion, grads)
        keep = keep_units(scores, keep_n)
        records.append({"name": site.name, "kind": site.kind, "units": site.n_units,
                        "keep": keep})
        layers.append({"name": site.name, "kind": site.kind, "before": site.n_units,
                       "after": len(keep)})
    ignored = sorted(_ignored_names(work, ignored_layers))
    plan = {"format": PLAN_FORMAT, "sites": records, "ignored": ignored}

    inputs = _example(work) if example_inputs is None else example_inputs
    with torch.no_grad(), eval_mode(work):
        ref = _call(work, inputs)
    pruned = apply_transformer_plan(work, plan)
    with torch.no_grad(), eval_mode(pruned):
        new = _call(pruned, inputs)
    a, b = _main(ref), _main(new)
    if a is not None and b is not None and a.shape != b.shape:
        raise ShapeMismatchError(f"internal error: output shape changed from {tuple(a.shape)} "
                                 f"to {tuple(b.shape)}; please report it")
    pruned.train(model.training)
    notes = ["model.config is unchanged (it still states the original head count and FFN "
             "width); rebuild with apply_transformer_plan(fresh_model, report.plan) before "
             "load_state_dict"]
    if criterion == "taylor":
        notes.append("taylor: gradients of output.loss where present, else of the mean squared "
                     "last_hidden_state")
    report = TransformerPruneReport(
        criterion=criterion, head_ratio=head_ratio, ffn_ratio=ffn_ratio, layers=layers,
        params_before=_n_params(work), params_after=_n_params(pruned),
        macs_before=count_macs(work, inputs), macs_after=count_macs(pruned, inputs),
        skipped=[f"{n}: in ignored_layers" for n in ignored], notes=notes, plan=plan,
    )
    if measure:
        la, lb = measure_latency_pair(work, pruned, inputs, warmup=2, repeats=10)
        report.latency_before_s, report.latency_after_s = la.median_s, lb.median_s
    return pruned, report


def _main(out: Any) -> torch.Tensor | None:
    for key in ("last_hidden_state", "logits"):
        t = getattr(out, key, None)
        if isinstance(t, torch.Tensor):
            return t
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
