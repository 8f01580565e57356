"""Masked output distillation (prunekit.deploy.recover.masked_distill_outputs, used by
prunekit.nn.oneshot.recovery.masked_distill): zeros kept, padding ignored, teacher cached."""

from __future__ import annotations

import copy

import pytest
import torch

from prunekit.errors import InvalidParameterError, ShapeMismatchError

pytest.importorskip("transformers")

from prunekit.deploy.recover import (  # noqa: E402
    _relative_state_error,
    masked_distill_outputs,
)
from prunekit.nn.oneshot._hf import import_transformers  # noqa: E402
from prunekit.nn.oneshot.recovery import masked_distill, sparse_masks  # noqa: E402

VOCAB = 40


def _bert(seed=0, layers=2):
    tr = import_transformers()
    cfg = tr.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=32)
    torch.manual_seed(seed)
    model = tr.BertModel(cfg).eval()
    with torch.no_grad():  # larger block weights: pruning them matters next to the embeddings
        for n, p in model.named_parameters():
            if "encoder" in n and p.dim() == 2:
                p.mul_(4)
    return model


def _gpt2(seed=0):
    tr = import_transformers()
    cfg = tr.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    torch.manual_seed(seed)
    return tr.GPT2LMHeadModel(cfg).eval()


def _prune(model, sparsity=0.6):
    """Magnitude-prune every block weight matrix (Linear or GPT-2 Conv1D) to ``sparsity``."""
    student = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in student.named_parameters():
            if p.dim() == 2 and ("encoder" in name or ".h." in name):
                k = int(p.numel() * sparsity)
                p[p.abs() <= p.abs().flatten().kthvalue(k).values] = 0
    return student


def _batches(n=3, seed=0, pad_id=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(1, VOCAB, (6, 12), generator=g)
        mask = torch.ones_like(ids)
        mask[:3, 7:] = 0
        ids[:3, 7:] = pad_id
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def test_zeros_kept_exactly_and_loss_decreases_tiny_bert():
    teacher = _bert()
    student = _prune(teacher)
    masks = sparse_masks(student)
    emb = student.embeddings.word_embeddings.weight.detach().clone()
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    rep = masked_distill_outputs(student, teacher, _batches(), steps=15, lr=1e-3, masks=masks)
    assert len(rep.losses) == 15 and sum(rep.losses[-3:]) < 0.7 * sum(rep.losses[:3])
    assert rep.zeros_kept and rep.sparsity == pytest.approx(0.6, abs=0.01)
    params = dict(student.named_parameters())
    for n, keep in masks.items():
        assert torch.equal(params[n].detach() != 0, keep), n  # same zeros, none regrown
    assert torch.equal(student.embeddings.word_embeddings.weight, emb)  # frozen by default
    assert all(p.requires_grad for p in student.parameters())  # flags restored
    moved = [n for n, p in student.named_parameters() if not torch.equal(p, before[n])]
    assert any("LayerNorm" in n for n in moved) and any(n.endswith("bias") for n in moved)
    assert not student.training


def test_padding_is_ignored():
    """Changing the token ids under the padding changes nothing: pooling and the per-layer
    term only see real tokens (the pad states of BERT do depend on the pad ids)."""
    teacher = _bert(1)
    runs = []
    for pad_id in (0, 7):
        student = _prune(teacher)
        runs.append(masked_distill_outputs(student, teacher, _batches(pad_id=pad_id), steps=4,
                                           lr=1e-3).losses)
    assert runs[0] == pytest.approx(runs[1], rel=1e-5, abs=1e-7)
    s, t = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    s[0, 2] = 100.0  # a padded position
    mask = torch.tensor([[1, 1, 0]])
    assert float(_relative_state_error(s, t, mask)) == pytest.approx(1.0)


def test_teacher_outputs_computed_once_per_batch():
    teacher, calls = _bert(2), []
    students = [_prune(teacher), _prune(teacher)]
    teacher.register_forward_hook(lambda *a: calls.append(1))
    data = _batches(2)
    masked_distill_outputs(students[0], teacher, data, steps=6, lr=1e-3)
    assert len(calls) == 2
    calls.clear()
    masked_distill_outputs(students[1], teacher, data, steps=6, lr=1e-3, cache_teacher=False)
    assert len(calls) == 6


def test_decoder_kl_on_logits_keeps_zeros():
    teacher = _gpt2()
    student = _prune(teacher, 0.5)
    masks = sparse_masks(student)
    assert any(".attn.c_attn." in n for n in masks)  # GPT-2's Conv1D is masked too
    data = [{k: v for k, v in b.items()} for b in _batches(2, seed=3)]
    rep = masked_distill_outputs(student, teacher, data, steps=20, lr=3e-3, loss="kl")
    assert rep.zeros_kept and rep.losses[-1] < rep.losses[0]
    params = dict(student.named_parameters())
    assert all(torch.equal(params[n].detach() != 0, k) for n, k in masks.items())
    with pytest.raises(InvalidParameterError, match="kl"):
        masked_distill_outputs(_prune(_bert()), _bert(), _batches(1), steps=1, loss="kl")


def test_bad_options():
    teacher = _bert()
    student = _prune(teacher)
    data = _batches(1)
    for kw, match in [({"loss": "l1"}, "loss"), ({"layers": "some"}, "layers"),
                      ({"layers": [9]}, "layers"), ({"loss": "none", "layers": None}, "nothing"),
                      ({"schedule": "step"}, "schedule"), ({"lr": -1.0}, "lr"),
                      ({"warmup": 1.5}, "warmup"), ({"dropout": "no"}, "dropout"),
                      ({"steps": 0}, "steps")]:
        with pytest.raises(InvalidParameterError, match=match):
            masked_distill_outputs(student, teacher, data, **{"steps": 1, **kw})
    with pytest.raises(InvalidParameterError, match="share"):
        masked_distill_outputs(teacher, teacher, data, steps=1)
    with pytest.raises(InvalidParameterError, match="empty"):
        masked_distill_outputs(student, teacher, [], steps=1)
    with pytest.raises(ShapeMismatchError):
        masked_distill_outputs(_prune(_bert(layers=1)), teacher, data, steps=1, layers={2: 2})


def test_masked_distill_defaults_and_backward_compatible_options():
    teacher = _bert()
    student = _prune(teacher)
    losses = masked_distill(student, teacher, _batches(), steps=3, lr=1e-3,
                            layer_map={1: 1, 2: 2}, warmup=0.0, dropout=False)
    assert len(losses) == 3
    with pytest.raises(InvalidParameterError, match="unknown option"):
        masked_distill(student, teacher, _batches(), steps=1, lerning_rate=1)


def test_corrupt_replaces_only_inner_real_tokens_and_is_seeded():
    from prunekit.deploy.recover import _corrupt, _inner

    b = _batches(1)[0]
    pool = torch.tensor([99])
    out = _corrupt(b, 0.6, pool, torch.Generator().manual_seed(0))
    changed = out["input_ids"] != b["input_ids"]
    assert changed.any() and (out["input_ids"][changed] == 99).all()
    assert not (changed & ~_inner(b)).any()  # first/last real token and padding untouched
    assert not changed[:, 0].any() and not changed[:3, 6:].any() and not changed[3:, 11].any()
    again = _corrupt(b, 0.6, pool, torch.Generator().manual_seed(0))
    assert torch.equal(again["input_ids"], out["input_ids"])
    assert torch.equal(out["attention_mask"], b["attention_mask"])


def test_augmented_distillation_labels_the_corrupted_text_and_keeps_zeros():
    teacher = _bert()
    student = _prune(teacher)
    masks = sparse_masks(student)
    calls = []
    hook = teacher.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"]),
                                             with_kwargs=True)
    data = _batches(2)
    try:
        rep = masked_distill_outputs(student, teacher, data, steps=4, lr=1e-3, masks=masks,
                                     augment=0.5, token_pool=[7, 8], seed=1)
    finally:
        hook.remove()
    assert len(calls) == 4  # relabelled every step, never from the cache
    assert not torch.equal(calls[0], data[0]["input_ids"])
    assert set(calls[0][calls[0] != data[0]["input_ids"]].tolist()) <= {7, 8}
    assert rep.zeros_kept and "replaced every step" in " ".join(rep.notes)


def test_word_token_ids_and_bad_augment_options():
    from prunekit.deploy.recover import word_token_ids

    class Tok:
        all_special_ids = [0]

        def get_vocab(self):
            return {"[PAD]": 0, "house": 1, "##ing": 2, "ab": 3, "42": 4, "River": 5}

        def convert_tokens_to_string(self, tokens):
            return " ".join(tokens)

    assert word_token_ids(Tok()) == [1, 5]
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        word_token_ids(object())
    teacher = _bert()
    for kw, match in ((dict(augment=1.0), "augment"), (dict(augment=-0.1), "augment"),
                      (dict(augment=0.2, token_pool=[]), "token_pool"),
                      (dict(augment=0.2, token_pool=["x"]), "token_pool")):
        with pytest.raises(InvalidParameterError, match=match):
            masked_distill_outputs(_prune(teacher), teacher, _batches(1), steps=1, **kw)
