"""Knowledge-distillation loss and the fine-tuning helper."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunekit.errors import InvalidParameterError
from prunekit.nn.distill import distillation_loss, finetune


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_loss_reduces_to_cross_entropy_at_alpha_zero() -> None:
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    y = torch.randint(0, 5, (8,))
    assert torch.allclose(distillation_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y))


def test_kd_term_is_zero_when_student_matches_teacher_and_positive_otherwise() -> None:
    t = torch.randn(8, 5)
    assert distillation_loss(t.clone(), t, None, T=3.0).abs() < 1e-6
    assert distillation_loss(torch.randn(8, 5), t, None, T=3.0) > 0.01


def test_kd_term_matches_hinton_formula() -> None:
    s, t, T = torch.randn(4, 3), torch.randn(4, 3), 2.0
    p = F.softmax(t / T, dim=1)
    manual = (p * (p.log() - F.log_softmax(s / T, dim=1))).sum(1).mean() * T * T
    assert torch.allclose(distillation_loss(s, t, None, T=T), manual, atol=1e-6)


def test_bad_arguments_raise() -> None:
    with pytest.raises(InvalidParameterError, match="T must be"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), T=0)
    with pytest.raises(InvalidParameterError, match="alpha"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), alpha=2.0)
    with pytest.raises(InvalidParameterError, match="differ in shape"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 3))


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]


def test_finetune_with_teacher_moves_student_towards_teacher() -> None:
    data = _data()
    teacher = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    finetune(teacher, data, epochs=15, lr=1e-2)
    student = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.cat([b[0] for b in data])
    with torch.no_grad():
        before = distillation_loss(student(x), teacher(x), None)
    losses = finetune(student, data, epochs=15, lr=1e-2, teacher=teacher, alpha=0.9)
    with torch.no_grad():
        after = distillation_loss(student(x), teacher(x), None)
    assert len(losses) == 15 and losses[-1] < losses[0]
    assert after < before


def test_finetune_without_teacher_is_plain_training() -> None:
    model = nn.Linear(6, 2)
    losses = finetune(model, _data(), epochs=5, lr=5e-2)
    assert losses[-1] < losses[0]


def test_finetune_restores_the_teachers_mode_and_evaluation_keeps_mixed_modes() -> None:
    from prunekit.nn.training import evaluate_accuracy

    data = _data()
    teacher = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    teacher.train()
    teacher[1].eval()  # a user's frozen batch norm inside a model in training mode
    student = nn.Sequential(nn.Linear(6, 2))
    finetune(student, data, epochs=1, teacher=teacher)
    assert [m.training for m in teacher] == [True, False, True]
    evaluate_accuracy(teacher, data)
    assert [m.training for m in teacher] == [True, False, True]


def test_training_arguments_are_validated_by_name() -> None:
    from prunekit.nn.training import make_optimizer, train_classifier

    with pytest.raises(InvalidParameterError, match="T must be"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), T="hot")
    with pytest.raises(InvalidParameterError, match="lr"):
        make_optimizer(nn.Linear(2, 2), "adam", lr="fast")
    with pytest.raises(InvalidParameterError, match="max_steps"):
        train_classifier(nn.Linear(6, 2), _data(), max_steps=0)


# ------------------------------------------------------ feature (hidden-state) distillation


def _tiny_bert_pair():
    """A random-init 2-layer BERT (hidden 32) and its half-pruned copy; init std 0.3 so the
    attention and FFN blocks matter enough for pruning to move the embeddings."""
    pytest.importorskip("transformers")
    from prunekit.nn.oneshot._hf import import_transformers
    from prunekit.nn.structured import prune_transformer

    tr = import_transformers()
    cfg = tr.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32, initializer_range=0.3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    teacher = tr.BertModel(cfg).eval()
    student, _ = prune_transformer(teacher, head_ratio=0.5, ffn_ratio=0.5, criterion="l2")
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(4):
        ids = torch.randint(1, 50, (8, 12), generator=g)
        mask = torch.ones_like(ids)
        mask[:4, 8:] = 0  # padded rows: pooling must ignore them
        batches.append({"input_ids": ids, "attention_mask": mask})
    return teacher, student, batches


def _embedding_mse(student, teacher, batches) -> float:
    from prunekit.nn.distill import pool_hidden_states

    with torch.no_grad():
        errs = [F.mse_loss(pool_hidden_states(student(**b).last_hidden_state, b["attention_mask"]),
                           pool_hidden_states(teacher(**b).last_hidden_state, b["attention_mask"]))
                for b in batches]
    return float(torch.stack(errs).mean())


@pytest.mark.parametrize("kwargs", [{"loss": "mse"}, {"loss": "cosine"},
                                    {"loss": "mse", "layer_map": {1: 1, 2: 2}}])
def test_distill_hidden_states_pulls_a_pruned_encoder_towards_its_teacher(kwargs) -> None:
    from prunekit.nn.distill import distill_hidden_states

    teacher, student, batches = _tiny_bert_pair()
    t_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    before = _embedding_mse(student, teacher, batches)
    losses = distill_hidden_states(student, teacher, iter(batches), steps=40, lr=3e-3, **kwargs)
    after = _embedding_mse(student, teacher, batches)
    assert len(losses) == 40 and all(torch.isfinite(torch.tensor(losses)))
    assert after < 0.5 * before, (before, after)
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4])
    assert all(torch.equal(v, t_state[k]) for k, v in teacher.state_dict().items())
    assert not student.training and not teacher.training


def test_distill_hidden_states_modes() -> None:
    from prunekit.nn.distill import distill_hidden_states

    teacher, student, batches = _tiny_bert_pair()
    teacher.train()
    teacher.encoder.eval()  # mixed modes: restored per module afterwards
    t_modes = [m.training for m in teacher.modules()]
    student.train()
    student.embeddings.eval()  # a user's frozen-in-eval part stays in eval while training
    seen: list[bool] = []
    hook = student.embeddings.register_forward_hook(lambda m, i, o: seen.append(m.training))
    enc_seen: list[bool] = []
    hook2 = student.encoder.register_forward_hook(lambda m, i, o: enc_seen.append(m.training))
    distill_hidden_states(student, teacher, batches, steps=2)
    hook.remove()
    hook2.remove()
    assert seen == [False, False] and enc_seen == [True, True]
    assert [m.training for m in teacher.modules()] == t_modes
    assert not any(m.training for m in student.modules())  # left in eval


def test_distill_hidden_states_bad_arguments() -> None:
    from prunekit.nn.distill import distill_hidden_states

    teacher, student, batches = _tiny_bert_pair()
    bad = [({"steps": 0}, "steps"), ({"lr": 0}, "lr"), ({"loss": "kl"}, "loss"),
           ({"pool": "max"}, "pool"), ({"layer_map": {1: -1}}, "layer_map"),
           ({"layer_map": {9: 1}}, "out of range"), ({"max_grad_norm": -1.0}, "max_grad_norm"),
           ({"warmup": 1.5}, "warmup"), ({"layer_weight": "x"}, "layer_weight")]
    for kwargs, match in bad:
        kwargs = {"steps": 1, **kwargs}
        with pytest.raises(InvalidParameterError, match=match):
            distill_hidden_states(student, teacher, batches, **kwargs)
    with pytest.raises(InvalidParameterError, match="share parameters"):
        distill_hidden_states(teacher, teacher, batches, steps=1)
    with pytest.raises(InvalidParameterError, match="dicts of tensors"):
        distill_hidden_states(student, teacher, [torch.zeros(2, 3)], steps=1)
    with pytest.raises(InvalidParameterError, match="iterable of tokenizer outputs"):
        distill_hidden_states(student, teacher, batches[0], steps=1)
    with pytest.raises(InvalidParameterError, match="empty"):
        distill_hidden_states(student, teacher, [], steps=1)
