"""Each criterion ranks weights as its definition says, on tiny layers with hand-computed scores."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.errors import InvalidParameterError
from prunekit.nn.importance import (
    CRITERIA,
    OBS,
    Movement,
    fisher_diagonal,
    get_criterion,
    magnitude_scores,
    movement_scores,
    obd_scores,
    obs_scores,
    obs_update,
    random_scores,
    register_criterion,
    taylor_scores,
    woodfisher_inverse,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~10x slower."""
    torch.set_num_threads(1)


def sse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out.squeeze(-1) - y) ** 2).sum()


def linear(w: list[float]) -> nn.Linear:
    layer = nn.Linear(len(w), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([w]))
    return layer


def loader(x: list[list[float]], y: list[float], batch_size: int) -> DataLoader:
    return DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=batch_size)


def test_magnitude_l1_l2() -> None:
    w = torch.tensor([[-3.0, 0.5], [2.0, -1.0]])
    assert torch.equal(magnitude_scores(w, 1), torch.tensor([[3.0, 0.5], [2.0, 1.0]]))
    assert torch.equal(magnitude_scores(w, 2), torch.tensor([[9.0, 0.25], [4.0, 1.0]]))
    with pytest.raises(InvalidParameterError):
        magnitude_scores(w, 3)


def test_random_is_seeded() -> None:
    w = torch.zeros(5, 5)
    assert torch.equal(random_scores(w, 1), random_scores(w, 1))
    assert not torch.equal(random_scores(w, 1), random_scores(w, 2))


def test_taylor_hand_computed() -> None:
    # w = [1, -2]; batch 1: x=[1,3], y=0 -> out=-5, g = 2*(-5)*x = [-10, -30], |w g| = [10, 60]
    # batch 2: x=[2,0], y=1 -> out=2, g = 2*(1)*x = [4, 0], |w g| = [4, 0]
    model = linear([1.0, -2.0])
    data = loader([[1.0, 3.0], [2.0, 0.0]], [0.0, 1.0], batch_size=1)
    s = taylor_scores(model, data, sse)["weight"]
    assert torch.allclose(s, torch.tensor([[14.0, 60.0]]))
    assert torch.allclose(
        taylor_scores(model, data, sse, max_batches=1)["weight"], torch.tensor([[10.0, 60.0]])
    )


def test_movement_hand_computed() -> None:
    model = linear([1.0, -2.0])
    data = loader([[1.0, 3.0]], [0.0], batch_size=1)
    # -w*g with g = [-10, -30]: [10, -60]: weight 0 moves away from zero, weight 1 towards it
    s = movement_scores(model, data, sse)["weight"]
    assert torch.allclose(s, torch.tensor([[10.0, -60.0]]))
    crit = Movement()
    params = dict(model.named_parameters())
    sse(model(torch.tensor([[1.0, 3.0]])), torch.tensor([0.0])).backward()
    crit.accumulate(params)
    crit.accumulate(params)
    assert torch.allclose(crit(model, params)["weight"], torch.tensor([[20.0, -120.0]]))


def test_fisher_and_obd_hand_computed() -> None:
    # w = [2, 3]; samples x1=[1,0], x2=[0,1], y=0: g1=[4,0], g2=[0,6]; F = mean g^2 = [8, 18]
    model = linear([2.0, 3.0])
    data = loader([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], batch_size=2)
    f = fisher_diagonal(model, data, sse)["weight"]
    assert torch.allclose(f, torch.tensor([[8.0, 18.0]]))
    # OBD saliency 0.5 * F * w^2 = [16, 81]
    assert torch.allclose(obd_scores(model.weight, f), torch.tensor([[16.0, 81.0]]))
    crit = get_criterion("obd")
    s = crit(model, dict(model.named_parameters()), data, sse)["weight"]
    assert torch.allclose(s, torch.tensor([[16.0, 81.0]]))


def test_obd_disagrees_with_magnitude() -> None:
    # the smaller weight has a much larger curvature, so OBD keeps it
    model = linear([1.0, 2.0])
    data = loader([[10.0, 0.0], [0.0, 0.1]], [0.0, 0.0], batch_size=2)
    s = get_criterion("obd")(model, dict(model.named_parameters()), data, sse)["weight"]
    assert s[0, 0] > s[0, 1]


def test_woodfisher_inverse_diagonal_case() -> None:
    model = linear([2.0, 3.0])
    data = loader([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], batch_size=2)
    finv = woodfisher_inverse(model, data, sse, block_size=2, damp=1e-9)["weight"]
    assert finv.shape == (1, 2, 2)
    assert torch.allclose(finv[0], torch.diag(torch.tensor([1 / 8, 1 / 18])), atol=1e-6)
    # OBS saliency w^2 / (2 Finv_qq) equals OBD when F is diagonal: [16, 81]
    assert torch.allclose(obs_scores(model.weight, finv), torch.tensor([[16.0, 81.0]]), atol=1e-3)


def test_obs_update_hand_computed() -> None:
    # H = [[2,1],[1,2]], F^-1 = 1/3 [[2,-1],[-1,2]]; remove w0 from w=[1,1]:
    # dw = -w0 / Finv_00 * Finv e0 = -(3/2) * [2/3, -1/3] = [-1, 0.5] -> w = [0, 1.5]
    finv = torch.linalg.inv(torch.tensor([[2.0, 1.0], [1.0, 2.0]])).unsqueeze(0)
    new = obs_update(torch.tensor([1.0, 1.0]), torch.tensor([False, True]), finv)
    assert torch.allclose(new, torch.tensor([0.0, 1.5]), atol=1e-6)
    assert obs_scores(torch.tensor([1.0, 2.0]), finv).tolist() == pytest.approx([0.75, 3.0])


def test_obs_update_beats_plain_masking_on_least_squares() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    x[:, 1] = x[:, 0] + 0.1 * torch.randn(256)  # correlated inputs: compensation matters
    w_true = torch.randn(8)
    y = x @ w_true + 0.5 * torch.randn(256)  # residuals make the empirical Fisher ~ 4 s^2 E[xx^T]
    w_ls = torch.linalg.lstsq(x, y.unsqueeze(1)).solution[:, 0]
    model = linear(w_ls.tolist())
    data = DataLoader(TensorDataset(x, y), batch_size=64)
    crit = OBS(block_size=8, max_samples=256, damp=1e-6)
    params = dict(model.named_parameters())
    scores = crit(model, params, data, sse)
    keep = torch.ones(1, 8, dtype=torch.bool)
    keep[0, scores["weight"][0].argsort()[:3]] = False
    dense = (x @ w_ls - y).pow(2).mean()
    plain = (x @ (model.weight.detach()[0] * keep[0]) - y).pow(2).mean()
    crit.update_weights(params, {"weight": keep})
    w = model.weight.detach()[0]
    assert (w[~keep[0]] == 0).all()
    updated = (x @ w - y).pow(2).mean()
    # the compensating update recovers most of the loss increase (exact OBS on a quadratic)
    assert updated - dense < 0.5 * (plain - dense)


def test_registry_and_errors() -> None:
    for name in ("magnitude", "l1", "l2", "random", "taylor", "obd", "obs", "movement"):
        assert name in CRITERIA
        assert callable(get_criterion(name))
    with pytest.raises(InvalidParameterError, match="criterion"):
        get_criterion("nope")
    with pytest.raises(InvalidParameterError, match="options"):
        get_criterion("magnitude", bogus=1)
    register_criterion(
        "ones",
        lambda: (
            lambda model, params, data, loss: {k: torch.ones_like(p) for k, p in params.items()}
        ),
    )
    assert "ones" in CRITERIA
    model = linear([1.0, 2.0])
    with pytest.raises(InvalidParameterError, match="data"):
        get_criterion("taylor")(model, dict(model.named_parameters()), None, None)
