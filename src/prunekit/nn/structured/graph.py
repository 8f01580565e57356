"""Dependency analysis: which output/input dimensions of which layers must be removed together.

The model is traced with :mod:`torch.fx` and interpreted once on ``example_inputs``. Every layer
output channel gets a *slot* id; operations propagate per-position slot arrays (add and other
elementwise ops unite slots, ``cat`` concatenates, ``split``/``chunk`` slice, ``flatten`` and
``view`` expand, attention ``matmul`` unites whole heads). Slots united by a union-find form one
*unit* -- a channel (or head) that is removed everywhere at once; units touching the same layers
form a *group*. This is the idea of DepGraph (Fang et al., "DepGraph: Towards Any Structural
Pruning", CVPR 2023), implemented here over per-position slot arrays.

Slots that reach the model's inputs or outputs, an unknown operation, or an ignored layer are
*frozen*: their units are never removed, so the output shape never changes.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from prunekit._modes import eval_mode
from prunekit.errors import UnsupportedModelError

# ----------------------------------------------------------------------------- union-find


class SlotSet:
    """Union-find over integer slots with a 'frozen' flag per root."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.frozen: list[bool] = []

    def alloc(self, n: int, frozen: bool = False) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.frozen.extend([frozen] * n)
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra
            self.frozen[ra] = self.frozen[ra] or self.frozen[rb]

    def union_arrays(self, a: np.ndarray, b: np.ndarray) -> None:
        xs, ys = np.asarray(a).ravel().tolist(), np.asarray(b).ravel().tolist()
        for x, y in zip(xs, ys, strict=True):
            self.union(x, y)

    def freeze(self, slots: np.ndarray) -> None:
        for s in np.asarray(slots).ravel().tolist():
            self.frozen[self.find(s)] = True

    def roots(self, slots: np.ndarray) -> np.ndarray:
        flat = [self.find(s) for s in np.asarray(slots).ravel().tolist()]
        return np.asarray(flat, dtype=np.int64).reshape(np.shape(slots))

    def is_frozen_root(self, root: int) -> bool:
        return self.frozen[root]


# ----------------------------------------------------------------------------- annotations


@dataclass
class Ann:
    """Slot ids of the channel-like dimensions ``dims`` of one tensor (``slots.shape`` matches)."""

    dims: tuple[int, ...]
    slots: np.ndarray


@dataclass
class Use:
    """One place where a layer's parameters index a dimension: (module or parameter, role)."""

    name: str
    role: str  # "out", "in", "chan" (per-channel norms/PReLU), "param:<dim>" (get_attr tensors)
    slots: np.ndarray


@dataclass
class Group:
    """Coupled units: each unit is removed from every (layer, role) listed in ``uses`` at once."""

    id: int
    units: list[int]  # union-find roots
    uses: list[tuple[str, str]]
    unit_size: dict[int, int] = field(default_factory=dict)  # positions per unit per use (heads)
    partitions: list[list[int]] | None = None  # units that must lose equal numbers (MHA heads)

    @property
    def n_units(self) -> int:
        return len(self.units)


@dataclass
class DependencyGraph:
    """Result of :func:`analyze`: slot sets, per-layer uses and the prunable groups."""

    slots: SlotSet
    uses: dict[tuple[str, str], Use]
    groups: list[Group]
    frozen_units: int
    notes: list[str]
    bindings: list[tuple[str, str, int, np.ndarray, int]]  # (module, attr, value, units, axis)
    mha_heads: dict[str, int]
    _units: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    # modules whose forward takes a statistic over a prunable channel dimension (GRN's channel
    # mean, F.normalize over channels): like LayerNorm, zero units there still count
    statistics: list[str] = field(default_factory=list)
    branch_cache: dict[int, list[list[int]]] = field(default_factory=dict, repr=False)

    def unit_of(self, use: Use) -> np.ndarray:
        key = (use.name, use.role)
        if key not in self._units:
            self._units[key] = self.slots.roots(use.slots)
        return self._units[key]


# ----------------------------------------------------------------------------- tracing

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONVT = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
INORM = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
RNN = (nn.LSTM, nn.GRU, nn.RNN)
KNOWN_PARAM = (*CONV, *CONVT, *BN, *INORM, nn.Linear, nn.LayerNorm, nn.GroupNorm, nn.Embedding,
               nn.PReLU, nn.MultiheadAttention, *RNN, nn.TransformerEncoderLayer,
               nn.TransformerEncoder)
PASSTHROUGH_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.UpsamplingNearest2d,
    nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d,
    nn.ReplicationPad2d,
)
RESHAPE_MODULES = (nn.Flatten, nn.Unflatten)

_ELEMENTWISE_FN = {
    torch.relu, torch.sigmoid, torch.tanh, torch.exp, torch.abs, torch.neg, torch.sqrt,
    torch.nn.functional.relu, torch.nn.functional.relu6, torch.nn.functional.gelu,
    torch.nn.functional.silu, torch.nn.functional.sigmoid, torch.nn.functional.tanh,
    torch.nn.functional.hardswish, torch.nn.functional.hardsigmoid, torch.nn.functional.dropout,
    torch.nn.functional.leaky_relu, torch.nn.functional.elu, torch.nn.functional.mish,
    torch.nn.functional.hardtanh, torch.nn.functional.softplus, operator.neg, torch.clamp,
    torch.nn.functional.max_pool2d, torch.nn.functional.avg_pool2d,
    torch.nn.functional.adaptive_avg_pool2d, torch.nn.functional.adaptive_max_pool2d,
    torch.nn.functional.max_pool1d, torch.nn.functional.avg_pool1d,
    torch.nn.functional.adaptive_avg_pool1d, torch.nn.functional.interpolate,
    torch.nn.functional.pad,
}
_ELEMENTWISE_METHODS = {
    "relu", "sigmoid", "tanh", "exp", "abs", "neg", "sqrt", "contiguous", "clone", "float",
    "double", "half", "to", "type_as", "detach", "clamp", "relu_", "sigmoid_", "pow", "__neg__",
    "requires_grad_",
}
_ELEMENTWISE_NAMES = {"stochastic_depth", "drop_path"}
_BINARY_FN = {operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub,
              torch.mul, torch.div, operator.iadd, operator.imul, torch.maximum, torch.minimum}
_BINARY_METHODS = {"add", "sub", "mul", "div", "add_", "mul_", "sub_", "div_", "__add__",
                   "__mul__", "__radd__", "__rmul__"}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "unsqueeze", "squeeze", "unflatten", "view_as",
                    "reshape_as"}
_RESHAPE_FN = {torch.reshape, torch.flatten, torch.unsqueeze, torch.squeeze}
_LIKE_METHODS = {"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "size", "dim"}
_LIKE_FN = {torch.zeros_like, torch.ones_like, torch.empty_like, torch.full_like,
            torch.rand_like, torch.randn_like}
_SOFTMAX = {torch.softmax, torch.nn.functional.softmax, torch.nn.functional.log_softmax}
_REDUCE_METHODS = {"mean", "sum", "amax", "max", "amin", "min", "std", "var"}
_REDUCE_FN = {torch.mean, torch.sum, torch.amax, torch.amin}
# reductions over a channel dimension allowed when kept as a size-1 dimension (channel
# statistics); max/min are left out: their indices would name channel positions
_STAT_REDUCTIONS = {"mean", "sum", "amax", "amin", "std", "var", "norm"}
_FUNCTIONAL_LAYERS: dict[Any, tuple[type[nn.Module], ...]] = {
    torch.nn.functional.linear: (nn.Linear,),
    torch.nn.functional.conv1d: (nn.Conv1d,),
    torch.nn.functional.conv2d: (nn.Conv2d,),
    torch.nn.functional.conv3d: (nn.Conv3d,),
    torch.nn.functional.batch_norm: (*BN, *INORM),
    torch.nn.functional.instance_norm: (*BN, *INORM),
    torch.nn.functional.group_norm: (nn.GroupNorm,),
    torch.nn.functional.layer_norm: (nn.LayerNorm,),
    torch.nn.functional.prelu: (nn.PReLU,),
}
HEAD_ATTR_NAMES = ("num_heads", "n_heads", "num_attention_heads", "heads", "n_head", "nheads")
INNER_ATTR_NAMES = ("all_head_size", "inner_dim", "inner_size", "attention_dim")

_MATERIALIZE_LIMIT = 40_000_000


def _is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


class _Tracer(torch.fx.Tracer):
    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self._leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self._leaves or _is_known(m):
            return True
        if isinstance(m, KNOWN_PARAM):  # a subclass with its own forward: trace through it
            return False
        return super().is_leaf_module(m, qualname)


_KNOWN_FORWARDS = {c.forward for c in KNOWN_PARAM}


def _is_known(m: nn.Module) -> bool:
    """A known layer whose forward is the stock one (subclasses overriding forward are not)."""
    return isinstance(m, KNOWN_PARAM) and type(m).forward in _KNOWN_FORWARDS


MAX_FALLBACK_LEAVES = 64


def trace(model: nn.Module, leaves: Iterable[str] = ()) -> torch.fx.GraphModule:
    """Trace ``model`` with torch.fx, treating ``leaves`` (module names) as opaque calls."""
    return trace_with_fallback(model, leaves, fallback=False)[0]


_SHAPE_ATTRS = {"shape", "ndim", "dtype", "device", "is_cuda", "layout"}
_SHAPE_METHODS = {"size", "dim", "numel", "nelement", "ndimension"}


class _ConcreteProxy(torch.fx.Proxy):
    """A proxy whose shape queries (``x.shape``, ``x.size()``, ``len(x)``) return the concrete
    values of the example inputs, so shape-dependent Python (``math.ceil(H / p)``, ``if H % 2``)
    traces; control flow on tensor *values* still fails (and falls back to an opaque layer)."""

    def _value(self) -> Any:
        return self.tracer.values.get(self.node)  # type: ignore[attr-defined]

    def __getattr__(self, k: str) -> Any:
        v = self._value()
        if isinstance(v, torch.Tensor):
            if k in _SHAPE_ATTRS:
                return getattr(v, k)
            if k in _SHAPE_METHODS:
                return getattr(v, k)
        return super().__getattr__(k)

    def __setitem__(self, key: Any, value: Any) -> None:
        # in-place writes (attention masks built slice by slice): recorded and run concretely
        self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {})

    def __len__(self) -> int:
        v = self._value()
        if isinstance(v, (torch.Tensor, list, tuple)):
            return len(v)
        return super().__len__()


class _ConcreteTracer(_Tracer):
    """torch.fx tracing that runs every recorded operation on the example inputs alongside."""

    def __init__(self, leaves: set[str], inputs: dict[str, Any]) -> None:
        super().__init__(leaves)
        self.inputs = inputs
        self.values: dict[torch.fx.Node, Any] = {}

    def proxy(self, node: torch.fx.Node) -> torch.fx.Proxy:
        return _ConcreteProxy(node, self)

    def trace(self, root: Any, concrete_args: Any = None) -> torch.fx.Graph:
        """Trace into functions registered with ``torch.fx.wrap`` too (they are often wrapped
        only for their shape arithmetic, which concrete shapes handle); if that fails, trace
        again with them as opaque calls."""
        from torch.fx import _symbolic_trace as st

        fns = getattr(st, "_wrapped_fns_to_patch", None)
        methods = getattr(st, "_wrapped_methods_to_patch", None)
        if not isinstance(fns, dict) or not isinstance(methods, list):
            return super().trace(root, concrete_args)
        saved_fns, saved_methods = dict(fns), list(methods)
        fns.clear()
        methods.clear()
        try:
            return super().trace(root, concrete_args)
        except Exception:  # noqa: BLE001 - retry with the wrapped functions opaque
            self.values.clear()
        finally:
            fns.update(saved_fns)
            methods[:] = saved_methods
        return super().trace(root, concrete_args)

    def _attr(self, target: str) -> Any:
        v: Any = self.root
        for part in target.split("."):
            v = getattr(v, part)
        return v

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, name: Any = None,
                     type_expr: Any = None, proxy_factory_fn: Any = None) -> torch.fx.Proxy:
        p = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        node = p.node

        def val(n: torch.fx.Node) -> Any:
            if n not in self.values and n.op == "get_attr":  # constants made by create_arg
                self.values[n] = self._attr(str(n.target))
            return self.values[n]

        if kind in ("call_module", "get_attr"):  # real module code must not re-enter fx
            with _unpatched():
                self.values[node] = self._run(kind, target, node, val)
        else:
            self.values[node] = self._run(kind, target, node, val)
        return p

    def _run(self, kind: str, target: Any, node: torch.fx.Node, val: Any) -> Any:
        a = torch.fx.node.map_arg(node.args, val)
        kw = torch.fx.node.map_arg(node.kwargs, val)
        if kind == "placeholder":
            key = str(target).lstrip("*")
            v = self.inputs[key] if key in self.inputs else (a[0] if a else None)
        elif kind == "get_attr":
            v = self._attr(str(target))
        elif kind == "call_function":
            v = target(*a, **kw)
        elif kind == "call_method":
            v = getattr(a[0], target)(*a[1:], **kw)
        elif kind == "call_module":
            v = self.root.get_submodule(target)(*a, **kw)
        else:
            v = None
        return v


def _unpatched() -> Any:
    """Run real code during tracing without torch.fx's patched ``Module.__call__``."""
    import contextlib

    from torch.fx import _symbolic_trace

    revert = getattr(_symbolic_trace, "_maybe_revert_all_patches", None)
    return revert() if revert is not None else contextlib.nullcontext()


def _bind_inputs(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> dict[str, Any] | None:
    import inspect

    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    return dict(bound.arguments)


def _record_inputs(model: nn.Module, inputs: tuple[Any, ...]) -> dict[str, dict[str, Any]]:
    """The arguments of every submodule's first call during one forward on ``inputs``."""
    seen: dict[str, dict[str, Any]] = {}
    handles = []

    def hook(name: str) -> Any:
        def pre(mod: nn.Module, args: Any, kwargs: Any) -> None:
            if name not in seen:
                b = _bind_inputs(mod, args, kwargs)
                if b is not None:
                    seen[name] = b
        return pre

    for name, mod in model.named_modules():
        if name and not _is_known(mod):
            handles.append(mod.register_forward_pre_hook(hook(name), with_kwargs=True))
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def _concrete_trace(mod: nn.Module, leaves: set[str], inputs: dict[str, Any] | None
                    ) -> torch.fx.Graph:
    if inputs is None:
        return _Tracer(leaves).trace(mod)
    return _ConcreteTracer(leaves, inputs).trace(mod)


def trace_with_fallback(
    model: nn.Module, leaves: Iterable[str] = (), fallback: bool = True,
    example_inputs: tuple[Any, ...] | None = None,
) -> tuple[torch.fx.GraphModule, list[tuple[str, str]]]:
    """Trace ``model``; modules torch.fx cannot trace (data-dependent control flow) become
    opaque leaves, one at a time, deepest culprit first. Returns the graph module and the
    ``(name, reason)`` of every fallback leaf. Without ``fallback`` the first culprit is named
    in an :class:`UnsupportedModelError`.
    """
    leaves = set(leaves)
    added: list[tuple[str, str]] = []
    root_inputs = None if example_inputs is None else _bind_inputs(model, example_inputs, {})
    recorded: dict[str, dict[str, Any]] | None = None
    while True:
        try:
            graph = _concrete_trace(model, leaves, root_inputs)
            return torch.fx.GraphModule(model, graph), added
        except Exception as exc:  # noqa: BLE001 - tracing raises anything
            reason = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
            if recorded is None and example_inputs is not None and fallback:
                try:
                    recorded = _record_inputs(model, example_inputs)
                except Exception:  # noqa: BLE001
                    recorded = {}
            culprit = _find_untraceable(model, leaves, recorded or {})
            if culprit is None or not fallback or len(added) >= MAX_FALLBACK_LEAVES:
                where = (f"module {culprit[0]!r} ({culprit[1]})" if culprit
                         else "the model's own forward")
                hint = (f"Pass frozen_layers=[{culprit[0]!r}] to keep it as an opaque layer, or "
                        if culprit else "")
                raise UnsupportedModelError(
                    f"torch.fx could not trace {where}: {reason}. {hint}make its forward free "
                    "of data-dependent control flow."
                ) from exc
            leaves.add(culprit[0])
            added.append((culprit[0], f"{culprit[1]}: {reason}"))


def _traces(mod: nn.Module, leaves: set[str], inputs: dict[str, Any] | None = None) -> bool:
    try:
        _concrete_trace(mod, leaves, inputs)
    except Exception:  # noqa: BLE001
        return False
    return True


def _find_untraceable(model: nn.Module, leaves: set[str],
                      recorded: dict[str, dict[str, Any]] | None = None
                      ) -> tuple[str, str] | None:
    """The deepest submodule that fails to trace given ``leaves`` (walking down from the root
    through failing children); ``None`` if the root's own forward is the culprit."""
    name, mod = "", model
    while True:
        nxt = None
        for child_name, child in mod.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if full in leaves or _is_known(child):
                continue
            rel = {leaf[len(full) + 1:] for leaf in leaves if leaf.startswith(f"{full}.")}
            if recorded and full not in recorded:
                continue  # not called on the example inputs: not what failed
            if not _traces(child, rel, (recorded or {}).get(full)):
                nxt = (full, child)
                break
        if nxt is None:
            return (name, type(mod).__name__) if name else None
        name, mod = nxt


# ----------------------------------------------------------------------------- interpreter


class _Analyzer(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, ignored: set[str],
                 frozen: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__(gm)
        self.S = SlotSet()
        self.ann: dict[torch.fx.Node, Any] = {}
        self.uses: dict[tuple[str, str], Use] = {}
        self.ignored = ignored  # layers that keep their output units (Torch-Pruning's convention)
        self.frozen = set(frozen)  # opaque layers: every unit they touch is kept
        self.notes: list[str] = []
        self.mha_heads: dict[str, int] = {}
        self.split_constraints: list[np.ndarray] = []
        self.statistics: dict[str, None] = {}  # owner modules of channel statistics
        self.head_dim_mode = False  # attention pruned along head_dim instead of whole heads
        self.bindings: list[tuple[str, int, np.ndarray, int]] = []
        self.modules = dict(gm.named_modules())
        self.originals: dict[str, nn.Module] = dict(self.modules)  # set by analyze()
        self.constants: set[str] = set()  # fx constants (not attributes of the model)

    # -- bookkeeping ------------------------------------------------------------
    def _use(self, name: str, role: str, slots: np.ndarray) -> None:
        key = (name, role)
        if key in self.uses:
            prev = self.uses[key].slots
            if prev.shape == slots.shape:
                self.S.union_arrays(prev, slots)
            else:
                self.S.freeze(prev)
                self.S.freeze(slots)
        else:
            self.uses[key] = Use(name, role, np.asarray(slots).reshape(-1))

    def _freeze_ann(self, a: Any) -> None:
        if isinstance(a, Ann):
            self.S.freeze(a.slots)
        elif isinstance(a, (list, tuple)):
            for x in a:
                self._freeze_ann(x)

    def _arg_anns(self, args: Any) -> list[Ann]:
        out: list[Ann] = []

        def visit(a: Any) -> None:
            if isinstance(a, torch.fx.Node):
                v = self.ann.get(a)
                if isinstance(v, Ann):
                    out.append(v)
                elif isinstance(v, (list, tuple)):
                    out.extend(x for x in v if isinstance(x, Ann))
            elif isinstance(a, (list, tuple)):
                for x in a:
                    visit(x)
            elif isinstance(a, dict):
                for x in a.values():
                    visit(x)

        visit(args)
        return out

    def _fresh(self, n: int, dim: int, frozen: bool = False) -> Ann:
        return Ann((dim,), self.S.alloc(n, frozen))

    def _channel_ann(self, node_arg: Any, value: torch.Tensor, dim: int) -> Ann:
        """Annotation of ``value`` on exactly dimension ``dim`` (fresh frozen slots if unknown)."""
        dim = dim % value.dim()
        a = self.ann.get(node_arg) if isinstance(node_arg, torch.fx.Node) else None
        if isinstance(a, Ann) and a.dims == (dim,):
            return a
        if isinstance(a, Ann):
            self.S.freeze(a.slots)
        return self._fresh(value.shape[dim], dim, frozen=True)

    # -- interpretation ---------------------------------------------------------
    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        try:
            self.ann[n] = self._annotate(n, result)
        except UnsupportedModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - be conservative on any surprise
            self.notes.append(f"{n.format_node()}: {type(exc).__name__}: {exc}; frozen")
            self._freeze_ann(self._arg_anns((n.args, n.kwargs)))
            self.ann[n] = None
        return result

    def _val(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            return self.env[a]
        return a

    def _annotate(self, n: torch.fx.Node, out: Any) -> Any:
        if n.op == "placeholder":
            if _is_tensor(out) and out.dim() >= 1:
                return None  # inputs carry no prunable channel
            return None
        if n.op == "output":
            self._freeze_ann(self._arg_anns(n.args))
            return None
        if n.op == "get_attr":
            if isinstance(out, nn.Parameter) or (_is_tensor(out) and out.dim() >= 1):
                if n.target in self.frozen or any(
                    str(n.target).startswith(f"{i}.") for i in self.frozen
                ):
                    return None
                if not self._in_model(str(n.target)) or not out.is_floating_point():
                    return None  # an fx constant (a fresh model lacks it) or an index table
                owner = self.originals.get(str(n.target).rpartition(".")[0])
                if isinstance(owner, KNOWN_PARAM):
                    return None  # a layer's own tensor: its handler prunes it with the layer
                big = [d for d in range(out.dim()) if out.shape[d] > 1]
                if not big:
                    return None
                dim = out.dim() - 1 if out.shape[-1] > 1 else big[-1]
                ann = self._fresh(out.shape[dim], dim)
                self._use(str(n.target), f"param:{dim}", ann.slots)
                # other non-trivial dims are fine (e.g. sequence positions)
                return ann
            return None
        if n.op == "call_module":
            res = self._call_module(n, self.modules[str(n.target)], out)
            if str(n.target) in self.ignored:
                self._freeze_ann(res)  # an ignored layer keeps its output units
            return res
        if n.op == "call_function":
            return self._call_function(n, n.target, out, method=False)
        if n.op == "call_method":
            return self._call_function(n, n.target, out, method=True)
        return None

    # -- modules ----------------------------------------------------------------
    def _call_module(self, n: torch.fx.Node, m: nn.Module, out: Any, name: str | None = None,
                     x_node: Any = None, functional: bool = False) -> Any:
        name = str(n.target) if name is None else name
        if x_node is None:
            x_node = n.args[0] if n.args else n.kwargs.get("input")
        x = self._val(x_node)
        if name in self.frozen:
            self._freeze_ann(self._arg_anns((n.args, n.kwargs)))
            return None
        if isinstance(m, KNOWN_PARAM) and not _is_known(m) and not functional:
            raise UnsupportedModelError(
                f"layer {name!r} ({type(m).__name__}) overrides forward of a known layer type; "
                f"pass ignored_layers=[{name!r}] or register a handler"
            )
        if isinstance(m, CONV):
            inp = self._channel_ann(x_node, x, 1)
            g, cin, cout = m.groups, m.in_channels, m.out_channels
            if g == 1:
                self._use(name, "in", inp.slots)
                o = self._fresh(cout, 1)
            elif g == cin:  # depthwise (optionally with a channel multiplier)
                o = Ann((1,), np.repeat(inp.slots, cout // cin))
                self._use(name, "in", inp.slots)
            else:  # grouped: remove the same offset in every group
                ipg, opg = cin // g, cout // g
                s_in = inp.slots.reshape(g, ipg)
                for j in range(ipg):
                    for k in range(1, g):
                        self.S.union(s_in[0, j], s_in[k, j])
                self._use(name, "in", inp.slots)
                o = self._fresh(cout, 1)
                s_out = o.slots.reshape(g, opg)
                for j in range(opg):
                    for k in range(1, g):
                        self.S.union(s_out[0, j], s_out[k, j])
            self._use(name, "out", o.slots)
            return o
        if isinstance(m, CONVT):
            inp = self._channel_ann(x_node, x, 1)
            o = self._fresh(m.out_channels, 1, frozen=m.groups != 1)
            if m.groups != 1:
                self.S.freeze(inp.slots)
            self._use(name, "in", inp.slots)
            self._use(name, "out", o.slots)
            return o
        if isinstance(m, nn.Linear):
            a = self.ann.get(x_node)
            if isinstance(a, Ann) and _is_tensor(x) and (x.dim() - 1) not in a.dims:
                return self._linear_other_dim(name, m, a)
            inp = self._channel_ann(x_node, x, -1)
            self._use(name, "in", inp.slots)
            o = self._fresh(m.out_features, out.dim() - 1)
            self._use(name, "out", o.slots)
            return o
        if isinstance(m, (*BN, *INORM)):
            inp = self._channel_ann(x_node, x, 1)
            if isinstance(m, BN) or m.affine or m.track_running_stats:
                self._use(name, "chan", inp.slots)
            return inp
        if isinstance(m, nn.GroupNorm):
            inp = self._channel_ann(x_node, x, 1)
            g = m.num_groups
            s = inp.slots.reshape(g, -1)
            for j in range(s.shape[1]):
                for k in range(1, g):
                    self.S.union(s[0, j], s[k, j])
            if m.affine:
                self._use(name, "chan", inp.slots)
            return inp
        if isinstance(m, nn.LayerNorm):
            a = self.ann.get(x_node)
            nd = len(m.normalized_shape)
            if not isinstance(a, Ann):
                return None
            norm_dims = set(range(x.dim() - nd, x.dim()))
            if not norm_dims & set(a.dims):
                return a
            if nd == 1 and a.dims == (x.dim() - 1,):
                if m.elementwise_affine:
                    self._use(name, "chan", a.slots)
                return a
            self.S.freeze(a.slots)
            return a
        if isinstance(m, nn.PReLU):
            if m.num_parameters == 1:
                return self.ann.get(x_node)
            inp = self._channel_ann(x_node, x, 1)
            self._use(name, "chan", inp.slots)
            return inp
        if isinstance(m, nn.Embedding):
            o = self._fresh(m.embedding_dim, out.dim() - 1)
            self._use(name, "out", o.slots)
            return o
        if isinstance(m, nn.MultiheadAttention):
            return self._mha(n, name, m, out)
        if isinstance(m, RNN):
            return self._rnn(n, name, m, x_node, out)
        if isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerEncoder)):
            return self._encoder(name, m, x_node, out)
        if isinstance(m, RESHAPE_MODULES):
            return self._reshape_like(self.ann.get(x_node), x, out)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            a = self.ann.get(x_node)
            if isinstance(a, Ann) and (m.dim % x.dim()) in a.dims:
                self.S.freeze(a.slots)
            return a
        if isinstance(m, PASSTHROUGH_MODULES):
            return self.ann.get(x_node)
        if any(True for _ in m.parameters(recurse=True)):
            raise UnsupportedModelError(
                f"layer {name!r} ({type(m).__name__}) has parameters but no structured-pruning "
                f"handler; pass ignored_layers=[{name!r}] to keep it (and the channels it "
                "touches) unchanged, or register a handler with "
                "prunekit.nn.structured.register_handler"
            )
        self.notes.append(f"{name} ({type(m).__name__}): unknown parameter-free layer; frozen")
        self._freeze_ann(self._arg_anns((n.args, n.kwargs)))
        return None

    def _linear_other_dim(self, name: str, m: nn.Linear, a: Ann) -> Ann:
        """A Linear over a dimension that carries no channel (MLP-Mixer's token mixing on a
        transposed tensor): channels on the other dims pass through; the Linear's own input and
        output positions (e.g. tokens, fixed by the input size) are kept."""
        self._use(name, "in", self.S.alloc(m.in_features, frozen=True))
        self._use(name, "out", self.S.alloc(m.out_features, frozen=True))
        return Ann(a.dims, a.slots)

    def _rnn(self, n: torch.fx.Node, name: str, m: nn.RNNBase, x_node: Any, out: Any) -> Any:
        """LSTM/GRU/RNN: input features, and hidden units shared by every layer/direction."""
        x = self._val(x_node)
        seq = out[0] if isinstance(out, tuple) else None
        if not _is_tensor(x) or not _is_tensor(seq) or getattr(m, "proj_size", 0):
            self._freeze_ann(self._arg_anns((n.args, n.kwargs)))
            return None
        inp = self._channel_ann(x_node, x, -1)
        self._use(name, "in", inp.slots)
        hidden = self.S.alloc(m.hidden_size)
        self._use(name, "hidden", hidden)
        if len(n.args) > 1 or n.kwargs.get("hx") is not None:  # initial state from outside
            self.S.freeze(hidden)
            self._freeze_ann(self._arg_anns((n.args[1:], n.kwargs)))
        dirs = 2 if m.bidirectional else 1
        res = Ann((seq.dim() - 1,), np.tile(hidden, dirs))
        state = out[1]
        if isinstance(state, tuple):  # LSTM (h, c)
            return (res, tuple(Ann((s.dim() - 1,), hidden) for s in state))
        return (res, Ann((state.dim() - 1,), hidden))

    def _encoder(self, name: str, m: nn.Module, x_node: Any, out: Any) -> Any:
        """nn.TransformerEncoder(Layer): d_model positions pass through (residual); every
        layer's FFN neurons are a group of their own."""
        x = self._val(x_node)
        if not _is_tensor(out):
            self._freeze_ann(self.ann.get(x_node))
            return None
        inp = self._channel_ann(x_node, x, -1)
        self._use(name, "model", inp.slots)
        layers = m.layers if isinstance(m, nn.TransformerEncoder) else [m]
        for i, _layer in enumerate(layers):
            role = f"ffn{i}" if isinstance(m, nn.TransformerEncoder) else "ffn"
            self._use(name, role, self.S.alloc(_layer.linear1.out_features))
        self.mha_heads[name] = layers[0].self_attn.num_heads
        return Ann((out.dim() - 1,), inp.slots.copy())

    def _mha(self, n: torch.fx.Node, name: str, m: nn.MultiheadAttention, out: Any) -> Any:
        args = list(n.args) + [None] * 3
        q_node = args[0] if args[0] is not None else n.kwargs.get("query")
        k_node = args[1] if args[1] is not None else n.kwargs.get("key")
        v_node = args[2] if args[2] is not None else n.kwargs.get("value")
        q = self._channel_ann(q_node, self._val(q_node), -1)
        if not m._qkv_same_embed_dim:
            self.S.freeze(q.slots)
        for other in (k_node, v_node):
            a = self._channel_ann(other, self._val(other), -1)
            if a.slots.shape == q.slots.shape:
                self.S.union_arrays(q.slots, a.slots)
            else:
                self.S.freeze(a.slots)
                self.S.freeze(q.slots)
        self._use(name, "in", q.slots)
        self.mha_heads[name] = m.num_heads
        # nn.MultiheadAttention keeps inner width == embed_dim: output positions = input positions
        res = Ann((out[0].dim() - 1,), q.slots.copy())
        weights = None
        return (res, weights)

    # -- functions --------------------------------------------------------------
    def _call_function(self, n: torch.fx.Node, target: Any, out: Any, method: bool) -> Any:
        args, kwargs = n.args, n.kwargs
        if not method and target is operator.getitem:
            return self._getitem(n, out)
        if (method and target in _LIKE_METHODS) or (not method and target in _LIKE_FN):
            return None  # a new tensor that takes only x's shape/dtype: no channels flow
        if not method and target is operator.setitem:  # in-place write: keep what it touches
            self._freeze_ann(self._arg_anns((args, kwargs)))
            return None
        if not _is_tensor(out) and not (
            isinstance(out, (list, tuple)) and out and all(_is_tensor(o) for o in out)
        ):
            return None
        x_node = args[0] if args else None
        a0 = self.ann.get(x_node) if isinstance(x_node, torch.fx.Node) else None
        if not method and target in _FUNCTIONAL_LAYERS:
            return self._functional_layer(n, target, out)
        if (method and target in _ELEMENTWISE_METHODS) or (
            not method and (target in _ELEMENTWISE_FN
                            or getattr(target, "__name__", "") in _ELEMENTWISE_NAMES)
        ):
            if target == "pow" or target is torch.clamp or target == "clamp":
                others = self._arg_anns((args[1:], kwargs))
                self._freeze_ann(others)
            x = self._val(x_node)
            if not isinstance(a0, Ann):
                return None
            if _is_tensor(x) and x.dim() == out.dim() and all(
                x.shape[d] == out.shape[d] for d in a0.dims
            ):
                return a0
            self.S.freeze(a0.slots)
            return None
        if (method and target in ("addcmul", "addcdiv")) or (
                not method and target in (torch.addcmul, torch.addcdiv)):
            return self._elementwise(list(args[:3]), out)
        if not method and target is torch.nn.functional.normalize:
            return self._normalize(n, a0)
        if (method and target == "norm") or (not method and target is torch.norm):
            return self._reduce(n, a0, out, dim_pos=2)
        if (method and target in _BINARY_METHODS) or (not method and target in _BINARY_FN):
            return self._elementwise([args[0], args[1] if len(args) > 1 else kwargs.get("other")],
                                     out)
        if not method and target in (torch.cat, torch.concat, torch.concatenate):
            tensors = args[0]
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            return self._cat(list(tensors), dim, out)
        if (method and target in ("split", "chunk", "tensor_split")) or (
            not method and target in (torch.split, torch.chunk, torch.tensor_split)
        ):
            name = target if method else target.__name__
            dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
            sizes = args[1] if len(args) > 1 else kwargs.get("split_size_or_sections",
                                                               kwargs.get("chunks"))
            literal = name != "chunk" and not isinstance(sizes, torch.fx.Node)
            return self._split(x_node, dim, out, literal, n)
        if (method and target == "roll") or (not method and target is torch.roll):
            dims = args[2] if len(args) > 2 else kwargs.get("dims")
            x = self._val(x_node)
            if not isinstance(a0, Ann) or dims is None:
                self._freeze_ann(a0)
                return None
            dims = [dims] if isinstance(dims, int) else list(dims)
            if {d % x.dim() for d in dims} & set(a0.dims):
                self.S.freeze(a0.slots)
            return a0
        if (method and target == "unbind") or (not method and target is torch.unbind):
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            return self._unbind(a0, self._val(x_node), dim, out)
        if (method and target in _RESHAPE_METHODS) or (not method and target in _RESHAPE_FN):
            res = self._reshape_like(a0, self._val(x_node), out)
            if isinstance(res, Ann):
                if isinstance(a0, Ann) and len(res.dims) > len(a0.dims):
                    self.split_constraints.append(res.slots)
                if target in ("view", "reshape", torch.reshape):
                    self._bind_literals(n, res, out)
            return res
        if (method and target in ("permute", "transpose", "movedim", "swapaxes")) or (
            not method and target in (torch.permute, torch.transpose, torch.movedim)
        ):
            return self._permute(n, target if method else target.__name__, a0, out)
        if method and target == "expand" or (method and target == "expand_as"):
            if not isinstance(a0, Ann):
                return None
            x = self._val(x_node)
            return self._reshape_like(a0, x, out, broadcast=True)
        if (method and target in ("matmul", "__matmul__", "bmm")) or (
            not method and target in (torch.matmul, operator.matmul, torch.bmm)
        ):
            return self._matmul(args[0], args[1], out)
        if not method and target is torch.nn.functional.scaled_dot_product_attention:
            return self._sdpa(args, kwargs, out)
        if (method and target in ("softmax", "log_softmax")) or (not method and target in _SOFTMAX):
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            x = self._val(x_node)
            if isinstance(a0, Ann) and dim is not None and (dim % x.dim()) in a0.dims:
                self.S.freeze(a0.slots)
            return a0
        if (method and target in _REDUCE_METHODS) or (not method and target in _REDUCE_FN):
            return self._reduce(n, a0, out)
        # unknown: freeze everything that flows in
        anns = self._arg_anns((args, kwargs))
        if anns:
            tname = target if method else getattr(target, "__name__", str(target))
            self.notes.append(f"unknown op {tname!r} at {n.name}: channels through it kept")
            self._freeze_ann(anns)
        return None

    def _in_model(self, target: str) -> bool:
        """``target`` names a tensor attribute of the traced model itself (not an fx constant)."""
        owner, attr = target.rsplit(".", 1) if "." in target else ("", target)
        m = self.originals.get(owner)
        return m is not None and isinstance(getattr(m, attr, None), torch.Tensor) and \
            (bool(owner) or attr not in self.constants)

    def _functional_layer(self, n: torch.fx.Node, target: Any, out: Any) -> Any:
        """``F.conv2d``/``F.linear``/``F.batch_norm``/``F.layer_norm``/... called with the
        parameters of one known module (a subclass with its own ``forward``, e.g. torchvision's
        ``LayerNorm2d`` or timm's ``BatchNormAct2d``): analyse it as a call of that module, so
        its weights follow the channels instead of forming groups of their own."""
        params = [a for a in (*n.args[1:], *n.kwargs.values())
                  if isinstance(a, torch.fx.Node) and a.op == "get_attr"]
        owners = {str(p.target).rsplit(".", 1)[0] if "." in str(p.target) else "" for p in params}
        kinds = _FUNCTIONAL_LAYERS[target]
        m = self.originals.get(next(iter(owners))) if len(owners) == 1 else None
        if m is None or not isinstance(m, kinds) or not self._shape_matches(n, target, m):
            self._freeze_ann(self._arg_anns((n.args, n.kwargs)))
            self.notes.append(f"{n.name}: {target.__name__} on parameters that are not one known "
                              "layer's; channels through it kept")
            return None
        owner = next(iter(owners))
        for p in params:
            for key in [k for k in self.uses if k[0] == str(p.target)]:
                del self.uses[key]
        res = self._call_module(n, m, out, name=owner, x_node=n.args[0], functional=True)
        if owner in self.ignored:
            self._freeze_ann(res)
        return res

    def _shape_matches(self, n: torch.fx.Node, target: Any, m: nn.Module) -> bool:
        """The functional call uses the module's own configuration (normalized shape, groups)."""
        if target is torch.nn.functional.layer_norm:
            shape = self._val(n.args[1]) if len(n.args) > 1 else n.kwargs.get("normalized_shape")
            return tuple(shape) == tuple(m.normalized_shape)
        if target is torch.nn.functional.group_norm:
            g = self._val(n.args[1]) if len(n.args) > 1 else n.kwargs.get("num_groups")
            return g == m.num_groups
        if target in (torch.nn.functional.conv1d, torch.nn.functional.conv2d,
                      torch.nn.functional.conv3d):
            g = self._val(n.args[6]) if len(n.args) > 6 else n.kwargs.get("groups", 1)
            return g == m.groups
        return True

    def _gather(self, a: Ann, x: torch.Tensor, idx_t: tuple[Any, ...], out: Any) -> Any:
        """Indexing with one index tensor on a dimension that is not a channel dimension
        (``table[relative_position_index]``): channel dimensions after it shift by the index's
        extra dimensions. Anything else keeps the channels (frozen)."""
        adv = [d for d, i in enumerate(idx_t) if isinstance(i, (torch.fx.Node, torch.Tensor,
                                                                 list))]
        rest_ok = all(i == slice(None) for d, i in enumerate(idx_t) if d not in adv)
        if len(adv) != 1 or not rest_ok or Ellipsis in idx_t or adv[0] in a.dims:
            self.S.freeze(a.slots)
            return None
        d = adv[0]
        index = self._val(idx_t[d])
        extra = (index.dim() if _is_tensor(index) else np.ndim(index)) - 1
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            self.S.freeze(a.slots)
            return None
        dims = tuple(e if e < d else e + extra for e in a.dims)
        if not _is_tensor(out) or any(e >= out.dim() for e in dims) or any(
                out.shape[e] != x.shape[o] for e, o in zip(dims, a.dims, strict=True)):
            self.S.freeze(a.slots)
            return None
        return Ann(dims, a.slots)

    def _unbind(self, a: Any, x: Any, dim: int, out: Any) -> Any:
        """``unbind(dim)``: every output keeps the slots at its index along ``dim``."""
        if not isinstance(a, Ann) or not _is_tensor(x):
            return None
        dim = dim % x.dim()
        res = []
        for i in range(len(out)):
            if dim in a.dims:
                axis = a.dims.index(dim)
                slots = np.take(a.slots, i, axis=axis)
                dims = tuple(d - (d > dim) for d in a.dims if d != dim)
            else:
                slots, dims = a.slots, tuple(d - (d > dim) for d in a.dims)
            res.append(Ann(dims, slots) if dims else None)
        return res

    def _getitem(self, n: torch.fx.Node, out: Any) -> Any:
        src, idx = n.args[0], n.args[1]
        a = self.ann.get(src) if isinstance(src, torch.fx.Node) else None
        srcv = self._val(src)
        if isinstance(srcv, (list, tuple)):
            if isinstance(a, (list, tuple)) and isinstance(idx, int):
                return a[idx]
            if isinstance(a, (list, tuple)) and isinstance(idx, slice):
                return list(a[idx])
            return None
        if not _is_tensor(srcv) or not isinstance(a, Ann):
            return None
        if not _is_tensor(out):
            self.S.freeze(a.slots)
            return None
        # tensor indexing: map surviving dims; channel dims must be indexed by full slices
        idx_t = idx if isinstance(idx, tuple) else (idx,)
        if any(isinstance(i, (torch.fx.Node, torch.Tensor, list)) for i in idx_t):
            return self._gather(a, srcv, idx_t, out)
        n_ell = sum(1 for i in idx_t if i is Ellipsis)
        n_real = sum(1 for i in idx_t if i is not None and i is not Ellipsis)
        expanded: list[Any] = []
        for i in idx_t:
            if i is Ellipsis:
                expanded.extend([slice(None)] * (srcv.dim() - n_real))
            else:
                expanded.append(i)
        if not n_ell:
            expanded.extend([slice(None)] * (srcv.dim() - n_real))
        dim_map: dict[int, int] = {}
        picked: dict[int, int] = {}
        src_d = out_d = 0
        for i in expanded:
            if i is None:
                out_d += 1
                continue
            if isinstance(i, int):
                picked[src_d] = i
                src_d += 1
                continue
            if isinstance(i, slice):
                dim_map[src_d] = out_d
                full = i.start in (None, 0) and i.step in (None, 1) and (
                    i.stop is None or i.stop >= srcv.shape[src_d]
                )
                if src_d in a.dims and not full:
                    self.S.freeze(a.slots)
                    return None
                src_d += 1
                out_d += 1
        slots, dims = a.slots, list(a.dims)
        for d in sorted(picked, reverse=True):  # an integer index selects those slots
            if d in dims:
                axis = dims.index(d)
                slots = np.take(slots, picked[d], axis=axis)
                dims.pop(axis)
        if not dims:
            return None
        if any(d not in dim_map for d in dims):
            self.S.freeze(a.slots)
            return None
        return Ann(tuple(dim_map[d] for d in dims), slots)

    def _bind_literals(self, n: torch.fx.Node, res: Ann, out: torch.Tensor) -> None:
        """A literal size in ``view``/``reshape`` that equals a channel-like dimension usually
        comes from a module attribute (``self.num_heads``, ``self.hidden_dim``): remember it so
        the attribute follows the pruned width."""
        shape_args = list(n.args[1:])
        if len(shape_args) == 1 and isinstance(shape_args[0], (list, tuple)):
            shape_args = list(shape_args[0])
        if len(shape_args) != out.dim():
            return
        stack = n.meta.get("nn_module_stack") or {}
        owner = ""
        if stack:
            last = list(stack.values())[-1]
            owner = last[0] if isinstance(last, tuple) else str(last)
        for axis, d in enumerate(res.dims):
            lit = shape_args[d]
            if isinstance(lit, int) and not isinstance(lit, bool) and lit == out.shape[d] > 1:
                self.bindings.append((owner, lit, res.slots, axis))

    def _elementwise(self, operands: Sequence[Any], out: torch.Tensor) -> Any:
        nd = out.dim()
        anns: list[tuple[Ann, tuple[int, ...]]] = []
        plain: list[torch.Tensor] = []
        for op in operands:
            if isinstance(op, torch.fx.Node):
                v = self._val(op)
                a = self.ann.get(op)
                if not _is_tensor(v):
                    continue
                if isinstance(a, Ann):
                    shift = nd - v.dim()
                    anns.append((a, tuple(d + shift for d in a.dims)))
                else:
                    plain.append(v)
            elif _is_tensor(op):
                plain.append(op)
        if not anns:
            return None
        ref, ref_dims = anns[0]
        ok = True
        for a, dims in anns[1:]:
            if dims == ref_dims and a.slots.shape == ref.slots.shape:
                self.S.union_arrays(ref.slots, a.slots)
            elif all(d in ref_dims for d in dims):
                ok = False
            else:
                ok = False
        for v in plain:
            shift = nd - v.dim()
            for d in ref_dims:
                dd = d - shift
                if 0 <= dd < v.dim() and v.shape[dd] > 1:
                    ok = False
        if not ok:
            for a, _ in anns:
                self.S.freeze(a.slots)
        return Ann(ref_dims, ref.slots)

    def _cat(self, tensors: list[Any], dim: int, out: torch.Tensor) -> Any:
        dim = dim % out.dim()
        anns = [self.ann.get(t) if isinstance(t, torch.fx.Node) else None for t in tensors]
        vals = [self._val(t) for t in tensors]
        if not any(isinstance(a, Ann) for a in anns):
            return None
        if any(isinstance(a, Ann) and dim in a.dims for a in anns):
            pieces = []
            for a, v in zip(anns, vals, strict=True):
                if isinstance(a, Ann) and a.dims == (dim,):
                    pieces.append(a.slots)
                else:
                    if isinstance(a, Ann):
                        self.S.freeze(a.slots)
                    pieces.append(self.S.alloc(v.shape[dim], frozen=True))
            return Ann((dim,), np.concatenate(pieces))
        # concatenation along another dim: channel annotations must agree
        return self._elementwise(tensors, out)

    def _split(self, x_node: Any, dim: int, out: Any, literal: bool,
               n: torch.fx.Node | None = None) -> Any:
        a = self.ann.get(x_node)
        x = self._val(x_node)
        if not isinstance(a, Ann):
            return None
        dim = dim % x.dim()
        if dim not in a.dims:
            return [Ann(a.dims, a.slots) for _ in out]
        sizes = {o.shape[dim] for o in out}
        if a.dims != (dim,) or literal or len(sizes) != 1:
            # fixed split sizes cannot follow pruning: keep these channels
            self.S.freeze(a.slots)
            where = self._owner(n) if n is not None else ""
            why = "fixed split sizes" if literal else "unequal or multi-dim pieces"
            note = (f"{where or 'model'}: split of {x.shape[dim]} channels into "
                    f"{[o.shape[dim] for o in out]} ({why}); these channels are kept")
            if note not in self.notes:
                self.notes.append(note)
            return None
        # equal chunks must stay equal: remove the same offset from every chunk
        pieces = a.slots.reshape(len(out), -1)
        for k in range(1, len(out)):
            self.S.union_arrays(pieces[0], pieces[k])
        res, start = [], 0
        for o in out:
            size = o.shape[dim]
            res.append(Ann((dim,), a.slots[start:start + size]))
            start += size
        return res

    def _materialize(self, a: Ann, shape: Sequence[int]) -> np.ndarray | None:
        size = int(np.prod(shape)) if len(shape) else 1
        if size > _MATERIALIZE_LIMIT:
            return None
        view_shape = [1] * len(shape)
        for d, s in zip(a.dims, a.slots.shape, strict=True):
            view_shape[d] = s
        return np.broadcast_to(a.slots.reshape(view_shape), tuple(shape))

    def _recover(self, full: np.ndarray) -> Ann | None:
        dims = []
        for d in range(full.ndim):
            if full.shape[d] > 1:
                first = np.take(full, [0], axis=d)
                if not np.array_equal(np.broadcast_to(first, full.shape), full):
                    dims.append(d)
        if not dims:
            return None
        index = tuple(slice(None) if d in dims else 0 for d in range(full.ndim))
        slots = np.ascontiguousarray(full[index])
        # the recovered array must be a product structure over `dims`
        view_shape = [full.shape[d] if d in dims else 1 for d in range(full.ndim)]
        if not np.array_equal(np.broadcast_to(slots.reshape(view_shape), full.shape), full):
            return None
        return Ann(tuple(dims), slots)

    def _reshape_like(self, a: Any, x: Any, out: Any, broadcast: bool = False) -> Any:
        if not isinstance(a, Ann) or not _is_tensor(x) or not _is_tensor(out):
            return None
        if tuple(x.shape) == tuple(out.shape):
            return a
        full = self._materialize(a, tuple(x.shape))
        if full is None:
            self.S.freeze(a.slots)
            return None
        new = np.broadcast_to(full, tuple(out.shape)) if broadcast else full.reshape(out.shape)
        r = self._recover(np.asarray(new))
        if r is None:
            self.S.freeze(a.slots)
        return r

    def _permute(self, n: torch.fx.Node, name: str, a: Any, out: Any) -> Any:
        if not isinstance(a, Ann):
            return None
        x = self._val(n.args[0])
        nd = x.dim()
        rest = [self._val(v) for v in n.args[1:]]
        if name == "permute":
            perm = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
            perm = [p % nd for p in perm]
        elif name in ("transpose", "swapaxes"):
            d0, d1 = rest[0] % nd, rest[1] % nd
            perm = list(range(nd))
            perm[d0], perm[d1] = perm[d1], perm[d0]
        else:  # movedim
            src, dst = rest[0], rest[1]
            src = [src] if isinstance(src, int) else list(src)
            dst = [dst] if isinstance(dst, int) else list(dst)
            perm = [i for i in range(nd) if i not in [s % nd for s in src]]
            for s, d in sorted(zip([s % nd for s in src], [d % nd for d in dst],
                                   strict=True), key=lambda t: t[1]):
                perm.insert(d, s)
        inv = {p: i for i, p in enumerate(perm)}
        new_dims = [inv[d] for d in a.dims]
        order = np.argsort(new_dims)
        return Ann(tuple(sorted(new_dims)), np.transpose(a.slots, order))

    def _reduce(self, n: torch.fx.Node, a: Any, out: Any, dim_pos: int = 1) -> Any:
        if not isinstance(a, Ann):
            return None
        x = self._val(n.args[0])
        dim = n.kwargs.get("dim", self._val(n.args[dim_pos]) if len(n.args) > dim_pos else None)
        keep = n.kwargs.get("keepdim", self._val(n.args[dim_pos + 1])
                            if len(n.args) > dim_pos + 1 else False)
        if dim is None:
            self.S.freeze(a.slots)
            return None
        dims = [dim] if isinstance(dim, int) else list(dim)
        dims = [d % x.dim() for d in dims]
        if set(dims) & set(a.dims):
            if keep and _is_tensor(out) and out.dim() == x.dim() and \
                    self._statistic_name(n) in _STAT_REDUCTIONS:
                return self._channel_statistic(n, a, dims)
            self.S.freeze(a.slots)
            return None
        if keep:
            return a
        return Ann(tuple(d - sum(1 for r in dims if r < d) for d in a.dims), a.slots)

    @staticmethod
    def _statistic_name(n: torch.fx.Node) -> str:
        return n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")

    def _owner(self, n: torch.fx.Node) -> str:
        stack = n.meta.get("nn_module_stack") or {}
        if not stack:
            return ""
        last = list(stack.values())[-1]
        return last[0] if isinstance(last, tuple) else str(last)

    def _channel_statistic(self, n: torch.fx.Node, a: Ann, dims: list[int]) -> Any:
        """A statistic over a channel dimension kept as a size-1 dimension (``x.mean(-1,
        keepdim=True)`` in GlobalResponseNorm, ``F.normalize(x, dim=1)``): its shape does not
        depend on the channel count, so the channels stay prunable; like LayerNorm's statistics
        its value counts the removed channels (recorded in ``statistics``)."""
        self.statistics[self._owner(n)] = None
        axes = [i for i, d in enumerate(a.dims) if d not in dims]
        if not axes:
            return None
        slots = a.slots
        for i in sorted((i for i, d in enumerate(a.dims) if d in dims), reverse=True):
            slots = np.take(slots, 0, axis=i)  # the channel axis collapses to one position
        # the other channel dims keep their slots only if they did not vary with the reduced one
        full = a.slots
        ref = np.broadcast_to(np.expand_dims(slots, [i for i, d in enumerate(a.dims)
                                                     if d in dims]), full.shape)
        if not np.array_equal(ref, full):
            self.S.freeze(a.slots)
            return None
        return Ann(tuple(a.dims[i] for i in axes), slots)

    def _normalize(self, n: torch.fx.Node, a: Any) -> Any:
        """``F.normalize(x, p, dim)``: elementwise unless ``dim`` is a channel dimension, where it
        is a channel statistic (the shape never depends on the channel count)."""
        if not isinstance(a, Ann):
            return None
        x = self._val(n.args[0])
        dim = n.kwargs.get("dim", self._val(n.args[2]) if len(n.args) > 2 else 1)
        if not isinstance(dim, int):
            self.S.freeze(a.slots)
            return None
        if dim % x.dim() in a.dims:
            if len(a.dims) != 1:
                self.S.freeze(a.slots)
                return None
            self.statistics[self._owner(n)] = None
        return a

    def _uniform_heads(self, a: Ann, batch: set[int]) -> bool:
        """Unite the slots of every head with head 0's at the same offset (``head_dim`` units:
        each removes one offset from every head, so the head count never changes). False if
        ``a`` carries no head dimension."""
        hd = [i for i, d in enumerate(a.dims) if d in batch]
        if not hd:
            return False
        other = [i for i in range(len(a.dims)) if i not in hd]
        s = np.transpose(a.slots, hd + other)
        s = s.reshape(int(np.prod(s.shape[: len(hd)])), -1)
        for row in s[1:]:
            self.S.union_arrays(s[0], row)
        return True

    def _matmul_head_dim(self, A: torch.Tensor, B: torch.Tensor, a: Any, b: Any,
                         out: torch.Tensor) -> Any:
        """``matmul`` when attention is pruned along ``head_dim``: head (batch) dimensions
        never shrink; q @ k^T unites q's and k's offsets; attn @ v keeps v's offsets."""
        nd = out.dim()
        batch = set(range(nd - 2))
        a_dims = tuple(d + nd - A.dim() for d in a.dims) if isinstance(a, Ann) else ()
        b_dims = tuple(d + nd - B.dim() for d in b.dims) if isinstance(b, Ann) else ()
        for ann, dims in ((a, a_dims), (b, b_dims)):
            if isinstance(ann, Ann):
                self._uniform_heads(Ann(dims, ann.slots), batch)
        a_chan = [d for d in a_dims if d not in batch]
        b_chan = [d for d in b_dims if d not in batch]
        if (nd - 1 in a_chan) != (nd - 2 in b_chan):
            self._freeze_ann([a, b])
            return None
        if nd - 1 in a_chan:  # contracted on both sides (q @ k^T)
            same = [d for d in a_dims if d in batch] == [d for d in b_dims if d in batch]
            if a_chan != [nd - 1] or b_chan != [nd - 2] or not same or \
                    a.slots.shape != b.slots.shape:
                self._freeze_ann([a, b])
                return None
            self.S.union_arrays(a.slots, b.slots)
            return None  # the logits carry no channel; their head dim never shrinks
        if a_chan and b_chan:
            self._freeze_ann([a, b])
            return None
        if b_chan:
            return Ann(b_dims, b.slots)
        if a_chan:
            return Ann(a_dims, a.slots)
        return None  # only head dims, which never shrink

    def _sdpa_head_dim(self, anns: list[Ann], kwargs: Any, out: torch.Tensor,
                       batch: set[int]) -> Any:
        """``scaled_dot_product_attention`` pruned along ``head_dim`` (see :meth:`_matmul`)."""
        nd = out.dim()
        for a in anns:
            if [d for d in a.dims if d not in batch] != [nd - 1] or \
                    not self._uniform_heads(a, batch):
                self._freeze_ann(anns)
                return None
        q, k, v = anns
        if q.dims != k.dims or q.slots.shape != k.slots.shape:
            self._freeze_ann(anns)
            return None
        self.S.union_arrays(q.slots, k.slots)
        note = ("scaled_dot_product_attention without scale=: pruning head_dim changes its "
                "default 1/sqrt(head_dim) scale (not exact; fine-tune afterwards)")
        if kwargs.get("scale") is None and note not in self.notes:
            self.notes.append(note)
        return Ann(v.dims, v.slots)

    def _whole_heads(self, a: Ann, batch_dims: set[int]) -> tuple[list[int], np.ndarray] | None:
        """Unite all slots of one head; return the head dims and per-head representatives."""
        hd = [i for i, d in enumerate(a.dims) if d in batch_dims]
        if not hd:
            return None
        other = [i for i in range(len(a.dims)) if i not in hd]
        s = np.transpose(a.slots, hd + other)
        heads_shape = s.shape[: len(hd)]
        s = s.reshape(int(np.prod(heads_shape)), -1)
        for row in s:
            for x in row[1:]:
                self.S.union(row[0], x)
        return [a.dims[i] for i in hd], s[:, 0].reshape(heads_shape)

    def _matmul(self, an: Any, bn: Any, out: torch.Tensor) -> Any:
        A, B = self._val(an), self._val(bn)
        a = self.ann.get(an) if isinstance(an, torch.fx.Node) else None
        b = self.ann.get(bn) if isinstance(bn, torch.fx.Node) else None
        if not isinstance(a, Ann) and not isinstance(b, Ann):
            return None
        if A.dim() < 2 or B.dim() < 2:
            self._freeze_ann([a, b])
            return None
        if self.head_dim_mode:
            return self._matmul_head_dim(A, B, a, b, out)
        nd = out.dim()
        sa, sb = nd - A.dim(), nd - B.dim()
        batch = set(range(nd - 2))
        a_dims = tuple(d + sa for d in a.dims) if isinstance(a, Ann) else ()
        b_dims = tuple(d + sb for d in b.dims) if isinstance(b, Ann) else ()
        a_con, b_con = nd - 1, nd - 2  # contracted dims in output coordinates
        heads: dict[str, Any] = {}
        for key, ann, dims in (("a", a, a_dims), ("b", b, b_dims)):
            if isinstance(ann, Ann) and set(dims) & batch:
                wh = self._whole_heads(Ann(dims, ann.slots), batch)
                if wh is not None:
                    heads[key] = wh
        # contracted dimension
        a_has_con = a_con in a_dims
        b_has_con = b_con in b_dims
        if a_has_con != b_has_con:
            self._freeze_ann([a, b])
            return None
        if a_has_con and b_has_con:
            if "a" in heads and "b" in heads:
                pass  # united through heads below
            elif not heads and a_dims == (a_con,) and b_dims == (b_con,):
                self.S.union_arrays(a.slots, b.slots)
                return None  # contracted away; no channel dim left
            else:
                self._freeze_ann([a, b])
                return None
        # batch (head) dims
        if "a" in heads and "b" in heads:
            if heads["a"][0] != heads["b"][0] or heads["a"][1].shape != heads["b"][1].shape:
                self._freeze_ann([a, b])
                return None
            self.S.union_arrays(heads["a"][1], heads["b"][1])
        elif heads:
            key = "a" if "a" in heads else "b"
            other_val, other_shift = (B, sb) if key == "a" else (A, sa)
            for d in heads[key][0]:
                dd = d - other_shift
                if 0 <= dd < other_val.dim() and other_val.shape[dd] > 1:
                    self._freeze_ann([a, b])
                    return None
        # output annotation
        if b_dims and (nd - 1) in b_dims:
            return Ann(b_dims, b.slots)
        if a_dims and (nd - 2) in a_dims and not b_has_con:
            return Ann(a_dims, a.slots)
        if heads:
            hdims, reps = heads["a"] if "a" in heads else heads["b"]
            return Ann(tuple(hdims), reps)
        return None

    def _sdpa(self, args: Any, kwargs: Any, out: torch.Tensor) -> Any:
        nodes = list(args[:3])
        anns = [self.ann.get(x) if isinstance(x, torch.fx.Node) else None for x in nodes]
        if not all(isinstance(a, Ann) for a in anns):
            self._freeze_ann(anns)
            return None
        nd = out.dim()
        batch = set(range(nd - 2))
        if self.head_dim_mode:
            return self._sdpa_head_dim(anns, kwargs, out, batch)
        reps = []
        for a in anns:
            wh = self._whole_heads(a, batch)
            if wh is None:
                self._freeze_ann(anns)
                return None
            reps.append(wh)
        if any(r[0] != reps[0][0] or r[1].shape != reps[0][1].shape for r in reps):
            self._freeze_ann(anns)
            return None
        self.S.union_arrays(reps[0][1], reps[1][1])
        self.S.union_arrays(reps[0][1], reps[2][1])
        return Ann(anns[2].dims, anns[2].slots)


def _same_shape(a: Any, b: Any) -> bool:
    return _is_tensor(a) and _is_tensor(b) and tuple(a.shape) == tuple(b.shape)


# ----------------------------------------------------------------------------- public


def split_ignored(model: nn.Module, names: Iterable[str]) -> tuple[set[str], set[str]]:
    """Split ignored layer names into (known layers that keep their outputs, opaque layers).

    A known layer (Conv, Linear, norms, ...) keeps its output units while its inputs follow the
    layer before (Torch-Pruning's ``ignored_layers``); a container stands for the known layers
    inside it; a custom layer with its own parameters is kept whole (opaque).
    """
    mods = dict(model.named_modules())
    ignored: set[str] = set()
    opaque: set[str] = set()
    for name in names:
        m = mods[name]
        if _is_known(m):
            ignored.add(name)
            continue
        if isinstance(m, KNOWN_PARAM) or any(True for _ in m.parameters(recurse=False)) \
                or not any(True for _ in m.children()):
            opaque.add(name)
            continue
        for sub_name, sub in m.named_modules(prefix=name):
            if sub_name == name or any(sub_name.startswith(f"{o}.") for o in opaque):
                continue
            if _is_known(sub):
                ignored.add(sub_name)
            elif isinstance(sub, KNOWN_PARAM) or any(True for _ in sub.parameters(recurse=False)):
                opaque.add(sub_name)
    return ignored, opaque


ATTENTION_UNITS = ("heads", "head_dim")
_attention_units: list[str] = ["heads"]


@contextlib.contextmanager
def attention_units(mode: str) -> Iterator[None]:
    """Within the block, attention is pruned by ``mode``: ``"heads"`` (default: whole heads are
    removed, ``head_dim`` stays) or ``"head_dim"`` (``num_heads`` stays and every head loses the
    same offsets of ``head_dim``; q and k lose the same offsets, the ``head_dim`` attribute and
    widths such as ``attn_dim`` follow). ``"head_dim"`` is exact where the softmax scale is a
    constant of the original ``head_dim`` (``q * self.scale`` or ``scaled_dot_product_attention(
    ..., scale=...)``); with SDPA's default scale ``1/sqrt(q.size(-1))`` the logits of the kept
    dimensions grow by ``sqrt(old/new head_dim)`` (a note says so): fine-tune afterwards.
    Example: ``with attention_units("head_dim"): prune(vit, x, ratio=0.5)``."""
    if mode not in ATTENTION_UNITS:
        from prunekit.errors import InvalidParameterError

        raise InvalidParameterError(f"attention_units: mode must be one of {ATTENTION_UNITS}, "
                                    f"got {mode!r}")
    _attention_units.append(mode)
    try:
        yield
    finally:
        _attention_units.pop()


def analyze(
    model: nn.Module, example_inputs: Any, ignored_layers: Iterable[str | nn.Module] = (),
    frozen_layers: Iterable[str | nn.Module] = (), *, attention: str | None = None,
) -> DependencyGraph:
    """Trace ``model`` and return its :class:`DependencyGraph` (groups of coupled units).

    ``ignored_layers`` keep their output units (their inputs still follow the layer before);
    ``frozen_layers`` are opaque: every unit they read or write is kept. ``attention``:
    ``"heads"`` or ``"head_dim"`` (default: the :func:`attention_units` in effect).
    """
    if attention is None:
        attention = _attention_units[-1]
    elif attention not in ATTENTION_UNITS:
        from prunekit.errors import InvalidParameterError

        raise InvalidParameterError(f"attention must be one of {ATTENTION_UNITS}, got "
                                    f"{attention!r}")
    ignored, opaque = split_ignored(model, resolve_names(model, ignored_layers, "ignored_layers"))
    frozen = resolve_names(model, frozen_layers, "frozen_layers") | opaque
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    before = set(model.__dict__)
    with eval_mode(model), torch.no_grad():
        gm, fallback = trace_with_fallback(model, leaves=frozen, example_inputs=inputs)
    constants = [k for k in model.__dict__ if k not in before]
    for k in constants:  # torch.fx parks tensors created in forward on the traced root
        delattr(model, k)
    frozen |= {name for name, _ in fallback}
    an = _Analyzer(gm, ignored, frozen)
    an.head_dim_mode = attention == "head_dim"
    an.originals = dict(model.named_modules())
    an.constants = set(constants)
    an.notes += [f"{name}: torch.fx cannot trace it ({why}); kept unchanged as an opaque layer"
                 for name, why in fallback]
    with eval_mode(model), torch.no_grad():
        gm.eval()
        an.run(*inputs)
    S = an.S
    # a channel dim split into several dims must stay rectangular: unless each row is already
    # one unit (whole attention heads), remove the same offset from every row
    for arr in an.split_constraints:
        rows = arr.reshape(arr.shape[0], -1)
        roots = S.roots(rows)
        if all(len(set(r.tolist())) == 1 for r in roots):
            continue
        for k in range(1, rows.shape[0]):
            S.union_arrays(rows[0], rows[k])
    uses = an.uses
    # groups: union units that share a (module, role)
    unit_of_use = {k: S.roots(u.slots) for k, u in uses.items()}
    gparent: dict[int, int] = {}

    def gfind(x: int) -> int:
        while gparent.setdefault(x, x) != x:
            gparent[x] = gparent[gparent[x]]
            x = gparent[x]
        return x

    uniq_of_use = {k: np.unique(units).tolist() for k, units in unit_of_use.items()}
    for uniq in uniq_of_use.values():
        live = [u for u in uniq if not S.is_frozen_root(u)]
        for u in live[1:]:
            ra, rb = gfind(live[0]), gfind(u)
            if ra != rb:
                gparent[rb] = ra
    members: dict[int, list[int]] = {}
    for u in list(gparent):
        members.setdefault(gfind(u), []).append(u)
    all_units = {u for uniq in uniq_of_use.values() for u in uniq}
    frozen_units = sum(1 for u in all_units if S.is_frozen_root(u))
    uses_of_root: dict[int, list[tuple[str, str]]] = {}
    for k, uniq in uniq_of_use.items():
        for r in dict.fromkeys(gfind(u) for u in uniq if u in gparent):
            uses_of_root.setdefault(r, []).append(k)
    groups: list[Group] = []
    for root, units in sorted(members.items(), key=lambda kv: min(kv[1])):
        g_uses = uses_of_root.get(root, [])
        if all(k[1].startswith("param:") for k in g_uses):
            continue  # tensors no layer reads along this dimension: nothing to couple them to
        gi = len(groups)
        order = _unit_order(units, [unit_of_use[k] for k in g_uses])
        grp = Group(gi, order, g_uses)
        for k in g_uses:
            if k[0] in an.mha_heads and k[1] in ("in", "model"):
                h = an.mha_heads[k[0]]
                us = unit_of_use[k]
                per = len(us) // h
                parts = [[int(u) for u in us[i * per:(i + 1) * per]] for i in range(h)]
                if all(len(set(p)) == per for p in parts) and grp.partitions is None:
                    grp.partitions = parts
        groups.append(grp)
    bindings = _attribute_bindings(model, an.bindings, S)
    return DependencyGraph(S, uses, groups, frozen_units, an.notes, bindings, an.mha_heads,
                           unit_of_use, statistics=list(an.statistics))


def _unit_order(units: list[int], arrays: list[np.ndarray]) -> list[int]:
    """Order units by first appearance in the group's arrays (stable, reproducible)."""
    seen: dict[int, None] = {}
    uset = set(units)
    for arr in arrays:
        for u in arr.tolist():
            if u in uset and u not in seen:
                seen[u] = None
    return list(seen)


WIDTH_ATTR_NAMES = (*HEAD_ATTR_NAMES, *INNER_ATTR_NAMES, "head_dim", "hidden_dim", "embed_dim",
                    "attn_dim", "all_head_dim", "qkv_dim", "key_dim", "val_dim", "dim_head",
                    "d_model", "hidden_size", "dim", "width", "channels", "num_channels",
                    "n_embd", "attention_head_size", "head_size", "d_head", "d_k")


def _attribute_bindings(
    model: nn.Module, raw: list[tuple[str, int, np.ndarray, int]], S: SlotSet
) -> list[tuple[str, str, int, np.ndarray, int]]:
    """Module attributes (``num_heads``, ``hidden_dim``...) that fixed a reshaped size."""
    mods = dict(model.named_modules())
    out = []
    bound: set[tuple[str, str]] = set()
    done: set[tuple[str, int, int, tuple[int, ...]]] = set()
    for owner, value, slots, axis in raw:
        m = mods.get(owner)
        key = (owner, value, axis, tuple(slots.shape))
        if m is None or key in done:
            continue
        done.add(key)
        roots = S.roots(slots)
        if roots.shape[axis] > 1 and (np.take(roots, [0], axis=axis) == roots).all():
            continue  # units do not vary along this axis (e.g. the q/k/v axis): it never shrinks
        for attr in WIDTH_ATTR_NAMES:  # one attribute per literal, in order of preference
            v = getattr(m, attr, None)
            if (isinstance(v, int) and not isinstance(v, bool) and v == value
                    and (owner, attr) not in bound):
                bound.add((owner, attr))
                out.append((owner, attr, value, roots, axis))
                break
    return out


def resolve_names(model: nn.Module, layers: Iterable[str | nn.Module] | None,
                  arg: str = "ignored_layers") -> set[str]:
    """Module names of ``layers`` (names or module objects) inside ``model``."""
    from prunekit.errors import InvalidParameterError

    if layers is None:
        return set()
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    by_id = {id(m): n for n, m in model.named_modules()}
    names = set(by_id.values())
    out: set[str] = set()
    for layer in layers:
        if isinstance(layer, nn.Module):
            if id(layer) not in by_id:
                raise InvalidParameterError(
                    f"{arg}: module {type(layer).__name__} is not part of the model"
                )
            out.add(by_id[id(layer)])
        elif isinstance(layer, str):
            if layer not in names:
                raise InvalidParameterError(
                    f"{arg}: no module named {layer!r}; accepted values are names from "
                    "model.named_modules()"
                )
            out.add(layer)
        else:
            raise InvalidParameterError(
                f"{arg} entries must be module names or modules, got {layer!r}"
            )
    # ignoring a container ignores what is inside it
    return out
