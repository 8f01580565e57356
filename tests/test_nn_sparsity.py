"""Pruner and prune_model: scopes, layer selection, masks through training, deepcopy/pickle."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.errors import InvalidParameterError, UnsupportedModelError
from prunekit.nn import (
    Pruner,
    SparsityConfig,
    agp,
    model_sparsity,
    prune_model,
)
from prunekit.nn.models import DigitsCNN


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~10x slower."""
    torch.set_num_threads(1)


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(12, 32),
        nn.ReLU(),
        nn.Linear(32, 24),
        nn.ReLU(),
        nn.Linear(24, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )


def data(n: int = 96, d: int = 12, batch_size: int = 16) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if n.endswith("weight")}


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.8, 0.9, 0.97])
def test_global_scope_reaches_sparsity_within_one_weight(sparsity: float) -> None:
    model = mlp()
    rep = prune_model(model, sparsity, prune_first_last=True, max_sparsity=1.0)
    total = sum(p.numel() for p in weights(model).values())
    zeros = sum(int((p == 0).sum()) for p in weights(model).values())
    assert abs(zeros - sparsity * total) <= 1
    assert rep.sparsity == pytest.approx(zeros / total)
    assert set(rep.layers) == set(weights(model))


def test_global_bounds_and_layer_scope() -> None:
    model = mlp()
    rep = prune_model(model, 0.6, prune_first_last=True, min_sparsity=0.3, max_sparsity=0.8)
    assert all(0.3 - 1e-9 <= s <= 0.8 + 1e-9 for s in rep.layer_sparsity.values())
    model = mlp()
    rep = prune_model(model, 0.5, scope="layer", prune_first_last=True)
    assert all(abs(s - 0.5) < 0.01 for s in rep.layer_sparsity.values())


def test_first_last_skipped_with_reason_and_include_exclude() -> None:
    model = mlp()
    rep = prune_model(model, 0.5)
    assert set(rep.layers) == {"2.weight", "4.weight"}
    assert "first layer" in rep.skipped["0.weight"] and "last layer" in rep.skipped["6.weight"]
    assert (model[0].weight != 0).all() and (model[6].weight != 0).all()
    model = mlp()
    rep = prune_model(model, 0.5, exclude=["4"], prune_first_last=True)
    assert "4.weight" not in rep.layers and rep.skipped["4.weight"] == "matched by exclude"
    cnn = DigitsCNN()
    rep = prune_model(cnn, 0.5, include=["Conv2d"], prune_first_last=True)
    assert all(k.startswith("features") for k in rep.layers)
    assert "classifier.1.weight" in rep.skipped
    assert "BatchNorm2d" in rep.skipped["features.1.weight"]


def test_explicit_per_layer_dict() -> None:
    model = mlp()
    rep = prune_model(model, 0.5, scope={"2": 0.25, "4.weight": 0.75})
    assert rep.layer_sparsity == {"2.weight": 0.25, "4.weight": 0.75}
    assert "per-layer" in rep.skipped["0.weight"] or "first" in rep.skipped["0.weight"]


def test_nm_pattern_on_cnn_skips_indivisible() -> None:
    cnn = DigitsCNN()
    rep = prune_model(cnn, 0.5, pattern="2:4", prune_first_last=True)
    assert "divisible" in rep.skipped["features.0.weight"]  # in*kh*kw = 9
    w = cnn.features[3].weight.detach().reshape(32, -1, 4)
    assert ((w == 0).sum(-1) == 2).all()
    assert rep.sparsity == pytest.approx(0.5)


def _train(model: nn.Module, pruner: Pruner, opt: torch.optim.Optimizer, steps: int) -> None:
    loader = data()
    done = 0
    while done < steps:
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            pruner.step()
            done += 1
            if done >= steps:
                return


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_masks_survive_100_optimizer_steps(opt_name: str) -> None:
    model = mlp()
    keys = list(model.state_dict())
    opt = (
        torch.optim.Adam(model.parameters(), lr=1e-2)
        if opt_name == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    )
    pruner = Pruner(model, sparsity=0.7, prune_first_last=True, optimizer=opt).prepare()
    masks = {k: v.clone() for k, v in pruner.masks.items()}
    before = {k: p.detach().clone() for k, p in weights(model).items()}
    _train(model, pruner, opt, 100)
    for name, keep in masks.items():
        p = model.get_parameter(name).detach()
        assert (p[~keep] == 0).all()
        assert not torch.equal(p[keep], before[name][keep])  # the kept weights did train
        state = opt.state[model.get_parameter(name)]
        for v in state.values():
            if isinstance(v, torch.Tensor) and v.shape == keep.shape:
                assert (v[~keep] == 0).all()
    # no hooks, no extra buffers, unchanged state_dict keys
    assert list(model.state_dict()) == keys
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_mask_gradients() -> None:
    model = mlp()
    pruner = Pruner(model, sparsity=0.5, prune_first_last=True).prepare()
    xb, yb = next(iter(data()))
    nn.functional.cross_entropy(model(xb), yb).backward()
    pruner.mask_gradients()
    for name, keep in pruner.masks.items():
        assert (model.get_parameter(name).grad[~keep] == 0).all()


def test_deepcopy_and_pickle_mid_training() -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = Pruner(
        model, schedule=agp(0.8, 0, 40, frequency=10), prune_first_last=True, optimizer=opt
    ).prepare()
    _train(model, pruner, opt, 25)
    clone = copy.deepcopy(model)
    loaded = pickle.loads(pickle.dumps(model))
    x = torch.randn(4, 12)
    assert torch.equal(clone(x), model(x)) and torch.equal(loaded(x), model(x))
    pruner_copy = pickle.loads(pickle.dumps(pruner))
    assert pruner_copy.step_count == pruner.step_count
    assert all(torch.equal(pruner_copy.masks[k], pruner.masks[k]) for k in pruner.masks)
    # training continues after copying, and the copy can continue on its own
    _train(model, pruner, opt, 25)
    assert pruner.report().sparsity == pytest.approx(0.8, abs=1e-3)
    copied_model = pruner_copy.model
    opt2 = torch.optim.Adam(copied_model.parameters(), lr=1e-2)
    pruner_copy.optimizer = opt2
    _train(copied_model, pruner_copy, opt2, 25)
    assert pruner_copy.report().sparsity == pytest.approx(0.8, abs=1e-3)


def test_gradual_schedule_is_monotone_and_finalize_reaches_target() -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = Pruner(
        model, schedule=agp(0.9, 0, 60, frequency=7), prune_first_last=True, optimizer=opt
    ).prepare()
    seen = []
    for _ in range(4):
        _train(model, pruner, opt, 15)
        seen.append(pruner.report().sparsity)
    assert seen == sorted(seen)
    pruner.finalize()
    assert pruner.report().sparsity == pytest.approx(0.9, abs=1e-3)


def test_schedule_by_name_and_iterative() -> None:
    model = mlp()
    pruner = Pruner(
        model, sparsity=0.75, schedule="iterative", total_steps=60, prune_first_last=True
    ).prepare()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    _train(model, pruner, opt, 60)
    assert pruner.report().sparsity == pytest.approx(0.75, abs=1e-2)
    with pytest.raises(InvalidParameterError, match="total_steps"):
        Pruner(mlp(), sparsity=0.5, schedule="agp")


@pytest.mark.parametrize("criterion", ["taylor", "obd", "obs", "random", "l2", "movement"])
def test_data_criteria_through_pruner(criterion: str) -> None:
    model = mlp()
    rep = prune_model(
        model,
        0.5,
        criterion=criterion,
        data=data(),
        prune_first_last=True,
        criterion_options={"max_samples": 32} if criterion in ("obd", "obs") else None,
    )
    assert rep.sparsity == pytest.approx(0.5, abs=1e-3)
    assert rep.criterion == criterion


def test_movement_accumulates_during_training() -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = Pruner(
        model,
        criterion="movement",
        schedule=agp(0.5, 10, 30, frequency=10),
        prune_first_last=True,
        optimizer=opt,
    ).prepare()
    assert not pruner.masks
    _train(model, pruner, opt, 31)
    assert pruner.report().sparsity == pytest.approx(0.5, abs=1e-3)


def test_random_worse_than_magnitude_one_shot() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    _train(model, Pruner(model, sparsity=0.0, prune_first_last=True), opt, 60)
    x, y = next(iter(data(n=96, batch_size=96)))

    def loss_after(criterion: str) -> float:
        m = copy.deepcopy(model)
        prune_model(m, 0.7, criterion=criterion, prune_first_last=True)
        with torch.no_grad():
            return float(nn.functional.cross_entropy(m(x), y))

    assert loss_after("magnitude") < loss_after("random")


def test_pruner_state_dict_and_set_masks() -> None:
    model = mlp()
    p1 = Pruner(model, sparsity=0.5, prune_first_last=True).prepare()
    state = p1.state_dict()
    other = mlp()
    p2 = Pruner(other, sparsity=0.5, prune_first_last=True)
    p2.load_state_dict(state)
    for k, keep in state["masks"].items():
        assert (other.get_parameter(k)[~keep] == 0).all()
    p3 = Pruner(mlp(), sparsity=0.5, prune_first_last=True)
    p3.set_masks(state["masks"])
    assert p3.current_sparsity == pytest.approx(0.5, abs=0.01)
    with pytest.raises(InvalidParameterError, match="mask"):
        p3.load_state_dict({"masks": {"0.weight": torch.ones(2, 2, dtype=torch.bool)}})


def test_config_and_validation() -> None:
    cfg = SparsityConfig.from_dict({"sparsity": 0.3, "pattern": "2:4", "scope": "layer"})
    assert cfg.to_dict()["pattern"] == "2:4"
    with pytest.raises(InvalidParameterError, match="unknown"):
        SparsityConfig.from_dict({"sparsity": 0.3, "sparsty": 0.5})
    with pytest.raises(InvalidParameterError, match="scope"):
        SparsityConfig(scope="everywhere")
    with pytest.raises(InvalidParameterError, match="sparsity"):
        prune_model(mlp(), 1.5)
    with pytest.raises(UnsupportedModelError):
        Pruner("not a model", sparsity=0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="needs data"):
        Pruner(mlp(), sparsity=0.5, criterion="taylor")
    with pytest.raises(InvalidParameterError, match="no layer"):
        prune_model(nn.Sequential(nn.Linear(3, 3)), 0.5)
    with pytest.raises(InvalidParameterError, match="criterion"):
        SparsityConfig(criterion="magnitud")
    with pytest.raises(InvalidParameterError, match="schedule"):
        SparsityConfig(schedule="sometimes")

    def custom(model, params, data, loss):  # type: ignore[no-untyped-def]
        return {k: p.detach().abs() for k, p in params.items()}

    model = mlp()
    rep = prune_model(model, 0.5, criterion=custom)
    assert rep.criterion == "custom:function" and rep.sparsity == pytest.approx(0.5, abs=1e-3)
    pruner = Pruner(mlp(), config=cfg).prepare()
    assert pruner.report().pattern == "2:4"


def test_report_serialises() -> None:
    model = mlp()
    rep = prune_model(model, 0.5)
    d = rep.to_dict()
    assert d["skipped"] and d["layers"]["2.weight"]["n_zero"] > 0
    assert "| layer |" in rep.to_markdown()
    assert 0 < model_sparsity(model) < 0.5


def test_step_prepares_on_first_call() -> None:
    model = mlp()
    pruner = Pruner(model, sparsity=0.5, prune_first_last=True)
    assert not pruner.masks
    pruner.step()
    assert pruner.report().sparsity == pytest.approx(0.5, abs=1e-3)


def test_block_and_rowwise_patterns_through_pruner() -> None:
    model = mlp()
    rep = prune_model(model, 0.5, pattern="block:1x4", prune_first_last=True)
    assert rep.pattern == "block:1x4"
    assert abs(rep.sparsity - 0.5) < 0.02
    w = model[2].weight.detach().reshape(24, 8, 4)
    zeros = (w == 0).sum(-1)
    assert ((zeros == 0) | (zeros == 4)).all()  # whole 1x4 blocks go
    model = mlp()
    rep = prune_model(model, 0.25, pattern="rowwise", prune_first_last=True)
    assert any("per layer" in n for n in rep.notes)
    assert ((model[2].weight == 0).sum(1) == 8).all()  # 25 % of 32 inputs in every row


def test_normalize_scores_before_global_ranking() -> None:
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(100.0)  # one layer on a much larger scale
    plain = prune_model(copy.deepcopy(model), 0.5, max_sparsity=0.9)
    # raw global ranking prunes the small-scale layer up to its cap, the big one only after
    assert plain.layer_sparsity["4.weight"] == pytest.approx(0.9, abs=0.01)
    assert plain.layer_sparsity["2.weight"] < 0.35
    balanced = prune_model(copy.deepcopy(model), 0.5, normalize="mean")
    assert all(0.3 < s < 0.7 for s in balanced.layer_sparsity.values())
    with pytest.raises(InvalidParameterError, match="normalize"):
        prune_model(copy.deepcopy(model), 0.5, normalize="zscore")
