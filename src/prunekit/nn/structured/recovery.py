"""Calibration-only recovery for structured pruning: no labels, no training loop.

Removing channels by weight magnitude ignores what flows through them. With a few hundred
unlabelled calibration inputs three steps repair most of the damage:

* :func:`activation_scores` — a unit's importance is the energy it sends into the next layers,
  ``E[x_c^2] * ||W[:, c]||^2`` summed over every consumer (the output error of removing it alone);
* :func:`reconstruct` — after a layer's inputs shrink, its weights are refitted by least squares so
  that its outputs match the dense model's on the calibration inputs (He, Zhang & Sun, "Channel
  Pruning for Accelerating Very Deep Neural Networks", ICCV 2017 — the structured analogue of
  SparseGPT's weight update); layers are refitted in order, each seeing the already repaired ones;
* :func:`recalibrate_batchnorm` — BatchNorm running statistics re-estimated on the calibration
  inputs.

:func:`prune_calibrated` plugs them into :func:`prunekit.nn.structured.prune` as its ``scorer``
(:func:`activation_scorer`) and ``repair`` (:func:`calibration_repair`) hooks, so the target
search, ``allocation="sensitivity"`` and the report are the core ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit.errors import InvalidParameterError

from .graph import BN, DependencyGraph

CALIBRATED_CRITERIA = ("activation", "l1", "l2", "bn_scale", "fpgm", "random")


def _forward(model: nn.Module, x: Any) -> Any:
    if isinstance(x, dict):
        return model(**x)
    return model(*x) if isinstance(x, tuple) else model(x)


def calibration_inputs(data: Iterable[Any], max_inputs: int = 256) -> list[Any]:
    """Model inputs from ``data`` (tensors, dicts of tensors such as tokenizer outputs, or the
    first element of ``(inputs, targets)`` batches), at most ``max_inputs`` samples in all."""
    out: list[Any] = []
    n = 0
    for b in data:
        x = b[0] if isinstance(b, (list, tuple)) else b
        if isinstance(x, dict) and x and all(isinstance(v, torch.Tensor) for v in x.values()):
            size = len(next(iter(x.values())))
            take = min(size, max_inputs - n)
            out.append({k: v[:take] for k, v in x.items()})
            n += take
            if n >= max_inputs:
                break
            continue
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            raise InvalidParameterError("calibration data must yield tensors, dicts of tensors "
                                        f"or (inputs, ...) batches, got {type(x).__name__}")
        take = min(len(x), max_inputs - n)
        out.append(x[:take])
        n += take
        if n >= max_inputs:
            break
    if not out or n == 0:
        raise InvalidParameterError("calibration data yielded no inputs")
    return out


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: Sequence[Any]) -> int:
    """Re-estimate every BatchNorm's running mean/var on ``inputs`` (in place, cumulative
    average); other layers run in eval mode. Returns the number of BatchNorm layers updated."""
    bns = [m for m in model.modules() if isinstance(m, BN) and m.track_running_stats]
    if not bns:
        return 0
    saved = [(m, m.momentum, m.training) for m in bns]
    with eval_mode(model):
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over all batches
            m.train()
        try:
            for x in inputs:
                _forward(model, x)
        finally:
            for m, mom, tr in saved:
                m.momentum = mom
                m.train(tr)
    return len(bns)


def _consumer_slices(m: nn.Module) -> int | None:
    """Weight dimension indexed by the input role of ``m`` (None: not a dense consumer)."""
    if isinstance(m, nn.Linear):
        return 1
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.groups == 1:
        return 1
    return None


def _channel_energy(x: torch.Tensor, linear: bool) -> torch.Tensor:
    x = x.detach().double()
    if linear:
        return x.reshape(-1, x.shape[-1]).pow(2).sum(0), x.reshape(-1, x.shape[-1]).shape[0]
    dims = [0] + list(range(2, x.dim()))
    count = x.numel() // x.shape[1]
    return x.pow(2).sum(dims), count


@torch.no_grad()
def activation_scores(model: nn.Module, graph: DependencyGraph, inputs: Sequence[Any],
                      fallback: dict[int, float] | None = None) -> dict[int, float]:
    """``{unit: sum over consumers of E[x_c^2] * ||W[:, c]||^2}`` from calibration ``inputs``.

    Units no dense consumer reads (an output group) keep their ``fallback`` score, rescaled to
    the group's mean consumer score when the group has some.
    """
    consumers = {}
    for (name, role), use in graph.uses.items():
        if role != "in":
            continue
        m = model.get_submodule(name)
        if _consumer_slices(m) is not None:
            consumers[name] = (m, graph.unit_of(use))
    energy: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook_for(name: str, linear: bool):  # noqa: ANN202
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            e, c = _channel_energy(args[0], linear)
            energy[name] = energy.get(name, 0) + e
            counts[name] = counts.get(name, 0) + c
        return hook

    hooks = [m.register_forward_pre_hook(hook_for(n, isinstance(m, nn.Linear)))
             for n, (m, _) in consumers.items()]
    try:
        with eval_mode(model):
            for x in inputs:
                _forward(model, x)
    finally:
        for h in hooks:
            h.remove()
    scores: dict[int, float] = {}
    for name, (m, units) in consumers.items():
        if name not in energy:
            continue
        w = m.weight.detach().double()
        col = w.transpose(0, 1).reshape(w.shape[1], -1).pow(2).sum(1)  # per input position
        vals = (energy[name] / counts[name] * col).cpu().numpy()
        if len(vals) != len(units):
            continue
        uniq, inv = np.unique(units, return_inverse=True)
        sums = np.zeros(len(uniq))
        np.add.at(sums, inv, vals)
        for u, s in zip(uniq.tolist(), sums.tolist(), strict=True):
            scores[u] = scores.get(u, 0.0) + s
    fallback = fallback or {}
    for g in graph.groups:
        missing = [u for u in g.units if u not in scores]
        if not missing:
            continue
        fb = np.array([fallback.get(u, 0.0) for u in missing])
        for u, v in zip(missing, fb.tolist(), strict=True):
            scores[u] = v
    return scores


# ----------------------------------------------------------------------------- reconstruction


def _patches(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Rows of the layer's input as its weight sees them: ``(rows, in_features)``."""
    if isinstance(m, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(m, nn.Conv2d):
        pad = m.padding
        if isinstance(pad, str):
            raise InvalidParameterError("padding='same'/'valid' convs are not reconstructed")
        if m.padding_mode != "zeros":
            x = nn.functional.pad(x, (pad[1], pad[1], pad[0], pad[0]), mode=m.padding_mode)
            pad = (0, 0)
        cols = nn.functional.unfold(x, m.kernel_size, m.dilation, pad, m.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    if isinstance(m, nn.Conv1d):
        return _patches_conv1d(m, x)
    raise InvalidParameterError(f"cannot reconstruct a {type(m).__name__}")


def _patches_conv1d(m: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    x2 = x.unsqueeze(2)
    pad = m.padding if not isinstance(m.padding, str) else (0,)
    cols = nn.functional.unfold(x2, (1, m.kernel_size[0]), (1, m.dilation[0]), (0, pad[0]),
                                (1, m.stride[0]))
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _targets(m: nn.Module, y: torch.Tensor, keep: list[int] | None) -> torch.Tensor:
    if isinstance(m, nn.Linear):
        y = y.reshape(-1, y.shape[-1])
    else:
        y = y.movedim(1, -1).reshape(-1, y.shape[1])
    return y if keep is None else y[:, keep]


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def _capture(model: nn.Module, names: Sequence[str], inputs: Sequence[Any], want: str,
             stop: bool = False) -> dict[str, list[torch.Tensor]]:
    """Per layer in ``names``, its input (``want="in"``) or output per calibration batch.
    With ``stop`` (one name) the forward pass ends right after that layer."""
    out: dict[str, list[torch.Tensor]] = {n: [] for n in names}

    def hook_for(name: str):  # noqa: ANN202
        def hook(_m: nn.Module, args: tuple[Any, ...], res: Any) -> None:
            out[name].append((args[0] if want == "in" else res).detach())
            if stop:
                raise _Stop
        return hook

    hooks = [model.get_submodule(n).register_forward_hook(hook_for(n)) for n in names]
    try:
        with torch.no_grad(), eval_mode(model):
            for x in inputs:
                with contextlib.suppress(_Stop):
                    _forward(model, x)
    finally:
        for h in hooks:
            h.remove()
    return out


def _row_mask(x: Any) -> torch.Tensor | None:
    """Real-token rows of a tokenizer batch (padding positions are not fitted)."""
    if isinstance(x, dict) and isinstance(x.get("attention_mask"), torch.Tensor):
        return x["attention_mask"].reshape(-1).bool()
    return None


@torch.no_grad()
def reconstruct(
    dense: nn.Module,
    pruned: nn.Module,
    plan: dict[str, Any],
    inputs: Sequence[Any],
    *,
    layers: Sequence[str] | None = None,
    ridge: float = 1e-2,
) -> list[str]:
    """Refit, in place, the weights of ``pruned``'s layers whose inputs shrank (or ``layers``)
    so their outputs match ``dense``'s on ``inputs``: least squares with a ``ridge`` (relative to
    the mean input energy) pulling towards the current weights. Layers go in model order, each
    fitted on the inputs produced by the already refitted ones; padding tokens of tokenizer
    batches are left out. Returns the names refitted."""
    if layers is None:
        layers = [n for n, roles in plan.get("layers", {}).items() if "in" in roles]
    order = {n: i for i, (n, _) in enumerate(pruned.named_modules())}
    names = []
    for n in sorted(set(layers), key=lambda n: order.get(n, 1 << 30)):
        try:
            m = pruned.get_submodule(n)
        except AttributeError:
            continue
        if _consumer_slices(m) is not None and not isinstance(m, nn.Conv3d):
            names.append(n)
    targets = _capture(dense, names, inputs, "out")  # one pass of the dense model
    masks = [_row_mask(x) for x in inputs]
    done = []
    for name in names:
        m = pruned.get_submodule(name)
        keep_out = plan.get("layers", {}).get(name, {}).get("out")
        xs = _capture(pruned, [name], inputs, "in", stop=True)[name]
        if _solve_layer(m, xs, targets.pop(name), masks, keep_out, ridge):
            done.append(name)
    return done


def _solve_layer(m: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor],
                 masks: list[torch.Tensor | None], keep_out: list[int] | None,
                 ridge: float) -> bool:
    bias = m.bias is not None
    n_in = m.weight[0].numel()
    a = torch.zeros(n_in + bias, n_in + bias, dtype=torch.float64)
    b = torch.zeros(n_in + bias, m.weight.shape[0], dtype=torch.float64)
    for x, y, mask in zip(xs, ys, masks, strict=True):
        p = _patches(m, x).double()
        t = _targets(m, y, keep_out).double()
        if mask is not None and isinstance(m, nn.Linear) and len(mask) == len(p):
            p, t = p[mask], t[mask]
        if bias:
            p = torch.cat([p, torch.ones(len(p), 1, dtype=p.dtype)], 1)
        a += p.T @ p
        b += p.T @ t
    # ridge towards the current weights: few calibration rows cannot wreck a layer
    lam = ridge * float(torch.diagonal(a).mean().clamp_min(1e-12))
    w0 = m.weight.detach().reshape(m.weight.shape[0], -1).double().T
    if bias:
        w0 = torch.cat([w0, m.bias.detach().double()[None, :]], 0)
    a += lam * torch.eye(len(a), dtype=a.dtype)
    b += lam * w0
    try:
        sol = torch.linalg.solve(a, b)
    except RuntimeError:
        return False  # singular even with the ridge: keep the weights as they are
    w = sol[:n_in].T.reshape(m.weight.shape).to(m.weight.dtype)
    if not torch.isfinite(w).all():
        return False
    m.weight.copy_(w)
    if bias:
        m.bias.copy_(sol[n_in].to(m.bias.dtype))
    return True


# ----------------------------------------------------------------------------- entry point


def prune_calibrated(
    model: nn.Module,
    example_inputs: Any,
    data: Iterable[Any],
    *,
    ratio: float | None = None,
    target_macs: float | None = None,
    target_params: float | None = None,
    criterion: str = "activation",
    allocation: str = "uniform",
    sensitivity: Any = None,
    reconstruct_weights: bool = True,
    batchnorm: bool = True,
    max_inputs: int = 256,
    ridge: float = 1e-2,
    round_to: int | None = None,
    ignored_layers: Sequence[str | nn.Module] = (),
    min_channels: int = 1,
    max_ratio: float = 0.9,
) -> tuple[nn.Module, Any]:
    """Structured pruning repaired from unlabelled calibration ``data`` (no fine-tuning).

    Units are ranked by ``criterion`` (``"activation"``: :func:`activation_scores`, or a weight
    criterion of :mod:`prunekit.nn.structured`), removed with ``allocation``
    (``"uniform"``, ``"global"`` or ``"sensitivity"`` with ``sensitivity=``) to meet exactly one
    of ``ratio`` / ``target_macs`` / ``target_params``; then the layers whose inputs shrank are
    refitted by least squares (``reconstruct_weights``) and BatchNorm statistics re-estimated
    (``batchnorm``). Returns ``(smaller_copy, StructuredReport)``; ``model`` is not modified.
    """
    from prunekit._validation import check_choice

    from . import core

    check_choice("criterion", criterion, CALIBRATED_CRITERIA)
    check_choice("allocation", allocation, core.ALLOCATIONS)
    given = {k: v for k, v in (("ratio", ratio), ("target_macs", target_macs),
                               ("target_params", target_params)) if v is not None}
    if len(given) != 1:
        raise InvalidParameterError("give exactly one of ratio, target_macs, target_params "
                                    f"(got {sorted(given) or 'none'})")
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    calib = calibration_inputs(data, max_inputs)
    repair = (calibration_repair(calib, reconstruct_weights=reconstruct_weights,
                                 batchnorm=batchnorm, ridge=ridge)
              if reconstruct_weights or batchnorm else None)
    return core.prune(
        model, example_inputs, **given, criterion=criterion, allocation=allocation,
        sensitivity=sensitivity, round_to=round_to, ignored_layers=ignored_layers,
        min_channels=min_channels, max_ratio=max_ratio,
        scorer=activation_scorer(calib) if criterion == "activation" else None, repair=repair)


def activation_scorer(inputs: Sequence[Any]) -> Callable[[nn.Module, DependencyGraph],
                                                         dict[int, float]]:
    """A ``scorer`` hook for :func:`prunekit.nn.structured.prune`: :func:`activation_scores` on
    the calibration ``inputs``, ``"l2"`` weight scores where no dense layer reads a unit."""
    from .importance import unit_scores

    def scorer(model: nn.Module, graph: DependencyGraph) -> dict[int, float]:
        return activation_scores(model, graph, inputs, unit_scores(model, graph, "l2")[0])

    return scorer


def calibration_repair(inputs: Sequence[Any], *, reconstruct_weights: bool = True,
                       batchnorm: bool = True, ridge: float = 1e-2
                       ) -> Callable[[nn.Module, nn.Module, dict[str, Any]], list[str]]:
    """A ``repair`` hook for :func:`prunekit.nn.structured.prune`: least-squares refit of the
    layers whose inputs shrank (:func:`reconstruct`), then BatchNorm statistics re-estimated
    (:func:`recalibrate_batchnorm`), both on the calibration ``inputs``."""

    def repair(dense: nn.Module, pruned: nn.Module, plan: dict[str, Any]) -> list[str]:
        notes = []
        if reconstruct_weights:
            fitted = reconstruct(dense, pruned, plan, inputs, ridge=ridge)
            notes.append(f"least-squares reconstruction of {len(fitted)} layers: {fitted}")
        if batchnorm:
            n_bn = recalibrate_batchnorm(pruned, inputs)
            if n_bn:
                notes.append(f"BatchNorm statistics of {n_bn} layers re-estimated")
        return notes

    return repair


# ----------------------------------------------------------------------------- transformers
# Heads / FFN neurons of Hugging Face transformers: Fisher importance, global MACs allocation and
# norm-aware layer-wise reconstruction live in transformer_recovery.

from .transformer_recovery import prune_transformer_calibrated  # noqa: E402,F401
