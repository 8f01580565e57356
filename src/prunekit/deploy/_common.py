"""Shared helpers of :mod:`prunekit.deploy`: optional imports, inputs, timing, Markdown."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from prunekit._compat import optional_import
from prunekit.errors import InvalidParameterError

EXTRA = "deploy"


def require(module: str) -> ModuleType:
    """Import a module of the ``deploy`` extra or raise OptionalDependencyError naming it."""
    return optional_import(module, EXTRA)


def ort_session(path: str | os.PathLike[str] | bytes, threads: int | None = None) -> Any:
    """A CPU onnxruntime session (``threads``: intra-op threads, default: torch's count)."""
    ort = require("onnxruntime")
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    model = path if isinstance(path, bytes) else os.fspath(path)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def split_inputs(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of a model call: a tensor, a tuple/list of them, or a dict (HF)."""
    import torch

    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    if isinstance(example_inputs, Sequence) and not isinstance(example_inputs, str):
        return tuple(example_inputs), {}
    raise InvalidParameterError(
        "example_inputs must be a tensor, a tuple of tensors or a dict of tensors (e.g. a "
        f"tokenizer output with input_ids/attention_mask), got {type(example_inputs).__name__}"
    )


def tensor_leaves(out: Any) -> list[Any]:
    """Tensors of a (possibly nested / ModelOutput) model output, in pytree order."""
    import torch
    from torch.utils import _pytree

    if hasattr(out, "to_tuple"):  # transformers ModelOutput
        out = out.to_tuple()
    return [t for t in _pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def to_numpy(x: Any) -> np.ndarray:
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def median_times(fns: Mapping[str, Callable[[], Any]], *, reps: int = 20, warmup: int = 2,
                 budget_s: float | None = None) -> dict[str, float]:
    """Interleaved median seconds per call of each function (same noise for all)."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    for i in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
        if budget_s is not None and i >= 2 and time.perf_counter() - start > budget_s:
            break
    return {k: statistics.median(v) for k, v in times.items()}


def latency_ratio(before_s: float | None, after_s: float | None) -> float | None:
    """Latency before / after (> 1: faster), None when either is missing or zero."""
    if not before_s or not after_s:
        return None
    return before_s / after_s


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
