"""ONNX export of pruned PyTorch models, verified in onnxruntime.

The model is copied and put in eval mode, Conv/Linear + BatchNorm pairs are folded in the copy
(found by tracing with ``torch.fx``; skipped with a note where the model does not trace), then
exported with the ``torch.export``-based exporter (needs ``onnxscript``) or, when that fails or is
missing, the TorchScript exporter (``dynamo=False``) with a note. The file is then run in
onnxruntime on the example inputs (and on a batch one larger / a sequence one shorter when those
axes are dynamic); the largest absolute difference to PyTorch is reported and must stay within
``atol + rtol * max|reference|``, else :class:`ExportVerificationError` is raised and no file is
left behind. Scikit-learn trees and ensembles go through :mod:`prunekit.deploy.trees`.
"""

from __future__ import annotations

import copy
import inspect
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunekit._io import atomic_path
from prunekit._validation import check_choice
from prunekit.deploy._common import (
    fmt,
    ort_session,
    require,
    split_inputs,
    tensor_leaves,
    to_numpy,
)
from prunekit.errors import (
    InvalidParameterError,
    PrunekitError,
    ShapeMismatchError,
    UnsupportedModelError,
)

EXPORTERS = ("auto", "dynamo", "torchscript")
_SEQ_NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


class ExportVerificationError(PrunekitError):
    """The exported file does not reproduce the PyTorch model within the tolerance."""


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how closely the file reproduces the model."""

    path: str
    exporter: str
    opset: int | None
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    file_bytes: int
    max_abs_diff: float
    tolerance: float
    checks: list[str] = field(default_factory=list)
    folded_batchnorm: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prediction_mismatches: int | None = None
    threshold_mismatches: int | None = None

    def to_markdown(self) -> str:
        rows = {
            "file": self.path, "exporter": self.exporter, "opset": self.opset,
            "inputs": ", ".join(self.input_names), "outputs": ", ".join(self.output_names),
            "dynamic axes": "; ".join(f"{k}: {v}" for k, v in self.dynamic_axes.items()),
            "file bytes": self.file_bytes, "max abs diff vs source": self.max_abs_diff,
            "tolerance": self.tolerance, "checked on": "; ".join(self.checks),
            "BatchNorm folded into": ", ".join(self.folded_batchnorm) or None,
            "prediction mismatches": self.prediction_mismatches,
            "float64->float32 threshold mismatches": self.threshold_mismatches,
        }
        lines = ["### ONNX export", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in rows.items() if v not in (None, "")]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------- BatchNorm folding


def fold_batchnorm(model: Any) -> tuple[list[str], list[str]]:
    """Fold eval-mode BatchNorm layers into the Conv/Linear feeding them, in place.

    Returns ``(folded conv/linear names, notes)``. Pairs are found by ``torch.fx`` tracing; a
    pair is folded only when the conv's single user is the norm and both are called once.
    """
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    bns = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if not any(isinstance(m, bns) for m in model.modules()):
        return [], []
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means "do not fold"
        return [], [f"BatchNorm folding skipped: torch.fx cannot trace the model "
                    f"({type(exc).__name__}); onnxruntime folds Conv+BatchNorm itself"]
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    mods = dict(gm.named_modules())
    folded = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods[node.target], bns):
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, torch.fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        if calls[src.target] != 1 or calls[node.target] != 1:
            continue
        layer, bn = model.get_submodule(src.target), model.get_submodule(node.target)
        if bn.running_mean is None or bn.training or layer.training:
            continue
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fused = fuse_conv_bn_eval(layer, bn)
        elif isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            fused = fuse_linear_bn_eval(layer, bn)
        else:
            continue
        model.set_submodule(src.target, fused)
        model.set_submodule(node.target, nn.Identity())
        folded.append(src.target)
    return folded, []


_fold = fold_batchnorm


# --------------------------------------------------------------------------- inputs


@dataclass
class _Inputs:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    names: list[str]

    def tensors(self) -> list[Any]:
        return list(self.args) + list(self.kwargs.values())

    def feeds(self) -> dict[str, np.ndarray]:
        return {n: to_numpy(t) for n, t in zip(self.names, self.tensors(), strict=True)}

    def call(self, model: Any) -> Any:
        return model(*self.args, **self.kwargs)

    def map(self, fn: Any) -> _Inputs:
        return _Inputs(tuple(fn(a) for a in self.args),
                       {k: fn(v) for k, v in self.kwargs.items()}, self.names)


def _inputs(model: Any, example_inputs: Any) -> _Inputs:
    import torch

    args, kwargs = split_inputs(example_inputs)
    for i, t in enumerate(list(args) + list(kwargs.values())):
        if not isinstance(t, torch.Tensor):
            raise InvalidParameterError(
                f"example_inputs: input {i} is a {type(t).__name__}; ONNX export takes tensors only"
            )
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [params[i].name if i < len(params) else f"input_{i}" for i in range(len(args))]
    return _Inputs(tuple(args), kwargs, names + list(kwargs))


def _batch(t: Any) -> int | None:
    return int(t.shape[0]) if getattr(t, "dim", lambda: 0)() >= 1 else None


def _grow_batch(t: Any, extra: int = 1) -> Any:
    """``t`` with its first ``extra`` rows appended again (a batch ``extra`` larger)."""
    import torch

    reps = torch.cat([t] * (1 + (extra + len(t) - 1) // len(t)))[: len(t) + extra]
    return reps


def _seq_axes(inp: _Inputs, dynamic_sequence: bool) -> set[str]:
    if not dynamic_sequence:
        return set()
    return {n for n, t in zip(inp.names, inp.tensors(), strict=True) if t.dim() >= 2}


# --------------------------------------------------------------------------- exporters


def _dynamo_export(work: Any, inp: _Inputs, tmp: Path, dyn_batch: bool, seq: set[str],
                   opset: int | None, out_names: list[str]) -> None:
    import torch

    require("onnxscript")
    dim = torch.export.Dim.DYNAMIC

    def axes(name: str, t: Any) -> dict[int, Any] | None:
        d = {}
        if dyn_batch and t.dim() >= 1:
            d[0] = dim
        if name in seq:
            d[1] = dim
        return d or None

    n_args = len(inp.args)
    shapes_args = tuple(axes(n, t) for n, t in zip(inp.names[:n_args], inp.args, strict=True))
    shapes_kw = {k: axes(k, v) for k, v in inp.kwargs.items()}
    dynamic_shapes: Any = shapes_kw if not inp.args else (
        shapes_args if not inp.kwargs else {**dict(zip(inp.names, shapes_args, strict=False)),
                                            **shapes_kw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(work, inp.args, kwargs=inp.kwargs or None, dynamo=True,
                                 dynamic_shapes=dynamic_shapes if dyn_batch or seq else None,
                                 opset_version=opset, verbose=False, report=False)
    prog.save(str(tmp))
    _tidy_names(tmp, inp, dyn_batch, seq, out_names)


def _tidy_names(path: Path, inp: _Inputs, dyn_batch: bool, seq: set[str],
                out_names: list[str]) -> None:
    """Name torch.export's axis symbols (``s77``) batch/sequence and its outputs (``linear_1``)
    after the model's output keys, as the TorchScript path does."""
    onnx = require("onnx")
    m = onnx.load(str(path))
    rename: dict[str, str] = {}
    for v in m.graph.input:
        dims = v.type.tensor_type.shape.dim
        for axis, label in ((0, "batch" if dyn_batch else None),
                            (1, "sequence" if v.name in seq else None)):
            if label and len(dims) > axis and dims[axis].dim_param:
                rename.setdefault(dims[axis].dim_param, label)
    for v in [*m.graph.input, *m.graph.output, *m.graph.value_info]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in rename:
                d.dim_param = rename[d.dim_param]
    old = [o.name for o in m.graph.output]
    taken = {t for n in m.graph.node for t in (*n.input, *n.output)} | {
        i.name for i in (*m.graph.input, *m.graph.initializer)}
    if len(old) == len(out_names) and not (set(out_names) - set(old)) & taken:
        names = dict(zip(old, out_names, strict=True))
        for n in m.graph.node:
            n.output[:] = [names.get(t, t) for t in n.output]
            n.input[:] = [names.get(t, t) for t in n.input]
        for o in m.graph.output:
            o.name = names[o.name]
    onnx.save(m, str(path))


class _Positional:
    """Wrap a keyword-input model so that the TorchScript tracer can feed it positionally."""

    def __new__(cls, model: Any, n_args: int, keys: list[str]) -> Any:
        import torch

        class Positional(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: Any) -> Any:
                kw = dict(zip(keys, tensors[n_args:], strict=True))
                return self.model(*tensors[:n_args], **kw)

        return Positional()


def _torchscript_export(work: Any, inp: _Inputs, target: Any, dyn_batch: bool, seq: set[str],
                        opset: int | None, out_names: list[str]) -> None:
    import torch

    dyn: dict[str, dict[int, str]] = {}
    for n, t in zip(inp.names, inp.tensors(), strict=True):
        d = {0: "batch"} if dyn_batch and t.dim() >= 1 else {}
        if n in seq:
            d[1] = "sequence"
        if d:
            dyn[n] = d
    if dyn_batch:
        for n in out_names:
            dyn[n] = {0: "batch"}
    if inp.kwargs:  # the TorchScript tracer takes positional inputs only
        work = _Positional(work, len(inp.args), list(inp.kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(work, tuple(inp.tensors()), target, dynamo=False,
                          input_names=inp.names,
                          output_names=out_names, dynamic_axes=dyn or None,
                          opset_version=opset or 17, do_constant_folding=True)


def _run_export(work: Any, inp: _Inputs, tmp: Path, exporter: str, dyn_batch: bool, seq: set[str],
                opset: int | None, out_names: list[str], notes: list[str]) -> str:
    """Export with the chosen exporter (``auto``: dynamo, then TorchScript); return its name."""
    errors: list[str] = []
    if exporter in ("auto", "dynamo"):
        try:
            _dynamo_export(work, inp, tmp, dyn_batch, seq, opset, out_names)
            return "dynamo"
        except Exception as exc:  # noqa: BLE001 - report and fall back
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            msg = f"{type(exc).__name__}: {first}"
            errors.append(f"dynamo exporter: {msg}")
            if exporter == "dynamo":
                raise _unsupported(work, inp, errors) from exc
            notes.append(f"the torch.export-based (dynamo) exporter failed ({msg}); "
                         f"used the TorchScript exporter (dynamo=False) instead")
    try:
        _torchscript_export(work, inp, str(tmp), dyn_batch, seq, opset, out_names)
        return "torchscript"
    except Exception as exc:  # noqa: BLE001
        errors.append(f"TorchScript exporter: {type(exc).__name__}: "
                      f"{str(exc).strip()[:300]}")
        raise _unsupported(work, inp, errors) from exc


def _unsupported(work: Any, inp: _Inputs, errors: list[str]) -> UnsupportedModelError:
    layer = locate_unexportable(work, inp)
    where = (f"the first layer that does not export on its own is {layer[0]!r} "
             f"({layer[1]}): {layer[2]}") if layer else "no single layer fails on its own"
    return UnsupportedModelError(
        f"the model cannot be exported to ONNX; {where}. Exporter errors: " + " | ".join(errors)
    )


def locate_unexportable(model: Any, inp: _Inputs) -> tuple[str, str, str] | None:
    """Export each submodule alone (deepest first) on the inputs it saw; return the first failure.

    ``(name, class name, error)`` or ``None``; uses the fast TorchScript exporter.
    """
    import torch

    seen: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    hooks = []
    for name, m in model.named_modules():
        if not name:
            continue

        def hook(mod: Any, args: Any, kwargs: Any, name: str = name) -> None:
            seen.setdefault(name, (args, kwargs))

        hooks.append(m.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            inp.call(model)
    except Exception:  # noqa: BLE001 - the model itself fails: nothing to localise
        return None
    finally:
        for h in hooks:
            h.remove()
    names = sorted(seen, key=lambda n: -n.count("."))  # deepest first
    for name in names[:300]:
        args, kwargs = seen[name]
        if not all(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
            continue
        sub = model.get_submodule(name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(sub, args, io.BytesIO(), kwargs=dict(kwargs) or None,
                                  dynamo=False)
        except Exception as exc:  # noqa: BLE001
            return name, type(sub).__name__, f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


# --------------------------------------------------------------------------- verification


def _compare(ref: list[Any], got: list[np.ndarray], atol: float, rtol: float, what: str,
             out_names: list[str]) -> tuple[float, float]:
    """Max abs diff and tolerance over all outputs; raise on shape or value mismatch."""
    if len(got) < len(ref):
        raise ExportVerificationError(
            f"{what}: the ONNX model has {len(got)} outputs, PyTorch {len(ref)}"
        )
    worst, worst_tol = 0.0, 0.0
    for i, (r, g) in enumerate(zip(ref, got, strict=False)):
        r = to_numpy(r)
        name = out_names[i] if i < len(out_names) else f"output {i}"
        if r.shape != g.shape:
            raise ExportVerificationError(
                f"{what}: output {name!r} has shape {g.shape} in onnxruntime, {r.shape} in "
                f"PyTorch (an axis was fixed at export; check dynamic_batch/dynamic_sequence)"
            )
        if r.size == 0:
            continue
        if r.dtype.kind in "biu":
            diff = float(np.max(r != g))
            tol = 0.0
        else:
            diff = float(np.max(np.abs(r.astype(np.float64) - g.astype(np.float64))))
            tol = atol + rtol * float(np.max(np.abs(r)))
        if not np.isfinite(diff) or diff > tol:
            raise ExportVerificationError(
                f"{what}: output {name!r} differs from PyTorch by {diff:.3g} (tolerance "
                f"{tol:.3g}); the model changes under export (a data-dependent branch, an op "
                f"exported differently, or BatchNorm folding: try fold_batchnorm=False or "
                f"exporter='torchscript'/'dynamo')"
            )
        if diff >= worst:
            worst, worst_tol = diff, max(worst_tol, tol)
        worst_tol = max(worst_tol, tol)
    return worst, worst_tol


def _raw_output(model: Any, inp: _Inputs) -> Any:
    import torch

    from prunekit._modes import eval_mode

    with torch.no_grad(), eval_mode(model):
        return inp.call(model)


def _reference(model: Any, inp: _Inputs) -> list[Any]:
    return tensor_leaves(_raw_output(model, inp))


def _verify(model: Any, tmp: Path, inp: _Inputs, dyn_batch: bool, seq: set[str], atol: float,
            rtol: float) -> tuple[float, float, list[str], list[str]]:
    try:
        sess = ort_session(tmp)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
        raise UnsupportedModelError(
            f"onnxruntime cannot load the exported model ({type(exc).__name__}: "
            f"{str(exc).strip()[:300]}); try another opset= or exporter="
        ) from exc
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    cases = [("example inputs", inp)]
    b = next((_batch(t) for t in inp.tensors() if _batch(t)), None)
    if dyn_batch and b:
        cases.append((f"batch {b + 1}", inp.map(lambda t: _grow_batch(t) if t.dim() else t)))
    if seq:
        lengths = {int(t.shape[1]) for n, t in zip(inp.names, inp.tensors(), strict=True)
                   if n in seq}
        if min(lengths) > 1:
            def trim(name: str, t: Any) -> Any:
                return t[:, :-1] if name in seq else t
            cases.append(("sequence one shorter", _Inputs(
                tuple(trim(n, t) for n, t in zip(inp.names, inp.args, strict=False)),
                {k: trim(k, v) for k, v in inp.kwargs.items()}, inp.names)))
    worst, tol, checks = 0.0, 0.0, []
    for what, case in cases:
        feeds = case.feeds()
        missing = [n for n in in_names if n not in feeds]
        if missing:
            raise ExportVerificationError(
                f"the ONNX model expects inputs {missing} that example_inputs do not name "
                f"(given: {list(feeds)})"
            )
        try:
            got = sess.run(None, {n: feeds[n] for n in in_names})
        except Exception as exc:  # noqa: BLE001
            raise ExportVerificationError(
                f"{what}: onnxruntime fails to run the exported model ({type(exc).__name__}: "
                f"{str(exc).strip()[:300]})"
            ) from exc
        d, t = _compare(_reference(model, case), got, atol, rtol, what, out_names)
        worst, tol = max(worst, d), max(tol, t)
        shape = [tuple(x.shape) for x in case.tensors()]
        checks.append(f"{what} {shape[0] if len(shape) == 1 else shape}")
    return worst, tol, checks, in_names


def _output_names(out: Any, n: int) -> list[str]:
    """Keys of a dict / ModelOutput result (``last_hidden_state``...), else ``output_i``."""
    import torch

    keys = list(out.keys()) if hasattr(out, "keys") else []
    if len(keys) == n and all(isinstance(out[k], torch.Tensor) for k in keys):
        return [str(k) for k in keys]
    return [f"output_{i}" for i in range(n)]


def _dynamic_axes(path: Path) -> tuple[dict[str, dict[int, str]], list[str]]:
    onnx = require("onnx")
    m = onnx.load(str(path), load_external_data=False)
    axes = {}
    for v in m.graph.input:
        dims = v.type.tensor_type.shape.dim
        d = {i: x.dim_param for i, x in enumerate(dims) if x.dim_param}
        if d:
            axes[v.name] = d
    return axes, [o.name for o in m.graph.output]


def _opset(path: Path) -> int | None:
    onnx = require("onnx")
    m = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in m.opset_import if o.domain in ("", "ai.onnx")), None)


# --------------------------------------------------------------------------- entry point


def export_onnx(
    model: Any,
    example_inputs: Any,
    path: str | os.PathLike[str],
    *,
    fold_batchnorm: bool = True,
    dynamic_batch: bool = True,
    dynamic_sequence: bool | None = None,
    opset: int | None = None,
    exporter: str = "auto",
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> ExportReport:
    """Export ``model`` to ONNX at ``path``, verify it in onnxruntime, return an ExportReport.

    ``model``: a torch ``nn.Module`` (left unchanged) or a fitted scikit-learn tree / forest /
    boosting ensemble (then ``example_inputs`` is a 2-D array ``X``; see
    :func:`prunekit.deploy.trees.export_sklearn_onnx`). ``example_inputs``: a tensor, a tuple of
    tensors or a dict of tensors (a tokenizer output for Hugging Face encoders).
    ``dynamic_sequence`` (default: on when an ``input_ids`` input is given) makes axis 1 of 2-D+
    inputs dynamic. ``exporter``: ``"auto"`` (torch.export-based, falling back to TorchScript with
    a note), ``"dynamo"`` or ``"torchscript"``. The file is written atomically and only after it
    reproduces PyTorch within ``atol + rtol * max|output|``.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        from prunekit.deploy.trees import export_sklearn_onnx, is_sklearn_model

        if is_sklearn_model(model):
            return export_sklearn_onnx(model, example_inputs, path, opset=opset)
        raise UnsupportedModelError(
            f"model must be a torch nn.Module or a fitted scikit-learn tree/ensemble, got "
            f"{type(model).__name__}"
        )
    check_choice("exporter", exporter, EXPORTERS)
    for name, v in (("atol", atol), ("rtol", rtol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise InvalidParameterError(f"{name} must be a number >= 0, got {v!r}")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise InvalidParameterError(f"opset must be an integer >= 7 or None, got {opset!r}")
    require("onnx")
    require("onnxruntime")
    inp = _inputs(model, example_inputs)
    if dynamic_sequence is None:
        dynamic_sequence = "input_ids" in inp.names
    try:
        raw = _raw_output(model, inp)
        ref = tensor_leaves(raw)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        raise ShapeMismatchError(f"the model cannot run on example_inputs: {exc}") from exc
    if not ref:
        raise UnsupportedModelError("the model returns no tensor; nothing to export")

    work = copy.deepcopy(model).eval()
    folded, notes = _fold(work) if fold_batchnorm else ([], [])
    seq = _seq_axes(inp, bool(dynamic_sequence))
    exp_inp = inp
    if dynamic_batch and any(_batch(t) == 1 for t in inp.tensors()):
        # torch.export specialises size-1 axes: export on a batch of 2 (rows repeated)
        exp_inp = inp.map(lambda t: _grow_batch(t) if _batch(t) == 1 else t)
    with atomic_path(path) as tmp:
        used = _run_export(work, exp_inp, tmp, exporter, dynamic_batch, seq, opset,
                           _output_names(raw, len(ref)), notes)
        diff, tol, checks, in_names = _verify(model, tmp, inp, dynamic_batch, seq, atol, rtol)
        axes, out_names = _dynamic_axes(tmp)
        opset_used = _opset(tmp)
        size = tmp.stat().st_size
    return ExportReport(str(path), used, opset_used, in_names, out_names, axes, size, diff, tol,
                        checks, folded, notes)
