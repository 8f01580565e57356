"""``oneshot``: block-by-block calibration pruning of transformers and other torch models.

The model walk of llm-compressor / the SparseGPT and Wanda reference code: capture the inputs of
the first block with a forward pre-hook (stopping the forward there), then, block by block,
collect the statistics of every Linear layer's inputs with forward hooks, prune the layers, and
re-run the *pruned* block on the calibration inputs to produce the next block's inputs. Peak
memory is one block's statistics plus one set of block activations, never the whole model's
activations. All hooks are removed before the call returns; the model is pruned in place.

References: Frantar & Alistarh, "SparseGPT", ICML 2023 (sequential layer-wise processing);
Sun et al., "Wanda", ICLR 2024; Yin et al., "OWL", ICML 2024; Han et al. 2015 (magnitude).
"""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit._modes import eval_mode
from prunekit._progress import ProgressBar
from prunekit._validation import check_choice, check_positive_int, check_sparsity
from prunekit.errors import (
    InvalidParameterError,
    PrunekitError,
    ShapeMismatchError,
    UnsupportedModelError,
)
from prunekit.nn.oneshot._memory import PeakMemory
from prunekit.nn.oneshot.algorithms import (
    check_oneshot_pattern,
    magnitude_mask,
    outlier_ratio,
    owl_sparsities,
    sparsegpt_prune,
    wanda_mask,
    wanda_scores,
)

METHODS = ("wanda", "sparsegpt", "magnitude")

__all__ = ["METHODS", "LayerReport", "OneShotReport", "oneshot", "find_blocks", "prunable_layers"]


# ----------------------------------------------------------------------------- report objects
@dataclass
class LayerReport:
    """One pruned layer: its name, block, weight shape ``(out, in)``, sparsity and time."""

    name: str
    block: int
    shape: tuple[int, int]
    target_sparsity: float
    sparsity: float
    time_s: float
    loss: float | None = None  # SparseGPT's summed OBS loss; None for the other methods


@dataclass
class OneShotReport:
    """What :func:`oneshot` did: per-layer sparsity, what it skipped and why, time and memory.

    ``peak_memory_bytes`` is the growth of the CUDA allocator's peak on GPU, else the sampled
    growth of the process RSS (``memory_method`` says which); ``activation_bytes`` is the size of
    the cached calibration activations of one block (inputs to the current block).
    """

    method: str
    pattern: str
    target_sparsity: float
    n_calibration_batches: int = 0
    n_calibration_samples: int = 0
    n_calibration_tokens: int = 0
    block_path: str = ""
    n_blocks: int = 0
    blockwise: bool = True
    owl: bool = False
    block_sparsities: list[float] = field(default_factory=list)
    layers: list[LayerReport] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    time_s: float = 0.0
    peak_memory_bytes: int = 0
    memory_method: str = ""
    activation_bytes: int = 0
    working_set_bytes: int = 0
    model = None  # the pruned module, set by oneshot (not a field: to_dict/asdict skip it)

    @property
    def n_pruned_params(self) -> int:
        """Weights set to zero in the pruned layers."""
        return int(sum(round(r.sparsity * r.shape[0] * r.shape[1]) for r in self.layers))

    @property
    def sparsity(self) -> float:
        """Achieved sparsity over all pruned layers' weights."""
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        return self.n_pruned_params / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (JSON-ready)."""
        out = asdict(self)
        out["sparsity"] = self.sparsity
        out["n_pruned_params"] = self.n_pruned_params
        return out

    def to_markdown(self) -> str:
        """A short Markdown summary with one row per pruned layer."""
        from prunekit.metrics import markdown_table

        lines = [
            f"**one-shot {self.method}**, pattern {self.pattern}, target sparsity "
            f"{self.target_sparsity:.2f}, achieved {self.sparsity:.4f} over {len(self.layers)} "
            f"layers in {self.n_blocks} blocks; {self.n_calibration_samples} calibration samples "
            f"({self.n_calibration_tokens} tokens); {self.time_s:.2f} s; peak memory "
            f"{self.peak_memory_bytes / 2**20:.1f} MiB ({self.memory_method})",
            "",
        ]
        rows = [
            {"layer": r.name, "block": r.block, "shape": f"{r.shape[0]}x{r.shape[1]}",
             "sparsity": f"{r.sparsity:.4f}", "time (s)": f"{r.time_s:.3f}"}
            for r in self.layers
        ]
        if rows:
            lines.append(markdown_table(rows))
        if self.skipped:
            lines += ["", "Skipped:"] + [f"- {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


# ------------------------------------------------------------------------------ model walking
def _is_conv1d(module: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2): a Linear with a transposed ``(in, out)`` weight."""
    return (
        type(module).__name__ == "Conv1D"
        and hasattr(module, "nf")
        and isinstance(getattr(module, "weight", None), torch.Tensor)
        and module.weight.ndim == 2
    )


def _is_prunable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _weight_2d(module: nn.Module) -> torch.Tensor:
    """The ``(out, in)`` view of a prunable layer's weight (a copy-free view)."""
    return module.weight.T if _is_conv1d(module) else module.weight


def prunable_layers(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """``(qualified name, layer)`` of every ``nn.Linear`` / transformers ``Conv1D`` inside."""
    out = []
    for name, sub in module.named_modules():
        if _is_prunable(sub):
            full = f"{prefix}.{name}" if prefix and name else (prefix or name or "<model>")
            out.append((full, sub))
    return out


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def find_blocks(
    model: nn.Module, blocks: str | Sequence[nn.Module] | nn.Module | None = None
) -> tuple[list[nn.Module], str]:
    """The list of blocks to process in order, and its path in the model.

    ``blocks`` may be an attribute path (``"encoder.layer"``, ``"transformer.h"``), a
    ``ModuleList``/``Sequential`` or a list of submodules. By default: the ``nn.ModuleList``
    holding the most parameters among those containing Linear layers (the transformer layers
    of every Hugging Face model), else the children of an ``nn.Sequential`` model, else the
    whole model as a single block.
    """
    names = {id(m): n for n, m in model.named_modules()}
    if isinstance(blocks, str):
        try:
            container = model.get_submodule(blocks)
        except AttributeError as exc:
            raise InvalidParameterError(
                f"blocks={blocks!r} is not a submodule path of the model ({exc})"
            ) from None
        if not isinstance(container, nn.ModuleList | nn.Sequential):
            return [container], blocks
        return list(container), blocks
    if isinstance(blocks, nn.ModuleList | nn.Sequential):
        return list(blocks), names.get(id(blocks), "<given>")
    if isinstance(blocks, nn.Module):
        return [blocks], names.get(id(blocks), "<given>")
    if blocks is not None:
        if isinstance(blocks, bytes) or not isinstance(blocks, Iterable):
            raise InvalidParameterError(
                "blocks must be a submodule path, a ModuleList/Sequential, or a non-empty list of "
                f"submodules of the model, got {type(blocks).__name__}"
            )
        blocks = list(blocks)
        bad = [b for b in blocks if not isinstance(b, nn.Module) or id(b) not in names]
        if not blocks or bad:
            raise InvalidParameterError(
                "blocks must be a submodule path, a ModuleList/Sequential, or a non-empty list of "
                "submodules of the model"
            )
        return blocks, ",".join(names[id(b)] for b in blocks)
    candidates = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and len(m) > 0 and prunable_layers(m)
    ]
    if candidates:
        name, best = max(candidates, key=lambda c: _n_params(c[1]))
        return list(best), name
    if isinstance(model, nn.Sequential):
        return list(model), "<sequential children>"
    return [model], "<whole model>"


# ------------------------------------------------------------------------ calibration batches
@dataclass
class _Batch:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    token_mask: torch.Tensor | None = None  # (batch, seq) bool: real (non-padding) tokens


def _is_hf(model: nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model, "main_input_name")


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def _batch_from_item(model: nn.Module, item: Any) -> _Batch:
    if isinstance(item, Mapping):
        kwargs = {k: v for k, v in item.items() if k not in ("labels", "label")}
        return _Batch((), kwargs)
    if isinstance(item, torch.Tensor):
        if _is_hf(model) and not item.is_floating_point():
            return _Batch((), {model.main_input_name: item})
        return _Batch((item,), {})
    if isinstance(item, tuple | list) and item and isinstance(item[0], torch.Tensor | Mapping):
        return _batch_from_item(model, item[0])  # (inputs, targets) pairs from a DataLoader
    raise InvalidParameterError(
        "calibration_data items must be tensors, (inputs, targets) pairs or dicts of tensors, "
        f"got {type(item).__name__}"
    )


def _split(obj: Any, batch_size: int) -> list[Any]:
    if isinstance(obj, torch.Tensor):
        return list(torch.split(obj, batch_size))
    lengths = {len(v) for v in obj.values() if isinstance(v, torch.Tensor) and v.ndim >= 1}
    if len(lengths) != 1:
        raise InvalidParameterError(
            "calibration_data: a dict must hold tensors with the same number of rows "
            f"(e.g. input_ids and attention_mask), got row counts {sorted(lengths)}"
        )
    n = lengths.pop()
    return [
        {k: (v[i : i + batch_size] if isinstance(v, torch.Tensor) else v) for k, v in obj.items()}
        for i in range(0, n, batch_size)
    ]


def prepare_calibration(
    model: nn.Module,
    calibration_data: Any,
    *,
    tokenizer: Any = None,
    max_length: int = 128,
    batch_size: int = 8,
    device: torch.device | str | None = None,
) -> list[_Batch]:
    """Normalise calibration data into forward calls of ``model`` (on ``device``, default the
    model's).

    Accepted: a list of strings (with ``tokenizer``), a tensor (split in ``batch_size`` rows; an
    integer tensor feeds a transformers model's ``input_ids``), a dict of tensors (a tokenizer's
    output), or any iterable of tensors / ``(inputs, targets)`` pairs / dicts (a DataLoader).
    """
    if calibration_data is None:
        raise InvalidParameterError(
            "calibration_data is required for method='wanda', 'sparsegpt' and owl=True"
        )
    if isinstance(calibration_data, str):
        calibration_data = [calibration_data]
    items: list[Any]
    if isinstance(calibration_data, Sequence) and calibration_data and all(
        isinstance(t, str) for t in calibration_data
    ):
        if tokenizer is None:
            raise InvalidParameterError(
                "calibration_data is a list of strings; pass tokenizer= to turn it into tokens"
            )
        texts = list(calibration_data)
        items = [
            dict(
                tokenizer(
                    texts[i : i + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
            )
            for i in range(0, len(texts), batch_size)
        ]
    elif isinstance(calibration_data, torch.Tensor | Mapping):
        items = _split(calibration_data, batch_size)
    elif isinstance(calibration_data, Iterable):
        items = list(calibration_data)
    else:
        raise InvalidParameterError(
            "calibration_data must be texts, a tensor, a dict of tensors or an iterable of "
            f"batches, got {type(calibration_data).__name__}"
        )
    if not items:
        raise InvalidParameterError("calibration_data is empty")
    device = _model_device(model) if device is None else torch.device(device)
    accepts_use_cache = _is_hf(model) and "use_cache" in inspect.signature(model.forward).parameters
    batches = []
    for i, item in enumerate(items):
        b = _batch_from_item(model, item)
        _check_finite(b, i)
        b.args, b.kwargs = _to(b.args, device), _to(b.kwargs, device)
        if accepts_use_cache:
            b.kwargs.setdefault("use_cache", False)
        mask = b.kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            b.token_mask = mask.bool()
        batches.append(b)
    return batches


def _check_finite(b: _Batch, index: int) -> None:
    for v in (*b.args, *b.kwargs.values()):
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel() == 0:
            raise InvalidParameterError(f"calibration_data: batch {index} is empty")
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all():
            raise InvalidParameterError(
                f"calibration_data: batch {index} contains NaN or inf; pruning masks computed "
                "from it would be arbitrary"
            )


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def check_device(device: Any, default: torch.device) -> torch.device:
    """``device=`` of the NN entry points: ``None`` (``default``), a name or a torch.device;
    a CUDA device when CUDA is unavailable is refused with a clear error."""
    if device is None:
        return default
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidParameterError(
            f"device must be None, a torch.device or a name like 'cpu' or 'cuda:0', got {device!r}"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"device={str(dev)!r} but CUDA is not available here")
    if dev.type == "meta":
        raise InvalidParameterError("device='meta' holds no data; pick 'cpu' or 'cuda'")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


@contextlib.contextmanager
def on_device(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Move ``module`` to ``device`` for the ``with`` body and back to where it was."""
    home = _model_device(module)
    if home == device:
        yield
        return
    module.to(device)
    try:
        yield
    finally:
        module.to(home)


def _batches_to(batches: list[_Batch], device: torch.device) -> list[_Batch]:
    return [
        _Batch(_to(b.args, device), _to(b.kwargs, device),
               None if b.token_mask is None else b.token_mask.to(device))
        for b in batches
    ]


# ------------------------------------------------------------------------- hooks & statistics
class _Stop(Exception):
    """Raised by a hook to end a forward pass early (caught by the caller)."""


class _Stats:
    """Running statistics of one layer's inputs: per-feature sum of squares and ``X Xᵀ``."""

    def __init__(self, n_in: int, hessian: bool, device: torch.device) -> None:
        self.sq = torch.zeros(n_in, device=device)
        self.xtx = torch.zeros(n_in, n_in, device=device) if hessian else None
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        self.sq += (x * x).sum(0)
        if self.xtx is not None:
            self.xtx.addmm_(x.T, x)
        self.n += x.shape[0]

    def hessian(self) -> torch.Tensor:
        """``H = 2 X Xᵀ / n`` (SparseGPT's layer-wise Hessian); hands over the accumulator
        (scaled in place, no copy: a 5120-wide layer's is 100 MB), so call it once."""
        assert self.xtx is not None  # internal invariant, not user input
        h, self.xtx = self.xtx.mul_(2.0 / max(self.n, 1)), None
        return h


class _Collector:
    """Forward hooks on a block's layers that accumulate :class:`_Stats` (removed on exit)."""

    def __init__(self, layers: list[tuple[str, nn.Module]], hessian: bool) -> None:
        self.layers = layers
        self.stats = {
            name: _Stats(_weight_2d(m).shape[1], hessian, m.weight.device) for name, m in layers
        }
        self.token_mask: torch.Tensor | None = None
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            x = inputs[0]
            mask = self.token_mask
            if mask is not None and x.ndim >= 3 and tuple(x.shape[:2]) == tuple(mask.shape):
                x = x[mask]  # drop padding tokens
            self.stats[name].add(x.detach())

        return hook

    def __enter__(self) -> _Collector:
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _capture_block_inputs(model: nn.Module, block: nn.Module, batches: list[_Batch]) -> None:
    """Replace each batch's model inputs by the args/kwargs the first block receives."""
    captured: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured.append((args, dict(kwargs)))
        raise _Stop

    handle = block.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        for b in batches:
            n_before = len(captured)
            with contextlib.suppress(_Stop):
                _call(model, b, "the model's forward")
            if len(captured) == n_before:
                raise UnsupportedModelError(
                    "the model's forward never reached the first block; pass blocks= explicitly"
                )
            b.args, b.kwargs = captured[-1]
    finally:
        handle.remove()


def _call(fn: Callable[..., Any], b: _Batch, what: str) -> Any:
    """Run ``fn`` on a calibration batch; a failure names the calibration data, not a traceback
    from deep inside the model."""
    try:
        return fn(*b.args, **b.kwargs)
    except (RuntimeError, ValueError, IndexError, TypeError, KeyError, AttributeError) as exc:
        raise ShapeMismatchError(
            f"calibration_data: {what} failed on a calibration batch ({type(exc).__name__}: "
            f"{exc}); check that the calibration inputs fit the model (shape, dtype, keys)"
        ) from exc


def _hidden(b: _Batch) -> torch.Tensor:
    if b.args and isinstance(b.args[0], torch.Tensor):
        return b.args[0]
    hs = b.kwargs.get("hidden_states")
    if isinstance(hs, torch.Tensor):
        return hs
    raise UnsupportedModelError(
        "cannot find the hidden states among the block's inputs (first positional argument or "
        "'hidden_states'); pass blocks= explicitly"
    )


def _set_hidden(b: _Batch, out: Any) -> None:
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    elif isinstance(out, Mapping) and out:
        out = next(iter(out.values()))
    if not isinstance(out, torch.Tensor):
        raise UnsupportedModelError(
            f"a block returned {type(out).__name__}; expected a tensor or a tuple starting with one"
        )
    if b.args and isinstance(b.args[0], torch.Tensor):
        b.args = (out, *b.args[1:])
    else:
        b.kwargs = {**b.kwargs, "hidden_states": out}


def _nbytes(batches: list[_Batch]) -> int:
    total = 0
    for b in batches:
        try:
            h = _hidden(b)
        except UnsupportedModelError:
            continue
        total += h.numel() * h.element_size()
    return total


def _run_full_until(
    model: nn.Module, block: nn.Module, batches: list[_Batch], collector: _Collector
) -> None:
    """Reference path (``blockwise=False``): full-model forwards, stopped after ``block``."""

    def stop_hook(module: nn.Module, args: Any, output: Any) -> None:
        raise _Stop

    handle = block.register_forward_hook(stop_hook)
    try:
        for b in batches:
            collector.token_mask = b.token_mask
            with contextlib.suppress(_Stop):
                _call(model, b, "the model's forward")
    finally:
        handle.remove()


# ------------------------------------------------------------------------------ entry point
def oneshot(
    model: nn.Module,
    calibration_data: Any = None,
    method: str = "wanda",
    sparsity: float | None = None,
    pattern: str = "unstructured",
    *,
    tokenizer: Any = None,
    max_length: int = 128,
    batch_size: int = 8,
    blocks: str | Sequence[nn.Module] | nn.Module | None = None,
    ignore: Sequence[str] = (),
    owl: bool = False,
    owl_m: float = 5.0,
    owl_lambda: float = 0.08,
    per_row: bool | None = None,
    blocksize: int = 128,
    mask_blocksize: int | None = None,
    percdamp: float = 0.01,
    blockwise: bool = True,
    progress: bool = False,
    device: torch.device | str | None = None,
    inplace: bool = True,
) -> OneShotReport:
    """Prune ``model`` in place in one shot from a little calibration data; return a report.

    Parameters
    ----------
    model
        A Hugging Face transformers model (encoder or decoder) or any torch module with
        ``nn.Linear`` layers. Linear layers (and GPT-2's ``Conv1D``) inside the blocks are pruned;
        embeddings and heads outside the blocks stay dense and are listed in ``report.skipped``.
    calibration_data
        Texts (with ``tokenizer``), a tensor of inputs, a tokenizer's dict, or an iterable of
        batches (see :func:`prepare_calibration`). Not needed for ``method="magnitude"``.
    method
        ``"wanda"`` (|W|·||X||, per output row, no weight update; Sun et al. 2024),
        ``"sparsegpt"`` (OBS reconstruction; Frantar & Alistarh 2023) or ``"magnitude"``.
    sparsity
        Fraction of each layer's weights removed (default 0.5). N:M patterns set it themselves.
    pattern
        ``"unstructured"`` or ``"N:M"`` (``"2:4"``, ``"4:8"``: keep N of every M inputs).
    blocks
        The block list (attribute path, ModuleList or list of modules); see :func:`find_blocks`.
        Blocks must be chained: each block's first output is the next block's hidden states.
    ignore
        ``fnmatch`` patterns of layer names to leave dense (e.g. ``["*.attention.*"]``).
    owl, owl_m, owl_lambda
        OWL non-uniform sparsity (Yin et al. 2024): blocks with more outliers
        (Wanda scores > ``owl_m`` × mean) get lower sparsity within ``sparsity ± owl_lambda``;
        the mean over blocks stays ``sparsity``. Unstructured patterns only.
    per_row
        Comparison group of Wanda / magnitude scores: per output row (Wanda's default) or the
        whole layer (magnitude's default).
    blocksize, mask_blocksize, percdamp
        SparseGPT's lazy-batch column block B, adaptive-mask block Bs (default B) and dampening
        ``λ = percdamp · mean(diag H)``.
    blockwise
        ``True`` (default): cache each block's inputs and run one block at a time. ``False``:
        reference path that re-runs the whole model for every block (same result, more time).
    progress
        Show a rich progress bar advancing per block.
    device
        Where statistics are collected and layers pruned (SparseGPT's solves included). ``None``
        (default): the model's device. Another device (``"cuda"`` for a model kept in CPU
        memory): the inputs of the first block are computed where the model is, then each block
        is moved to ``device``, calibrated, pruned, run forward and moved back, so only one
        block and its activations occupy the device. Needs ``blockwise=True``.
    inplace
        ``True`` (default): prune ``model`` itself (a copy would double the memory).
        ``False``: prune a deep copy and leave ``model`` untouched. The pruned model is
        ``report.model`` either way.
    """
    from prunekit._inplace import working_copies

    model, blocks = working_copies(inplace, model, blocks)  # blocks may be the model's modules
    method = check_choice("method", method, METHODS)
    pat = check_oneshot_pattern(pattern)
    if pat.kind == "nm":
        if sparsity is not None and abs(check_sparsity(sparsity) - pat.fixed_sparsity) > 1e-9:
            raise InvalidParameterError(
                f"sparsity={sparsity!r} contradicts pattern={str(pat)!r}, which fixes the "
                f"sparsity at {pat.fixed_sparsity}; leave sparsity unset"
            )
        target = float(pat.fixed_sparsity)
        if owl:
            raise InvalidParameterError("owl=True needs pattern='unstructured' (N:M is fixed)")
    else:
        target = check_sparsity(0.5 if sparsity is None else sparsity)
    max_length = check_positive_int("max_length", max_length)
    batch_size = check_positive_int("batch_size", batch_size)
    _check_options(blocksize, mask_blocksize, percdamp, owl_m, owl_lambda)
    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(f"model must be a torch nn.Module, got {type(model).__name__}")
    meta = [n or "<model>" for n, p in model.named_parameters() if p.is_meta]
    if meta:
        raise UnsupportedModelError(
            f"parameters {meta[:5]} are on the meta device (they hold no data); load the "
            "model's weights before pruning"
        )
    if isinstance(ignore, str):
        ignore = [ignore]
    if not isinstance(ignore, Iterable) or not all(isinstance(p, str) for p in ignore):
        raise InvalidParameterError(f"ignore must be a list of fnmatch patterns, got {ignore!r}")
    row = (method == "wanda") if per_row is None else bool(per_row)

    block_list, block_path = find_blocks(model, blocks)
    report = OneShotReport(
        method=method, pattern=str(pat), target_sparsity=target, block_path=block_path,
        n_blocks=len(block_list), blockwise=blockwise, owl=owl,
    )
    names = {id(m): n for n, m in model.named_modules()}
    inside: set[int] = set()
    block_layers: list[list[tuple[str, nn.Module]]] = []
    for block in block_list:
        prefix = names.get(id(block), "")
        layers = []
        for name, layer in prunable_layers(block, prefix):
            inside.add(id(layer))
            if any(fnmatch.fnmatchcase(name, p) for p in ignore):
                report.skipped.append((name, "matched an ignore= pattern"))
            elif pat.kind == "nm" and _weight_2d(layer).shape[1] % pat.m:
                report.skipped.append(
                    (name, f"in_features={_weight_2d(layer).shape[1]} not divisible by M={pat.m}")
                )
            else:
                layers.append((name, layer))
        for sub_name, sub in block.named_modules():
            if not _is_prunable(sub) and isinstance(sub, nn.Conv2d | nn.Conv1d | nn.Conv3d):
                full = f"{prefix}.{sub_name}" if prefix else sub_name
                report.skipped.append(
                    (full, f"{type(sub).__name__}: one-shot pruning handles Linear layers only")
                )
        block_layers.append(layers)
    for name, m in model.named_modules():
        if id(m) not in inside and (_is_prunable(m) or isinstance(m, nn.Embedding)):
            report.skipped.append(
                (name, f"outside the blocks '{block_path}' (embeddings and heads stay dense)")
            )

    if not any(block_layers):
        raise UnsupportedModelError(
            "nothing to prune: no Linear layer inside the blocks "
            f"'{block_path}' is left to prune; skipped: "
            + ("; ".join(f"{n}: {why}" for n, why in report.skipped[:8]) or "none found")
        )
    needs_data = method != "magnitude" or owl
    start = time.perf_counter()
    home = _model_device(model)
    device = check_device(device, home)
    if device != home and not blockwise:
        raise InvalidParameterError(
            f"device={str(device)!r} differs from the model's device ({home}); that needs "
            "blockwise=True (blocks are moved on and off one at a time)"
        )
    with eval_mode(model), PeakMemory(device) as mem, torch.no_grad():
        batches: list[_Batch] = []
        if needs_data:
            batches = prepare_calibration(
                model, calibration_data, tokenizer=tokenizer, max_length=max_length,
                batch_size=batch_size,
            )
            report.n_calibration_batches = len(batches)
            report.n_calibration_samples = sum(_batch_len(b) for b in batches)
            report.n_calibration_tokens = sum(_n_tokens(b) for b in batches)
        n_steps = len(block_list) * (2 if owl else 1)
        with ProgressBar(n_steps, f"one-shot {method}", enabled=progress) as bar:
            if owl:
                ratios = _owl_ratios(
                    model, block_list, block_layers, batches, owl_m, bar, device
                )
                with_layers = [i for i, layers in enumerate(block_layers) if layers]
                owl_s = owl_sparsities([ratios[i] for i in with_layers], target, owl_lambda)
                report.block_sparsities = [target] * len(block_list)
                for i, s in zip(with_layers, owl_s, strict=True):
                    report.block_sparsities[i] = s
            else:
                report.block_sparsities = [target] * len(block_list)
            model_inputs = [_Batch(b.args, dict(b.kwargs), b.token_mask) for b in batches]
            if needs_data and blockwise:
                _capture_block_inputs(model, block_list[0], batches)
                batches = _batches_to(batches, device)
                report.activation_bytes = _nbytes(batches)
            for bi, block in enumerate(block_list):
                with on_device(block, device):
                    layers = block_layers[bi]
                    collector = _Collector(layers, hessian=method == "sparsegpt")
                    if method != "magnitude" and layers:
                        with collector:
                            if blockwise:
                                for b in batches:
                                    collector.token_mask = b.token_mask
                                    _call(block, b, f"block {bi}")
                            else:
                                _run_full_until(model, block, model_inputs, collector)
                    stats_bytes = sum(
                        st.sq.numel() * 4 + (st.xtx.numel() * 4 if st.xtx is not None else 0)
                        for st in collector.stats.values()
                    )
                    param_bytes = sum(p.numel() * p.element_size() for p in block.parameters())
                    report.working_set_bytes = max(
                        report.working_set_bytes,
                        _nbytes(batches) + stats_bytes * (method != "magnitude") + param_bytes,
                    )
                    for name, layer in layers:
                        rep = _prune_layer(
                            name, layer, bi, method, report.block_sparsities[bi], pat, row,
                            collector.stats[name], blocksize, mask_blocksize, percdamp,
                        )
                        if isinstance(rep, str):
                            report.skipped.append((name, rep))
                        else:
                            report.layers.append(rep)
                    if needs_data and blockwise and bi + 1 < len(block_list):
                        for b in batches:
                            _set_hidden(b, _call(block, b, f"block {bi}"))
                    bar.advance(description=f"one-shot {method}: block {bi + 1}/{len(block_list)}")
    report.time_s = time.perf_counter() - start
    report.peak_memory_bytes = mem.peak_bytes
    report.memory_method = mem.method
    report.model = model
    return report


def _check_options(
    blocksize: Any, mask_blocksize: Any, percdamp: Any, owl_m: Any, owl_lambda: Any
) -> None:
    check_positive_int("blocksize", blocksize)
    if mask_blocksize is not None:
        check_positive_int("mask_blocksize", mask_blocksize)
    for name, value, low in (("percdamp", percdamp, 0.0), ("owl_m", owl_m, 0.0),
                             ("owl_lambda", owl_lambda, 0.0)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < low
            or (name == "owl_m" and value == 0)
        ):
            raise InvalidParameterError(
                f"{name} must be a finite number >= {low}"
                + (" (and > 0)" if name == "owl_m" else "") + f", got {value!r}"
            )


def _batch_len(b: _Batch) -> int:
    for v in (*b.args, *b.kwargs.values()):
        if isinstance(v, torch.Tensor) and v.ndim >= 1:
            return int(v.shape[0])
    return 0


def _n_tokens(b: _Batch) -> int:
    if b.token_mask is not None:
        return int(b.token_mask.sum())
    for v in (*b.args, *b.kwargs.values()):
        if isinstance(v, torch.Tensor) and v.ndim >= 1:
            if v.is_floating_point():
                return int(v.numel() // max(v.shape[-1], 1))
            return int(v.numel())
    return 0


def _owl_ratios(
    model: nn.Module,
    block_list: list[nn.Module],
    block_layers: list[list[tuple[str, nn.Module]]],
    batches: list[_Batch],
    m: float,
    bar: ProgressBar,
    device: torch.device | None = None,
) -> list[float]:
    """OWL's layerwise outlier ratios from Wanda scores on the dense model (one pass)."""
    work = [_Batch(b.args, dict(b.kwargs), b.token_mask) for b in batches]
    _capture_block_inputs(model, block_list[0], work)
    device = _model_device(model) if device is None else device
    work = _batches_to(work, device)
    ratios = []
    for bi, block in enumerate(block_list):
        with on_device(block, device):
            collector = _Collector(block_layers[bi], hessian=False)
            with collector:
                for b in work:
                    collector.token_mask = b.token_mask
                    out = _call(block, b, f"block {bi}")
                    if bi + 1 < len(block_list):
                        _set_hidden(b, out)
            scores = [
                wanda_scores(_weight_2d(layer).detach(), collector.stats[name].sq)
                for name, layer in block_layers[bi]
            ]
            ratios.append(outlier_ratio(scores, m) if scores else 0.0)
        bar.advance(description=f"OWL outliers: block {bi + 1}/{len(block_list)}")
    return ratios


def _prune_layer(
    name: str,
    layer: nn.Module,
    block: int,
    method: str,
    sparsity: float,
    pat: Any,
    per_row: bool,
    stats: _Stats,
    blocksize: int,
    mask_blocksize: int | None,
    percdamp: float,
) -> LayerReport | str:
    """Prune one layer in place; return its report, or the reason it was skipped."""
    t0 = time.perf_counter()
    w = _weight_2d(layer).detach()
    loss = None
    if method != "magnitude" and stats.n == 0:
        return "received no calibration inputs (not called in the forward pass)"
    if method != "magnitude" and not bool(torch.isfinite(stats.sq).all()):
        raise InvalidParameterError(
            f"the calibration inputs of layer {name!r} contain NaN or inf; its masks would be "
            "arbitrary. Check calibration_data (and the model's earlier layers) for NaN/inf"
        )
    if method == "magnitude":
        new_w = w * magnitude_mask(w, sparsity, pat, per_row=per_row)
    elif method == "wanda":
        new_w = w * wanda_mask(w, stats.sq.to(w.device), sparsity, pat, per_row=per_row)
    else:
        try:
            res = sparsegpt_prune(
                w, stats.hessian(), sparsity, pat, blocksize=blocksize, overwrite_hessian=True,
                mask_blocksize=mask_blocksize, percdamp=percdamp,
            )
        except torch.linalg.LinAlgError as exc:
            raise PrunekitError(
                f"SparseGPT: the Hessian of layer {name!r} is not positive definite even after "
                f"dampening ({exc}); raise percdamp (now {percdamp})"
            ) from None
        except ShapeMismatchError as exc:
            return str(exc)
        new_w, loss = res.weight, res.loss
    with torch.no_grad():
        _weight_2d(layer).copy_(new_w.to(w.dtype))
    achieved = float((new_w == 0).sum()) / new_w.numel()
    return LayerReport(
        name=name, block=block, shape=(int(w.shape[0]), int(w.shape[1])),
        target_sparsity=float(sparsity), sparsity=achieved,
        time_s=time.perf_counter() - t0, loss=loss,
    )
