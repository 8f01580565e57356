"""How to remove positions from one layer: one small handler per layer type.

A handler knows, for a layer and a *role* (``"out"``, ``"in"``, ``"chan"``), which parameter
dimensions index the role's positions (:meth:`Handler.slices`, used by importance criteria) and
how to keep only some positions (:meth:`Handler.prune`), updating attributes such as
``out_channels`` so the result is an ordinary, smaller module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunekit.errors import UnsupportedModelError

from .graph import BN, CONV, CONVT, INORM


@dataclass(frozen=True)
class Slice:
    """Positions of a role live along ``dim`` of parameter/buffer ``attr``.

    ``chunks`` > 1: the dimension holds that many stacked copies (``in_proj_weight``'s q/k/v);
    ``groups`` > 1: grouped-conv input channels (positions ``g * per_group + j``).
    """

    attr: str
    dim: int
    chunks: int = 1
    groups: int = 1


def _set(module: nn.Module, attr: str, value: torch.Tensor) -> None:
    old = getattr(module, attr)
    if old is None:
        return
    value = value.detach().clone().contiguous()
    if isinstance(old, nn.Parameter):
        setattr(module, attr, nn.Parameter(value, requires_grad=old.requires_grad))
    elif attr in module._buffers:
        module._buffers[attr] = value
    else:
        setattr(module, attr, value)


def _take(module: nn.Module, attr: str, dim: int, keep: torch.Tensor) -> None:
    t = getattr(module, attr, None)
    if t is None:
        return
    _set(module, attr, t.data.index_select(dim, keep.to(t.device)))


def _take_extra(module: nn.Module, n_old: int, keep: torch.Tensor,
                known: tuple[str, ...] = ("weight", "bias")) -> None:
    """Extra per-output tensors of a layer subclass (e.g. the ``gain`` of a weight-standardised
    conv): parameters/buffers other than ``known`` whose first dimension is the output width."""
    for attr in [*module._parameters, *module._buffers]:
        t = getattr(module, attr, None)
        if attr not in known and isinstance(t, torch.Tensor) and t.dim() and \
                t.shape[0] == n_old and t.is_floating_point():
            _take(module, attr, 0, keep)


class Handler:
    """Base class: subclasses implement :meth:`slices` and :meth:`prune`."""

    roles: tuple[str, ...] = ()

    def slices(self, module: nn.Module, role: str) -> list[Slice]:
        raise NotImplementedError

    def prune(self, module: nn.Module, role: str, keep: torch.Tensor) -> None:
        raise NotImplementedError


class ConvHandler(Handler):
    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        if role == "out":
            return [Slice("weight", 0), Slice("bias", 0)]
        if m.groups == 1:
            return [Slice("weight", 1)]
        if m.groups == m.in_channels:
            return []  # depthwise: input positions are the output rows
        return [Slice("weight", 1, groups=m.groups)]

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        if role == "out":
            _take_extra(m, m.out_channels, keep)
            _take(m, "weight", 0, keep)
            _take(m, "bias", 0, keep)
            m.out_channels = len(keep)
        elif m.groups == 1:
            _take(m, "weight", 1, keep)
            m.in_channels = len(keep)
        elif m.groups == m.in_channels:
            m.in_channels = m.groups = len(keep)
        else:
            ipg = m.in_channels // m.groups
            offsets = keep[keep < ipg]
            _take(m, "weight", 1, offsets)
            m.in_channels = len(keep)


class ConvTransposeHandler(Handler):
    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        return [Slice("weight", 1), Slice("bias", 0)] if role == "out" else [Slice("weight", 0)]

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        if role == "out":
            _take(m, "weight", 1, keep)
            _take(m, "bias", 0, keep)
            m.out_channels = len(keep)
        else:
            _take(m, "weight", 0, keep)
            m.in_channels = len(keep)


class LinearHandler(Handler):
    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        return [Slice("weight", 0), Slice("bias", 0)] if role == "out" else [Slice("weight", 1)]

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        if role == "out":
            _take_extra(m, m.out_features, keep)
            _take(m, "weight", 0, keep)
            _take(m, "bias", 0, keep)
            m.out_features = len(keep)
        else:
            _take(m, "weight", 1, keep)
            m.in_features = len(keep)


class NormHandler(Handler):
    """BatchNorm, InstanceNorm, GroupNorm, LayerNorm (last dim), PReLU: per-channel vectors."""

    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        return [Slice("weight", 0), Slice("bias", 0)]

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        for attr in ("weight", "bias", "running_mean", "running_var"):
            _take(m, attr, 0, keep)
        n = len(keep)
        if isinstance(m, (*BN, *INORM)):
            m.num_features = n
        elif isinstance(m, nn.GroupNorm):
            m.num_channels = n
        elif isinstance(m, nn.LayerNorm):
            m.normalized_shape = (n,)
        elif isinstance(m, nn.PReLU):
            m.num_parameters = n


class EmbeddingHandler(Handler):
    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        return [Slice("weight", 1)]

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        _take(m, "weight", 1, keep)
        m.embedding_dim = len(keep)


class MultiheadAttentionHandler(Handler):
    """nn.MultiheadAttention: its inner width equals ``embed_dim``, so positions of the embedding
    are removed from the input, the q/k/v rows and the output together (every head keeps the
    same ``head_dim``)."""

    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        return [Slice("in_proj_weight", 1), Slice("in_proj_weight", 0, chunks=3),
                Slice("in_proj_bias", 0, chunks=3), Slice("out_proj.weight", 0),
                Slice("out_proj.weight", 1), Slice("out_proj.bias", 0)]

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        e = m.embed_dim
        n = len(keep)
        if n % m.num_heads:
            raise UnsupportedModelError(
                f"MultiheadAttention: {n} kept positions do not divide into {m.num_heads} heads"
            )
        # the softmax scale is 1/sqrt(head_dim): fold sqrt(new/old head_dim) into the query
        # projection so that the attention logits of the kept dimensions stay the same
        fold = math.sqrt((n // m.num_heads) / m.head_dim)
        with torch.no_grad():
            if m.in_proj_weight is not None:
                m.in_proj_weight[:e].mul_(fold)
            if m.in_proj_bias is not None:
                m.in_proj_bias[:e].mul_(fold)
        rows = torch.cat([keep, keep + e, keep + 2 * e])
        _take(m, "in_proj_weight", 0, rows)
        _take(m, "in_proj_weight", 1, keep)
        _take(m, "in_proj_bias", 0, rows)
        for attr in ("bias_k", "bias_v"):
            _take(m, attr, 2, keep)
        op = m.out_proj
        _take(op, "weight", 0, keep)
        _take(op, "weight", 1, keep)
        _take(op, "bias", 0, keep)
        op.in_features = op.out_features = n
        m.embed_dim = m.kdim = m.vdim = n
        m.head_dim = n // m.num_heads


HANDLERS: dict[type[nn.Module], Handler] = {}


def register_handler(module_type: type[nn.Module], handler: Handler) -> None:
    """Register ``handler`` for ``module_type`` (subclasses match too)."""
    HANDLERS[module_type] = handler


def handler_for(module: nn.Module) -> Handler:
    for cls in type(module).__mro__:
        if cls in HANDLERS:
            return HANDLERS[cls]
    raise UnsupportedModelError(
        f"no structured-pruning handler for {type(module).__name__}; pass it in ignored_layers"
    )


for _t in CONV:
    register_handler(_t, ConvHandler())
for _t in CONVT:
    register_handler(_t, ConvTransposeHandler())
for _t in (*BN, *INORM, nn.GroupNorm, nn.LayerNorm, nn.PReLU):
    register_handler(_t, NormHandler())
register_handler(nn.Linear, LinearHandler())
register_handler(nn.Embedding, EmbeddingHandler())
register_handler(nn.MultiheadAttention, MultiheadAttentionHandler())


# ----------------------------------------------------------------------------- tensors


def get_owner(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    """The module that owns attribute ``dotted`` and the attribute's own name."""
    if "." in dotted:
        owner_name, attr = dotted.rsplit(".", 1)
        return model.get_submodule(owner_name), attr
    return model, dotted


def prune_param(model: nn.Module, dotted: str, dim: int, keep: torch.Tensor) -> None:
    """Keep ``keep`` along ``dim`` of the parameter/buffer ``dotted`` (a ``get_attr`` tensor)."""
    owner, attr = get_owner(model, dotted)
    t = getattr(owner, attr, None)
    old = (int(t.shape[dim]), int(t.numel())) if isinstance(t, torch.Tensor) else None
    _take(owner, attr, dim, keep)
    if old is not None:
        _follow_view_shapes(owner, *old, len(keep))


def _follow_view_shapes(owner: nn.Module, n_old: int, numel: int, n_new: int) -> None:
    """Update the owner's broadcast-shape attributes of a pruned parameter.

    A module that views its 1-D parameter through a stored shape (timm's ``Scale``:
    ``self.scale.view(self.shape)`` with ``shape = (dim, 1, 1)``) would read the old width. A
    tuple/list of ints whose only entry other than 1 is the old width and whose product is the
    parameter's old size describes exactly that view, so its entry follows the new width.
    """
    if n_old <= 1 or n_old == n_new:
        return
    for attr, v in list(vars(owner).items()):
        if attr.startswith("_") or not isinstance(v, (tuple, list)) or not v:
            continue
        if not all(isinstance(e, int) and not isinstance(e, bool) for e in v):
            continue
        big = [i for i, e in enumerate(v) if e != 1]
        if len(big) != 1 or v[big[0]] != n_old or math.prod(v) != numel:
            continue
        new = list(v)
        new[big[0]] = n_new
        setattr(owner, attr, type(v)(new))


def slice_tensor(module: nn.Module, s: Slice) -> torch.Tensor | None:
    """The parameter a :class:`Slice` refers to (dotted names reach into submodules)."""
    owner, attr = get_owner(module, s.attr)
    t = getattr(owner, attr, None)
    return t if isinstance(t, torch.Tensor) else None


def per_position(
    tensor: torch.Tensor, s: Slice, reduce: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Reduce a per-weight score tensor to one value per position of slice ``s``.

    ``reduce`` maps a 2-D (positions, everything-else) tensor to a vector.
    """
    t = tensor.movedim(s.dim, 0)
    if s.groups > 1:
        # weight (Cout, ipg, ...): input position g*ipg + j reads rows of group g, column j
        cout, ipg = t.shape[1], t.shape[0]
        t = t.reshape(ipg, s.groups, cout // s.groups, -1).permute(1, 0, 2, 3)
        return reduce(t.reshape(s.groups * ipg, -1))
    if s.chunks > 1:
        n = t.shape[0] // s.chunks
        parts = [reduce(t[i * n:(i + 1) * n].reshape(n, -1)) for i in range(s.chunks)]
        return torch.stack(parts).sum(0)
    return reduce(t.reshape(t.shape[0], -1))


# ----------------------------------------------------------------------------- recurrent


def _rnn_gates(m: nn.RNNBase) -> int:
    return {"LSTM": 4, "GRU": 3}.get(m.mode, 1)


def _rnn_names(m: nn.RNNBase) -> list[tuple[int, str]]:
    dirs = 2 if m.bidirectional else 1
    return [(layer, f"_l{layer}{'_reverse' if d else ''}") for layer in range(m.num_layers)
            for d in range(dirs)]


class RNNHandler(Handler):
    """LSTM / GRU / RNN: ``"in"`` = input features; ``"hidden"`` = hidden units of every layer
    and direction together (all gates of a unit, and the next layer's inputs from both
    directions), so ``hidden_size`` stays one number."""

    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        if role == "in":
            return [Slice(f"weight_ih{sfx}", 1) for layer, sfx in _rnn_names(m) if layer == 0]
        g, dirs = _rnn_gates(m), 2 if m.bidirectional else 1
        out = []
        for layer, sfx in _rnn_names(m):
            out += [Slice(f"weight_ih{sfx}", 0, chunks=g), Slice(f"weight_hh{sfx}", 0, chunks=g),
                    Slice(f"weight_hh{sfx}", 1), Slice(f"bias_ih{sfx}", 0, chunks=g),
                    Slice(f"bias_hh{sfx}", 0, chunks=g)]
            if layer > 0:
                out.append(Slice(f"weight_ih{sfx}", 1, chunks=dirs))
        return out

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        if role == "in":
            for layer, sfx in _rnn_names(m):
                if layer == 0:
                    _take(m, f"weight_ih{sfx}", 1, keep)
            m.input_size = len(keep)
        else:
            h, g, dirs = m.hidden_size, _rnn_gates(m), 2 if m.bidirectional else 1
            rows = torch.cat([keep + i * h for i in range(g)])
            cols = torch.cat([keep + d * h for d in range(dirs)])
            for layer, sfx in _rnn_names(m):
                _take(m, f"weight_ih{sfx}", 0, rows)
                _take(m, f"weight_hh{sfx}", 0, rows)
                _take(m, f"weight_hh{sfx}", 1, keep)
                _take(m, f"bias_ih{sfx}", 0, rows)
                _take(m, f"bias_hh{sfx}", 0, rows)
                if layer > 0:
                    _take(m, f"weight_ih{sfx}", 1, cols)
            m.hidden_size = len(keep)
        m._init_flat_weights()


register_handler(nn.RNNBase, RNNHandler())


# ----------------------------------------------------------------------------- transformer


def _prefixed(prefix: str, slices: list[Slice]) -> list[Slice]:
    return [Slice(f"{prefix}.{s.attr}", s.dim, s.chunks, s.groups) for s in slices]


class TransformerEncoderLayerHandler(Handler):
    """``nn.TransformerEncoderLayer``: ``"model"`` = the ``d_model`` positions (attention input
    and output, both norms, FFN input and output); ``"ffn"`` = the ``dim_feedforward`` neurons."""

    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        if role == "ffn":
            return [Slice("linear1.weight", 0), Slice("linear1.bias", 0),
                    Slice("linear2.weight", 1)]
        return (_prefixed("self_attn", MultiheadAttentionHandler().slices(m.self_attn, "in"))
                + [Slice("linear1.weight", 1), Slice("linear2.weight", 0),
                   Slice("linear2.bias", 0), Slice("norm1.weight", 0), Slice("norm1.bias", 0),
                   Slice("norm2.weight", 0), Slice("norm2.bias", 0)])

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        if role == "ffn":
            LinearHandler().prune(m.linear1, "out", keep)
            LinearHandler().prune(m.linear2, "in", keep)
            return
        MultiheadAttentionHandler().prune(m.self_attn, "in", keep)
        LinearHandler().prune(m.linear1, "in", keep)
        LinearHandler().prune(m.linear2, "out", keep)
        NormHandler().prune(m.norm1, "chan", keep)
        NormHandler().prune(m.norm2, "chan", keep)


class TransformerEncoderHandler(Handler):
    """``nn.TransformerEncoder``: ``"model"`` across all layers and the final norm;
    ``"ffn<i>"`` = the FFN neurons of layer ``i``."""

    def slices(self, m: nn.Module, role: str) -> list[Slice]:
        h = TransformerEncoderLayerHandler()
        if role.startswith("ffn"):
            i = int(role[3:])
            return _prefixed(f"layers.{i}", h.slices(m.layers[i], "ffn"))
        out = [s for i, layer in enumerate(m.layers)
               for s in _prefixed(f"layers.{i}", h.slices(layer, "model"))]
        if m.norm is not None:
            out += [Slice("norm.weight", 0), Slice("norm.bias", 0)]
        return out

    def prune(self, m: nn.Module, role: str, keep: torch.Tensor) -> None:
        h = TransformerEncoderLayerHandler()
        if role.startswith("ffn"):
            h.prune(m.layers[int(role[3:])], "ffn", keep)
            return
        for layer in m.layers:
            h.prune(layer, "model", keep)
        if m.norm is not None:
            NormHandler().prune(m.norm, "chan", keep)


register_handler(nn.TransformerEncoderLayer, TransformerEncoderLayerHandler())
register_handler(nn.TransformerEncoder, TransformerEncoderHandler())
