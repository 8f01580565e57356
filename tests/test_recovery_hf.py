"""Calibration-only recovery on Hugging Face encoders: head/FFN refit and masked distillation."""

from __future__ import annotations

import copy

import pytest
import torch

from prunekit.errors import InvalidParameterError

pytest.importorskip("transformers")

from prunekit.nn.oneshot._hf import import_transformers  # noqa: E402
from prunekit.nn.oneshot.recovery import masked_distill, sparse_masks  # noqa: E402
from prunekit.nn.structured.recovery import prune_transformer_calibrated  # noqa: E402
from prunekit.nn.structured.transformers import prune_transformer  # noqa: E402

VOCAB = 50


def tiny_bert(seed=0):
    tr = import_transformers()
    cfg = tr.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return tr.BertModel(cfg).eval()


def _batches(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (8, 16), generator=g)
        mask = torch.ones_like(ids)
        mask[:2, 12:] = 0  # some padding
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _err(a, b, data):
    with torch.no_grad():
        return sum(float((a(**x).last_hidden_state - b(**x).last_hidden_state).pow(2).mean())
                   for x in data)


def test_ffn_refit_lowers_the_output_error_and_keeps_model():
    dense = tiny_bert()
    state = {k: v.clone() for k, v in dense.state_dict().items()}
    calib, held = _batches(seed=0), _batches(3, seed=1)
    plain, _ = prune_transformer(dense, ffn_ratio=0.5)
    refit, rep = prune_transformer_calibrated(dense, calib, ffn_ratio=0.5, criterion="l2",
                                              reconstruct_weights=True)
    assert rep.neurons_after == plain_neurons(plain)
    assert any("reconstruction of 2" in n for n in rep.notes)
    assert _err(refit, dense, held) < _err(plain, dense, held)
    assert all(torch.equal(v, state[k]) for k, v in dense.state_dict().items())
    with pytest.raises(InvalidParameterError, match="criterion"):
        prune_transformer_calibrated(dense, calib, ffn_ratio=0.5, criterion="taylor")


def plain_neurons(m):
    return sum(layer.intermediate.dense.out_features for layer in m.encoder.layer)


def _cos(a, b, data):
    out = []
    with torch.no_grad():
        for x in data:
            m = x["attention_mask"].unsqueeze(-1).float()
            pa = (a(**x).last_hidden_state * m).sum(1) / m.sum(1)
            pb = (b(**x).last_hidden_state * m).sum(1) / m.sum(1)
            out.append(torch.nn.functional.cosine_similarity(pa, pb).mean())
    return float(torch.stack(out).mean())


def test_masked_distillation_keeps_zeros_and_improves_held_out():
    teacher = tiny_bert()
    with torch.no_grad():  # larger encoder weights: the blocks matter next to the embeddings
        for n, p in teacher.named_parameters():
            if "encoder" in n and p.dim() == 2:
                p.mul_(4)
    student = copy.deepcopy(teacher)
    with torch.no_grad():  # 80 % magnitude sparsity in every encoder Linear
        for n, p in student.named_parameters():
            if "encoder" in n and p.dim() == 2:
                p[p.abs() <= p.abs().flatten().kthvalue(int(p.numel() * 0.8)).values] = 0
    masks = sparse_masks(student)
    assert len(masks) == 12 and "embeddings.word_embeddings.weight" not in masks
    data, held = _batches(4, seed=2), _batches(3, seed=5)
    before = _cos(student, teacher, held)
    losses = masked_distill(student, teacher, data, steps=30, lr=1e-3, warmup=0.0,
                            dropout=False)
    assert len(losses) == 30 and losses[-1] < losses[0]
    params = dict(student.named_parameters())
    for n, keep in masks.items():
        assert not bool((params[n].detach()[~keep] != 0).any()), n
    after = _cos(student, teacher, held)
    assert after > before + 0.01, (before, after)
    with pytest.raises(InvalidParameterError, match="weight_decay"):
        masked_distill(student, teacher, data, steps=1, weight_decay=0.1)
    with pytest.raises(InvalidParameterError, match="no sparse"):
        masked_distill(copy.deepcopy(teacher), teacher, data, steps=1)
