"""Structured pruning of Hugging Face transformer blocks without tracing.

transformers 5.x models do not trace with ``torch.fx``, so :func:`prune` cannot analyse them.
Their blocks are regular, though: this module finds them by module structure and removes

* whole **attention heads** -- the head's ``head_dim`` rows of the query/key/value projections
  and the matching input columns of the attention output projection (Michel et al., "Are
  Sixteen Heads Really Better than One?", NeurIPS 2019; Voita et al., ACL 2019), and
* **FFN intermediate neurons** -- output rows of the first FFN projection and input columns of
  the second (McCarley et al., "Structured Pruning of a BERT-based Question Answering Model",
  2019; Kwon et al., "A Fast Post-Training Pruning Framework for Transformers", NeurIPS 2022).

Layouts are recognised by module structure, not by class or model name, so unknown
architectures built the same way work too:

* attention -- BERT family (``X.self.{query,key,value}``, MobileViT's ``X.attention...``,
  DeBERTa's ``query_proj``.. + ``X.output.dense``), GPT-2 (fused ``c_attn``/``c_proj``
  ``Conv1D``), GPT-NeoX/Falcon (``query_key_value`` interleaved per head + ``dense``), and
  separate ``nn.Linear`` projections named ``q_proj``..``o_proj`` (Llama/Mistral/Qwen/Gemma/
  ViT, grouped-query attention), ``q_proj``..``out_proj`` (OPT/BART/Whisper/CLIP/GPT-J),
  ``q_proj``..``dense`` (Phi), ``q_lin``..``out_lin`` (DistilBERT) or ``q``/``k``/``v``/``o``
  (T5); further per-head projections in the module (DeBERTa's ``pos_key_proj``) follow;
* FFN -- ``gate_proj``+``up_proj``/``down_proj``, fused ``gate_up_proj``, ``wi``/``wo`` and
  gated ``wi_0``+``wi_1``/``wo`` (T5), ``lin1``/``lin2``, ``fc1``/``fc2``, ``fc_in``/``fc_out``,
  ``c_fc``/``c_proj``, ``dense_h_to_4h``/``dense_4h_to_h``, ``intermediate.dense``/
  ``output.dense``.

Whole heads are removed, never parts of one, so ``head_dim`` and the softmax scale are
unchanged. Under grouped-query attention a KV head is removed with all its query heads, or the
same number of query heads leaves every group (``gqa=``). Per-head tables inside an attention
module (T5's relative position bias) lose the removed heads' columns; T5 layers that share one
position bias keep the same heads. Every attribute that carries a width (``num_heads``,
``num_key_value_heads``, ``num_key_value_groups``, ``n_heads``, ``inner_dim``,
``all_head_size``, ``split_size``, ``intermediate_size``, ``in/out_features``, ...) is
updated in each module, which the forward passes read, so layers may keep different counts.
``model.config`` is left unchanged: rebuild a pruned architecture with
:func:`apply_transformer_plan` before ``load_state_dict``, or save and reload it with
:func:`prunekit.nn.structured.save_pruned_pretrained` / ``load_pruned_pretrained``.

Importance (per head / neuron, summed over every weight and bias the unit owns):
``"l1"`` sum ``|w|``, ``"l2"`` sum ``w**2`` (Li et al., ICLR 2017), ``"taylor"`` sum ``|w * g|``
with gradients from ``data`` (Molchanov et al., CVPR 2019), ``"activation"`` (output-weight
norm x calibration activation norm of the unit, Wanda-style), ``"random"`` (baseline).
"""

from __future__ import annotations

import copy
import math
import re
import warnings
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
HF_CRITERIA = ("l1", "l2", "taylor", "activation", "random")




@dataclass
class Cut:
    """Positions of one parameter owned by a site's units.

    Along ``dim`` the parameter ``param`` holds ``chunks`` stacked copies of ``n * size``
    positions, ``n`` being the site's units (``space="units"``: query heads / neurons) or its
    KV groups (``space="groups"``: key/value heads under grouped-query attention). ``size``
    defaults to the site's ``unit_size`` (``head_dim``); a per-head scalar (T5's relative
    position bias) has ``size=1``.
    """

    param: str
    dim: int
    chunks: int = 1
    size: int | None = None
    space: str = "units"


@dataclass
class Site:
    """One prunable set of units: the heads of an attention module or the neurons of an FFN.

    Query head ``i`` belongs to KV group ``i // group_size`` (``group_size`` query heads share
    one key/value head; 1 without grouped-query attention). ``attrs``: ``(module, attribute,
    quantity)``, set after pruning to ``quantity`` of ``"units"`` (kept heads / neurons),
    ``"kv_heads"`` (kept KV groups), ``"rep"`` (query heads per kept group) or ``"width"``
    (kept heads x ``unit_size``). ``members``: the modules pruned together (several for T5,
    whose layers share one relative position bias).
    """

    name: str
    kind: str  # "heads" | "neurons"
    n_units: int
    unit_size: int
    cuts: list[Cut]
    attrs: list[tuple[str, str, str]] = field(default_factory=list)
    group_size: int = 1
    layout: str = ""
    members: list[str] = field(default_factory=list)

    @property
    def n_groups(self) -> int:
        return self.n_units // self.group_size


def _is_conv1d(m: Any) -> bool:
    return type(m).__name__ == "Conv1D" and hasattr(m, "nf") and hasattr(m, "nx")


def _is_linear(m: Any) -> bool:
    return isinstance(m, nn.Linear)


def _prefix(name: str) -> str:
    return f"{name}." if name else ""


_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head")
_KV_ATTRS = ("num_key_value_heads", "num_kv_heads", "n_kv_heads")
_REP_ATTRS = ("num_key_value_groups", "num_kv_groups")
_WIDTH_ATTRS = ("all_head_size", "inner_dim", "split_size")
_DIM_ATTRS = ("head_dim", "attention_head_size", "key_value_proj_dim", "head_size")


def _count_attrs(name: str, m: nn.Module, heads: int, kv: int,
                 d: int) -> list[tuple[str, str, str]]:
    """The int attributes of attention module ``m`` that carry its head count or width."""
    found = []
    for names, value, qty in ((_HEAD_ATTRS, heads, "units"), (_KV_ATTRS, kv, "kv_heads"),
                              (_REP_ATTRS, heads // kv, "rep"), (_WIDTH_ATTRS, heads * d, "width")):
        for a in names:
            v = getattr(m, a, None)
            if isinstance(v, int) and not isinstance(v, bool) and v == value:
                found.append((name, a, qty))
    return found


def _head_dim(m: nn.Module, q_width: int) -> int | None:
    for a in _DIM_ATTRS:
        v = getattr(m, a, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    for a in _HEAD_ATTRS:
        v = getattr(m, a, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0 and q_width % v == 0:
            return q_width // v
    return None


def _bert_attention(name: str, m: nn.Module) -> Site | None:
    """``X.{self|attention}.{query,key,value}`` (or ``query_proj``.., DeBERTa) +
    ``X.output.dense`` (BERT family, RoBERTa, ELECTRA, DeBERTa, MobileViT, ...)."""
    o = getattr(m, "output", None)
    dense = getattr(o, "dense", None)
    if not _is_linear(dense):
        return None
    for child in ("self", "attention"):
        s = getattr(m, child, None)
        if not isinstance(s, nn.Module):
            continue
        for names in (("query", "key", "value"), ("query_proj", "key_proj", "value_proj")):
            q, k, v = (getattr(s, x, None) for x in names)
            if all(_is_linear(x) for x in (q, k, v)):
                break
        else:
            continue
        heads = getattr(s, "num_attention_heads", None)
        d = getattr(s, "attention_head_size", None)
        if not isinstance(heads, int) or not isinstance(d, int) or heads * d != q.out_features:
            return None
        p = _prefix(name)
        cuts = [Cut(f"{p}{child}.{x}.{a}", 0) for x in names
                for a in ("weight", "bias") if getattr(getattr(s, x), a, None) is not None]
        cuts += _extra_cuts(f"{p}{child}", s, {id(q), id(k), id(v)}, heads, heads, d)
        cuts.append(Cut(f"{p}output.dense.weight", 1))
        return Site(name, "heads", heads, d, cuts,
                    _count_attrs(f"{p}{child}", s, heads, heads, d), layout="bert",
                    members=[name])
    return None


def _gpt2_attention(name: str, m: nn.Module) -> Site | None:
    """Fused ``c_attn`` (``Conv1D``, q|k|v thirds) + ``c_proj`` (GPT-2 attention)."""
    ca, cp = getattr(m, "c_attn", None), getattr(m, "c_proj", None)
    if not (_is_conv1d(ca) and _is_conv1d(cp)):
        return None
    heads, d = getattr(m, "num_heads", None), getattr(m, "head_dim", None)
    if not isinstance(heads, int) or not isinstance(d, int):
        return None
    p = _prefix(name)
    width = heads * d
    q = getattr(m, "q_attn", None)
    if q is not None:  # cross-attention: q in q_attn, k|v in c_attn
        if not _is_conv1d(q) or q.nf != width or ca.nf != 2 * width:
            return None
        cuts = [Cut(f"{p}q_attn.weight", 1), Cut(f"{p}q_attn.bias", 0),
                Cut(f"{p}c_attn.weight", 1, 2), Cut(f"{p}c_attn.bias", 0, 2)]
    else:
        if ca.nf != 3 * width:
            return None
        cuts = [Cut(f"{p}c_attn.weight", 1, 3), Cut(f"{p}c_attn.bias", 0, 3)]
    cuts.append(Cut(f"{p}c_proj.weight", 0))
    return Site(name, "heads", heads, d, cuts, _count_attrs(name, m, heads, heads, d),
                layout="gpt2", members=[name])


def _fused_qkv_attention(name: str, m: nn.Module) -> Site | None:
    """``query_key_value`` (per head ``[q | k | v]``, GPT-NeoX/Bloom) + ``dense``."""
    qkv, dense = getattr(m, "query_key_value", None), getattr(m, "dense", None)
    if not (_is_linear(qkv) and _is_linear(dense)):
        return None
    width = dense.in_features
    d = _head_dim(m, width)
    if d is None or width % d or qkv.out_features != 3 * width:
        raise UnsupportedModelError(
            f"prune_transformer: {name!r} ({type(m).__name__}) has a fused query_key_value of "
            f"{qkv.out_features} outputs for an output projection of {width} inputs (head_dim "
            f"{d}); only per-head interleaved q|k|v without grouped KV heads is supported; "
            f"pass ignored_layers=[{name!r}] to leave it unchanged")
    heads = width // d
    p = _prefix(name)
    cuts = [Cut(f"{p}query_key_value.{a}", 0, size=3 * d) for a in ("weight", "bias")
            if getattr(qkv, a, None) is not None]
    cuts.append(Cut(f"{p}dense.weight", 1))
    return Site(name, "heads", heads, d, cuts, _count_attrs(name, m, heads, heads, d),
                layout="fused-qkv", members=[name])


_QKVO_NAMES = (("q_proj", "k_proj", "v_proj", "o_proj"), ("q_proj", "k_proj", "v_proj", "out_proj"),
               ("q_proj", "k_proj", "v_proj", "dense"), ("q_lin", "k_lin", "v_lin", "out_lin"),
               ("q", "k", "v", "o"))


def _extra_cuts(name: str, m: nn.Module, skip: set[int], heads: int, kv: int,
                d: int) -> list[Cut]:
    """Cuts for the attention module's other parameters: further per-head projections
    (``nn.Linear`` with ``heads * head_dim`` outputs, e.g. DeBERTa's ``pos_key_proj``) and
    per-head tables (T5's relative position bias, attention sinks) lose the removed heads;
    per-``head_dim`` parameters (Qwen3/Gemma3 ``q_norm``) are shared by all heads and kept
    whole. Anything else (a norm over all heads, an unknown projection) is refused."""
    cuts: list[Cut] = []
    p = _prefix(name)
    for mname, sub in m.named_modules():
        if id(sub) in skip:
            continue
        q = f"{p}{mname}." if mname else p
        if _is_linear(sub) and sub.out_features in (heads * d, kv * d):
            space = "units" if sub.out_features == heads * d else "groups"
            cuts += [Cut(f"{q}{a}", 0, space=space) for a in ("weight", "bias")
                     if getattr(sub, a, None) is not None]
            continue
        for pname, t in sub.named_parameters(recurse=False):
            if t.dim() == 1 and t.shape[0] == d:
                continue
            if t.dim() in (1, 2) and t.shape[-1] == heads and (t.dim() == 2 or heads != kv * d):
                cuts.append(Cut(f"{q}{pname}", t.dim() - 1, size=1))
                continue
            what = ("normalises across all heads (removing heads would change it)"
                    if t.dim() == 1 and t.shape[0] in (heads * d, kv * d) else
                    f"has shape {tuple(t.shape)}, which prune_transformer cannot relate to heads")
            raise UnsupportedModelError(
                f"prune_transformer: parameter {q}{pname} of attention {name!r} "
                f"({type(m).__name__}) {what}; pass ignored_layers=[{name!r}] to leave it "
                "unchanged")
    return cuts


def _qkvo_attention(name: str, m: nn.Module) -> Site | None:
    """Separate q/k/v/o ``nn.Linear`` projections: Llama/Mistral/Qwen2/Gemma (``q_proj`` ...
    ``o_proj``, grouped-query attention), OPT/BART/Whisper (``out_proj``), DistilBERT
    (``q_lin`` ... ``out_lin``), T5 (``q``/``k``/``v``/``o``, no bias)."""
    for names in _QKVO_NAMES:
        mods = [getattr(m, n, None) for n in names]
        if all(_is_linear(x) for x in mods):
            break
    else:
        return None
    q, k, v, o = mods
    d = _head_dim(m, q.out_features)
    ok = (d is not None and q.out_features % d == 0 and k.out_features == v.out_features
          and k.out_features % d == 0 and k.out_features > 0 and o.in_features == q.out_features)
    heads, kv = (q.out_features // d, k.out_features // d) if ok else (0, 0)
    if not ok or heads % kv:
        raise UnsupportedModelError(
            f"prune_transformer: {name!r} ({type(m).__name__}) has projections {names} of "
            f"widths {q.out_features}/{k.out_features}/{v.out_features}/{o.in_features} and "
            f"head_dim {d}, which do not split into whole (grouped) heads; pass "
            f"ignored_layers=[{name!r}] to leave it unchanged")
    p = _prefix(name)
    cuts = []
    for lin, n, space in zip((q, k, v), names, ("units", "groups", "groups"), strict=False):
        cuts.append(Cut(f"{p}{n}.weight", 0, space=space))
        if lin.bias is not None:
            cuts.append(Cut(f"{p}{n}.bias", 0, space=space))
    cuts.append(Cut(f"{p}{names[3]}.weight", 1))
    cuts += _extra_cuts(name, m, {id(x) for x in mods}, heads, kv, d)
    return Site(name, "heads", heads, d, cuts, _count_attrs(name, m, heads, kv, d),
                group_size=heads // kv, layout="q/k/v/o", members=[name])


# (first projections, second projection, chunks of the first): the first match wins
_FFN_PATTERNS = (
    (("gate_proj", "up_proj"), "down_proj", 1),
    (("gate_up_proj",), "down_proj", 2),
    (("up_proj",), "down_proj", 1),
    (("wi_0", "wi_1"), "wo", 1),
    (("wi",), "wo", 1),
    (("lin1",), "lin2", 1),
    (("fc1",), "fc2", 1),
    (("fc_in",), "fc_out", 1),
    (("c_fc",), "c_proj", 1),
    (("dense_h_to_4h",), "dense_4h_to_h", 1),
    (("w1", "w3"), "w2", 1),
    (("intermediate.dense",), "output.dense", 1),
)
_FFN_ATTRS = ("intermediate_size", "ffn_dim", "d_ff")


def _get(m: nn.Module, dotted: str) -> Any:
    for part in dotted.split("."):
        m = getattr(m, part, None)
        if m is None:
            return None
    return m


def _out_width(m: Any) -> int | None:
    return m.out_features if _is_linear(m) else m.nf if _is_conv1d(m) else None


def _in_width(m: Any) -> int | None:
    return m.in_features if _is_linear(m) else m.nx if _is_conv1d(m) else None


def _ffn(name: str, m: nn.Module) -> Site | None:
    """Two-layer (optionally gated) FFN: the first projections' outputs and the second's inputs."""
    if _is_linear(m) or _is_conv1d(m):
        return None
    for firsts, second, chunks in _FFN_PATTERNS:
        ins = [_get(m, f) for f in firsts]
        out = _get(m, second)
        widths = {_out_width(x) for x in ins}
        if None in widths or len(widths) != 1 or _in_width(out) is None:
            continue
        width = widths.pop() // chunks
        if _in_width(out) != width or width * chunks != _out_width(ins[0]):
            continue
        p = _prefix(name)
        cuts = []
        for f, x in zip(firsts, ins, strict=True):
            cuts.append(Cut(f"{p}{f}.weight", 1 if _is_conv1d(x) else 0, chunks))
            if getattr(x, "bias", None) is not None:
                cuts.append(Cut(f"{p}{f}.bias", 0, chunks))
        cuts.append(Cut(f"{p}{second}.weight", 0 if _is_conv1d(out) else 1))
        attrs = [(name, a, "units") for a in _FFN_ATTRS if getattr(m, a, None) == width]
        return Site(name, "neurons", width, 1, cuts, attrs,
                    layout="+".join(firsts) + "/" + second, members=[name])
    return None


_ATTENTION_DETECTORS = (_bert_attention, _gpt2_attention, _fused_qkv_attention, _qkvo_attention)
_ATTENTION_HINTS = ("q_proj", "k_proj", "v_proj", "qkv_proj", "query_key_value", "Wqkv", "q_lin",
                    "in_proj_weight", "c_attn")
SUPPORTED_LAYOUTS = (
    "BERT-family {self|attention}.{query,key,value|query_proj,..} + output.dense; GPT-2 "
    "c_attn/c_proj; fused per-head query_key_value/dense (GPT-NeoX, Falcon); separate q/k/v/o "
    "projections named q_proj..o_proj (Llama/Mistral/Qwen/Gemma, grouped-query attention), "
    "q_proj..out_proj (OPT/BART/Whisper/CLIP), q_proj..dense (Phi), q_lin..out_lin "
    "(DistilBERT) or q/k/v/o (T5)")


def _ignored_names(model: nn.Module, ignored: Sequence[str | nn.Module]) -> set[str]:
    if isinstance(ignored, (str, nn.Module)):
        ignored = [ignored]
    ids = {id(x) for x in ignored if isinstance(x, nn.Module)}
    names = set()
    for x in ignored:
        if not isinstance(x, (str, nn.Module)):
            raise InvalidParameterError(
                f"ignored_layers takes module names or modules, got {type(x).__name__}")
        if isinstance(x, str):
            names.add(x)
    known = dict(model.named_modules())
    for n in names:
        if n not in known:
            raise InvalidParameterError(f"ignored_layers names {n!r}, which the model lacks")
    return names | {n for n, m in known.items() if id(m) in ids}


def _under(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") or p == "" for p in prefixes)


def _wildcard(name: str) -> str:
    return re.sub(r"(^|\.)\d+(?=\.|$)", r"\1*", name)


def _couple(model: nn.Module, sites: list[Site], ignored: set[str],
            skipped: list[str]) -> list[Site]:
    """Merge the attention sites of one stack that share a relative position bias (T5: layer
    0 computes it for all its heads and every later layer adds it to the same heads), so all
    of them keep the same heads. A stack with any member ignored is left unchanged whole."""
    out: list[Site] = []
    groups: dict[str, list[Site]] = {}
    for s in sites:
        m = model.get_submodule(s.name) if s.name else model
        if s.kind == "heads" and hasattr(m, "has_relative_attention_bias"):
            groups.setdefault(_wildcard(s.name), []).append(s)
            if len(groups[_wildcard(s.name)]) == 1:
                out.append(s)  # placeholder keeps module order
        else:
            out.append(s)
    for key, members in groups.items():
        first = members[0]
        merged = first
        if len(members) > 1 or key != first.name:
            if len({(s.n_units, s.unit_size, s.group_size) for s in members}) != 1:
                raise UnsupportedModelError(
                    f"prune_transformer: attention modules {key!r} share a position bias but "
                    "have different head counts")
            merged = Site(key, "heads", first.n_units, first.unit_size,
                          [c for s in members for c in s.cuts],
                          [a for s in members for a in s.attrs], first.group_size,
                          first.layout + " (shared position bias)",
                          [n for s in members for n in s.members])
        if ignored and any(_under(mod, ignored) for mod in _stack_members(model, key)):
            out.remove(first)
            skipped.append(key)
            continue
        out[out.index(first)] = merged
    return out


def _stack_members(model: nn.Module, key: str) -> list[str]:
    pat = re.compile("^" + re.escape(key).replace(r"\*", r"\d+") + "$")
    return [n for n, _ in model.named_modules() if pat.match(n)]


def _detect(name: str, m: nn.Module) -> list[Site]:
    found = []
    for det in _ATTENTION_DETECTORS:
        s = det(name, m)
        if s is not None:
            found.append(s)
            break
    f = _ffn(name, m)
    if f is not None:
        found.append(f)
    return found


def find_sites(model: nn.Module, ignored_layers: Sequence[str | nn.Module] = (),
               skipped: list[str] | None = None) -> list[Site]:
    """The prunable attention/FFN sites of ``model`` (in module order), found by module
    structure (see :data:`SUPPORTED_LAYOUTS`), whatever the model's class or name.

    Raises :class:`UnsupportedModelError` naming any attention-like module of an unknown layout
    (``qkv_proj``-style, ``*Attention`` classes) that is not in ``ignored_layers``.
    ``skipped`` (a list, if given) receives the shared-position-bias stacks left unchanged
    because one of their members is ignored.
    """
    ignored = _ignored_names(model, ignored_layers)
    sites: list[Site] = []
    for name, m in model.named_modules():
        if ignored and _under(name, ignored):
            continue
        sites += _detect(name, m)
    stacks: list[str] = []
    sites = _couple(model, sites, ignored, stacks)
    covered = {n for s in sites if s.kind == "heads" for n in s.members}
    covered |= {n for key in stacks for n in _stack_members(model, key)}
    if skipped is not None:
        skipped += stacks

    def related(name: str) -> bool:  # inside, or a parent of, a recognised attention module
        return any(_under(name, {c}) or _under(c, {name}) for c in covered)

    for name, m in model.named_modules():
        if (ignored and _under(name, ignored)) or related(name):
            continue
        if isinstance(m, nn.MultiheadAttention):
            raise UnsupportedModelError(
                f"prune_transformer: {name!r} is nn.MultiheadAttention; use "
                f"prunekit.nn.structured.prune for it or pass ignored_layers=[{name!r}]")
        hints = [h for h in _ATTENTION_HINTS if hasattr(m, h)]
        if (type(m).__name__.lower().endswith("attention") or hints) and not _is_linear(m):
            children = ", ".join(n for n, _ in m.named_children()) or "none"
            raise UnsupportedModelError(
                f"prune_transformer: attention module {name!r} ({type(m).__name__}, children: "
                f"{children}) has a layout it does not know (supported: {SUPPORTED_LAYOUTS}); "
                f"pass ignored_layers=[{name!r}] to leave it unchanged")
    if not sites and not ignored:
        raise UnsupportedModelError(
            f"prune_transformer: {type(model).__name__} has no recognised transformer blocks "
            f"(supported: {SUPPORTED_LAYOUTS}); use prunekit.nn.structured.prune for traceable "
            "models")
    return sites


# ----------------------------------------------------------------------------- maths


def _param(model: nn.Module, dotted: str) -> torch.Tensor | None:
    owner, attr = get_owner(model, dotted)
    t = getattr(owner, attr, None)
    return t if isinstance(t, torch.Tensor) else None


def site_scores(model: nn.Module, site: Site, criterion: str,
                grads: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """One score per unit (query head / neuron) of ``site``: the sum over the unit's weights of
    ``|w|``, ``w**2`` or ``|w * g|`` (``grads`` keyed by parameter name). A shared key/value
    head's score is split evenly over the query heads of its group."""
    per = {"units": torch.zeros(site.n_units, dtype=torch.float64),
           "groups": torch.zeros(site.n_groups, dtype=torch.float64)}
    for cut in site.cuts:
        t = _param(model, cut.param)
        if t is None:
            continue
        w = t.detach().double()
        if criterion == "l1":
            s = w.abs()
        elif criterion == "l2":
            s = w.pow(2)
        else:
            g = (grads or {}).get(cut.param)
            if g is None:
                continue
            s = (w * g.double()).abs()
        n = per[cut.space].shape[0]
        per[cut.space] += s.movedim(cut.dim, 0).reshape(cut.chunks, n, -1).sum((0, 2)).cpu()
    total = per["units"] + per["groups"].repeat_interleave(site.group_size) / site.group_size
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


GQA_MODES = ("auto", "groups", "heads")


def select_heads(scores: np.ndarray, group_size: int, ratio: float, step: int = 1,
                 gqa: str = "auto") -> tuple[list[int], str]:
    """Query heads to keep under grouped-query attention (``group_size`` heads per KV head).

    ``"groups"`` removes whole KV groups (the key/value head with its query heads; the KV cache
    shrinks too); ``"heads"`` removes the same number of query heads from every group (KV heads
    kept); ``"auto"`` takes whichever removes a number of query heads closest to
    ``ratio``, groups on a tie. Kept head counts are multiples of ``step`` where possible.
    Returns ``(kept head indices, mode used)``.
    """
    n = len(scores)
    if group_size <= 1:
        return keep_units(scores, n_keep(n, ratio, step)), "heads"
    g = n // group_size
    by_group = np.asarray(scores, dtype=np.float64).reshape(g, group_size)
    kg = n_keep(g, ratio, step // math.gcd(step, group_size))
    kh = n_keep(group_size, ratio, step // math.gcd(step, g))
    if gqa == "auto":
        target = math.floor(n * ratio + 1e-9)
        by_groups = abs((g - kg) * group_size - target)
        gqa = "groups" if by_groups <= abs((group_size - kh) * g - target) else "heads"
    if gqa == "groups":
        kept = keep_units(by_group.sum(1), kg)
        return [i * group_size + j for i in kept for j in range(group_size)], "groups"
    return sorted(i * group_size + j for i in range(g)
                  for j in keep_units(by_group[i], kh)), "heads"


def _positions(idx: Sequence[int], n: int, size: int, chunks: int) -> torch.Tensor:
    k = torch.as_tensor(list(idx), dtype=torch.long)
    within = (k[:, None] * size + torch.arange(size)[None, :]).reshape(-1)
    return torch.cat([within + c * n * size for c in range(chunks)])


def _kept_groups(site: Site, keep: Sequence[int]) -> list[int]:
    """KV groups of the kept heads; every kept group must keep the same number of heads."""
    counts: dict[int, int] = {}
    for i in keep:
        counts[i // site.group_size] = counts.get(i // site.group_size, 0) + 1
    if len(set(counts.values())) > 1:
        raise InvalidParameterError(
            f"plan keeps {sorted(counts.values())} query heads in the KV groups of "
            f"{site.name!r}; grouped-query attention needs the same number in every kept group")
    return sorted(counts)


def _shrink(model: nn.Module, site: Site, keep: Sequence[int]) -> None:
    groups = _kept_groups(site, keep)
    qty = {"units": len(keep), "kv_heads": len(groups), "rep": len(keep) // max(len(groups), 1),
           "width": len(keep) * site.unit_size}
    touched: dict[int, nn.Module] = {}
    for cut in site.cuts:
        owner, attr = get_owner(model, cut.param)
        idx, n = (keep, site.n_units) if cut.space == "units" else (groups, site.n_groups)
        _take(owner, attr, cut.dim, _positions(idx, n, cut.size or site.unit_size, cut.chunks))
        touched[id(owner)] = owner
    for m in touched.values():  # keep size attributes in step with the weights
        if _is_linear(m):
            m.out_features, m.in_features = m.weight.shape
        elif _is_conv1d(m):
            m.nx, m.nf = m.weight.shape
        elif isinstance(m, nn.Embedding):
            m.num_embeddings, m.embedding_dim = m.weight.shape
    for owner_name, attr, q in site.attrs:
        m = model.get_submodule(owner_name) if owner_name else model
        setattr(m, attr, qty[q])


# ----------------------------------------------------------------------------- plans


_PLAN_KINDS = ("heads", "neurons")


def validate_plan(plan: Any) -> dict[str, Any]:
    """Check a plan's structure (e.g. one read from an untrusted file) before it touches a
    model: format, site records with known kinds, int unit counts and sorted, unique, in-range
    kept indices. Returns the plan."""
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise InvalidParameterError(f"plan must be a dict with format {PLAN_FORMAT!r}")
    sites, ignored = plan.get("sites"), plan.get("ignored", [])
    if not isinstance(sites, list):
        raise InvalidParameterError("plan['sites'] must be a list of site records")
    if not isinstance(ignored, list) or not all(isinstance(x, str) for x in ignored):
        raise InvalidParameterError("plan['ignored'] must be a list of module names")
    for rec in sites:
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
            raise InvalidParameterError(f"plan site record {rec!r} lacks a string 'name'")
        if rec.get("kind") not in _PLAN_KINDS:
            raise InvalidParameterError(
                f"plan site {rec['name']!r}: kind must be one of {_PLAN_KINDS}, got "
                f"{rec.get('kind')!r}")
        units, keep = rec.get("units"), rec.get("keep")
        if not _is_int(units) or units < 1:
            raise InvalidParameterError(f"plan site {rec['name']!r}: units must be an int >= 1")
        if (not isinstance(keep, list) or not keep or not all(_is_int(i) for i in keep)
                or keep != sorted(set(keep)) or keep[0] < 0 or keep[-1] >= units):
            raise InvalidParameterError(
                f"plan site {rec['name']!r}: keep must be a non-empty sorted list of distinct "
                f"ints in [0, {units})")
    return plan


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def apply_transformer_plan(model: nn.Module, plan: dict[str, Any], *,
                           inplace: bool = False) -> nn.Module:
    """Shrink ``model`` (a fresh model of the original architecture) as ``plan`` records, so
    the pruned ``state_dict`` loads into it. Returns a deep copy unless ``inplace``."""
    validate_plan(plan)
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
        cols = ["name", "kind", "before", "after"]
        cols += ["mode", "kv_before", "kv_after"] if any("mode" in r for r in self.layers) else []
        lines = [f"Transformer pruning: criterion `{self.criterion}`, head_ratio "
                 f"{self.head_ratio:.3f}, ffn_ratio {self.ffn_ratio:.3f}", "",
                 markdown_table(table, right=("before", "after", "ratio")), "",
                 markdown_table([{k: r.get(k, "") for k in cols} for r in self.layers],
                                right=("before", "after"))]
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


def _output_projections(model: nn.Module, site: Site) -> list[tuple[str, nn.Module]]:
    """The modules whose *inputs* are the site's units: attention output projections, FFN
    second layers (``nn.Linear`` cut along its inputs, or ``Conv1D`` along dim 0)."""
    found = []
    for cut in site.cuts:
        owner, attr = get_owner(model, cut.param)
        if attr == "weight" and ((_is_linear(owner) and cut.dim == 1)
                                 or (_is_conv1d(owner) and cut.dim == 0)):
            found.append((cut.param.rsplit(".", 1)[0], owner))
    return found


def activation_scores(model: nn.Module, sites: list[Site], data: Iterable[Any],
                      max_batches: int) -> dict[str, np.ndarray]:
    """Per unit: the norm of its contribution bound, ``sqrt(sum_j ||W[:, j]||^2 * sum x_j^2)``
    over the unit's input features ``j`` of the output projection and the calibration tokens
    (the neuron/head analogue of Wanda, Sun et al. 2023; cf. Kwon et al. 2022's use of
    calibration activations). Keyed by site name."""
    sq: dict[str, torch.Tensor] = {}
    hooks = []
    for site in sites:
        for name, mod in _output_projections(model, site):
            def hook(m: nn.Module, inp: Any, out: Any, key: str = name) -> None:
                x = inp[0].detach().double()
                x = x.reshape(-1, x.shape[-1])
                sq[key] = sq.get(key, 0) + x.pow(2).sum(0).cpu()
            hooks.append(mod.register_forward_hook(hook))
    n = 0
    try:
        with torch.no_grad(), eval_mode(model):
            for batch in data:
                if n >= max_batches:
                    break
                _call(model, batch)
                n += 1
    finally:
        for h in hooks:
            h.remove()
    if n == 0:
        raise InvalidParameterError("data= yielded no batches for criterion='activation'")
    out = {}
    for site in sites:
        total = torch.zeros(site.n_units, dtype=torch.float64)
        for name, mod in _output_projections(model, site):
            w = mod.weight.detach().double()
            col = (w.pow(2).sum(0) if _is_linear(mod) else w.pow(2).sum(1)).cpu()
            total += (col * sq.get(name, torch.zeros_like(col))).reshape(site.n_units, -1).sum(1)
        out[site.name] = total.sqrt().numpy()
    return out


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


def _example(model: nn.Module, seq_len: int = 128) -> Any:
    cfg = getattr(model, "config", None)
    vocab = int(getattr(cfg, "vocab_size", 0) or 100)
    n_pos = int(getattr(cfg, "max_position_embeddings", 0) or getattr(cfg, "n_positions", 0)
                or seq_len)
    ids = (torch.arange(min(seq_len, n_pos)) % vocab).unsqueeze(0)
    if getattr(cfg, "is_encoder_decoder", False):
        return {"input_ids": ids, "decoder_input_ids": ids[:, : max(ids.shape[1] // 4, 1)]}
    return ids


def _choose(site: Site, scores: np.ndarray, ratio: float, round_to: int | None,
            gqa: str) -> tuple[list[int], dict[str, Any]]:
    """Kept units of ``site`` and its report row."""
    step = round_to // math.gcd(round_to, site.unit_size) if round_to and round_to > 1 else 1
    row: dict[str, Any] = {"name": site.name, "kind": site.kind, "layout": site.layout,
                           "before": site.n_units}
    if ratio <= 0:
        keep = list(range(site.n_units))
    elif site.kind == "heads":
        keep, mode = select_heads(scores, site.group_size, ratio, step, gqa)
        if site.group_size > 1:
            row.update(mode=mode, kv_before=site.n_groups,
                       kv_after=len({i // site.group_size for i in keep}))
    else:
        keep = keep_units(scores, n_keep(site.n_units, ratio, step))
    row["after"] = len(keep)
    return keep, row


def _coverage_notes(layers: list[dict[str, Any]], head_ratio: float,
                    ffn_ratio: float) -> list[str]:
    """Say (and warn) when a ratio was asked but nothing of that kind could be removed."""
    notes = []
    for kind, ratio, what in (("head", head_ratio, "attention heads"),
                              ("ffn", ffn_ratio, "FFN neurons")):
        rows = [r for r in layers if r["kind"] == ("heads" if kind == "head" else "neurons")]
        if ratio <= 0:
            continue
        if not rows:
            notes.append(f"{kind}_ratio={ratio} but no {what} were found in a known layout "
                         "(e.g. mixture-of-experts FFNs with fused expert weights): kept")
        elif all(r["after"] == r["before"] for r in rows):
            notes.append(f"{kind}_ratio={ratio} removed no {what} (too few units per layer or "
                         "KV group for that ratio, or gqa='groups' with one KV head)")
    for n in notes:
        warnings.warn(f"prune_transformer: {n}", stacklevel=3)
    return notes


def _checked_call(model: nn.Module, inputs: Any, sites: list[Site]) -> Any:
    """Run the pruned model once; a failure means a layout detected by structure that this
    module does not fully understand: say so, naming the sites, not a raw traceback."""
    try:
        with torch.no_grad(), eval_mode(model):
            return _call(model, inputs)
    except (RuntimeError, ValueError, IndexError) as e:
        layouts = sorted({f"{s.name} ({s.layout})" for s in sites})[:6]
        raise UnsupportedModelError(
            f"prune_transformer: the pruned {type(model).__name__} fails its forward check "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); it has parts the structural "
            f"detection does not cover (e.g. a head-count table outside the attention modules). "
            f"Sites pruned: {', '.join(layouts)}; pass ignored_layers= for them") from e


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
    gqa: str = "auto",
) -> tuple[nn.Module, TransformerPruneReport]:
    """Remove attention heads and FFN neurons of every transformer layer; return
    ``(pruned_copy, report)``. ``model`` itself is not modified.

    ``head_ratio`` / ``ffn_ratio``: fraction of heads / intermediate neurons removed per layer
    (each attention keeps at least one head). ``criterion``: ``"l1"``, ``"l2"``, ``"taylor"``
    (needs ``data``: batches -- dicts of keyword tensors, tuples or ``input_ids`` tensors; the
    loss is ``output.loss`` when the model returns one, e.g. with ``labels``, otherwise the mean
    squared ``last_hidden_state``), ``"activation"`` (needs ``data``: the unit's output-weight
    norm times its calibration activation norm, :func:`activation_scores`) or ``"random"``.
    ``round_to``: kept FFN widths and kept attention widths (heads x head_dim) are multiples of
    it where possible.
    ``ignored_layers``: names or modules left unchanged (with their submodules).
    ``example_inputs`` (default: one 128-token sequence of ids, also as decoder ids for
    encoder-decoder models) is used for a forward check, the MACs count and, with
    ``measure=True``, an interleaved latency comparison. ``gqa``: under grouped-query attention
    remove whole KV groups (``"groups"``), the same number of query heads in every group
    (``"heads"``), or whichever is closer to ``head_ratio`` (``"auto"``; see
    :func:`select_heads`). Whole heads are always removed, so ``head_dim`` and the softmax
    scale never change.
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    head_ratio = check_fraction("head_ratio", head_ratio, low=0.0, high=1.0)
    ffn_ratio = check_fraction("ffn_ratio", ffn_ratio, low=0.0, high=1.0)
    check_choice("criterion", criterion, HF_CRITERIA)
    check_choice("gqa", gqa, GQA_MODES)
    if round_to is not None:
        round_to = check_positive_int("round_to", round_to)
    max_batches = check_positive_int("max_batches", max_batches)
    if criterion in ("taylor", "activation") and data is None:
        raise InvalidParameterError(
            f"criterion={criterion!r} needs data= (batches: dicts of tensors, tuples or input "
            "ids)")

    work = copy.deepcopy(model)
    stacks: list[str] = []
    sites = find_sites(work, ignored_layers, stacks)
    grads = _gradients(work, data, max_batches) if criterion == "taylor" else None
    acts = activation_scores(work, sites, data, max_batches) if criterion == "activation" \
        else {}
    rng = np.random.default_rng(seed)
    records, layers = [], []
    for site in sites:
        if criterion == "random":
            scores = rng.random(site.n_units)
        elif criterion == "activation":
            scores = acts[site.name]
        else:
            scores = site_scores(work, site, criterion, grads)
        keep, row = _choose(site, scores, head_ratio if site.kind == "heads" else ffn_ratio,
                            round_to, gqa)
        records.append({"name": site.name, "kind": site.kind, "units": site.n_units,
                        "keep": keep})
        layers.append(row)
    return finish_pruning(model, work, sites, records, layers, criterion=criterion,
                          ratios=(head_ratio, ffn_ratio), ignored_layers=ignored_layers,
                          stacks=stacks, example_inputs=example_inputs, measure=measure)


def finish_pruning(model: nn.Module, work: nn.Module, sites: list[Site],
                   records: list[dict[str, Any]], layers: list[dict[str, Any]], *,
                   criterion: str, ratios: tuple[float, float],
                   ignored_layers: Sequence[str | nn.Module] = (), stacks: Sequence[str] = (),
                   example_inputs: Any = None,
                   measure: bool = False) -> tuple[nn.Module, TransformerPruneReport]:
    """Apply the kept units ``records`` (plan site records) to ``work`` (a copy of ``model``
    whose :func:`find_sites` gave ``sites``), check the pruned forward pass and build the
    report (``layers``: its per-site rows). Shared by every way of choosing the kept units."""
    head_ratio, ffn_ratio = ratios
    ignored = sorted(_ignored_names(work, ignored_layers))
    plan = {"format": PLAN_FORMAT, "sites": records, "ignored": ignored}

    inputs = _example(work) if example_inputs is None else example_inputs
    try:
        with torch.no_grad(), eval_mode(work):
            ref = _call(work, inputs)
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as e:
        what = "the default example (token ids)" if example_inputs is None else "example_inputs"
        raise InvalidParameterError(
            f"prune_transformer: the unpruned {type(model).__name__} fails on {what} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); pass "
            "example_inputs= a batch it accepts (a tensor, a tuple or a dict of keyword "
            "tensors, e.g. {'pixel_values': ...} or {'input_features': ...})") from e
    pruned = apply_transformer_plan(work, plan)
    new = _checked_call(pruned, inputs, sites)
    a, b = _main(ref), _main(new)
    if a is not None and b is not None and a.shape != b.shape:
        raise ShapeMismatchError(f"internal error: output shape changed from {tuple(a.shape)} "
                                 f"to {tuple(b.shape)}; please report it")
    pruned.train(model.training)
    notes = ["model.config is unchanged (it still states the original head count and FFN "
             "width): save with save_pruned_pretrained, or rebuild with "
             "apply_transformer_plan(fresh_model, report.plan) before load_state_dict"]
    notes += _coverage_notes(layers, head_ratio, ffn_ratio)
    if any(s.group_size > 1 for s in sites):
        notes.append("grouped-query attention: see each layer's mode (kv groups removed whole, "
                     "or the same number of query heads per group); the KV cache follows the "
                     "kept key/value heads (use the default dynamic cache: a static cache sized "
                     "from model.config would not fit)")
    if criterion == "taylor":
        notes.append("taylor: gradients of output.loss where present, else of the mean squared "
                     "last_hidden_state")
    report = TransformerPruneReport(
        criterion=criterion, head_ratio=head_ratio, ffn_ratio=ffn_ratio, layers=layers,
        params_before=_n_params(work), params_after=_n_params(pruned),
        macs_before=_safe_macs(work, inputs, notes), macs_after=_safe_macs(pruned, inputs, []),
        skipped=[f"{n}: in ignored_layers" for n in ignored]
        + [f"{k}: shares a position bias with an ignored layer" for k in stacks],
        notes=notes, plan=plan,
    )
    if measure:
        la, lb = measure_latency_pair(work, pruned, inputs, warmup=2, repeats=10)
        report.latency_before_s, report.latency_after_s = la.median_s, lb.median_s
    return pruned, report


def _safe_macs(model: nn.Module, inputs: Any, notes: list[str]) -> int | None:
    """MACs of one forward pass, or ``None`` (with a note) when the counter cannot run it."""
    try:
        return count_macs(model, inputs)
    except Exception as e:  # noqa: BLE001 - the count is informative, pruning still stands
        notes.append(f"MACs not counted: the FLOP counter failed on this model "
                     f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
        return None


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
