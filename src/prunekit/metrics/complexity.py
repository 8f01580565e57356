"""Model complexity: parameters, non-zeros, per-layer sparsity, MACs, tree shape, serialized size.

MAC counting convention: one multiply-accumulate (MAC) = 2 floating-point operations. MACs are
counted with :class:`torch.utils.flop_counter.FlopCounterMode` during one forward pass on
``example_inputs`` (matmul/addmm/bmm for Linear and attention, convolutions, scaled-dot-product
attention including torch's fused CPU kernel; the fused ``nn.MultiheadAttention`` fast path is
switched off while counting) and reported as ``MACs = FLOPs / 2``. Element-wise work (bias,
activations, norms) is not counted, as in most papers and in fvcore/ptflops. MACs are *dense*
MACs: an unstructured-sparse layer costs as much as a dense one on ordinary kernels;
``nonzero_macs`` scales each Linear/Conv layer's MACs by the density of its weight, the ideal
cost on a sparse kernel.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prunekit.metrics._common import (
    as_model_input,
    call_module,
    check_model,
    eval_mode,
    is_sklearn_estimator,
    model_device_dtype,
)


@dataclass(frozen=True)
class Complexity:
    """Size of a model. Fields that do not apply to the model are ``None``.

    - ``n_params``: parameters (torch: all parameter elements; trees: nodes; linear models:
      coefficients + intercepts; ensembles: sum over members).
    - ``n_nonzero``: non-zero parameters (torch: of the effective weights, masks applied).
    - ``sparsity``: ``1 - n_nonzero / n_params``.
    - ``weight_sparsity``: zero fraction over the weights of the layers in ``layer_sparsity``
      (the prunable Linear/Conv/embedding weights, ``ndim >= 2``).
    - ``layer_sparsity``: zero fraction of each such layer's weight, keyed by module name.
    - ``macs`` / ``nonzero_macs``: dense / density-scaled multiply-accumulates for one forward
      pass on ``example_inputs`` (torch only; see the module docstring).
    - ``n_nodes``, ``n_leaves``, ``depth``: tree shape (summed / max over ensemble members).
    - ``n_members``: number of ensemble members.
    - ``size_bytes``: serialized size (torch: ``torch.save(state_dict)``; sklearn: pickle).
    """

    kind: str
    n_params: int | None = None
    n_nonzero: int | None = None
    sparsity: float | None = None
    weight_sparsity: float | None = None
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    macs: int | None = None
    nonzero_macs: int | None = None
    n_nodes: int | None = None
    n_leaves: int | None = None
    depth: int | None = None
    n_members: int | None = None
    size_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of all fields."""
        return asdict(self)


# --------------------------------------------------------------------------- torch
def effective_parameters(module: Any) -> list[tuple[str, Any]]:
    """``(qualified name, tensor)`` of every parameter as the forward pass sees it.

    Masks applied with :mod:`torch.nn.utils.prune` (``weight_orig`` + ``weight_mask``) or
    :mod:`torch.nn.utils.parametrize` are resolved to the effective (masked) tensor, under the
    original name (``weight``). Shared parameters are listed once.
    """
    from torch.nn.utils import parametrize

    out: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for mod_name, mod in module.named_modules():
        if type(mod).__name__ == "ParametrizationList":
            continue
        names = list(mod._parameters)
        if parametrize.is_parametrized(mod):
            names += list(mod.parametrizations.keys())
        for pname in names:
            if mod._parameters.get(pname) is None and pname in mod._parameters:
                continue
            eff_name = pname
            if pname.endswith("_orig") and hasattr(mod, pname[:-5] + "_mask"):
                eff_name = pname[:-5]  # torch.nn.utils.prune
            with_orig = getattr(mod, eff_name)
            key = id(mod._parameters.get(pname, with_orig))
            if key in seen:
                continue
            seen.add(key)
            out.append((f"{mod_name}.{eff_name}" if mod_name else eff_name, with_orig))
    return out


def count_params(module: Any) -> tuple[int, int]:
    """``(n_params, n_nonzero)`` of a torch module (effective weights, shared ones counted once)."""
    total = nonzero = 0
    for _, t in effective_parameters(module):
        total += t.numel()
        nonzero += int(t.count_nonzero())
    return total, nonzero


def layer_sparsity(module: Any) -> dict[str, float]:
    """Zero fraction of each layer weight with ``ndim >= 2``, keyed by module name (root: class)."""
    out: dict[str, float] = {}
    for name, t in effective_parameters(module):
        if not name.endswith("weight") or t.dim() < 2:
            continue
        layer = name[: -len(".weight")] if name.endswith(".weight") else type(module).__name__
        out[layer] = 1.0 - int(t.count_nonzero()) / t.numel()
    return out


def _weight_sparsity(module: Any) -> float | None:
    zeros = total = 0
    for name, t in effective_parameters(module):
        if name.endswith("weight") and t.dim() >= 2:
            total += t.numel()
            zeros += t.numel() - int(t.count_nonzero())
    return zeros / total if total else None


@contextlib.contextmanager
def _counting_mode(module: Any) -> Iterator[None]:
    """Eval mode + no_grad, with the fused multi-head-attention fast path disabled.

    The fast path runs one fused kernel that the flop counter cannot see; the reference path
    gives the same outputs through ordinary matmuls.
    """
    import torch

    mha = getattr(torch.backends, "mha", None)
    fast = mha.get_fastpath_enabled() if mha is not None else None
    if mha is not None:
        mha.set_fastpath_enabled(False)
    try:
        with eval_mode(module), torch.no_grad():
            yield
    finally:
        if mha is not None:
            mha.set_fastpath_enabled(fast)


def _cpu_sdpa_flop(query_shape: Any, key_shape: Any, value_shape: Any, *_a: Any,
                   out_shape: Any = None, **_k: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return int(sdpa_flop_count(query_shape, key_shape, value_shape))


def _flop_counter() -> Any:
    """A :class:`FlopCounterMode` that also counts the fused CPU attention kernel.

    torch's registry covers the CUDA flash/efficient attention kernels but not
    ``_scaled_dot_product_flash_attention_for_cpu``, which ``F.scaled_dot_product_attention``
    uses on CPU; it gets the same formula (QK^T and AV, causal masks not discounted).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = _cpu_sdpa_flop
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _prepare_inputs(module: Any, example_inputs: Any) -> Any:
    device, dtype = model_device_dtype(module)
    return as_model_input(example_inputs, device, dtype)


def layer_macs(module: Any, example_inputs: Any) -> dict[str, int]:
    """MACs of each module for one forward pass on ``example_inputs`` (FLOPs / 2).

    Each module is charged the work done in its own ``forward`` and not inside a child module:
    a Linear/Conv leaf gets its matmul/convolution; a module that calls functional ops itself
    (e.g. ``nn.MultiheadAttention``, whose projections and attention matmuls run through
    ``F.multi_head_attention_forward``) gets those. Only modules with counted work appear; the
    root module is named by its class. The values sum to :func:`count_macs`.
    """
    inputs = _prepare_inputs(module, example_inputs)
    counter = _flop_counter()
    per_module: dict[str, int] = {}
    stack: list[list[int]] = []  # [flops at entry, flops spent in children]
    handles = []

    def pre(_m: Any, _a: Any) -> None:
        stack.append([counter.get_total_flops(), 0])

    def post_factory(name: str) -> Any:
        def post(_m: Any, _a: Any, _o: Any) -> None:
            start, in_children = stack.pop()
            inside = counter.get_total_flops() - start
            own = inside - in_children
            if own:
                per_module[name] = per_module.get(name, 0) + own
            if stack:
                stack[-1][1] += inside
        return post

    for name, m in module.named_modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post_factory(name or type(module).__name__)))
    try:
        with _counting_mode(module), counter:
            call_module(module, inputs)
    finally:
        for h in handles:
            h.remove()
    total = counter.get_total_flops()
    accounted = sum(per_module.values())
    if total > accounted:  # work outside the root's forward hooks (should not happen)
        per_module["(other)"] = total - accounted
    return {k: v // 2 for k, v in per_module.items()}


def count_macs(module: Any, example_inputs: Any) -> int:
    """Dense multiply-accumulates of one forward pass on ``example_inputs`` (FLOPs / 2).

    ``example_inputs``: a tensor/ndarray, a tuple (positional args) or a dict (keyword args).
    The batch size of ``example_inputs`` scales the result linearly.
    """
    check_model(module, "module")
    inputs = _prepare_inputs(module, example_inputs)
    counter = _flop_counter()
    with _counting_mode(module), counter:
        call_module(module, inputs)
    return int(counter.get_total_flops()) // 2


def nonzero_macs(module: Any, example_inputs: Any) -> int:
    """MACs with each leaf's MACs scaled by its weight density (ideal sparse-kernel cost)."""
    check_model(module, "module")
    return _scale_by_density(module, layer_macs(module, example_inputs))


def _scale_by_density(module: Any, per_layer: dict[str, int]) -> int:
    mods = dict(module.named_modules())
    total = 0.0
    for name, macs in per_layer.items():
        mod = mods.get(name, module if name == type(module).__name__ else None)
        weight = getattr(mod, "weight", None)
        if weight is not None and hasattr(weight, "count_nonzero") and weight.numel():
            total += macs * int(weight.count_nonzero()) / weight.numel()
        else:
            total += macs
    return int(round(total))


def serialized_size(model: Any) -> int:
    """Bytes of ``torch.save(model.state_dict())`` (torch) or ``pickle.dumps(model)`` (sklearn)."""
    kind = check_model(model)
    if kind == "torch":
        import torch

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        return buf.getbuffer().nbytes
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


# --------------------------------------------------------------------------- scikit-learn
def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    if steps and is_sklearn_estimator(model):  # Pipeline: describe the last step
        return steps[-1][1]
    return model


def ensemble_members(model: Any) -> list[Any] | None:
    """Fitted members of an ensemble (``estimators_``, flattened for boosting), else None."""
    members = getattr(model, "estimators_", None)
    if members is None:
        return None
    if isinstance(members, np.ndarray):
        return [m for m in members.ravel() if m is not None]
    return [m for m in members if m is not None]


def _tree_shape(est: Any) -> tuple[int, int, int] | None:
    tree = getattr(est, "tree_", None)
    if tree is None or not hasattr(tree, "node_count"):
        return None
    return int(tree.node_count), int(tree.n_leaves), int(tree.max_depth)


def _linear_params(est: Any) -> tuple[int, int] | None:
    if not hasattr(est, "coef_"):
        return None
    coef = np.asarray(est.coef_)
    intercept = np.atleast_1d(np.asarray(getattr(est, "intercept_", np.zeros(0))))
    n = coef.size + intercept.size
    return n, int(np.count_nonzero(coef) + np.count_nonzero(intercept))


def _sklearn_complexity(model: Any) -> Complexity:
    est = _final_estimator(model)
    members = ensemble_members(est)
    shape = _tree_shape(est)
    n_nodes = n_leaves = depth = n_members = None
    n_params = n_nonzero = None
    if shape is not None:
        n_nodes, n_leaves, depth = shape
        n_params = n_nonzero = n_nodes
    elif members is not None:
        n_members = len(members)
        shapes = [s for s in (_tree_shape(m) for m in members) if s is not None]
        if shapes:
            n_nodes = sum(s[0] for s in shapes)
            n_leaves = sum(s[1] for s in shapes)
            depth = max(s[2] for s in shapes)
            n_params = n_nonzero = n_nodes
        lin = [p for p in (_linear_params(m) for m in members) if p is not None]
        if lin and not shapes:
            n_params, n_nonzero = sum(p[0] for p in lin), sum(p[1] for p in lin)
    else:
        lin = _linear_params(est)
        if lin is not None:
            n_params, n_nonzero = lin
    sparsity = None
    if n_params:
        sparsity = 1.0 - (n_nonzero or 0) / n_params
    return Complexity(
        kind="sklearn",
        n_params=n_params,
        n_nonzero=n_nonzero,
        sparsity=sparsity,
        n_nodes=n_nodes,
        n_leaves=n_leaves,
        depth=depth,
        n_members=n_members,
        size_bytes=serialized_size(model),
    )


def complexity(model: Any, example_inputs: Any = None) -> Complexity:
    """Measure a model's size: see :class:`Complexity` for every field.

    For torch modules, ``example_inputs`` (a batch the model accepts) enables ``macs`` and
    ``nonzero_macs``; without it they are ``None``.
    """
    kind = check_model(model)
    if kind == "sklearn":
        return _sklearn_complexity(model)
    n_params, n_nonzero = count_params(model)
    macs = nz_macs = None
    if example_inputs is not None:
        per_layer = layer_macs(model, example_inputs)
        macs = int(sum(per_layer.values()))
        nz_macs = _scale_by_density(model, per_layer)
    return Complexity(
        kind="torch",
        n_params=n_params,
        n_nonzero=n_nonzero,
        sparsity=1.0 - n_nonzero / n_params if n_params else None,
        weight_sparsity=_weight_sparsity(model),
        layer_sparsity=layer_sparsity(model),
        macs=macs,
        nonzero_macs=nz_macs,
        size_bytes=serialized_size(model),
    )
