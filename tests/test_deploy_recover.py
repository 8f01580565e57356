"""prunekit.deploy recovery: fine-tuning / distillation that keeps pruned weights at zero."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.deploy import keep_zeros, masked_distill_hidden_states, masked_finetune, zero_masks
from prunekit.errors import InvalidParameterError
from prunekit.nn import Pruner, prune_model


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))


def test_keep_zeros_under_adamw_with_weight_decay_and_stale_momentum():
    m = _mlp()
    opt = torch.optim.AdamW(m.parameters(), lr=0.05, weight_decay=0.1)
    for xb, yb in _data():  # momentum built up while dense
        opt.zero_grad()
        nn.functional.cross_entropy(m(xb), yb).backward()
        opt.step()
    prune_model(m, 0.7, prune_first_last=True)
    masks = zero_masks(m)
    before = copy.deepcopy(m.state_dict())
    with keep_zeros(m):
        for xb, yb in _data():
            opt.zero_grad()
            nn.functional.cross_entropy(m(xb), yb).backward()
            opt.step()
    for name, mask in masks.items():
        p = m.get_parameter(name)
        assert bool((p[~mask] == 0).all())
        assert not torch.equal(p[mask], before[name][mask])  # the kept weights did train
    # outside the block nothing is masked any more
    opt.zero_grad()
    m[0].weight.sum().backward()
    assert bool((m[0].weight.grad == 1).all())


def test_masked_finetune_with_pruner_masks_and_teacher():
    m = _mlp()
    teacher = copy.deepcopy(m).eval()
    pruner = Pruner(m, sparsity=0.8, prune_first_last=True).prepare()
    report = masked_finetune(m, _data(), masks=pruner, teacher=teacher, epochs=2, lr=1e-2,
                             eval_loader=_data())
    assert report.zeros_kept and report.method == "distillation"
    assert report.sparsity == pytest.approx(0.8, abs=0.01)
    assert report.metric == "accuracy" and 0 <= report.after <= 1
    assert len(report.losses) == 2 and "Masked recovery" in report.to_markdown()


def test_masked_distill_hidden_states_tiny_bert():
    pytest.importorskip("transformers")
    from prunekit.nn.oneshot._hf import import_transformers

    tr = import_transformers()
    cfg = tr.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16)
    torch.manual_seed(0)
    teacher = tr.BertModel(cfg).eval()
    student = copy.deepcopy(teacher)
    prune_model(student, 0.5, include=["*.dense", "*.query", "*.key", "*.value"])
    batches = [{"input_ids": torch.randint(0, 50, (4, 8)),
                "attention_mask": torch.ones(4, 8, dtype=torch.long)} for _ in range(2)]
    report = masked_distill_hidden_states(student, teacher, batches, steps=3, lr=1e-3)
    assert report.zeros_kept and report.pruned_weights > 0 and len(report.losses) == 3


def test_bad_masks():
    m = _mlp()
    with pytest.raises(InvalidParameterError, match="no pruned"):
        masked_finetune(m, _data())
    bad = {"0.weight": torch.ones(3, 3, dtype=torch.bool)}
    with pytest.raises(InvalidParameterError, match="does not match"), keep_zeros(m, bad):
        pass
    with pytest.raises(InvalidParameterError, match="masks must be"), keep_zeros(m, 3):
        pass
