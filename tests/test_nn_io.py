"""Compact sparse checkpoints: bit-exact round trips, bytes falling with sparsity, prune interop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.nn.io import (
    dense_state_dict_bytes,
    export_torch_prune,
    import_torch_prune,
    load_compact,
    load_compact_into,
    read_compact_metadata,
    save_compact,
)
from prunekit.nn.models import DigitsCNN, LeNet300100
from prunekit.nn.patterns import nm_mask, unstructured_mask


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~10x slower."""
    torch.set_num_threads(1)


def bits(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point():
        return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
    return t


def sparsify(model: nn.Module, sparsity: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.masked_fill_(~unstructured_mask(p.abs(), sparsity), 0.0)


def test_lenet_90_percent_ratio_and_bit_exact(tmp_path: Path) -> None:
    model = LeNet300100()
    sparsify(model, 0.9)
    sd = model.state_dict()
    path = save_compact(model, tmp_path / "m.safetensors")
    assert path.stat().st_size <= 0.15 * dense_state_dict_bytes(sd)
    loaded = load_compact(path)
    assert list(loaded) == list(sd)
    for k in sd:
        assert loaded[k].dtype == sd[k].dtype and torch.equal(bits(loaded[k]), bits(sd[k]))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves nothing behind


def test_bytes_fall_with_sparsity(tmp_path: Path) -> None:
    sizes = []
    for s in (0.0, 0.5, 0.8, 0.9, 0.95):
        model = LeNet300100(in_features=64)
        sparsify(model, s)
        sizes.append(save_compact(model, tmp_path / f"{s}.safetensors").stat().st_size)
    assert sizes == sorted(sizes, reverse=True)
    dense = dense_state_dict_bytes(LeNet300100(in_features=64))
    assert sizes[0] <= dense * 1.01  # dense stays dense: never bigger than the raw bytes (+header)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_and_special_values_round_trip(tmp_path: Path, dtype: torch.dtype) -> None:
    w = torch.randn(16, 40).to(dtype)
    w[w.abs() < 1.0] = 0
    w[0, 0], w[0, 1], w[0, 2] = float("nan"), float("inf"), -float("inf")
    sd = {"w": w, "b": torch.randn(5).to(dtype), "n": torch.tensor(7), "flag": torch.ones(3).bool()}
    loaded = load_compact(save_compact(sd, tmp_path / "x.safetensors"))
    for k in sd:
        assert loaded[k].dtype == sd[k].dtype and torch.equal(bits(loaded[k]), bits(sd[k]))


def test_negative_zero(tmp_path: Path) -> None:
    w = torch.randn(8, 64)
    w = w * unstructured_mask(w.abs(), 0.9)  # negative weights * 0 give -0.0
    assert torch.signbit(w[w == 0]).any()
    plain = load_compact(save_compact({"w": w}, tmp_path / "a.safetensors"))["w"]
    assert torch.equal(plain, w)  # numerically equal; -0.0 loads as +0.0 by default
    exact = load_compact(save_compact({"w": w}, tmp_path / "b.safetensors", signed_zeros=True))
    assert torch.equal(bits(exact["w"]), bits(w))


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (2, 8)])
def test_nm_packed_indices(tmp_path: Path, n: int, m: int) -> None:
    w = torch.randn(32, 64)
    w = w * nm_mask(w.abs(), n, m)
    auto = read_compact_metadata(
        save_compact({"w": w}, tmp_path / "auto.safetensors", compression=None)
    )
    assert auto["tensors"]["w"]["enc"] == "nm"  # exact N:M: nm is never larger than a bitmask
    w[3, :m] = 0  # a group with fewer than N non-zeros: declare the pattern to keep nm
    path = save_compact({"w": w}, tmp_path / "nm.safetensors", nm={"w": (n, m)}, compression=None)
    info = read_compact_metadata(path)["tensors"]["w"]
    assert info["enc"] == "nm" and (info["n"], info["m"]) == (n, m)
    with safe_open(str(path), framework="pt") as f:
        idx = f.get_tensor("w::index")
        vals = f.get_tensor("w::values")
    groups = w.numel() // m
    assert vals.numel() == groups * n
    assert idx.numel() == -(-groups * n * max(1, (m - 1).bit_length()) // 8)  # 2 bits for M=4
    assert torch.equal(load_compact(path)["w"], w)


def test_nm_conv_round_trip(tmp_path: Path) -> None:
    cnn = DigitsCNN()
    with torch.no_grad():
        cnn.features[3].weight.mul_(nm_mask(cnn.features[3].weight.abs(), 2, 4))
    path = save_compact(cnn, tmp_path / "cnn.safetensors")
    assert read_compact_metadata(path)["tensors"]["features.3.weight"]["enc"] == "nm"
    fresh = load_compact_into(DigitsCNN(width=16), path)
    for k, v in cnn.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_int8_is_lossy_but_close_and_smaller(tmp_path: Path) -> None:
    model = LeNet300100(in_features=64)
    sparsify(model, 0.8)
    sd = model.state_dict()
    exact = save_compact(model, tmp_path / "f.safetensors")
    quant = save_compact(model, tmp_path / "q.safetensors", int8=True)
    assert quant.stat().st_size < 0.6 * exact.stat().st_size
    loaded = load_compact(quant)
    for k, v in sd.items():
        if v.ndim >= 2:
            step = v.abs().amax(dim=1, keepdim=True) / 127
            assert ((loaded[k] - v).abs() <= step / 2 + 1e-7).all()
            assert torch.equal(loaded[k] == 0, v == 0)
        else:
            assert torch.equal(loaded[k], v)  # biases stay exact


def test_metadata_and_safe_format(tmp_path: Path) -> None:
    path = save_compact(
        LeNet300100(in_features=8), tmp_path / "m.safetensors", metadata={"note": "hi"}
    )
    header = read_compact_metadata(path)
    assert header["user"] == {"note": "hi"} and header["format"] == "prunekit.compact"
    with safe_open(str(path), framework="pt") as f:  # plain safetensors, no pickle
        assert "prunekit" in f.metadata()
        json.loads(f.metadata()["prunekit"])


def test_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    other = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, str(other))
    with pytest.raises(PrunekitError, match="not a prunekit"):
        load_compact(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a file at all")
    with pytest.raises(PrunekitError):
        load_compact(junk)
    with pytest.raises(PrunekitError):
        save_compact("model", tmp_path / "x.safetensors")  # type: ignore[arg-type]
    path = save_compact(LeNet300100(in_features=8), tmp_path / "m.safetensors")
    with pytest.raises(PrunekitError, match="does not fit"):
        load_compact_into(LeNet300100(in_features=9), path)


def test_torch_prune_import_export(tmp_path: Path) -> None:
    from torch.nn.utils import prune

    model = LeNet300100(in_features=20)
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)  # a PruningContainer: 75 %
    prune.random_unstructured(model.fc2, "weight", amount=0.3)
    expected = {
        "fc1.weight": model.fc1.weight.detach().clone(),
        "fc2.weight": model.fc2.weight.detach().clone(),
    }
    assert "fc1.weight_orig" in model.state_dict()
    # saving folds masks in without touching the model
    path = save_compact(model, tmp_path / "p.safetensors")
    assert torch.equal(load_compact(path)["fc1.weight"], expected["fc1.weight"])
    masks = import_torch_prune(model)
    assert set(masks) == {"fc1.weight", "fc2.weight"}
    assert float((~masks["fc1.weight"]).float().mean()) == pytest.approx(0.75, abs=1e-3)
    assert "fc1.weight_orig" not in model.state_dict()
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert isinstance(model.fc1.weight, nn.Parameter)
    for k, v in expected.items():
        assert torch.equal(model.get_parameter(k), v)
    export_torch_prune(model, masks)
    assert "fc1.weight_mask" in model.state_dict()
    assert torch.equal(model.fc1.weight_mask.bool(), masks["fc1.weight"])


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95])
def test_compact_beats_gzip_of_torch_save(tmp_path: Path, sparsity: float) -> None:
    import gzip
    import io

    model = LeNet300100()
    sparsify(model, sparsity)
    sd = model.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    gz = len(gzip.compress(buf.getvalue(), compresslevel=6))
    path = save_compact(model, tmp_path / "m.safetensors")
    assert path.stat().st_size < gz
    assert read_compact_metadata(path)["version"] == 2
    loaded = load_compact(path)
    for k in sd:
        assert torch.equal(bits(loaded[k]), bits(sd[k]))


@pytest.mark.parametrize("compression", [None, "zlib", "lzma"])
def test_every_layout_round_trips_bit_exact(tmp_path: Path, compression: str | None) -> None:
    w = torch.randn(16, 40, dtype=torch.float64)
    w[w.abs() < 1.0] = 0
    w[0, :3] = torch.tensor([float("nan"), float("inf"), -0.0])
    nm = torch.randn(8, 32) * nm_mask(torch.randn(8, 32).abs(), 2, 4)
    sd = {"w": w, "nm": nm, "b": torch.randn(100).half(), "i": torch.arange(50),
          "q": torch.randn(8, 16)}
    path = save_compact(sd, tmp_path / "x.safetensors", compression=compression,
                        signed_zeros=True)
    assert read_compact_metadata(path)["version"] == (1 if compression is None else 2)
    loaded = load_compact(path)
    for k in sd:
        assert loaded[k].dtype == sd[k].dtype and torch.equal(bits(loaded[k]), bits(sd[k]))
    q = load_compact(save_compact(sd, tmp_path / "q.safetensors", int8=True,
                                  compression=compression))["q"]
    assert (q - sd["q"]).abs().max() <= sd["q"].abs().max() / 127


def test_bad_compression_argument(tmp_path: Path) -> None:
    with pytest.raises(PrunekitError, match="compression"):
        save_compact({"w": torch.zeros(3)}, tmp_path / "x.safetensors", compression="gzip")
