"""Compact sparse checkpoints (safetensors) and ``torch.nn.utils.prune`` interop.

File format (``save_compact``): a plain `safetensors <https://huggingface.co/docs/safetensors>`_
file — safe to load (no pickle) — whose ``__metadata__`` holds one JSON entry ``"prunekit"``
describing how each state-dict tensor is stored:

* ``dense``   — the tensor as is (key ``name``);
* ``bitmask`` — ``name::mask`` (``np.packbits`` of the non-zero pattern, little bit order) and
  ``name::values`` (the non-zero values, row-major order);
* ``nm``      — for N:M tensors (at most N non-zeros in every group of M along the input
  dimension): ``name::values`` (exactly N per group) and ``name::index`` (each value's position
  in its group, ``ceil(log2 M)`` bits packed; 2 bits per kept element for 2:4), like the
  metadata of NVIDIA's 2:4 sparse tensor cores (Mishra et al. 2021).

Each tensor gets the smallest of the encodings (ties prefer ``nm``, then ``dense``), so file
bytes fall with sparsity: at 90 % unstructured sparsity a float32 weight costs
``1/8 + 0.1 * 4`` bytes per element, about 0.13x dense, before entropy coding.

Version 2 (the default, ``compression="zlib"`` or ``"lzma"``) entropy-codes the parts: each
mask, index and value array of 64 bytes or more is split into byte planes (byte ``k`` of every
element; the sign/exponent byte of floats is a low-entropy stream of its own), and each plane is
compressed with stdlib ``zlib`` (run-length + Huffman deflate) or ``lzma``, or kept raw when
that does not pay; the header lists each plane's codec and stored length
(``info["packed"]``). On resnet18 this makes the file smaller than ``gzip -6`` of a
``torch.save`` checkpoint at every sparsity from 50 to 95 % (``benchmarks/compact.py``).
``compression=None`` writes the plain version-1 layout; both versions load.

Loading trusts nothing: the header schema (names, shapes, dtypes from an allow-list, encodings,
N:M fields) is validated, and every stored part must have exactly the length its claimed shape
implies (bitmask bytes ``ceil(numel/8)``, value count = popcount of the mask, N:M index bits,
per-plane decoded sizes, with decompression capped at that size) before the dense tensor is
allocated, so a file never costs more than a small multiple of its verified dense size.
Any violation raises :class:`~prunekit.errors.CorruptFileError`. Loading is bit-exact (NaN and
infinities included) with one exception by default: a negative zero ``-0.0`` (what ``w * mask``
gives for a negative ``w``) is a zero and loads as ``+0.0`` — numerically equal, so
``torch.equal`` holds (the :class:`~prunekit.nn.Pruner` writes ``+0.0``, so its models
round-trip bit for bit). ``signed_zeros=True`` also records the positions of negative zeros
(``name::negzero``, int64 flat indices) for exact bits at a cost of 8 bytes per ``-0.0``.

``int8=True`` stores the values of floating tensors with two or more dimensions as int8 with a
symmetric per-output-row scale (``name::scale``, float32; Jacob et al. 2018). This is **lossy**
(error up to half a quantisation step per weight); biases, norms and buffers stay exact.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit._io import atomic_write_bytes, check_output_path
from prunekit.errors import (
    CorruptFileError,
    InvalidParameterError,
    ShapeMismatchError,
    UnsupportedModelError,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "save_compact",
    "load_compact",
    "load_compact_into",
    "read_compact_metadata",
    "dense_state_dict_bytes",
    "import_torch_prune",
    "export_torch_prune",
    "state_dict_with_torch_prune_applied",
]

FORMAT_NAME = "prunekit.compact"
FORMAT_VERSION = 2
_SEP = "::"
_NM_CANDIDATE_M = (4, 8, 16)
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def dense_state_dict_bytes(state: Mapping[str, torch.Tensor] | nn.Module) -> int:
    """Bytes of the raw tensor data of a state dict (the size of a dense checkpoint's payload)."""
    sd = state.state_dict() if isinstance(state, nn.Module) else state
    return sum(t.numel() * t.element_size() for t in sd.values())


def _nonzero_bits(t: torch.Tensor) -> torch.Tensor:
    """Bool tensor: True where ``t`` is non-zero (NaN counts as non-zero, -0.0 as zero)."""
    return t != 0


def _negative_zeros(t: torch.Tensor) -> torch.Tensor:
    """Flat indices of the ``-0.0`` entries of a floating tensor (int64)."""
    neg = (t == 0) & torch.signbit(t)
    return torch.nonzero(neg.reshape(-1)).reshape(-1)


def _pack_bits(bits: torch.Tensor) -> torch.Tensor:
    packed = np.packbits(bits.reshape(-1).cpu().numpy().astype(np.uint8), bitorder="little")
    return torch.from_numpy(packed)


def _unpack_bits(packed: torch.Tensor, count: int) -> torch.Tensor:
    bits = np.unpackbits(packed.numpy(), count=count, bitorder="little")
    return torch.from_numpy(bits.astype(bool))


def _view2d(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1) if t.ndim >= 2 else t.reshape(1, -1)


def _detect_nm(nz: torch.Tensor) -> list[tuple[int, int]]:
    """Candidate (n, m) such that every group of m along the input dim has at most n non-zeros."""
    if nz.ndim < 2:
        return []
    v = _view2d(nz)
    out = []
    for m in _NM_CANDIDATE_M:
        if v.shape[1] % m:
            continue
        n = int(v.reshape(v.shape[0], -1, m).sum(-1).max()) if v.numel() else 0
        if 0 < n < m:
            out.append((max(n, 1), m))
    return out


def _quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 quantisation of the 2-D view: (int8 tensor shaped like t, scales)."""
    v = _view2d(t.detach().to(torch.float32))
    amax = torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0).abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.clamp(torch.round(v / scale[:, None]), -127, 127).to(torch.int8)
    return q.reshape(t.shape), scale


def _dequantize_rows(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    v = _view2d(q).to(torch.float32) * scale[:, None]
    return v.reshape(q.shape).to(dtype)


def _encode(
    name: str,
    t: torch.Tensor,
    int8: bool,
    nm_hint: tuple[int, int] | None,
    signed_zeros: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    t = t.detach().cpu()
    info: dict[str, Any] = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    numel = t.numel()
    if numel == 0 or t.ndim == 0 or t.dtype == torch.bool or not t.is_floating_point():
        return {name: t.contiguous().clone()}, {**info, "enc": "dense"}
    quant = int8 and t.ndim >= 2
    nz = _nonzero_bits(t)
    nnz = int(nz.sum())
    vbytes = 1 if quant else t.element_size()
    scale_bytes = (_view2d(t).shape[0] * 4) if quant else 0
    options: list[tuple[int, str, tuple[int, int] | None]] = []
    nm_cands = _detect_nm(nz)
    forced = None
    if nm_hint is not None and t.ndim >= 2:
        n, m = nm_hint
        v = _view2d(nz)
        if v.shape[1] % m == 0 and int(v.reshape(v.shape[0], -1, m).sum(-1).max()) <= n:
            forced = (n, m)
            nm_cands = [forced]
    for n, m in nm_cands:
        groups = numel // m
        idx_bits = max(1, math.ceil(math.log2(m)))
        cost = groups * n * vbytes + math.ceil(groups * n * idx_bits / 8) + scale_bytes
        options.append((cost, "nm", (n, m)))
    dense_cost = numel * vbytes + scale_bytes
    options.append((dense_cost, "dense", None))
    options.append((math.ceil(numel / 8) + nnz * vbytes + scale_bytes, "bitmask", None))
    # smallest wins; ties prefer nm, then dense (stable order of insertion); a declared N:M
    # pattern (``nm=``) that the tensor satisfies is always stored as nm
    best = options[0] if forced else min(options, key=lambda o: o[0])
    enc = best[1]
    tensors: dict[str, torch.Tensor] = {}
    if signed_zeros and enc != "dense":
        neg = _negative_zeros(t)
        if neg.numel():
            tensors[name + _SEP + "negzero"] = neg
    scale = None
    values_src = t
    if quant:
        values_src, scale = _quantize_rows(t)
        tensors[name + _SEP + "scale"] = scale.contiguous()
    if enc == "dense":
        key = name + _SEP + "values" if quant else name
        tensors[key] = values_src.contiguous().clone()
        return tensors, {**info, "enc": "dense", "int8": quant}
    if enc == "bitmask":
        tensors[name + _SEP + "mask"] = _pack_bits(nz)
        tensors[name + _SEP + "values"] = values_src.reshape(-1)[nz.reshape(-1)].contiguous()
        return tensors, {**info, "enc": "bitmask", "int8": quant}
    n, m = best[2]  # type: ignore[misc]
    v_nz = _view2d(nz)
    g_nz = v_nz.reshape(v_nz.shape[0], -1, m)
    # positions of the non-zeros first (stable), padded with zero positions up to n per group
    order = torch.argsort((~g_nz).to(torch.int8), dim=-1, stable=True)[..., :n]
    order, _ = torch.sort(order, dim=-1)
    vals = _view2d(values_src).reshape(v_nz.shape[0], -1, m).gather(-1, order)
    idx_bits = max(1, math.ceil(math.log2(m)))
    bits = (order.reshape(-1, 1) >> torch.arange(idx_bits)) & 1
    tensors[name + _SEP + "values"] = vals.reshape(-1).contiguous()
    tensors[name + _SEP + "index"] = _pack_bits(bits.to(torch.bool))
    return tensors, {**info, "enc": "nm", "n": n, "m": m, "int8": quant}


# ------------------------------------------------------------------ entropy coding (version 2)
# A *packed* part (values, mask, index; a dense tensor's data) is one uint8 blob: the part's
# bytes split into byte planes (plane k holds byte k of every element: the sign/exponent byte
# of floats is then a low-entropy stream of its own), each plane compressed on its own or kept
# raw when compression does not pay. ``info["packed"][part] = {"codecs": [...], "lengths": [...]}``
# lists each plane's codec and stored length; the decoded size of each plane is known from the
# verified element count, and decompression is capped there (no decompression bomb).
CODECS = ("zlib", "lzma")
_PLANE_CODECS = ("raw", *CODECS)
_PACK_MIN_BYTES = 64
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6}]


def _compress(data: bytes, codec: str) -> bytes:
    if codec == "zlib":
        # run-length + Huffman deflate: byte planes and sparse masks have little long-range
        # structure, so Z_RLE codes them smaller than the default strategy and ~10x faster;
        # the stream is plain deflate (any zlib decodes it)
        comp = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        return comp.compress(data) + comp.flush()
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)


def _decompress(name: str, data: bytes, codec: str, size: int) -> bytes:
    """Decompress to exactly ``size`` bytes; never produces more than ``size + 1``."""
    if codec == "raw":
        out, complete = data, True
    elif codec == "zlib":
        dz = zlib.decompressobj()
        try:
            out = dz.decompress(data, size + 1)
        except zlib.error as exc:
            raise _corrupt(name, f"zlib stream is damaged ({exc})") from None
        complete = dz.eof and not dz.unused_data
    else:
        dx = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        try:
            out = dx.decompress(data, size + 1)
        except lzma.LZMAError as exc:
            raise _corrupt(name, f"lzma stream is damaged ({exc})") from None
        complete = dx.eof and not dx.unused_data
    if len(out) != size or not complete:
        raise _corrupt(name, f"a {codec} plane decodes to {len(out)}+ bytes, expected {size}")
    return out


def _pack(t: torch.Tensor, codec: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """Byte-plane split + per-plane compression of a 1-D tensor: (uint8 blob, packed info)."""
    size = t.element_size()
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().reshape(-1, size)
    codecs, lengths, chunks = [], [], []
    for k in range(size):
        plane = np.ascontiguousarray(raw[:, k]).tobytes()
        use = ("raw", plane)
        rle = _compress(plane, "zlib")  # fast; also the probe for whether the plane compresses
        if len(rle) < len(plane):
            use = ("zlib", rle)
        if codec == "lzma" and len(rle) < 0.97 * len(plane):
            packed = _compress(plane, "lzma")
            if len(packed) < len(use[1]):
                use = ("lzma", packed)
        codecs.append(use[0])
        lengths.append(len(use[1]))
        chunks.append(use[1])
    blob = torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8)
    return blob, {"codecs": codecs, "lengths": lengths}


def _unpack(
    name: str, blob: torch.Tensor, spec: Any, dtype: torch.dtype, numel: int
) -> torch.Tensor:
    """Inverse of :func:`_pack` for ``numel`` elements of ``dtype``, every length checked."""
    size = torch.empty((), dtype=dtype).element_size()
    codecs = spec.get("codecs") if isinstance(spec, Mapping) else None
    lengths = spec.get("lengths") if isinstance(spec, Mapping) else None
    if (
        set(spec) != {"codecs", "lengths"}
        or not isinstance(codecs, list)
        or not isinstance(lengths, list)
        or len(codecs) != size
        or len(lengths) != size
        or not all(c in _PLANE_CODECS for c in codecs)
        or not all(type(n) is int and n >= 0 for n in lengths)
    ):
        raise _corrupt(name, f"packed part description is malformed: {str(spec)[:120]}")
    if blob.dtype != torch.uint8 or blob.ndim != 1 or blob.numel() != sum(lengths):
        raise _corrupt(name, f"packed blob has {blob.numel()} bytes, header says {sum(lengths)}")
    if any(c == "raw" and n != numel for c, n in zip(codecs, lengths, strict=True)):
        raise _corrupt(name, f"a raw plane must hold {numel} bytes, lengths are {lengths}")
    data = blob.numpy().tobytes()
    planes, start = [], 0
    for codec, length in zip(codecs, lengths, strict=True):
        # each plane is verified to decode to exactly numel bytes before the output exists
        planes.append(_decompress(name, data[start : start + length], codec, numel))
        start += length
    out = np.empty((numel, size), dtype=np.uint8)
    for k, plane in enumerate(planes):
        out[:, k] = np.frombuffer(plane, dtype=np.uint8)
    return torch.from_numpy(out.reshape(-1)).view(dtype)


def _pack_parts(
    name: str, tensors: dict[str, torch.Tensor], info: dict[str, Any], codec: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Pack the large parts of one encoded tensor (a dense tensor moves to ``name::values``)."""
    out: dict[str, torch.Tensor] = {}
    packed: dict[str, Any] = {}
    for key, t in tensors.items():
        part = key.split(_SEP)[1] if _SEP in key else "values"
        big = t.numel() * t.element_size() >= _PACK_MIN_BYTES
        if part in ("values", "mask", "index") and big:
            blob, spec = _pack(t.reshape(-1), codec)
            out[name + _SEP + part] = blob
            packed[part] = spec
        else:
            out[key] = t
    return out, ({**info, "packed": packed} if packed else info)


def _part(
    store: Mapping[str, torch.Tensor],
    info: Mapping[str, Any],
    name: str,
    part: str,
    dtype: torch.dtype,
    numel: int,
) -> torch.Tensor:
    """A 1-D part of ``numel`` elements: unpacked if the header says so, else stored as is."""
    spec = info.get("packed", {}).get(part)
    if spec is None:
        return _stored(store, name + _SEP + part, dtype, numel=numel)
    return _unpack(name, _stored(store, name + _SEP + part, torch.uint8), spec, dtype, numel)


# ------------------------------------------------------------------------- validated decoding
# Every claim of the header (shapes, dtypes, encodings, pattern fields) is checked against the
# bytes actually present before anything is allocated: a tensor's dense size is only trusted
# once the stored blobs that encode it have exactly the lengths that size implies, so a file
# costs at most a small multiple of its verified dense size.
_DTYPES: dict[str, torch.dtype] = {
    name: getattr(torch, name)
    for name in (
        "float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2",
        "complex64", "complex128", "bool", "uint8", "int8", "int16", "int32", "int64",
        "uint16", "uint32", "uint64",
    )
    if isinstance(getattr(torch, name, None), torch.dtype)
}
_ENCODINGS = ("dense", "bitmask", "nm")
_INFO_KEYS = {"shape", "dtype", "enc", "int8", "n", "m", "packed"}
_PACKABLE = {"dense": {"values"}, "bitmask": {"values", "mask"}, "nm": {"values", "index"}}
_MAX_NDIM = 64
_MAX_M = 1 << 16


def _corrupt(name: str, msg: str) -> CorruptFileError:
    return CorruptFileError(f"corrupt compact file: tensor {name!r}: {msg}")


def _check_info(name: Any, info: Any) -> tuple[tuple[int, ...], torch.dtype, str, bool]:
    """Schema of one header entry: ``(shape, dtype, encoding, int8)``; raises CorruptFileError."""
    if not isinstance(name, str) or not name or _SEP in name:
        raise _corrupt(str(name)[:80], "invalid tensor name")
    if not isinstance(info, Mapping):
        raise _corrupt(name, "header entry is not an object")
    unknown = set(info) - _INFO_KEYS
    if unknown:
        raise _corrupt(name, f"unknown header fields {sorted(unknown)}")
    shape = info.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_NDIM
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise _corrupt(name, f"shape must be a list of non-negative integers, got {shape!r}")
    dtype = _DTYPES.get(info.get("dtype")) if isinstance(info.get("dtype"), str) else None
    if dtype is None:
        raise _corrupt(name, f"dtype {info.get('dtype')!r} is not one of {sorted(_DTYPES)}")
    enc = info.get("enc")
    if enc not in _ENCODINGS:
        raise _corrupt(name, f"encoding {enc!r} is not one of {list(_ENCODINGS)}")
    quant = info.get("int8", False)
    if not isinstance(quant, bool):
        raise _corrupt(name, f"int8 must be true or false, got {quant!r}")
    if (quant or enc != "dense") and not (dtype.is_floating_point and len(shape) >= 1):
        raise _corrupt(name, f"encoding {enc!r} (int8={quant}) needs a floating tensor")
    if quant and len(shape) < 2:
        raise _corrupt(name, "int8 needs a tensor with two or more dimensions")
    if enc == "nm":
        n, m = info.get("n"), info.get("m")
        if type(n) is not int or type(m) is not int or not 0 < n < m <= _MAX_M:
            raise _corrupt(name, f"N:M fields need 0 < n < m <= {_MAX_M}, got n={n!r}, m={m!r}")
        if len(shape) < 2 or math.prod(shape) == 0 or math.prod(shape[1:]) % m:
            raise _corrupt(name, f"N:M {n}:{m} does not fit shape {shape}")
    elif "n" in info or "m" in info:
        raise _corrupt(name, "n/m fields only belong to the 'nm' encoding")
    packed = info.get("packed", {})
    if not isinstance(packed, dict) or not set(packed) <= _PACKABLE[enc]:
        raise _corrupt(name, f"packed parts {str(packed)[:80]} do not belong to encoding {enc!r}")
    return tuple(shape), dtype, enc, quant


def _stored(
    store: Mapping[str, torch.Tensor],
    key: str,
    dtype: torch.dtype,
    shape: tuple[int, ...] | None = None,
    numel: int | None = None,
) -> torch.Tensor:
    """A stored tensor with exactly the dtype and shape (or 1-D length) the header implies."""
    t = store.get(key)
    name = key.split(_SEP)[0]
    if t is None:
        raise _corrupt(name, f"stored tensor {key!r} is missing")
    if t.dtype != dtype:
        raise _corrupt(name, f"{key!r} has dtype {t.dtype}, expected {dtype}")
    if shape is not None and tuple(t.shape) != shape:
        raise _corrupt(name, f"{key!r} has shape {tuple(t.shape)}, header says {shape}")
    if numel is not None and (t.ndim != 1 or t.numel() != numel):
        raise _corrupt(name, f"{key!r} has shape {tuple(t.shape)}, expected ({numel},)")
    return t


def _rows(shape: tuple[int, ...]) -> int:
    return shape[0] if len(shape) >= 2 else 1


def _checked_mask(name: str, packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Unpack a verified-length bitmask; its padding bits must be zero."""
    bits = _unpack_bits(packed, numel)
    tail = numel % 8
    if tail and int(packed[-1]) >> tail:
        raise _corrupt(name, "bitmask has bits set beyond the tensor's size")
    return bits


def _decode(name: str, info: Any, store: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Decode one tensor after checking every stored blob against the header's claims."""
    shape, dtype, enc, quant = _check_info(name, info)
    numel = math.prod(shape)
    vdtype = torch.int8 if quant else dtype
    scale = None
    if quant:
        scale = _stored(store, name + _SEP + "scale", torch.float32, numel=_rows(shape))
    if enc == "dense":
        if "values" in info.get("packed", {}):
            values = _part(store, info, name, "values", vdtype, numel).reshape(shape)
        elif quant:
            values = _stored(store, name + _SEP + "values", torch.int8, shape=shape)
        else:
            values = _stored(store, name, dtype, shape=shape)
        return _dequantize_rows(values, scale, dtype) if quant else values  # type: ignore[arg-type]
    if enc == "bitmask":
        packed = _part(store, info, name, "mask", torch.uint8, math.ceil(numel / 8))
        nz = _checked_mask(name, packed, numel)
        values = _part(store, info, name, "values", vdtype, int(nz.sum()))
        out = torch.zeros(numel, dtype=vdtype)
        out[nz] = values
        out = out.reshape(shape)
    else:
        out = _decode_nm(name, info, shape, vdtype, store)
    neg_key = name + _SEP + "negzero"
    if neg_key in store:
        neg = store[neg_key]
        if quant or neg.dtype != torch.int64 or neg.ndim != 1 or neg.numel() > numel:
            raise _corrupt(name, f"{neg_key!r} is not a list of at most {numel} int64 indices")
        if neg.numel() and (int(neg.min()) < 0 or int(neg.max()) >= numel):
            raise _corrupt(name, f"{neg_key!r} holds indices outside [0, {numel})")
        out.reshape(-1)[neg] = -0.0
    if quant:
        return _dequantize_rows(out, scale, dtype)  # type: ignore[arg-type]
    return out


def _decode_nm(
    name: str,
    info: Mapping[str, Any],
    shape: tuple[int, ...],
    vdtype: torch.dtype,
    store: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    n, m = info["n"], info["m"]
    numel = math.prod(shape)
    rows = _rows(shape)
    kept = numel // m * n
    idx_bits = max(1, math.ceil(math.log2(m)))
    values = _part(store, info, name, "values", vdtype, kept)
    packed = _part(store, info, name, "index", torch.uint8, math.ceil(kept * idx_bits / 8))
    bits = _checked_mask(name, packed, kept * idx_bits)
    idx = (bits.reshape(-1, idx_bits).long() << torch.arange(idx_bits)).sum(-1)
    idx = idx.reshape(rows, -1, n)
    if kept and (int(idx.max()) >= m or (n > 1 and not bool((idx.diff(dim=-1) > 0).all()))):
        raise _corrupt(name, f"N:M positions must be increasing and below m={m}")
    out = torch.zeros(rows, numel // rows // m, m, dtype=vdtype)
    out.scatter_(-1, idx, values.reshape(rows, -1, n))
    return out.reshape(shape)


def _as_state_dict(
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    sd = _state_dict_of(model_or_state_dict)
    bad_names = [k for k in sd if not isinstance(k, str) or not k]
    if bad_names:
        raise InvalidParameterError(f"state dict keys must be non-empty strings: {bad_names[:5]}")
    meta = [k for k, v in sd.items() if v.is_meta]
    if meta:
        raise UnsupportedModelError(
            f"tensors {meta[:5]} are on the meta device (they hold no data); materialise the "
            "model before saving"
        )
    return sd


def _state_dict_of(
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    if isinstance(model_or_state_dict, nn.Module):
        return state_dict_with_torch_prune_applied(model_or_state_dict.state_dict())
    if isinstance(model_or_state_dict, Mapping):
        bad = [k for k, v in model_or_state_dict.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise InvalidParameterError(
                f"state dict entries must be tensors; not tensors: {bad[:5]}"
            )
        return state_dict_with_torch_prune_applied(dict(model_or_state_dict))
    raise InvalidParameterError(
        f"model_or_state_dict must be an nn.Module or a mapping of tensors, got "
        f"{type(model_or_state_dict).__name__}"
    )


def state_dict_with_torch_prune_applied(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold ``X_orig``/``X_mask`` pairs (torch.nn.utils.prune) into plain ``X = X_orig*X_mask``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in sd:
            base = key[: -len("_orig")]
            mask = sd[base + "_mask"]
            out[base] = torch.where(mask.bool(), value, torch.zeros((), dtype=value.dtype))
        elif key.endswith("_mask") and key[: -len("_mask")] + "_orig" in sd:
            continue
        else:
            out[key] = value
    return out


def save_compact(
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    int8: bool = False,
    metadata: Mapping[str, str] | None = None,
    nm: Mapping[str, tuple[int, int]] | None = None,
    signed_zeros: bool = False,
    compression: str | None = "zlib",
) -> Path:
    """Save a (sparse) model or state dict in the compact safetensors format; return the path.

    Every tensor is stored in the smallest of ``dense`` / ``bitmask`` / ``nm`` encodings (see the
    module docstring). ``int8=True`` quantises weight values (>= 2-D floating tensors) to int8
    with per-row scales — lossy. ``signed_zeros=True`` keeps ``-0.0`` bits exactly (see module
    docstring). ``metadata`` (str -> str) is stored alongside; ``nm`` declares the N:M
    pattern of tensors (``{name: (n, m)}``): a tensor that satisfies it is always stored as
    ``nm``; otherwise N:M is auto-detected for M in 4, 8, 16 and used when smallest. Models pruned
    with ``torch.nn.utils.prune`` are saved with their masks folded in. The write is atomic.
    ``compression`` (``"zlib"``, default: run-length + Huffman deflate; ``"lzma"``: tries
    lzma on the planes that compress and keeps whichever codec is smaller — slower, at most
    ~1 % smaller in our measurements; ``None``: the plain version-1
    layout) entropy-codes the masks, indices and values (byte planes, see the module
    docstring); loading stays bit-exact.
    """
    from safetensors.torch import save

    check_output_path(path)  # before the work: a bad destination fails at once
    sd = _as_state_dict(model_or_state_dict)
    if compression is not None and compression not in CODECS:
        raise InvalidParameterError(
            f"compression={compression!r} is not supported; accepted values: "
            + ", ".join(repr(c) for c in (*CODECS, None))
        )
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidParameterError("metadata must map str to str")
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, Any] = {}
    for name, t in sd.items():
        if _SEP in name:
            raise InvalidParameterError(f"tensor name {name!r} may not contain {_SEP!r}")
        hint = None if nm is None else nm.get(name)
        enc_tensors, info = _encode(name, t, int8, hint, signed_zeros)
        if compression is not None:
            enc_tensors, info = _pack_parts(name, enc_tensors, info, compression)
        tensors.update(enc_tensors)
        entries[name] = info
    header = {
        "format": FORMAT_NAME,
        "version": 1 if compression is None else FORMAT_VERSION,
        "tensors": entries,
        "user": dict(metadata or {}),
    }
    # serialise in memory and write through our one atomic temp file (safetensors' save_file
    # would create a second temporary file of its own)
    return atomic_write_bytes(path, save(tensors, metadata={"prunekit": json.dumps(header)}))


def _check_file(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise InvalidParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(f"path {str(path)!r} is not a file")
    return p


def _check_header(path: Path, raw: Any) -> dict[str, Any]:
    """Parse and validate the ``prunekit`` JSON header (schema of every entry included)."""
    if not isinstance(raw, str):
        raise CorruptFileError(f"{path}: not a prunekit compact file (no 'prunekit' metadata)")
    try:
        header = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, RecursionError-free: json nests iteratively
        raise CorruptFileError(f"{path}: corrupt compact header (invalid JSON: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise CorruptFileError(f"{path}: not a prunekit compact file (format {fmt!r})")
    version = header.get("version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise CorruptFileError(
            f"{path}: unsupported compact format version {version!r} (this prunekit reads "
            f"versions 1 to {FORMAT_VERSION}; a newer file needs a newer prunekit)"
        )
    tensors, user = header.get("tensors"), header.get("user", {})
    if not isinstance(tensors, dict):
        raise CorruptFileError(f"{path}: corrupt compact header ('tensors' is not an object)")
    if not isinstance(user, dict) or not all(isinstance(v, str) for v in user.values()):
        raise CorruptFileError(f"{path}: corrupt compact header ('user' must map str to str)")
    try:
        for name, info in tensors.items():
            _check_info(name, info)
            if version < 2 and "packed" in info:
                raise _corrupt(name, "packed parts need format version 2")
    except CorruptFileError as exc:
        raise CorruptFileError(f"{path}: {exc}") from None
    return header


def read_compact_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated JSON header of a compact file: encodings per tensor and user ``metadata``.

    Raises :class:`~prunekit.errors.CorruptFileError` for a file that is not a valid compact
    file (not safetensors, no or malformed header, unknown version or fields).
    """
    from safetensors import safe_open

    p = _check_file(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise CorruptFileError(f"{path}: not a safetensors file ({exc})") from None
    if "prunekit" not in meta:
        raise CorruptFileError(f"{path}: not a prunekit compact file (no 'prunekit' metadata)")
    return _check_header(p, meta["prunekit"])


_PARTS = ("values", "mask", "index", "scale", "negzero")


def load_compact(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a compact file back into a dense state dict (bit-exact unless saved with int8).

    Every claim of the file is checked against its bytes before anything is allocated; a
    truncated, mutated or malformed file raises :class:`~prunekit.errors.CorruptFileError`.
    """
    from safetensors.torch import load_file

    header = read_compact_metadata(path)
    try:
        store = load_file(str(path))  # bounded by the file's size (offsets checked by safetensors)
    except Exception as exc:  # safetensors raises its own error types
        raise CorruptFileError(f"{path}: not a valid safetensors file ({exc})") from None
    expected = {n for n in header["tensors"]} | {
        f"{n}{_SEP}{part}" for n in header["tensors"] for part in _PARTS
    }
    stray = sorted(set(store) - expected)
    if stray:
        raise CorruptFileError(f"{path}: corrupt compact file: unexpected tensors {stray[:5]}")
    try:
        return {name: _decode(name, info, store) for name, info in header["tensors"].items()}
    except CorruptFileError as exc:
        raise CorruptFileError(f"{path}: {exc}") from None


def load_compact_into(
    model: nn.Module, path: str | os.PathLike[str], strict: bool = True
) -> nn.Module:
    """Load a compact file into ``model`` (``load_state_dict``); return the model.

    With ``strict=True`` the stored names and shapes are compared with the model's before any
    tensor is decoded.
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(strict, bool):
        raise InvalidParameterError(f"strict must be True or False, got {strict!r}")
    if strict:
        stored = read_compact_metadata(path)["tensors"]
        wanted = {k: list(v.shape) for k, v in model.state_dict().items()}
        got = {k: v["shape"] for k, v in stored.items()}
        if got != wanted:
            diff = sorted(set(got) ^ set(wanted)) or [k for k in got if got[k] != wanted[k]]
            raise UnsupportedModelError(
                f"compact file {path} does not fit the model (names or shapes differ: {diff[:5]})"
            )
    state = load_compact(path)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise UnsupportedModelError(f"compact file {path} does not fit the model: {exc}") from exc
    return model


# ----------------------------------------------------------------- torch.nn.utils.prune interop
def import_torch_prune(model: nn.Module) -> dict[str, torch.Tensor]:
    """Make ``torch.nn.utils.prune`` pruning permanent and return the masks as prunekit masks.

    Every ``X_orig`` / ``X_mask`` pair becomes a plain parameter ``X`` with the zeros baked in;
    the forward pre-hooks and the ``_mask`` buffers are removed (``prune.remove``). Returns
    ``{qualified_param_name: bool keep mask}`` to hand to :class:`prunekit.nn.Pruner`.
    """
    from torch.nn.utils import prune

    masks: dict[str, torch.Tensor] = {}
    for mod_name, module in model.named_modules():
        hooks = [
            h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)
        ]
        for tensor_name in dict.fromkeys(h._tensor_name for h in hooks):
            mask = getattr(module, tensor_name + "_mask").detach().clone().bool()
            prune.remove(module, tensor_name)
            with torch.no_grad():
                param = getattr(module, tensor_name)
                param.masked_fill_(~mask, 0.0)
            masks[f"{mod_name}.{tensor_name}" if mod_name else tensor_name] = mask
    return masks


def export_torch_prune(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Attach ``masks`` in ``torch.nn.utils.prune`` form (``X_orig`` + ``X_mask`` + pre-hook).

    For tools that expect that format. Note it duplicates every masked tensor and adds a hook;
    undo with :func:`import_torch_prune`. Returns the model (modified in place).
    """
    from torch.nn.utils import prune

    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(masks, Mapping):
        raise InvalidParameterError(f"masks must be a dict {{name: bool tensor}}, got {masks!r}")
    modules = dict(model.named_modules())
    for qual, mask in masks.items():
        mod_name, _, tensor_name = qual.rpartition(".")
        module = modules.get(mod_name)
        if module is None or not isinstance(getattr(module, tensor_name, None), torch.Tensor):
            raise InvalidParameterError(f"masks: {qual!r} is not a tensor of the model")
        target = getattr(module, tensor_name)
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(target.shape):
            raise ShapeMismatchError(
                f"masks: {qual!r} must be a tensor of shape {tuple(target.shape)}"
            )
        prune.custom_from_mask(module, tensor_name, mask.to(torch.bool))
    return model
