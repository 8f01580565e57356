"""Wall-clock inference latency: warm-up runs, then the median (and p90) of timed repeats."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from prunekit._validation import check_positive_int
from prunekit.metrics._common import (
    as_model_input,
    call_module,
    check_model,
    eval_mode,
    model_device_dtype,
    num_samples,
    slice_batch,
    to_numpy,
)


@dataclass(frozen=True)
class Latency:
    """Timing of one call on a batch of ``batch_size`` samples (seconds)."""

    median_s: float
    p90_s: float
    mean_s: float
    min_s: float
    batch_size: int
    repeats: int
    warmup: int

    @property
    def per_sample_s(self) -> float:
        """Median seconds per sample."""
        return self.median_s / max(self.batch_size, 1)

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return self.batch_size / self.median_s if self.median_s > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_sample_s"] = self.per_sample_s
        d["throughput"] = self.throughput
        return d


def _prepare(model: Any, inputs: Any, batch_size: int | None) -> tuple[str, Any, int]:
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
        inputs = slice_batch(inputs, batch_size)
    kind = check_model(model)
    n = num_samples(inputs)
    if kind == "sklearn":
        return kind, to_numpy(inputs), n
    device, dtype = model_device_dtype(model)
    return kind, as_model_input(inputs, device, dtype), n


def _one_call(model: Any, kind: str, x: Any) -> Callable[[], float]:
    """A function that runs one prediction and returns its wall time in seconds."""
    if kind == "sklearn":
        def run() -> float:
            t0 = time.perf_counter()
            model.predict(x)
            return time.perf_counter() - t0
        return run
    import torch

    device, _ = model_device_dtype(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_torch() -> float:
        sync()
        t0 = time.perf_counter()
        call_module(model, x)
        sync()
        return time.perf_counter() - t0
    return run_torch


@contextlib.contextmanager
def _timing_context(models: list[tuple[Any, str]]) -> Iterator[None]:
    """Eval mode for every torch model, and inference mode, for the whole timing loop."""
    with contextlib.ExitStack() as stack:
        torch_models = [m for m, kind in models if kind == "torch"]
        if torch_models:
            import torch

            for m in torch_models:
                stack.enter_context(eval_mode(m))
            stack.enter_context(torch.inference_mode())
        yield


def _summary(times: np.ndarray, n: int, warmup: int) -> Latency:
    return Latency(
        median_s=float(np.median(times)),
        p90_s=float(np.percentile(times, 90)),
        mean_s=float(times.mean()),
        min_s=float(times.min()),
        batch_size=n,
        repeats=len(times),
        warmup=warmup,
    )


def measure_latency(
    model: Any,
    inputs: Any,
    *,
    warmup: int = 3,
    repeats: int = 20,
    batch_size: int | None = None,
) -> Latency:
    """Time ``model`` on ``inputs``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Torch modules run in eval mode under :func:`torch.inference_mode` (inputs are moved to the
    model's device once, outside the timing; CUDA is synchronised around each call);
    scikit-learn estimators time ``predict``. With ``batch_size`` only the first ``batch_size``
    samples are used. Reports the median, 90th percentile, mean and minimum.
    """
    warmup = check_positive_int("warmup", warmup, minimum=0)
    repeats = check_positive_int("repeats", repeats)
    kind, x, n = _prepare(model, inputs, batch_size)
    run = _one_call(model, kind, x)
    with _timing_context([(model, kind)]):
        for _ in range(warmup):
            run()
        times = np.array([run() for _ in range(repeats)])
    return _summary(times, n, warmup)


def measure_latency_pair(
    first: Any,
    second: Any,
    inputs: Any,
    *,
    warmup: int = 3,
    repeats: int = 20,
    batch_size: int | None = None,
) -> tuple[Latency, Latency]:
    """Time two models on the same inputs with interleaved calls (A, B, A, B, ...).

    Interleaving spreads the machine's load changes evenly over both models, so the ratio of
    their medians is far steadier than with two back-to-back :func:`measure_latency` runs.
    """
    warmup = check_positive_int("warmup", warmup, minimum=0)
    repeats = check_positive_int("repeats", repeats)
    kind_a, xa, n = _prepare(first, inputs, batch_size)
    kind_b, xb, _ = _prepare(second, inputs, batch_size)
    run_a, run_b = _one_call(first, kind_a, xa), _one_call(second, kind_b, xb)
    ta, tb = np.empty(repeats), np.empty(repeats)
    with _timing_context([(first, kind_a), (second, kind_b)]):
        for _ in range(warmup):
            run_a()
            run_b()
        for i in range(repeats):
            if i % 2:  # alternate the order too, so neither model always runs second
                tb[i] = run_b()
                ta[i] = run_a()
            else:
                ta[i] = run_a()
                tb[i] = run_b()
    return _summary(ta, n, warmup), _summary(tb, n, warmup)
