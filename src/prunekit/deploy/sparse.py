"""Sparse CPU inference: run unstructured-sparse Linear / 1x1 conv layers with CSR kernels.

Dense kernels cost the same at 0 % and 90 % sparsity. CSR kernels are faster on very sparse
weights only with the right orientation and routine: ``W_csr @ x.T`` (torch), ``torch.mv`` for a
single row, or scipy's CSR mat-vec — the mirrored ``x @ W.T_csr`` is 10-70x *slower* on CPU.
Which one wins, and whether sparse beats dense at all, depends on the shape, batch, sparsity and
thread count, so :func:`to_sparse_inference` measures the candidate kernels per layer on the
input that layer sees for ``example_inputs`` and swaps a layer only when a sparse kernel is at
least ``min_gain`` times faster and agrees with the dense output. The swapped modules are for
inference (weights are buffers; the scipy kernel does not track gradients).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit._validation import check_fraction
from prunekit.deploy._common import fmt, latency_ratio, median_times, split_inputs, tensor_leaves
from prunekit.errors import InvalidParameterError, ShapeMismatchError


class _CSRModule(nn.Module):
    """Holds a weight as CSR buffers (``crow_indices``, ``col_indices``, ``values``), so that
    ``state_dict``, ``deepcopy``, ``.to()`` and pickling work; the CSR tensor is rebuilt lazily."""

    def _store(self, w: torch.Tensor) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            c = w.to_sparse_csr()
        self.csr_shape = tuple(c.shape)
        # int32 indices halve the index traffic (up to 8x faster mat-vec than int64 here)
        idx = torch.int32 if max(c.values().numel(), *c.shape) < 2**31 - 1 else torch.int64
        self.register_buffer("crow_indices", c.crow_indices().to(idx))
        self.register_buffer("col_indices", c.col_indices().to(idx))
        self.register_buffer("values", c.values())
        self._csr: torch.Tensor | None = None
        self._scipy: Any = None

    @property
    def weight_csr(self) -> torch.Tensor:
        if self._csr is None:
            # a normal (not inference-mode) tensor, usable later with autograd on
            with warnings.catch_warnings(), torch.inference_mode(False):
                warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
                self._csr = torch.sparse_csr_tensor(self.crow_indices, self.col_indices,
                                                    self.values, size=self.csr_shape)
        return self._csr

    @property
    def weight_scipy(self) -> Any:
        """The weight as a ``scipy.sparse.csr_matrix`` sharing the buffers' memory."""
        if self._scipy is None:
            from scipy import sparse

            self._scipy = sparse.csr_matrix(
                (self.values.numpy(), self.col_indices.numpy(), self.crow_indices.numpy()),
                shape=self.csr_shape, copy=False)
        return self._scipy

    def _w_times(self, cols: torch.Tensor, kernel: str) -> torch.Tensor:
        """``W @ cols`` for ``cols`` of shape ``(in, n)`` with the given kernel."""
        if kernel == "scipy":  # scipy's csr_matvec(s): inference only, no autograd
            dense = cols.detach().numpy()
            if dense.shape[1] == 1:
                return torch.from_numpy(self.weight_scipy @ dense[:, 0]).unsqueeze(1)
            return torch.from_numpy(self.weight_scipy @ dense)
        if kernel == "csr_mv" and cols.shape[1] == 1:
            return torch.mv(self.weight_csr, cols[:, 0]).unsqueeze(1)
        return self.weight_csr @ cols

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._csr = self._scipy = None
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_csr"] = state["_scipy"] = None
        return state

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        self._csr = self._scipy = None
        for name in ("col_indices", "values"):  # another weight may have another nnz
            incoming = state_dict.get(prefix + name)
            if incoming is not None and incoming.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(incoming, dtype=getattr(self, name).dtype))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


LINEAR_KERNELS = ("csr", "csr_t", "csr_mv", "scipy")


class SparseLinear(_CSRModule):
    """``nn.Linear`` with a CSR weight; ``kernel``: ``"csr"`` (``W_csr @ x.T``, torch),
    ``"csr_t"`` (``x @ W.T_csr``), ``"csr_mv"`` (``torch.mv`` for a single row, else ``csr``)
    or ``"scipy"`` (scipy's CSR matvec; inference only). For inference: the weight is a buffer."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, kernel: str = "csr"):
        super().__init__()
        if kernel not in LINEAR_KERNELS:
            raise InvalidParameterError(
                f"kernel={kernel!r}; accepted values: {', '.join(map(repr, LINEAR_KERNELS))}")
        w = weight.detach()
        self.out_features, self.in_features = int(w.shape[0]), int(w.shape[1])
        self.kernel = kernel
        self._store(w if kernel != "csr_t" else w.t().contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, layer: nn.Linear, kernel: str = "csr") -> SparseLinear:
        return cls(layer.weight, layer.bias, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if self.kernel == "csr_t":
            y = x2 @ self.weight_csr
            if self.bias is not None:
                y = y + self.bias
        elif self.kernel == "csr" and self.bias is not None:
            y = torch.addmm(self.bias.unsqueeze(1), self.weight_csr, x2.t()).t()
        else:
            y = self._w_times(x2.t(), self.kernel).t()
            if self.bias is not None:
                y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def to_dense(self) -> nn.Linear:
        w = self.weight_csr.to_dense()
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            layer.weight.copy_(w.t() if self.kernel == "csr_t" else w)
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    def extra_repr(self) -> str:
        nnz = int(self.weight_csr.values().numel())
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"kernel={self.kernel}, density={nnz / (self.in_features * self.out_features):.3f}")


class SparseConv1x1(_CSRModule):
    """A 1x1 (pointwise) ``nn.Conv2d`` computed as ``W_csr @ X`` over all pixels; ``kernel``:
    ``"csr"`` (torch) or ``"scipy"`` (inference only)."""

    def __init__(self, conv: nn.Conv2d, kernel: str = "csr"):
        super().__init__()
        if kernel not in ("csr", "scipy"):
            raise InvalidParameterError(f"kernel={kernel!r}; accepted values: 'csr', 'scipy'")
        w = conv.weight.detach().reshape(conv.out_channels, conv.in_channels)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel = kernel
        self._store(w)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        cols = x.permute(1, 0, 2, 3).reshape(c, n * h * w)
        if self.kernel == "csr" and self.bias is not None:
            y = torch.addmm(self.bias.unsqueeze(1), self.weight_csr, cols)
        else:
            y = self._w_times(cols, self.kernel)
            if self.bias is not None:
                y = y + self.bias.unsqueeze(1)
        return y.reshape(self.out_channels, n, h, w).permute(1, 0, 2, 3)

    def extra_repr(self) -> str:
        nnz = int(self.weight_csr.values().numel())
        return (f"{self.in_channels}, {self.out_channels}, kernel_size=(1, 1), "
                f"kernel={self.kernel}, "
                f"density={nnz / (self.in_channels * self.out_channels):.3f}")


def _is_pointwise(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride == (1, 1)
            and m.padding in ((0, 0), "valid") and m.dilation == (1, 1) and m.groups == 1
            and m.padding_mode == "zeros")


@dataclass
class LayerChoice:
    """The kernel chosen for one layer and the measured per-layer times."""

    name: str
    kind: str
    shape: tuple[int, ...]
    sparsity: float
    kernel: str
    dense_ms: float
    chosen_ms: float
    candidates_ms: dict[str, float]
    reason: str

    @property
    def gain(self) -> float:
        return self.dense_ms / max(self.chosen_ms, 1e-12)


@dataclass
class SparseInferenceReport:
    """Per-layer kernel choices of :func:`to_sparse_inference` and whole-model measurements."""

    layers: list[LayerChoice]
    skipped: dict[str, str]
    threshold: float
    min_gain: float
    threads: int
    max_abs_diff: float = 0.0
    latency_before_s: float | None = None
    latency_after_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def swapped(self) -> list[str]:
        return [c.name for c in self.layers if c.kernel != "dense"]

    @property
    def speedup(self) -> float | None:
        return latency_ratio(self.latency_before_s, self.latency_after_s)

    def to_markdown(self) -> str:
        whole = ("whole model unchanged" if self.speedup is None else
                 f"whole model: {fmt(_ms(self.latency_before_s))} ms -> "
                 f"{fmt(_ms(self.latency_after_s))} ms ({fmt(self.speedup)}x), "
                 f"max abs diff {self.max_abs_diff:.3g}")
        lines = ["### Sparse inference", "",
                 f"{len(self.swapped)} of {len(self.layers)} candidate layers swapped "
                 f"(sparsity >= {self.threshold:g}, gain >= {self.min_gain:g}x, "
                 f"{self.threads} thread(s)); {whole}", "",
                 "| layer | kind | shape | sparsity | kernel | dense ms | chosen ms | gain | "
                 "note |", "|---|---|---|---:|---|---:|---:|---:|---|"]
        for c in self.layers:
            lines.append(f"| {c.name} | {c.kind} | {'x'.join(map(str, c.shape))} | "
                         f"{c.sparsity:.3f} | {c.kernel} | {c.dense_ms:.4g} | {c.chosen_ms:.4g} | "
                         f"{c.gain:.3g} | {c.reason} |")
        lines += [f"- skipped {k}: {v}" for k, v in self.skipped.items()]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)


def _ms(s: float | None) -> float | None:
    return None if s is None else s * 1e3


def _candidates(layer: nn.Module, x: torch.Tensor) -> dict[str, nn.Module]:
    if isinstance(layer, nn.Linear):
        kernels = ["csr", "csr_t", "scipy"]
        if x.reshape(-1, layer.in_features).shape[0] == 1:
            kernels.append("csr_mv")
        return {k: SparseLinear.from_linear(layer, k) for k in kernels}
    return {k: SparseConv1x1(layer, k) for k in ("csr", "scipy")}


def _layer_inputs(model: nn.Module, names: list[str], args: tuple, kwargs: dict) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    hooks = [model.get_submodule(n).register_forward_pre_hook(
        lambda _m, a, n=n: seen.setdefault(n, a[0].detach()) if a else None) for n in names]
    try:
        with torch.inference_mode():
            model(*args, **kwargs)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _choose(name: str, layer: nn.Module, x: torch.Tensor, sparsity: float, min_gain: float,
            reps: int) -> tuple[LayerChoice, nn.Module | None]:
    kind = "Linear" if isinstance(layer, nn.Linear) else "Conv1x1"
    cands = _candidates(layer, x)
    with torch.inference_mode():
        ref = layer(x)
        bad = [k for k, m in cands.items()
               if not torch.allclose(m(x), ref, atol=1e-4, rtol=1e-3)]
        fns = {"dense": lambda: layer(x)}
        fns.update({k: (lambda m=m: m(x)) for k, m in cands.items() if k not in bad})
        screen = median_times(fns, reps=1, warmup=1)
        # drop pathological kernels (x @ W.T_csr is often 10-70x slower) before the real run
        slow = {k: v for k, v in screen.items() if v > 3 * screen["dense"]}
        t = median_times({k: f for k, f in fns.items() if k not in slow}, reps=reps,
                         budget_s=2.0)
    best = min(t, key=t.get)
    gain = t["dense"] / t[best]
    ms = {k: v * 1e3 for k, v in {**slow, **t}.items()}
    shape = tuple(layer.weight.shape)
    if best != "dense" and gain >= min_gain:
        choice = LayerChoice(name, kind, shape, sparsity, best, ms["dense"], ms[best], ms,
                             f"{best} fastest")
        return choice, cands[best]
    why = ("dense fastest" if best == "dense" else
           f"{best} only {gain:.2f}x faster (< min_gain)")
    if bad:
        why += f"; {', '.join(bad)} disagreed with dense"
    return LayerChoice(name, kind, shape, sparsity, "dense", ms["dense"], ms["dense"], ms,
                       why), None


def to_sparse_inference(
    model: nn.Module,
    example_inputs: Any,
    *,
    threshold: float = 0.5,
    min_gain: float = 1.1,
    reps: int = 20,
    conv1x1: bool = True,
    inplace: bool = False,
) -> tuple[nn.Module, SparseInferenceReport]:
    """Swap sparse ``nn.Linear`` (and 1x1 conv) layers for CSR modules where measured faster.

    Layers whose weight sparsity is at least ``threshold`` are timed on the input they receive
    for ``example_inputs`` with the dense kernel and each CSR kernel (interleaved medians of
    ``reps`` calls, at the current ``torch.get_num_threads()``); the fastest sparse kernel
    replaces the layer when it is ``min_gain`` times faster than dense and agrees with it.
    Returns ``(model, report)``: a copy in eval mode unless ``inplace``. Measure with the batch
    size and thread count you deploy with: the choice depends on both.
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch nn.Module, got {type(model).__name__}")
    threshold = check_fraction("threshold", threshold, high_inclusive=True)
    if isinstance(min_gain, bool) or not isinstance(min_gain, (int, float)) or min_gain <= 0:
        raise InvalidParameterError(f"min_gain must be a number > 0, got {min_gain!r}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 3:
        raise InvalidParameterError(f"reps must be an integer >= 3, got {reps!r}")
    args, kwargs = split_inputs(example_inputs)
    work = model if inplace else copy.deepcopy(model)
    work.eval()
    report = SparseInferenceReport([], {}, threshold, float(min_gain), torch.get_num_threads())
    names = []
    for name, m in work.named_modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        if isinstance(m, nn.Conv2d) and not (conv1x1 and _is_pointwise(m)):
            report.skipped[name] = "convolution that is not 1x1/stride 1/groups 1"
            continue
        if m.weight.dtype not in (torch.float32, torch.float64):
            report.skipped[name] = f"weight dtype {m.weight.dtype} (CSR kernels need float)"
            continue
        s = float((m.weight == 0).float().mean())
        if s < threshold:
            report.skipped[name] = f"sparsity {s:.3f} below threshold {threshold:g}"
            continue
        names.append((name, s))
    try:
        ref = tensor_leaves(_call(model, args, kwargs))
        inputs = _layer_inputs(work, [n for n, _ in names], args, kwargs)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        raise ShapeMismatchError(f"the model cannot run on example_inputs: {exc}") from exc
    for name, s in names:
        if name not in inputs:
            report.skipped[name] = "not called on example_inputs"
            continue
        choice, new = _choose(name, work.get_submodule(name), inputs[name], s, min_gain, reps)
        report.layers.append(choice)
        if new is not None:
            work.set_submodule(name, new)
    _measure(model, work, args, kwargs, ref, report, reps)
    return work, report


def _call(model: nn.Module, args: tuple, kwargs: dict) -> Any:
    with torch.inference_mode(), eval_mode(model):
        return model(*args, **kwargs)


def _measure(model: nn.Module, work: nn.Module, args: tuple, kwargs: dict, ref: list[Any],
             report: SparseInferenceReport, reps: int) -> None:
    got = tensor_leaves(_call(work, args, kwargs))
    report.max_abs_diff = max((float((a.float() - b.float()).abs().max()) for a, b in
                               zip(ref, got, strict=False) if a.numel()), default=0.0)
    if not report.swapped:
        report.notes.append("no layer was faster with a sparse kernel; the model is unchanged")
        return
    with torch.inference_mode(), eval_mode(model):
        t = median_times({"dense": lambda: model(*args, **kwargs),
                          "sparse": lambda: work(*args, **kwargs)}, reps=reps, budget_s=5.0)
    report.latency_before_s, report.latency_after_s = t["dense"], t["sparse"]
