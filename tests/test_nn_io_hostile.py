"""Hostile compact files: every claim is checked against the bytes present before allocating.

A memory cap (``RLIMIT_AS`` = current address space + 768 MiB) guards each test, so a decoder
that trusted a claimed shape fails with ``MemoryError`` (not a PrunekitError) instead of taking
gigabytes of a shared machine.
"""

from __future__ import annotations

import contextlib
import json
import resource
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunekit.errors import CorruptFileError, PrunekitError, UnsupportedModelError
from prunekit.nn.io import load_compact, load_compact_into, read_compact_metadata, save_compact
from prunekit.nn.patterns import nm_mask

CAP = 768 * 2**20


@contextlib.contextmanager
def memory_cap(extra: int = CAP) -> Iterator[None]:
    """Limit the address space to its current size + ``extra`` for the block."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    new = vm + extra if hard == resource.RLIM_INFINITY else min(hard, vm + extra)
    resource.setrlimit(resource.RLIMIT_AS, (new, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _no_allocation_failure(exc: BaseException) -> None:
    """The error came from validation, not from a failed attempt to allocate."""
    chain: BaseException | None = exc
    while chain is not None:
        assert not isinstance(chain, MemoryError), f"tried to allocate: {exc!r}"
        assert "allocate" not in str(chain), f"tried to allocate: {exc!r}"
        chain = chain.__cause__ or chain.__context__


def split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def join(header: dict[str, Any], body: bytes) -> bytes:
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + body


def edit_prunekit(raw: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """Apply ``edit`` to the prunekit JSON header inside the safetensors metadata."""
    header, body = split(raw)
    meta = json.loads(header["__metadata__"]["prunekit"])
    edit(meta)
    header["__metadata__"]["prunekit"] = json.dumps(meta)
    return join(header, body)


def _example_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sparse = torch.randn(16, 32, generator=g)
    sparse[sparse.abs() < 1.2] = 0
    sparse[0, 0] = -0.0
    nm = torch.randn(8, 16, generator=g)
    nm = nm * nm_mask(nm.abs(), 2, 4)
    return {"sparse": sparse, "nm": nm, "dense": torch.randn(7, generator=g), "n": torch.tensor(3),
            "big_dense": torch.randn(40, generator=g)}


def _example_file(folder: Path, compression: str | None) -> bytes:
    """A small compact file holding all three encodings, int8 scales and negative zeros."""
    path = folder / "v.safetensors"
    save_compact(_example_state(), path, signed_zeros=True, compression=compression)
    header = read_compact_metadata(path)["tensors"]
    assert {header[k]["enc"] for k in header} == {"bitmask", "nm", "dense"}
    return path.read_bytes()


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Version-1 layout: every part stored as a plain tensor."""
    return _example_file(tmp_path_factory.mktemp("v1"), None)


@pytest.fixture(scope="module", params=["zlib", "lzma"])
def packed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Version-2 layout: masks, indices and values entropy-coded in byte planes."""
    raw = _example_file(tmp_path_factory.mktemp("v2"), request.param)
    meta = json.loads(split(raw)[0]["__metadata__"]["prunekit"])
    assert meta["version"] == 2 and "packed" in meta["tensors"]["sparse"]
    return raw


def _load(tmp_path: Path, raw: bytes) -> dict[str, torch.Tensor]:
    path = tmp_path / "x.safetensors"
    path.write_bytes(raw)
    with memory_cap():
        return load_compact(path)


def _set(key: str, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        meta["tensors"][key][field] = value

    return edit


def test_claimed_huge_shape_is_refused_before_allocating(tmp_path: Path, valid: bytes) -> None:
    # 2**32 elements (16 GiB of float32) claimed by a file of a few KB
    raw = edit_prunekit(valid, _set("sparse", "shape", [2**22, 2**10]))
    assert len(raw) < 10_000
    with pytest.raises(CorruptFileError, match="mask") as info:
        _load(tmp_path, raw)
    _no_allocation_failure(info.value)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set("sparse", "shape", [-16, -32]), "non-negative"),
        (_set("sparse", "shape", "16x32"), "shape"),
        (_set("sparse", "shape", [16.0, 32]), "shape"),
        (_set("sparse", "shape", [True, 32]), "shape"),
        (_set("sparse", "dtype", "object"), "dtype"),
        (_set("sparse", "dtype", "__class__"), "dtype"),
        (_set("sparse", "enc", "pickle"), "encoding"),
        (_set("sparse", "int8", "yes"), "int8"),
        (_set("sparse", "extra", 1), "unknown header fields"),
        (_set("nm", "n", 5), "N:M"),
        (_set("nm", "m", 0), "N:M"),
        (_set("nm", "m", 3), "N:M"),
        (_set("nm", "shape", [8, 20]), "values"),
        (_set("n", "enc", "bitmask"), "floating"),
        (_set("dense", "shape", [8]), "shape"),
        (_set("dense", "dtype", "float64"), "dtype"),
        (_set("sparse", "shape", [16, 31]), "mask"),
        (lambda m: m.update(version=99), "version"),
        (lambda m: m.update(version="1"), "version"),
        (lambda m: m.update(tensors=[1, 2]), "tensors"),
        (lambda m: m.update(user={"a": 1}), "user"),
        (lambda m: m.update(format="other"), "not a prunekit"),
        (lambda m: m["tensors"].update({"a::b": m["tensors"]["n"]}), "name"),
    ],
)
def test_header_schema_and_claims(
    tmp_path: Path, valid: bytes, edit: Callable[[dict[str, Any]], None], match: str
) -> None:
    with pytest.raises(CorruptFileError, match=match):
        _load(tmp_path, edit_prunekit(valid, edit))


def _edit_tensor(raw: bytes, key: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> bytes:
    from safetensors.torch import load, save

    header, _ = split(raw)
    store = load(raw)
    store[key] = fn(store[key])
    return save(store, metadata=header["__metadata__"])


@pytest.mark.parametrize(
    ("key", "fn", "match"),
    [
        ("sparse::values", lambda t: t[:-1].clone(), "values"),
        ("sparse::values", lambda t: t.double(), "dtype"),
        ("sparse::mask", lambda t: torch.cat([t[:1] ^ 1, t[1:]]), "values"),
        ("sparse::mask", lambda t: t[:-1].clone(), "mask"),
        ("nm::index", lambda t: torch.full_like(t, 0b01010101), "increasing"),
        ("sparse::negzero", lambda t: t + 10**6, "outside"),
        ("sparse::negzero", lambda t: t.int(), "int64"),
        ("n", lambda t: t.reshape(1), "shape"),
    ],
)
def test_stored_tensors_must_match_the_header(
    tmp_path: Path, valid: bytes, key: str, fn: Callable[[torch.Tensor], torch.Tensor], match: str
) -> None:
    with pytest.raises(CorruptFileError, match=match):
        _load(tmp_path, _edit_tensor(valid, key, fn))


def test_stray_tensor_and_truncation(tmp_path: Path, valid: bytes) -> None:
    from safetensors.torch import load, save

    header, _ = split(valid)
    store = {**load(valid), "evil": torch.zeros(3)}
    with pytest.raises(CorruptFileError, match="unexpected"):
        _load(tmp_path, save(store, metadata=header["__metadata__"]))
    for cut in (0, 7, 8, 100, len(valid) // 2, len(valid) - 1):
        with pytest.raises(CorruptFileError):
            _load(tmp_path, valid[:cut])


def test_load_compact_into_refuses_corrupt_files(tmp_path: Path, valid: bytes) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(edit_prunekit(valid, _set("sparse", "shape", [2**22, 2**10])))
    with pytest.raises(CorruptFileError), memory_cap():
        load_compact_into(torch.nn.Linear(2, 2), path, strict=False)
    with pytest.raises(UnsupportedModelError, match="does not fit"), memory_cap():
        load_compact_into(torch.nn.Linear(2, 2), path)  # names/shapes compared before decoding


def test_packed_round_trip_is_bit_exact(tmp_path: Path, packed: bytes) -> None:
    out = _load(tmp_path, packed)
    for k, v in _example_state().items():
        assert out[k].dtype == v.dtype and torch.equal(out[k], v)
    assert torch.signbit(out["sparse"][0, 0])  # -0.0 kept (signed_zeros=True)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set("sparse", "shape", [2**22, 2**10]), "decodes to|raw plane"),  # huge claim
        (_set("sparse", "shape", [16, 33]), "decodes to|raw plane"),
        (_set("big_dense", "shape", [2**22, 2**10]), "decodes to|raw plane"),
        (_set("sparse", "packed", {"values": {"codecs": ["zlib"], "lengths": [1]}}), "malformed"),
        (_set("sparse", "packed", {"index": {}}), "do not belong"),
        (_set("sparse", "packed", []), "do not belong"),
        (lambda m: m["tensors"]["sparse"]["packed"]["mask"].update(codecs=["pickle"]), "malformed"),
        (lambda m: m["tensors"]["sparse"]["packed"]["mask"].update(lengths=[-1]), "malformed"),
        (lambda m: m["tensors"]["sparse"]["packed"]["values"]["lengths"].reverse(),
         "decodes|damaged|raw plane"),
        (lambda m: m["tensors"]["nm"].pop("packed"), "expected"),
        (lambda m: m.update(version=1), "version 2"),
    ],
)
def test_packed_header_claims(
    tmp_path: Path, packed: bytes, edit: Callable[[dict[str, Any]], None], match: str
) -> None:
    with pytest.raises(CorruptFileError, match=match) as info:
        _load(tmp_path, edit_prunekit(packed, edit))
    _no_allocation_failure(info.value)


def test_decompression_is_capped_at_the_claimed_size(tmp_path: Path) -> None:
    import zlib

    from safetensors.torch import load, save

    packed = _example_file(tmp_path, "zlib")
    header, _ = split(packed)
    meta = json.loads(header["__metadata__"]["prunekit"])
    store = load(packed)
    comp = zlib.compressobj(1)
    chunk = bytes(2**20)
    bomb = b"".join(comp.compress(chunk) for _ in range(512)) + comp.flush()  # 512 MiB zeros
    store["sparse::mask"] = torch.frombuffer(bytearray(bomb), dtype=torch.uint8)
    meta["tensors"]["sparse"]["packed"]["mask"] = {"codecs": ["zlib"], "lengths": [len(bomb)]}
    raw = save(store, metadata={"prunekit": json.dumps(meta)})
    with pytest.raises(CorruptFileError, match="decodes to") as info:
        _load(tmp_path, raw)
    _no_allocation_failure(info.value)


@settings(
    derandomize=True, max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_byte_mutations_raise_prunekit_error_in_bounded_memory(
    tmp_path: Path, valid: bytes, packed: bytes, data: st.DataObject
) -> None:
    raw = bytearray(data.draw(st.sampled_from([valid, packed]), label="layout"))
    for _ in range(data.draw(st.integers(1, 4), label="n_mutations")):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]), label="kind")
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        if kind == "flip":
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            raw[pos] = data.draw(st.sampled_from(list(b'09-9e":,[]{} \x00\xff')))
        elif kind == "insert":
            raw[pos:pos] = data.draw(st.sampled_from([b"9", b"99999", b"-", b"[", b"0"]))
        else:
            del raw[pos]
    try:
        out = _load(tmp_path, bytes(raw))
    except PrunekitError as exc:
        _no_allocation_failure(exc)
        return
    # a mutation that still decodes must decode to tensors no larger than the file allows
    # (at most 8 elements per stored byte: one mask bit each)
    assert sum(t.numel() for t in out.values()) <= 8 * len(raw)


def test_pruned_transformers_class_must_be_a_model(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from prunekit.nn.oneshot.export import load_pruned

    raw = save_compact({"w": torch.zeros(2)}, tmp_path / "a.safetensors").read_bytes()
    for cls, config in [
        ("AutoTokenizer", "{}"),  # an attribute of transformers, not a model class
        ("os.system", "{}"),
        ("PreTrainedModel", "{}"),
        ("BertModel", "not json"),
        ("BertModel", '{"model_type": "bert", "num_hidden_layers": 1000000}'),
        ("BertModel", '{"model_type": "bert", "hidden_size": 64, "num_attention_heads": 2}'),
    ]:
        path = tmp_path / "p.safetensors"
        user = {"transformers_class": cls, "transformers_config": config}
        path.write_bytes(edit_prunekit(raw, lambda m, u=user: m.update(user=u)))
        with pytest.raises(CorruptFileError), memory_cap(2 * CAP):
            load_pruned(path)


@pytest.mark.parametrize("codec", ["zlib", "lzma"])
def test_damaged_compressed_planes(tmp_path: Path, codec: str) -> None:
    from safetensors.torch import load, save

    g = torch.Generator().manual_seed(0)
    w = torch.rand(300, 784, generator=g) * 0.2 - 0.1  # uniform, like nn.Linear's init
    w[w.abs() < 0.09] = 0
    raw = save_compact({"w": w}, tmp_path / "w.safetensors", compression=codec).read_bytes()
    header, _ = split(raw)
    meta = json.loads(header["__metadata__"]["prunekit"])
    spec = meta["tensors"]["w"]["packed"]["values"]
    assert codec in spec["codecs"]  # the sign/exponent plane is coded with the chosen codec
    assert torch.equal(_load(tmp_path, raw)["w"], w)
    k = spec["codecs"].index(codec)
    start = sum(spec["lengths"][:k])
    store = load(raw)
    blob = store["w::values"].clone()
    for offset, value in ((2, 0xFF), (spec["lengths"][k] // 2, 0x00), (spec["lengths"][k] - 1, 7)):
        damaged = blob.clone()
        damaged[start + offset] ^= value or 0x5A
        out = save({**store, "w::values": damaged}, metadata=header["__metadata__"])
        try:
            got = _load(tmp_path, out)["w"]
        except CorruptFileError as exc:
            _no_allocation_failure(exc)
        else:  # a flip that still decodes can only change values, never sizes
            assert got.shape == w.shape and torch.equal(got == 0, w == 0)
