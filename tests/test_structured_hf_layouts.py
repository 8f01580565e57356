"""prune_transformer on Llama-style (GQA), DistilBERT, T5, OPT, GPT-NeoX and BART layouts.

Every model is a tiny random config built offline. The central check: zero the weights of the
heads / neurons that pruning will remove, prune, and the output (with a padding mask, eager and
SDPA attention, and through generation with a KV cache) is unchanged -- which fails if a
width attribute is missed, a head is cut in the wrong place or ``head_dim`` changes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunekit.errors import InvalidParameterError, UnsupportedModelError

pytest.importorskip("transformers")

from prunekit.nn.oneshot._hf import import_transformers  # noqa: E402
from prunekit.nn.structured.transformers import (  # noqa: E402
    _positions,
    apply_transformer_plan,
    find_sites,
    prune_transformer,
    select_heads,
)

V = 50
tr = import_transformers()
DEC = {"vocab_size": V, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
       "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
       "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
T5 = {"vocab_size": V, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
      "num_decoder_layers": 2, "num_heads": 4, "dropout_rate": 0.0, "decoder_start_token_id": 0,
      "pad_token_id": 0, "eos_token_id": 1}


def config(layout: str):
    if layout in ("llama", "mistral", "qwen2", "qwen3"):
        cls = {"llama": tr.LlamaConfig, "mistral": tr.MistralConfig, "qwen2": tr.Qwen2Config,
               "qwen3": tr.Qwen3Config}[layout]
        extra = {"head_dim": 8} if layout == "qwen3" else {}
        return cls(**DEC, **extra)
    if layout == "distilbert":
        return tr.DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                   max_position_embeddings=64, dropout=0.0,
                                   attention_dropout=0.0)
    if layout == "t5":
        return tr.T5Config(**T5)
    if layout == "t5-gated":
        return tr.T5Config(**T5, feed_forward_proj="gated-gelu")
    if layout == "opt":
        return tr.OPTConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                            num_attention_heads=4, max_position_embeddings=64,
                            word_embed_proj_dim=32, dropout=0.0, pad_token_id=0,
                            bos_token_id=1, eos_token_id=2)
    if layout == "neox":
        return tr.GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64,
                                max_position_embeddings=64, bos_token_id=1, eos_token_id=2)
    if layout == "bart":
        return tr.BartConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2,
                             encoder_attention_heads=4, decoder_attention_heads=4,
                             encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                             dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                             decoder_start_token_id=2, forced_eos_token_id=None)
    return _more_config(layout)


def _more_config(layout: str):
    small = {"vocab_size": V, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "max_position_embeddings": 64}
    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    if layout == "gemma2":
        return tr.Gemma2Config(**DEC, head_dim=8)
    if layout == "starcoder2":
        return tr.Starcoder2Config(**DEC)
    if layout == "phi":  # q_proj/k_proj/v_proj + dense
        return tr.PhiConfig(**small, **ids)
    if layout == "gptj":  # fc_in/fc_out
        return tr.GPTJConfig(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                             rotary_dim=4, **ids)
    if layout == "falcon":  # per-head interleaved query_key_value
        return tr.FalconConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, new_decoder_architecture=False,
                               multi_query=False, **ids)
    if layout == "whisper":
        return tr.WhisperConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2,
                                encoder_attention_heads=4, decoder_attention_heads=4,
                                encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8,
                                max_source_positions=16, max_target_positions=16,
                                decoder_start_token_id=1, **ids)
    if layout == "umt5":  # relative bias in every layer
        return tr.UMT5Config(**T5)
    if layout == "deberta-v2":  # query_proj.. + separate pos_key_proj/pos_query_proj
        return tr.DebertaV2Config(**small, relative_attention=True, share_att_key=False,
                                  pos_att_type=["p2c", "c2p"], position_buckets=8,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    raise KeyError(layout)


def build(layout: str, attn: str = "eager", head: bool = False, seed: int = 0):
    cfg = config(layout)
    torch.manual_seed(seed)
    if head:
        auto = (tr.AutoModelForSeq2SeqLM if cfg.is_encoder_decoder else tr.AutoModelForCausalLM)
        return auto.from_config(cfg, attn_implementation=attn).eval()
    return tr.AutoModel.from_config(cfg, attn_implementation=attn).eval()


def inputs(model):
    g = torch.Generator().manual_seed(1)
    if model.config.model_type == "whisper":
        return {"input_features": torch.randn(2, 8, 32, generator=g),
                "decoder_input_ids": torch.randint(3, V, (2, 5), generator=g)}
    ids = torch.randint(3, V, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding on the right of the second sequence
    x = {"input_ids": ids, "attention_mask": mask}
    if model.config.is_encoder_decoder:
        x["decoder_input_ids"] = torch.randint(3, V, (2, 5), generator=g)
    return x


def out(model, x):
    with torch.no_grad():
        o = model(**x)
    return o.last_hidden_state if getattr(o, "last_hidden_state", None) is not None else o.logits


def zero(model, site, units=(), groups=()):
    """Zero every weight that ``units`` (query heads / neurons) and ``groups`` (KV heads) of
    ``site`` own."""
    with torch.no_grad():
        for cut in site.cuts:
            idx, n = (units, site.n_units) if cut.space == "units" else (groups, site.n_groups)
            if not idx:
                continue
            owner_name, attr = cut.param.rsplit(".", 1)
            t = getattr(model.get_submodule(owner_name), attr)
            t.index_fill_(cut.dim, _positions(idx, n, cut.size or site.unit_size, cut.chunks), 0)


def zero_for(model, gqa):
    """Zero what ``prune_transformer(criterion="l1", head_ratio, ffn_ratio=0.25)`` removes;
    returns head_ratio."""
    ratio = 0.25
    for site in find_sites(model):
        if site.kind == "neurons":  # a quarter of them: ffn_ratio 0.25
            zero(model, site, list(range(10, 10 + site.n_units // 4)))
        elif site.group_size == 1:
            zero(model, site, [1])
        elif gqa == "groups":  # KV group 1 with its query heads
            gs = site.group_size
            zero(model, site, list(range(gs, 2 * gs)), [1])
            ratio = 0.5
        else:  # query head 1 of every group, KV heads kept
            zero(model, site, [g * site.group_size + 1 for g in range(site.n_groups)])
            ratio = 0.5
    return ratio


CASES = [("llama", "groups"), ("llama", "heads"), ("mistral", "groups"), ("qwen2", "heads"),
         ("qwen3", "groups"), ("distilbert", None), ("t5", None), ("t5-gated", None),
         ("opt", None), ("neox", None), ("bart", None)]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize(("layout", "gqa"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_removing_zeroed_units_keeps_outputs(layout, gqa, attn):
    m = build(layout, attn)
    ratio = zero_for(m, gqa)
    x = inputs(m)
    p, rep = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="l1",
                               gqa=gqa or "auto", example_inputs=x)
    assert rep.params_after < rep.params_before
    assert all(r["after"] < r["before"] for r in rep.layers)
    torch.testing.assert_close(out(p, x), out(m, x), atol=1e-5, rtol=1e-5)
    # the plan replays on a fresh model of the original architecture
    fresh = apply_transformer_plan(build(layout, attn, seed=3), rep.plan)
    fresh.load_state_dict(p.state_dict())
    torch.testing.assert_close(out(fresh, x), out(p, x))


MORE = ["gemma2", "starcoder2", "phi", "gptj", "falcon", "whisper", "umt5", "deberta-v2"]


@pytest.mark.parametrize("layout", MORE)
def test_more_architectures_by_structure(layout):
    """Architectures with no code of their own in prune_transformer: the shared layouts
    cover them, exactly (zeroed units removed, output unchanged, plan replays)."""
    m = build(layout)
    ratio = zero_for(m, "groups")
    x = inputs(m)
    p, rep = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="l1",
                               example_inputs=x)
    assert rep.heads_after < rep.heads_before and rep.neurons_after < rep.neurons_before
    torch.testing.assert_close(out(p, x), out(m, x), atol=1e-5, rtol=1e-5)
    fresh = apply_transformer_plan(build(layout, seed=3), rep.plan)
    fresh.load_state_dict(p.state_dict())
    torch.testing.assert_close(out(fresh, x), out(p, x))


def test_unusable_example_inputs_named():
    m = build("whisper")  # needs input_features, not the default token ids
    with pytest.raises(InvalidParameterError, match="default example.*example_inputs="):
        prune_transformer(m, head_ratio=0.5)
    with pytest.raises(InvalidParameterError, match="fails on example_inputs"):
        prune_transformer(m, head_ratio=0.5, example_inputs={"nonsense": torch.zeros(1)})


def test_moe_without_known_ffn_warns():
    cfg = tr.MixtralConfig(**DEC, num_local_experts=2, num_experts_per_tok=1)
    m = tr.AutoModel.from_config(cfg).eval()
    with pytest.warns(UserWarning, match="no FFN neurons were found"):
        p, rep = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.5, example_inputs=inputs(m))
    assert rep.heads_after == 4 and any("no FFN neurons" in n for n in rep.notes)


def test_removing_live_heads_changes_outputs():
    """The check above can fail: pruning unzeroed heads moves the output."""
    m = build("llama")
    x = inputs(m)
    p, _ = prune_transformer(m, head_ratio=0.5, criterion="l1", example_inputs=x)
    assert not torch.allclose(out(p, x), out(m, x), atol=1e-3)


def test_llama_gqa_shapes_and_attributes():
    m = build("llama")
    x = inputs(m)
    pg, rg = prune_transformer(m, head_ratio=0.5, ffn_ratio=0.5, gqa="groups", example_inputs=x)
    ph, rh = prune_transformer(m, head_ratio=0.5, gqa="heads", example_inputs=x)
    for layer in pg.layers:
        a = layer.self_attn
        assert a.q_proj.weight.shape == (16, 32) and a.k_proj.weight.shape == (8, 32)
        assert a.v_proj.out_features == 8 and a.o_proj.in_features == 16
        assert a.head_dim == 8 and a.scaling == 8 ** -0.5 and a.num_key_value_groups == 2
        assert layer.mlp.gate_proj.out_features == layer.mlp.down_proj.in_features == 32
        assert layer.mlp.intermediate_size == 32
    for layer in ph.layers:
        a = layer.self_attn
        assert a.q_proj.out_features == 16 and a.k_proj.out_features == 16
        assert a.num_key_value_groups == 1 and a.head_dim == 8
    assert [r.get("mode") for r in rg.layers[::2]] == ["groups", "groups"]
    assert rg.layers[0]["kv_after"] == 1 and rh.layers[0]["kv_after"] == 2
    assert "KV cache" in " ".join(rg.notes) and "mode" in rg.to_markdown()


@pytest.mark.parametrize(("layout", "gqa"), [("llama", "groups"), ("qwen2", "heads"),
                                             ("opt", None), ("neox", None), ("t5", None)])
def test_generation_with_kv_cache(layout, gqa):
    m = build(layout, "sdpa", head=True)
    ratio = zero_for(m, gqa)
    x = inputs(m)
    x.pop("decoder_input_ids", None)
    p, _ = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="l1",
                             gqa=gqa or "auto", example_inputs={**x, **(
                                 {"decoder_input_ids": x["input_ids"][:, :3]}
                                 if m.config.is_encoder_decoder else {})})
    kw = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        dense = m.generate(**x, **kw)
        cached = p.generate(**x, **kw)
        uncached = p.generate(**x, use_cache=False, **kw)
    assert torch.equal(cached, dense) and torch.equal(uncached, dense)


def test_t5_heads_coupled_through_shared_position_bias():
    m = build("t5")
    x = inputs(m)
    p, rep = prune_transformer(m, head_ratio=0.5, example_inputs=x)
    enc = [r for r in rep.plan["sites"] if r["name"] == "encoder.block.*.layer.*.SelfAttention"]
    assert len(enc) == 1 and len(enc[0]["keep"]) == 2
    for blk in p.encoder.block:
        a = blk.layer[0].SelfAttention
        assert a.n_heads == 2 and a.inner_dim == 16 and a.q.weight.shape == (16, 32)
        assert a.key_value_proj_dim == 8
    bias = p.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert bias.weight.shape == (32, 2) and bias.embedding_dim == 2
    # ignoring one member of a shared-bias stack leaves the whole stack unchanged
    p2, _ = prune_transformer(m, head_ratio=0.5, example_inputs=x,
                              ignored_layers=["encoder.block.1.layer.0.SelfAttention"])
    assert all(b.layer[0].SelfAttention.n_heads == 4 for b in p2.encoder.block)
    assert p2.decoder.block[1].layer[0].SelfAttention.n_heads == 2


def test_select_heads_modes():
    s = np.array([4.0, 3.0, 0.1, 0.2, 2.0, 5.0, 0.3, 0.4])  # 4 groups of 2
    assert select_heads(s, 2, 0.5, gqa="groups") == ([0, 1, 4, 5], "groups")
    assert select_heads(s, 2, 0.5, gqa="heads") == ([0, 3, 5, 7], "heads")
    # MQA: one KV head -> only "heads" can remove anything; auto picks it
    assert select_heads(s, 8, 0.5) == ([0, 1, 4, 5], "heads")
    # one head per group (plain MHA): groups == heads
    assert select_heads(s, 1, 0.25)[0] == [0, 1, 4, 5, 6, 7]
    # ratio 0.25 of 8 heads: 2 removed; groups removes 2, heads-per-group would remove 4
    assert select_heads(s, 2, 0.25)[1] == "groups"


def test_unsupported_layouts_are_named():
    cfg = tr.Phi3Config(**{**DEC, "pad_token_id": 0})
    with pytest.raises(UnsupportedModelError, match=r"layers\.0\.self_attn.*qkv_proj"):
        prune_transformer(tr.AutoModel.from_config(cfg), head_ratio=0.5)
    olmo = tr.AutoModel.from_config(tr.Olmo2Config(**DEC))
    with pytest.raises(UnsupportedModelError, match="normalises across all heads"):
        prune_transformer(olmo, head_ratio=0.5)
    assert find_sites(olmo, ignored_layers=[f"layers.{i}.self_attn" for i in range(2)])


def test_plan_that_breaks_gqa_is_refused():
    m = build("llama")
    _, rep = prune_transformer(m, head_ratio=0.5, example_inputs=inputs(m))
    plan = {**rep.plan, "sites": [dict(r) for r in rep.plan["sites"]]}
    plan["sites"][0]["keep"] = [0, 1, 2]  # group 0 keeps 2 heads, group 1 keeps 1
    with pytest.raises(InvalidParameterError, match="same number"):
        apply_transformer_plan(build("llama"), plan)
    for bad in ([], [3, 1], [0, 0], [0, 9], ["0"]):
        plan["sites"][0]["keep"] = bad
        with pytest.raises(InvalidParameterError, match="keep"):
            apply_transformer_plan(build("llama"), plan)


def test_vit_and_clip_vision_found_by_structure():
    """Vision transformers share the layouts: ViT (``q_proj``..``o_proj``,
    ``intermediate.dense``/``output.dense``) and CLIP (``q_proj``..``out_proj``,
    ``fc1``/``fc2``) prune with no model-specific code."""
    vit_cfg = tr.ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64)
    clip_cfg = tr.CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=32,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64)
    pix = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for cfg in (vit_cfg, clip_cfg):
        torch.manual_seed(0)
        m = tr.AutoModel.from_config(cfg).eval()
        ratio = zero_for(m, None)
        p, rep = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="l1",
                                   example_inputs={"pixel_values": pix})
        assert rep.heads_after == 6 and rep.neurons_after == 96
        with torch.no_grad():
            a, b = m(pixel_values=pix).last_hidden_state, p(pixel_values=pix).last_hidden_state
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_layout_that_fails_after_pruning_gets_a_clear_error():
    """Bloom's ALiBi table is built from config.n_head outside the attention modules: the
    forward check turns the shape error into an UnsupportedModelError naming the sites."""
    cfg = tr.BloomConfig(vocab_size=V, hidden_size=32, n_layer=2, n_head=4)
    m = tr.AutoModel.from_config(cfg).eval()
    with pytest.raises(UnsupportedModelError, match=r"forward check.*h\.0\.self_attention"):
        prune_transformer(m, head_ratio=0.5, example_inputs=torch.randint(0, V, (1, 6)))
    p, _ = prune_transformer(m, ffn_ratio=0.5, example_inputs=torch.randint(0, V, (1, 6)))
    assert p.h[0].mlp.dense_h_to_4h.out_features == 64  # its FFN alone still prunes


def test_mobilevit_attention_child_layout():
    """MobileViT nests BERT-style attention as ``attention.attention.{query,key,value}`` +
    ``attention.output.dense`` inside convolutional blocks: found by structure too."""
    cfg = tr.MobileViTConfig(image_size=32, hidden_sizes=[16, 24, 32], num_attention_heads=4,
                             neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64])
    torch.manual_seed(0)
    m = tr.AutoModel.from_config(cfg).eval()
    ratio = zero_for(m, None)
    pix = {"pixel_values": torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))}
    p, rep = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="l1",
                               example_inputs=pix)
    assert {r["layout"] for r in rep.layers if r["kind"] == "heads"} == {"bert"}
    assert rep.heads_after == rep.heads_before * 3 // 4
    with torch.no_grad():
        a, b = m(**pix).last_hidden_state, p(**pix).last_hidden_state
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(groups=st.integers(1, 6), group_size=st.integers(1, 6),
       ratio=st.floats(0.0, 0.95), step=st.sampled_from([1, 2, 4]),
       mode=st.sampled_from(["auto", "groups", "heads"]), seed=st.integers(0, 3))
def test_select_heads_keeps_gqa_consistent(groups, group_size, ratio, step, mode, seed):
    """Whatever the mode, ratio and rounding: sorted distinct heads, at least one, the same
    count in every kept KV group, never more removed than asked (up to rounding)."""
    n = groups * group_size
    scores = np.random.default_rng(seed).random(n)
    keep, used = select_heads(scores, group_size, ratio, step, gqa=mode)
    assert keep == sorted(set(keep)) and 1 <= len(keep) <= n and keep[-1] < n
    counts = {}
    for i in keep:
        counts[i // group_size] = counts.get(i // group_size, 0) + 1
    assert len(set(counts.values())) == 1
    assert n - len(keep) <= int(np.floor(n * ratio + 1e-9))
    if used == "groups" and group_size > 1:
        assert set(counts.values()) == {group_size}
    elif group_size > 1:
        assert len(counts) == groups


@pytest.mark.parametrize("layout", ["llama", "t5", "neox"])
def test_activation_criterion_finds_dead_units(layout):
    """criterion="activation" scores a unit by its output weights times its calibration
    activations: units whose output weights alone are zero (dead to the output, yet with
    large q/k/v or first-layer weights, so l2 keeps them) are the ones removed."""
    m = build(layout)
    x = inputs(m)
    dead_heads = [1, 3] if layout == "llama" else [1]  # llama: one per KV group (gqa="heads")
    dead = list(range(10, 26))
    with torch.no_grad():
        for site in find_sites(m):
            for cut in site.cuts:
                owner_name, attr = cut.param.rsplit(".", 1)
                t = getattr(m.get_submodule(owner_name), attr)
                units = dead_heads if site.kind == "heads" else dead
                pos = _positions(units, site.n_units, cut.size or site.unit_size, cut.chunks)
                if cut.dim == 1 and attr == "weight" and cut.space == "units" and cut.size is None:
                    t.index_fill_(1, pos, 0.0)  # output projection: contributes nothing
                elif cut.space == "units":
                    t.index_fill_(cut.dim, pos, 0.0)
                    t.index_add_(cut.dim, pos, torch.full_like(t.index_select(cut.dim, pos), 5.0))
    ratio = 0.25 if layout != "llama" else 0.5
    pa, ra = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="activation",
                               data=[x], example_inputs=x, gqa="heads")
    torch.testing.assert_close(out(pa, x), out(m, x), atol=1e-4, rtol=1e-4)
    pl, _ = prune_transformer(m, head_ratio=ratio, ffn_ratio=0.25, criterion="l2",
                              example_inputs=x, gqa="heads")
    assert not torch.allclose(out(pl, x), out(m, x), atol=1e-3)
    with pytest.raises(InvalidParameterError, match="activation"):
        prune_transformer(m, head_ratio=0.5, criterion="activation")
