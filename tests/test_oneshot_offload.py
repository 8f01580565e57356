"""oneshot_from_checkpoint: block-by-block pruning of sharded safetensors = in-memory oneshot."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from prunekit.errors import InvalidParameterError, UnsupportedModelError  # noqa: E402
from prunekit.nn.oneshot import oneshot, oneshot_from_checkpoint  # noqa: E402
from prunekit.nn.oneshot._hf import import_transformers  # noqa: E402

transformers = import_transformers()


def _gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=48, n_positions=32, n_embd=32, n_layer=3, n_head=2)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _llama() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=48, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=32)
    return transformers.LlamaForCausalLM(cfg).eval()


def _save(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(folder, max_shard_size="20KB")
    assert len(list(folder.glob("*.safetensors"))) > 2  # really sharded
    return folder


IDS = torch.randint(0, 48, (6, 12), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("build", [_gpt2, _llama], ids=["gpt2", "llama"])
@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "magnitude"])
def test_offload_equals_in_memory_pruning(tmp_path: Path, build: object, method: str) -> None:
    model = build()  # type: ignore[operator]
    src = _save(model, tmp_path / "src")
    reference = copy.deepcopy(model)
    ref = oneshot(reference, IDS, method, sparsity=0.5, batch_size=3)
    rep = oneshot_from_checkpoint(src, tmp_path / "out", IDS, method, sparsity=0.5, batch_size=3)
    assert rep.n_blocks == ref.n_blocks and len(rep.layers) == len(ref.layers)
    assert rep.sparsity == pytest.approx(ref.sparsity)
    loaded = type(model).from_pretrained(tmp_path / "out").eval()
    expected = reference.state_dict()
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-5, atol=1e-6, msg=k)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == rep.n_blocks + 1
    assert (tmp_path / "out" / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temp left


def test_offload_single_file_checkpoint_and_2_4(tmp_path: Path) -> None:
    model = _gpt2()
    model.save_pretrained(tmp_path / "src")  # one model.safetensors
    reference = copy.deepcopy(model)
    oneshot(reference, IDS, "wanda", pattern="2:4", batch_size=3)
    oneshot_from_checkpoint(tmp_path / "src", tmp_path / "out", IDS, "wanda", pattern="2:4",
                            batch_size=3)
    loaded = type(model).from_pretrained(tmp_path / "out")
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, reference.state_dict()[k], msg=k)


def test_offload_bad_inputs_leave_no_output(tmp_path: Path) -> None:
    model = _gpt2()
    bin_dir = tmp_path / "bin"
    model.save_pretrained(bin_dir)
    (bin_dir / "model.safetensors").rename(bin_dir / "pytorch_model.bin")
    with pytest.raises(InvalidParameterError, match="not a safetensors checkpoint"):
        oneshot_from_checkpoint(bin_dir, tmp_path / "out", IDS)
    src = _save(model, tmp_path / "src")
    with pytest.raises(InvalidParameterError, match="blocks="):
        oneshot_from_checkpoint(src, tmp_path / "out", IDS, blocks="transformer.nope")
    with pytest.raises(InvalidParameterError, match="calibration_data"):
        oneshot_from_checkpoint(src, tmp_path / "out", None, "sparsegpt")
    with pytest.raises(InvalidParameterError, match="different folder"):
        oneshot_from_checkpoint(src, src, IDS)
    # a calibration batch that does not fit the model fails mid-way: nothing is left behind
    with pytest.raises(Exception, match="calibration"):
        oneshot_from_checkpoint(src, tmp_path / "out", torch.full((2, 40), 3), "wanda")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "src"]
    # a missing shard named by the index
    next(src.glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(InvalidParameterError, match="missing shards"):
        oneshot_from_checkpoint(src, tmp_path / "out", IDS)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(InvalidParameterError, match="overwrite"):
        oneshot_from_checkpoint(_save(model, tmp_path / "src2"), tmp_path / "full", IDS)
    assert (tmp_path / "full" / "x").read_text() == "keep"


def test_offload_config_transformers_cannot_build_is_refused(tmp_path: Path) -> None:
    cfg = transformers.PretrainedConfig()
    folder = tmp_path / "odd"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2, 2)}, str(folder / "model.safetensors"))
    cfg.save_pretrained(folder)
    with pytest.raises(UnsupportedModelError, match="config.json"):
        oneshot_from_checkpoint(folder, tmp_path / "out", IDS)
    assert not (tmp_path / "out").exists()
