"""Lottery-ticket IMP: sparsity per round, rewinding to init or to an early step."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.errors import InvalidParameterError
from prunekit.nn import lottery_ticket, train_classifier


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~10x slower."""
    torch.set_num_threads(1)


def make() -> tuple[nn.Module, DataLoader]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2)
    )
    x = torch.randn(64, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return model, DataLoader(TensorDataset(x, y), batch_size=16)


def test_imp_rewinds_to_init_and_reaches_sparsity() -> None:
    model, loader = make()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    starts: list[dict[str, torch.Tensor]] = []

    def train_fn(m: nn.Module, on_step) -> None:  # type: ignore[no-untyped-def]
        starts.append({k: v.clone() for k, v in m.state_dict().items()})
        train_classifier(m, loader, epochs=1, lr=1e-2, on_step=on_step)

    res = lottery_ticket(
        model, train_fn, 0.875, rounds=3, prune_first_last=True, evaluate=lambda m: 0.5
    )
    assert len(starts) == 4 and len(res.history) == 4
    assert [round(h.sparsity, 3) for h in res.history] == [0.0, 0.5, 0.75, 0.875]
    assert res.report.sparsity == pytest.approx(0.875, abs=1e-3)
    # each later round starts from the initial weights, masked
    for start in starts[1:]:
        for k, v in start.items():
            if k.endswith("weight"):
                nz = v != 0
                assert torch.equal(v[nz], init[k][nz])
    # the final ticket keeps its zeros after training
    for k, keep in res.masks.items():
        assert (model.get_parameter(k)[~keep] == 0).all()
    assert res.to_dict()["history"][0]["metric"] == 0.5


def test_late_rewinding_to_step_k() -> None:
    model, loader = make()
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    starts: list[dict[str, torch.Tensor]] = []

    def train_fn(m: nn.Module, on_step) -> None:  # type: ignore[no-untyped-def]
        starts.append({k: v.clone() for k, v in m.state_dict().items()})

        def spy(step: int) -> None:
            on_step(step)
            if len(starts) == 1:
                snapshots[step] = {k: v.clone() for k, v in m.state_dict().items()}

        train_classifier(m, loader, epochs=1, lr=1e-2, on_step=spy)

    lottery_ticket(model, train_fn, 0.5, rounds=1, rewind=3, prune_first_last=True)
    for k, v in starts[1].items():
        nz = v != 0
        assert torch.equal(v[nz], snapshots[3][k][nz])


def test_invalid_arguments() -> None:
    model, loader = make()
    with pytest.raises(InvalidParameterError, match="rewind"):
        lottery_ticket(model, lambda m, s: None, 0.5, rewind="late")
    with pytest.raises(InvalidParameterError, match="past the end"):
        lottery_ticket(
            model,
            lambda m, s: train_classifier(m, loader, epochs=1, on_step=s),
            0.5,
            rounds=1,
            rewind=10_000,
            prune_first_last=True,
        )
