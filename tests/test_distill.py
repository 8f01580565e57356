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
