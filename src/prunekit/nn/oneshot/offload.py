"""Larger-than-memory one-shot pruning: :func:`oneshot_from_checkpoint`.

A Hugging Face checkpoint folder saved as (sharded) safetensors is pruned one block at a time and
never held whole in memory. The model skeleton is built with its parameters on the ``meta`` device
(no storage; buffers such as rotary frequencies stay real), the weights outside the block list
(embeddings, final norm, head) are loaded, the calibration batches are run up to the first block,
and then, block by block: the block's weights are read from the memory-mapped shards
(``safetensors.safe_open``, closed again after each block so the mapped pages leave the resident
set), its Linear layers are calibrated and pruned by the same code as :func:`oneshot`, the pruned
block is written to its own output shard, its outputs become the next block's inputs, and its
weights are dropped. Peak memory is about one block, its statistics, the calibration activations
and the embeddings.

The output folder is a regular checkpoint (``model-0000i-of-0000n.safetensors`` + index, the
source's config and tokenizer files) that ``from_pretrained`` loads. It is written to a temporary
folder beside the destination and renamed at the end: a failure leaves no partial output.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit._validation import check_choice, check_positive_int, check_sparsity
from prunekit.errors import InvalidParameterError, UnsupportedModelError
from prunekit.nn.oneshot._hf import import_transformers
from prunekit.nn.oneshot._memory import PeakMemory, _release_free_memory
from prunekit.nn.oneshot.algorithms import check_oneshot_pattern
from prunekit.nn.oneshot.core import (
    METHODS,
    OneShotReport,
    _batch_len,
    _call,
    _capture_block_inputs,
    _check_options,
    _Collector,
    _n_tokens,
    _nbytes,
    _prune_layer,
    _set_hidden,
    _weight_2d,
    check_device,
    find_blocks,
    prepare_calibration,
    prunable_layers,
)

__all__ = ["oneshot_from_checkpoint", "checkpoint_index", "write_shards"]

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
_NOT_SAFETENSORS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5",
                    "flax_model.msgpack", "model.ckpt.index")


# ------------------------------------------------------------------------------ checkpoint IO
def checkpoint_index(src: str | os.PathLike[str]) -> dict[str, Path]:
    """``{tensor name: shard file}`` of a safetensors checkpoint folder (sharded or single file).

    Raises :class:`InvalidParameterError` naming what was found when the folder holds no
    safetensors weights (e.g. only ``pytorch_model.bin``) or the index names missing shards.
    """
    from safetensors import safe_open

    folder = Path(src)
    if not folder.is_dir():
        raise InvalidParameterError(f"checkpoint folder {str(folder)!r} does not exist")
    if (folder / INDEX).is_file():
        try:
            weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
            if not isinstance(weight_map, dict) or not weight_map:
                raise ValueError("empty weight_map")
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidParameterError(
                f"{folder / INDEX} is not a safetensors index ({exc})"
            ) from None
        out = {str(k): folder / str(v) for k, v in weight_map.items()}
        missing = sorted({str(p.name) for p in out.values() if not p.is_file()})
        if missing:
            raise InvalidParameterError(f"the index of {str(folder)!r} names missing shards "
                                        f"{missing[:5]}")
        return out
    if (folder / SINGLE).is_file():
        with safe_open(str(folder / SINGLE), framework="pt") as f:
            return {k: folder / SINGLE for k in f.keys()}  # noqa: SIM118 - safe_open API
    found = sorted(p.name for p in folder.iterdir())
    other = [n for n in found if n in _NOT_SAFETENSORS or n.endswith((".bin", ".pt", ".pth"))]
    raise InvalidParameterError(
        f"{str(folder)!r} is not a safetensors checkpoint (no {SINGLE} or {INDEX}; found "
        f"{(other or found)[:6]}). Re-save it with model.save_pretrained(folder, "
        "safe_serialization=True)"
    )


def _read(index: dict[str, Path], keys: Sequence[str], device: torch.device) -> dict[str, Any]:
    """Read ``keys`` from their shards (memory-mapped; each file closed after use)."""
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for k in keys:
        by_file.setdefault(index[k], []).append(k)
    out: dict[str, torch.Tensor] = {}
    for path, names in by_file.items():
        with safe_open(str(path), framework="pt") as f:
            for k in names:
                t = f.get_tensor(k)
                # on CPU, keep safetensors' copy-on-write mapping of the file (no second copy:
                # pages are read on use, and in-place pruning never writes to the source)
                out[k] = t if device.type == "cpu" else t.to(device)
    return out


def write_shards(
    folder: str | os.PathLike[str], shards: Sequence[dict[str, torch.Tensor] | Any]
) -> None:
    """Write ``shards`` (dicts of tensors, or callables returning one, called one at a time so
    only one shard is in memory) as ``model-0000i-of-0000n.safetensors`` and the index
    ``from_pretrained`` reads."""
    folder = Path(folder)
    for i, shard in enumerate(shards):
        _save_shard(folder, shard() if callable(shard) else shard, i + 1, len(shards))
    _write_index(folder, len(shards))


def _shard_name(i: int, n: int) -> str:
    return f"model-{i:05d}-of-{n:05d}.safetensors"


def _save_shard(folder: Path, tensors: dict[str, torch.Tensor], i: int, n: int) -> None:
    from safetensors.torch import save_file

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(cpu, str(folder / _shard_name(i, n)), metadata={"format": "pt"})


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _write_index(folder: Path, n: int) -> None:
    from safetensors import safe_open

    weight_map: dict[str, str] = {}
    total = 0
    for i in range(1, n + 1):
        name = _shard_name(i, n)
        with safe_open(str(folder / name), framework="pt") as f:
            for k in f.keys():  # noqa: SIM118 - safe_open API
                weight_map[k] = name
                sl = f.get_slice(k)
                numel = 1
                for d in sl.get_shape():
                    numel *= int(d)
                total += numel * _DTYPE_BYTES.get(sl.get_dtype(), 4)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")


# ------------------------------------------------------------------------------- the skeleton
@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """While building a model, register every parameter on the meta device (no storage); buffers
    stay real (the approach of accelerate's ``init_empty_weights``). Restored on exit."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and not param.is_meta:
            kwargs = param.__dict__
            meta = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
            meta.__dict__.update(kwargs)
            module._parameters[name] = meta

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def _skeleton(folder: Path) -> nn.Module:
    transformers = import_transformers()
    if not (folder / "config.json").is_file():
        raise InvalidParameterError(
            f"{str(folder)!r} has no config.json; save the model with save_pretrained"
        )
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder))
        arch = (getattr(config, "architectures", None) or [None])[0]
        cls = getattr(transformers, arch, None) if arch else None
        with _parameters_on_meta():
            model = cls(config) if cls is not None else transformers.AutoModel.from_config(config)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise UnsupportedModelError(
            f"cannot build a transformers model from {str(folder / 'config.json')!r}: {exc}"
        ) from None
    return model.eval()


def _set(module: nn.Module, name: str, value: torch.Tensor | None) -> None:
    """Replace parameter ``name`` (dotted) by ``value`` (``None``: back to meta)."""
    path, _, attr = name.rpartition(".")
    owner = module.get_submodule(path) if path else module
    old = owner._parameters[attr]
    assert old is not None  # internal invariant
    data = torch.empty_like(old, device="meta") if value is None else value
    owner._parameters[attr] = nn.Parameter(data, requires_grad=False)


def _buffers_to(model: nn.Module, device: torch.device) -> None:
    for module in model.modules():
        for k, b in module._buffers.items():
            if b is not None and not b.is_meta:
                module._buffers[k] = b.to(device)


def _key_map(model: nn.Module, keys: set[str]) -> dict[str, str]:
    """``{parameter name: checkpoint key}``; tied parameters appear once (under their first
    name). Raises if a parameter is missing from the checkpoint."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    out: dict[str, str] = {}
    missing = []
    for name, _ in model.named_parameters():
        options = [name]
        if prefix and name.startswith(prefix + "."):
            options.append(name[len(prefix) + 1:])
        elif prefix:
            options.append(f"{prefix}.{name}")
        hit = next((k for k in options if k in keys), None)
        if hit is None:
            missing.append(name)
        else:
            out[name] = hit
    if missing:
        raise InvalidParameterError(
            f"the checkpoint lacks weights of the model built from its config.json: {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}"
        )
    return out


# ------------------------------------------------------------------------------ entry point
def oneshot_from_checkpoint(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    calibration_data: Any = None,
    method: str = "wanda",
    sparsity: float | None = None,
    pattern: str = "unstructured",
    *,
    tokenizer: Any = None,
    max_length: int = 128,
    batch_size: int = 8,
    blocks: str | None = None,
    ignore: Sequence[str] = (),
    per_row: bool | None = None,
    blocksize: int = 128,
    mask_blocksize: int | None = None,
    percdamp: float = 0.01,
    device: torch.device | str | None = None,
    overwrite: bool = False,
) -> OneShotReport:
    """Prune the safetensors checkpoint in folder ``src`` block by block into folder ``out``.

    Same pruning (and the same arguments) as :func:`~prunekit.nn.oneshot.oneshot`, the result
    equal to loading the model, calling ``oneshot`` and saving it, but the model is never in
    memory whole: only the weights outside the blocks, one block and the calibration
    activations are. ``blocks`` is the block list's attribute path (found automatically for
    Hugging Face models). ``device`` (default CPU) is where each block is loaded and pruned.
    ``out`` must not exist (or be empty) unless ``overwrite=True``. OWL and
    ``blockwise=False`` are not available here.
    """
    method = check_choice("method", method, METHODS)
    pat = check_oneshot_pattern(pattern)
    if pat.kind == "nm":
        if sparsity is not None and abs(check_sparsity(sparsity) - pat.fixed_sparsity) > 1e-9:
            raise InvalidParameterError(
                f"sparsity={sparsity!r} contradicts pattern={str(pat)!r}; leave sparsity unset"
            )
        target = float(pat.fixed_sparsity)
    else:
        target = check_sparsity(0.5 if sparsity is None else sparsity)
    check_positive_int("max_length", max_length)
    check_positive_int("batch_size", batch_size)
    _check_options(blocksize, mask_blocksize, percdamp, 5.0, 0.0)
    if blocks is not None and not isinstance(blocks, str):
        raise InvalidParameterError(
            f"blocks must be the block list's attribute path (e.g. 'model.layers'), got {blocks!r}"
        )
    ignore = [ignore] if isinstance(ignore, str) else list(ignore)
    dev = check_device(device, torch.device("cpu"))
    src_dir, out_dir = Path(src), Path(out)
    index = checkpoint_index(src_dir)
    if out_dir.resolve() == src_dir.resolve():
        raise InvalidParameterError("out must be a different folder from src")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise InvalidParameterError(
            f"out={str(out_dir)!r} exists and is not empty; pass overwrite=True to replace it"
        )
    needs_data = method != "magnitude"
    if needs_data and calibration_data is None:
        raise InvalidParameterError(f"method={method!r} needs calibration_data")

    model = _skeleton(src_dir)
    block_list, block_path = find_blocks(model, blocks)
    if block_path in ("<whole model>", "<sequential children>"):
        raise UnsupportedModelError(
            f"cannot find the block list of {type(model).__name__} (no ModuleList of layers with "
            "Linear weights); pass blocks='<attribute path>' (e.g. 'model.layers')"
        )
    keymap = _key_map(model, set(index))
    names = {id(m): n for n, m in model.named_modules()}
    prefixes = [names[id(b)] + "." for b in block_list]
    in_block = [[n for n in keymap if n.startswith(p)] for p in prefixes]
    block_keys = {keymap[n] for group in in_block for n in group}
    rest = [n for n in keymap if keymap[n] not in block_keys]

    report = OneShotReport(method=method, pattern=str(pat), target_sparsity=target,
                           block_path=block_path, n_blocks=len(block_list), blockwise=True,
                           block_sparsities=[target] * len(block_list))
    row = (method == "wanda") if per_row is None else bool(per_row)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    start = time.perf_counter()
    try:
        with PeakMemory(dev) as mem, torch.no_grad():
            loaded = _read(index, [keymap[n] for n in rest], dev)
            for n in rest:
                _set(model, n, loaded.pop(keymap[n]))
            _buffers_to(model, dev)  # the blocks' parameters stay on meta
            batches = []
            if needs_data:
                batches = prepare_calibration(model, calibration_data, tokenizer=tokenizer,
                                              max_length=max_length, batch_size=batch_size,
                                              device=dev)
                report.n_calibration_batches = len(batches)
                report.n_calibration_samples = sum(_batch_len(b) for b in batches)
                report.n_calibration_tokens = sum(_n_tokens(b) for b in batches)
                _capture_block_inputs(model, block_list[0], batches)
                report.activation_bytes = _nbytes(batches)
            n_shards = len(block_list) + 1
            for bi, block in enumerate(block_list):
                tensors = _read(index, [keymap[n] for n in in_block[bi]], dev)
                for n in in_block[bi]:
                    _set(model, n, tensors[keymap[n]])
                del tensors
                _prune_block(model, block, bi, batches, report, method, pat, row, ignore,
                             prefixes[bi], (blocksize, mask_blocksize, percdamp))
                if needs_data and bi + 1 < len(block_list):
                    for b in batches:
                        _set_hidden(b, _call(block, b, f"block {bi}"))
                params = dict(model.named_parameters())
                _save_shard(tmp, {keymap[n]: params[n] for n in in_block[bi]}, bi + 2, n_shards)
                for n in in_block[bi]:
                    _set(model, n, None)  # free the block
                del params
                # give the freed block (and the pruning temporaries) back to the OS: glibc
                # keeps freed heap memory otherwise and the RSS would grow block after block
                _release_free_memory()
            for n in rest:  # drop the embeddings before shard 1 reads them again
                _set(model, n, None)
            batches = []
            # shard 1: everything outside the blocks, copied as stored
            _save_shard(tmp, _read(index, sorted(set(index) - block_keys), torch.device("cpu")),
                        1, n_shards)
            _write_index(tmp, n_shards)
        for f in src_dir.iterdir():
            if f.is_file() and not f.name.endswith(".safetensors") and f.name != INDEX:
                shutil.copy2(f, tmp / f.name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.time_s = time.perf_counter() - start
    report.peak_memory_bytes = mem.peak_bytes
    report.memory_method = mem.method
    return report


def _prune_block(
    model: nn.Module, block: nn.Module, bi: int, batches: list[Any], report: OneShotReport,
    method: str, pat: Any, per_row: bool, ignore: list[str], prefix: str,
    sgpt: tuple[int, int | None, float],
) -> None:
    """Calibrate and prune the Linear layers of one (loaded) block, as :func:`oneshot` does."""
    layers = []
    for name, layer in prunable_layers(block, prefix.rstrip(".")):
        if any(fnmatch.fnmatchcase(name, p) for p in ignore):
            report.skipped.append((name, "matched an ignore= pattern"))
        elif pat.kind == "nm" and _weight_2d(layer).shape[1] % pat.m:
            report.skipped.append(
                (name, f"in_features={_weight_2d(layer).shape[1]} not divisible by M={pat.m}")
            )
        else:
            layers.append((name, layer))
    collector = _Collector(layers, hessian=method == "sparsegpt")
    if method != "magnitude" and layers:
        with collector:
            for b in batches:
                collector.token_mask = b.token_mask
                _call(block, b, f"block {bi}")
    for name, layer in layers:
        rep = _prune_layer(name, layer, bi, method, report.target_sparsity, pat, per_row,
                           collector.stats[name], *sgpt)
        if isinstance(rep, str):
            report.skipped.append((name, rep))
        else:
            report.layers.append(rep)
