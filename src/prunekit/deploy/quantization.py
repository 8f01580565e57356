"""int8 quantization of exported ONNX models (onnxruntime.quantization) and of torch Linear layers.

``quantize(..., mode="dynamic")``: int8 weights, activations quantized on the fly (MatMul/Gemm;
Conv stays float because onnxruntime's ConvInteger is slow on CPU — use static for CNNs).
``mode="static"``: QDQ format, per-channel int8 weights and int8 activations whose ranges are
calibrated (MinMax) on batches of the user's data. With ``eval_data`` the fp32 and int8 files
are compared (top-1 accuracy when the batches carry labels, else the cosine similarity of the
outputs) and timed; ``max_drop`` turns a larger loss into :class:`QuantizationAccuracyError`
naming the layers whose int8 weights are least accurate, and no file is written.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunekit._io import atomic_path
from prunekit._validation import check_choice, check_positive_int
from prunekit.deploy._common import fmt, latency_ratio, median_times, ort_session, require, to_numpy
from prunekit.errors import InvalidParameterError, PrunekitError

MODES = ("dynamic", "static")
METRICS = ("auto", "accuracy", "cosine")
_NP_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
             "tensor(double)": np.float64, "tensor(bool)": np.bool_}


class QuantizationAccuracyError(PrunekitError):
    """int8 quantization lost more accuracy (or output agreement) than ``max_drop`` allows."""


@dataclass
class QuantizeReport:
    """What :func:`quantize` / :func:`quantize_torch_dynamic` did and measured."""

    source: str
    output: str | None
    mode: str
    per_channel: bool
    source_bytes: int
    output_bytes: int
    metric: str | None = None
    before: float | None = None
    after: float | None = None
    latency_before_s: float | None = None
    latency_after_s: float | None = None
    calibration_batches: int = 0
    excluded_nodes: list[str] = field(default_factory=list)
    deprecated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def drop(self) -> float | None:
        """Loss from quantization: accuracy points (as a fraction) or ``1 - cosine``."""
        if self.before is None or self.after is None:
            return None
        return self.before - self.after

    @property
    def size_ratio(self) -> float:
        return self.output_bytes / max(self.source_bytes, 1)

    @property
    def speedup(self) -> float | None:
        return latency_ratio(self.latency_before_s, self.latency_after_s)

    def to_markdown(self) -> str:
        rows = {
            "source": self.source, "output": self.output,
            "mode": self.mode + (" (deprecated torch API)" if self.deprecated else ""),
            "per-channel weights": self.per_channel, "bytes before": self.source_bytes,
            "bytes after": self.output_bytes, "size ratio": self.size_ratio,
            f"{self.metric} before": self.before, f"{self.metric} after": self.after,
            "drop": self.drop, "latency before (ms)": _ms(self.latency_before_s),
            "latency after (ms)": _ms(self.latency_after_s), "speed-up": self.speedup,
            "calibration batches": self.calibration_batches or None,
            "excluded nodes": ", ".join(self.excluded_nodes) or None,
        }
        lines = ["### int8 quantization", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in rows.items()
                  if v is not None and not k.startswith("None")]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)


def _ms(s: float | None) -> float | None:
    return None if s is None else s * 1e3


# --------------------------------------------------------------------------- batches -> feeds


def _input_specs(sess: Any) -> list[tuple[str, Any]]:
    return [(i.name, _NP_TYPES.get(i.type, np.float32)) for i in sess.get_inputs()]


def batch_feeds(batch: Any, specs: Sequence[tuple[str, Any]]) -> tuple[dict[str, np.ndarray], Any]:
    """``(feeds, labels or None)`` of one batch: a tensor/array, a tuple ``(x, y)`` from a
    DataLoader, a tuple of all inputs, or a dict (tokenizer output; ``labels`` key optional)."""
    names = [n for n, _ in specs]
    labels = None
    if isinstance(batch, Mapping):
        missing = [n for n in names if n not in batch]
        if missing:
            raise InvalidParameterError(
                f"a batch lacks the model inputs {missing} (batch keys: {list(batch)})"
            )
        raw = [batch[n] for n in names]
        labels = batch.get("labels")
    elif isinstance(batch, (list, tuple)):
        if len(batch) < len(names):
            raise InvalidParameterError(
                f"a batch has {len(batch)} items, the model takes {len(names)} inputs {names}"
            )
        raw = list(batch[: len(names)])
        if len(batch) == len(names) + 1:
            labels = batch[-1]
    else:
        if len(names) != 1:
            raise InvalidParameterError(f"the model takes inputs {names}; pass batches as dicts")
        raw = [batch]
    feeds = {n: np.ascontiguousarray(to_numpy(x), dtype=t)
             for (n, t), x in zip(specs, raw, strict=True)}
    return feeds, None if labels is None else to_numpy(labels)


class _Reader:
    """onnxruntime CalibrationDataReader over the user's batches (at most ``limit``)."""

    def __new__(cls, batches: Iterable[Any], specs: Sequence[tuple[str, Any]], limit: int) -> Any:
        oq = require("onnxruntime.quantization")

        class Reader(oq.CalibrationDataReader):
            def __init__(self) -> None:
                self.feeds = []
                for i, b in enumerate(batches):
                    if i >= limit:
                        break
                    self.feeds.append(batch_feeds(b, specs)[0])
                self.count = len(self.feeds)
                self._it = iter(self.feeds)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self._it, None)

            def rewind(self) -> None:
                self._it = iter(self.feeds)

        return Reader()


# --------------------------------------------------------------------------- evaluation


def _run_all(sess: Any, data: Iterable[Any], limit: int) -> tuple[list[np.ndarray], list[Any]]:
    specs = _input_specs(sess)
    outs, labels = [], []
    for i, b in enumerate(data):
        if i >= limit:
            break
        feeds, y = batch_feeds(b, specs)
        outs.append(sess.run(None, feeds)[0])
        labels.append(y)
    if not outs:
        raise InvalidParameterError("eval_data is empty")
    return outs, labels


def evaluate_onnx(path: str | os.PathLike[str], data: Iterable[Any], *,
                  max_batches: int = 1000) -> float:
    """Top-1 accuracy of an ONNX classifier (first output) over batches ``(x, y)``."""
    outs, labels = _run_all(ort_session(path), data, max_batches)
    if any(y is None for y in labels):
        raise InvalidParameterError("evaluate_onnx needs labelled batches (x, y)")
    return _accuracy(outs, labels)


def _accuracy(outs: list[np.ndarray], labels: list[Any]) -> float:
    hits = sum(int((o.reshape(len(o), -1).argmax(1) == np.asarray(y).reshape(-1)).sum())
               for o, y in zip(outs, labels, strict=True))
    return hits / max(sum(len(o) for o in outs), 1)


def _cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    x = np.concatenate([o.reshape(len(o), -1) for o in a]).astype(np.float64)
    y = np.concatenate([o.reshape(len(o), -1) for o in b]).astype(np.float64)
    num = (x * y).sum(1)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def _compare(src: Path, out: Path, data: Iterable[Any], metric: str, max_batches: int,
             report: QuantizeReport) -> dict[str, np.ndarray]:
    """Fill the report's metric and latencies; return the first batch's feeds."""
    s_fp, s_q = ort_session(src), ort_session(out)
    batches = []
    for i, b in enumerate(data):
        if i >= max_batches:
            break
        batches.append(b)
    o_fp, labels = _run_all(s_fp, batches, max_batches)
    o_q, _ = _run_all(s_q, batches, max_batches)
    has_labels = all(y is not None for y in labels)
    if metric == "auto":
        metric = "accuracy" if has_labels else "cosine"
    if metric == "accuracy" and not has_labels:
        raise InvalidParameterError("metric='accuracy' needs labelled eval batches (x, y)")
    report.metric = metric
    if metric == "accuracy":
        report.before, report.after = _accuracy(o_fp, labels), _accuracy(o_q, labels)
    else:
        report.before, report.after = 1.0, _cosine(o_fp, o_q)
    feeds = batch_feeds(batches[0], _input_specs(s_fp))[0]
    t = median_times({"fp32": lambda: s_fp.run(None, feeds), "int8": lambda: s_q.run(None, feeds)},
                     reps=15, budget_s=5.0)
    report.latency_before_s, report.latency_after_s = t["fp32"], t["int8"]
    if t["int8"] > 1.05 * t["fp32"]:
        report.notes.append(
            f"int8 is {t['int8'] / t['fp32']:.2f}x slower than fp32 on this batch (small layers: "
            f"quantize/dequantize overhead outweighs the int8 arithmetic); prefer the fp32 "
            f"file for speed, int8 for size")
    return feeds


def layer_error_increase(fp32_path: str | os.PathLike[str], int8_path: str | os.PathLike[str],
                         feeds: Mapping[str, np.ndarray], top: int = 3) -> list[tuple[str, float]]:
    """Conv/MatMul/Gemm nodes ranked by how much relative error they add under int8.

    The input of every such node is read in both models (quantizers keep node names; an
    input they re-quantize is read in float from the node of the same name) and compared on
    ``feeds``; a node's score is the growth of the relative error from its input to the input of
    the next such node in graph order (the model output after the last) — the error it
    introduces rather than the error it inherits. Exact for chains, an estimate for DAGs.
    """
    onnx = require("onnx")

    src, q = onnx.load(str(fp32_path)), onnx.load(str(int8_path))
    q_nodes = {n.name: n for n in q.graph.node if n.name}
    produced = {o for n in q.graph.node for o in n.output} | {i.name for i in q.graph.input}
    targets = []
    for n in src.graph.node:
        if n.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        qn = q_nodes.get(n.name) or q_nodes.get(f"{n.name}_quant")
        cands = ([qn.input[0]] if qn is not None else []) + (
            [n.input[0]] if n.input[0] in produced else [])
        if cands:
            targets.append((n.name or n.output[0], n.input[0], cands))
    if not targets:
        return []
    out_fp, out_q = src.graph.output[0].name, q.graph.output[0].name
    fp_names = sorted({t for _, t, _ in targets} | {out_fp})
    q_names = sorted({c for *_, cs in targets for c in cs} | {out_q})
    values = []
    for model, names in ((src, fp_names), (q, q_names)):
        have = {o.name for o in model.graph.output}
        model.graph.output.extend([onnx.helper.make_empty_tensor_value_info(t) for t in names
                                   if t not in have])
        outs = ort_session(model.SerializeToString()).run(names, dict(feeds))
        values.append(dict(zip(names, outs, strict=True)))

    def rel(a: np.ndarray, b: np.ndarray) -> float | None:
        if a.shape != b.shape or b.dtype.kind != "f":
            return None
        a, b = a.astype(np.float64), b.astype(np.float64)
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))

    errs = []
    for name, fp_t, cands in targets:
        e = next((r for c in cands if (r := rel(values[0][fp_t], values[1][c])) is not None),
                 None)
        if e is not None:
            errs.append((name, e))
    final = rel(values[0][out_fp], values[1][out_q])
    nxt = [e for _, e in errs[1:]] + [final if final is not None else errs[-1][1]]
    scores = [(name, after - e) for (name, e), after in zip(errs, nxt, strict=True)
              if after - e > 0]
    return sorted(scores, key=lambda t: -t[1])[:top]


def weight_quantization_errors(path: str | os.PathLike[str], per_channel: bool = True,
                               top: int = 3) -> list[tuple[str, float]]:
    """Nodes (Conv/MatMul/Gemm) ranked by the relative error of their int8-rounded weights."""
    onnx = require("onnx")
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {t.name: t for t in m.graph.initializer}
    errs = []
    for node in m.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        w_name = next((i for i in node.input[1:2] if i in inits), None)
        if w_name is None:
            continue
        w = numpy_helper.to_array(inits[w_name]).astype(np.float64)
        if w.ndim < 2:
            continue
        axis = 0 if node.op_type == "Conv" else w.ndim - 1
        red = tuple(a for a in range(w.ndim) if a != axis) if per_channel else None
        scale = np.maximum(np.abs(w).max(axis=red, keepdims=True), 1e-12) / 127.0
        q = np.clip(np.round(w / scale), -127, 127) * scale
        errs.append((node.name or w_name, float(np.linalg.norm(q - w) /
                                                 max(np.linalg.norm(w), 1e-12))))
    return sorted(errs, key=lambda e: -e[1])[:top]


# --------------------------------------------------------------------------- entry points


def quantize(
    onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    mode: str = "dynamic",
    calibration: Iterable[Any] | None = None,
    *,
    per_channel: bool = True,
    eval_data: Iterable[Any] | None = None,
    metric: str = "auto",
    max_drop: float | None = None,
    max_calibration_batches: int = 32,
    max_eval_batches: int = 100,
    exclude_nodes: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    preprocess: bool = True,
) -> QuantizeReport:
    """Write an int8 copy of ``onnx_path`` to ``out_path``; return a :class:`QuantizeReport`.

    ``calibration`` (static mode): batches as a DataLoader yields them (``(x, y)``, tensors or
    tokenizer dicts); the first ``max_calibration_batches`` are used. ``eval_data``: batches to
    compare fp32 and int8 on (accuracy with labels, else output cosine) and time them;
    ``max_drop``: largest accepted drop (accuracy as a fraction, e.g. 0.01 = 1 point, or
    ``1 - cosine``) — beyond it :class:`QuantizationAccuracyError` is raised and nothing is
    written. ``op_types``: node types to quantize (default: dynamic ``MatMul, Gemm, Attention,
    LSTM, Gather``; static: all supported).
    """
    check_choice("mode", mode, MODES)
    check_choice("metric", metric, METRICS)
    check_positive_int("max_calibration_batches", max_calibration_batches)
    check_positive_int("max_eval_batches", max_eval_batches)
    if max_drop is not None and (isinstance(max_drop, bool)
                                 or not isinstance(max_drop, (int, float)) or not max_drop >= 0):
        raise InvalidParameterError(f"max_drop must be a number >= 0 or None, got {max_drop!r}")
    if max_drop is not None and eval_data is None:
        raise InvalidParameterError("max_drop needs eval_data= (batches to measure the drop on)")
    src = Path(onnx_path)
    if not src.is_file():
        raise InvalidParameterError(f"onnx_path={str(src)!r} is not a file")
    if mode == "static" and calibration is None:
        raise InvalidParameterError("mode='static' needs calibration= (batches of the user's data)")
    oq = require("onnxruntime.quantization")
    report = QuantizeReport(str(src), str(out_path), mode, per_channel, src.stat().st_size, 0,
                            excluded_nodes=list(exclude_nodes))
    with tempfile.TemporaryDirectory() as work, atomic_path(out_path) as tmp:
        model_in = _preprocess(src, Path(work), report) if preprocess else src
        with _quiet():
            if mode == "dynamic":
                types = list(op_types) if op_types else ["MatMul", "Gemm", "Attention", "LSTM",
                                                         "Gather"]
                if not op_types:
                    report.notes.append("Conv stays float in dynamic mode (ConvInteger is slow "
                                        "in onnxruntime); use mode='static' for CNNs")
                oq.quantize_dynamic(str(model_in), str(tmp), weight_type=oq.QuantType.QInt8,
                                    per_channel=per_channel, op_types_to_quantize=types,
                                    nodes_to_exclude=list(exclude_nodes))
            else:
                specs = _input_specs(ort_session(model_in))
                reader = _Reader(calibration, specs, max_calibration_batches)
                if reader.count == 0:
                    raise InvalidParameterError("calibration is empty")
                report.calibration_batches = reader.count
                oq.quantize_static(str(model_in), str(tmp), reader,
                                   quant_format=oq.QuantFormat.QDQ, per_channel=per_channel,
                                   activation_type=oq.QuantType.QInt8,
                                   weight_type=oq.QuantType.QInt8,
                                   op_types_to_quantize=list(op_types) if op_types else None,
                                   nodes_to_exclude=list(exclude_nodes),
                                   calibrate_method=oq.CalibrationMethod.MinMax)
        report.output_bytes = tmp.stat().st_size
        if eval_data is not None:
            feeds = _compare(src, tmp, eval_data, metric, max_eval_batches, report)
            _check_drop(report, max_drop, model_in, tmp, feeds, per_channel)
    return report


def _preprocess(src: Path, work: Path, report: QuantizeReport) -> Path:
    """onnxruntime's recommended pre-processing (shape inference + graph optimisation).

    Symbolic shape inference is tried first, then plain ONNX shape inference; where both
    fail the model is quantized as exported, with a note.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out, src = work.resolve() / "pre.onnx", src.resolve()
    error = None
    for skip_symbolic in (False, True):
        try:
            # onnxruntime drops sym_shape_infer_temp.onnx (+ external data) into the current
            # folder when symbolic shape inference is incomplete: keep that inside `work`
            with _quiet(), contextlib.chdir(work):
                quant_pre_process(str(src), str(out), skip_symbolic_shape=skip_symbolic)
            if skip_symbolic:
                report.notes.append(f"symbolic shape inference failed ({error}); "
                                    f"pre-processed with ONNX shape inference only")
            return out
        except Exception as exc:  # noqa: BLE001 - optional step
            error = f"{type(exc).__name__}: {str(exc).strip()[:120]}"
    report.notes.append(f"pre-processing skipped ({error})")
    return src


def _check_drop(report: QuantizeReport, max_drop: float | None, model: Path, out: Path,
                feeds: Mapping[str, np.ndarray], per_channel: bool) -> None:
    if max_drop is None or report.drop is None or report.drop <= max_drop:
        return
    try:
        worst = layer_error_increase(model, out, feeds)
        what = "Layers adding the most output error under int8"
        names = ", ".join(f"{n!r} ({e:+.2%} relative error)" for n, e in worst)
    except Exception:  # noqa: BLE001 - fall back to a weight-only ranking
        worst = []
    if not worst:
        worst = weight_quantization_errors(model, per_channel)
        what = "Layers with the least accurate int8 weights"
        names = ", ".join(f"{n!r} (weight error {e:.2%})" for n, e in worst)
    raise QuantizationAccuracyError(
        f"int8 {report.mode} quantization drops {report.metric} by {report.drop:.4f} "
        f"({report.before:.4f} -> {report.after:.4f}), more than max_drop={max_drop}; no file "
        f"was written. {what}: {names}. Keep them in float with exclude_nodes=[...], use "
        f"mode='static' with more calibration batches, or recover the model first"
    )


@contextlib.contextmanager
def _quiet() -> Any:
    import logging

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _state_bytes(model: Any) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def quantize_torch_dynamic(model: Any, example_inputs: Any = None) -> tuple[Any, QuantizeReport]:
    """PyTorch-native dynamic int8 quantization of every ``nn.Linear`` (a copy is returned).

    Deprecated upstream: ``torch.ao.quantization.quantize_dynamic`` warns that it is deprecated
    (torchao is its successor); it still works on torch 2.13 CPU. With ``example_inputs`` the
    output cosine and both latencies are measured.
    """
    import copy

    import torch

    from prunekit.deploy._common import split_inputs, tensor_leaves

    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(f"model must be a torch nn.Module, got {type(model).__name__}")
    work = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(work, {torch.nn.Linear}, dtype=torch.qint8)
    report = QuantizeReport(type(model).__name__, None, "torch-dynamic", False,
                            _state_bytes(model), _state_bytes(q), deprecated=True)
    report.notes.append("torch.ao.quantization.quantize_dynamic is deprecated in PyTorch "
                        "(successor: torchao); kept because it still works on torch 2.13 CPU")
    if example_inputs is not None:
        args, kwargs = split_inputs(example_inputs)
        with torch.inference_mode():
            ref = tensor_leaves(work(*args, **kwargs))[0]
            got = tensor_leaves(q(*args, **kwargs))[0]
            t = median_times({"fp32": lambda: work(*args, **kwargs),
                              "int8": lambda: q(*args, **kwargs)}, reps=15, budget_s=5.0)
        report.metric = "cosine"
        report.before, report.after = 1.0, _cosine([to_numpy(ref)], [to_numpy(got)])
        report.latency_before_s, report.latency_after_s = t["fp32"], t["int8"]
    return q, report
