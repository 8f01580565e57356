"""Careless inputs to prune_model / Pruner: clear PrunekitErrors, never degenerate masks."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.errors import (
    InvalidParameterError,
    ShapeMismatchError,
    UnsupportedModelError,
)
from prunekit.nn import Pruner, prune_model


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def loader(n: int = 32) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=8)


def _empty_gen():  # type: ignore[no-untyped-def]
    yield from ()


@pytest.mark.parametrize("criterion", ["taylor", "movement", "obd", "obs"])
@pytest.mark.parametrize("data", ["list", "loader", "generator"])
def test_empty_data_is_rejected(criterion: str, data: str) -> None:
    empty = {"list": [], "loader": DataLoader(TensorDataset(torch.zeros(0, 8))),
             "generator": _empty_gen()}[data]
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(InvalidParameterError, match="data"):
        prune_model(model, 0.5, criterion=criterion, data=empty, prune_first_last=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # nothing was pruned


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_custom_scores_name_the_layer(bad: float) -> None:
    def crit(model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
        out = {k: p.detach().abs() for k, p in params.items()}
        out["2.weight"] = out["2.weight"].clone()
        out["2.weight"][0, 0] = bad
        return out

    with pytest.raises(InvalidParameterError, match=r"non-finite.*'2\.weight'"):
        prune_model(mlp(), 0.5, criterion=crit)


def test_nan_data_gives_an_error_not_degenerate_masks() -> None:
    x = torch.full((8, 8), math.nan)
    data = [(x, torch.zeros(8, dtype=torch.long))]
    with pytest.raises(InvalidParameterError, match="non-finite"):
        prune_model(mlp(), 0.5, criterion="taylor", data=data)


@pytest.mark.parametrize(
    ("scores", "error"),
    [
        (lambda params: [1, 2], InvalidParameterError),
        (lambda params: {k: torch.ones(3) for k in params}, ShapeMismatchError),
        (lambda params: {k: "high" for k in params}, ShapeMismatchError),
        (lambda params: {}, InvalidParameterError),
    ],
)
def test_malformed_custom_scores(scores, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error):
        prune_model(mlp(), 0.5, criterion=lambda m, params, d=None, lf=None: scores(params))


def test_bad_batches_and_loss() -> None:
    with pytest.raises(InvalidParameterError, match="batch 0"):
        prune_model(mlp(), 0.5, criterion="taylor", data=[torch.zeros(4, 8)])
    wrong = [(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))]  # 5 features, model wants 8
    with pytest.raises(ShapeMismatchError, match="data"):
        prune_model(mlp(), 0.5, criterion="taylor", data=wrong)
    with pytest.raises(InvalidParameterError, match="loss_fn"):
        prune_model(mlp(), 0.5, criterion="taylor", data=loader(), loss_fn="mse")  # type: ignore[arg-type]


def test_report_sparsity_is_measured() -> None:
    model = mlp()
    with torch.no_grad():
        model[2].weight[:, :12] = 0  # 75 % already zero in one layer
    report = prune_model(model, 0.3, scope="layer", prune_first_last=True)
    weights = [model[i].weight for i in (0, 2, 4)]
    measured = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert report.sparsity == pytest.approx(measured) and report.sparsity > 0.3
    assert report.to_dict()["sparsity"] == pytest.approx(measured)


@pytest.mark.parametrize("criterion", ["taylor", "movement", "obd"])
def test_frozen_parameters_get_gradients_anyway(criterion: str) -> None:
    frozen, free = mlp(), mlp()
    frozen.requires_grad_(False)
    frozen[0].weight.requires_grad_(True)  # partly frozen
    r1 = prune_model(frozen, 0.5, criterion=criterion, data=loader(), prune_first_last=True)
    r2 = prune_model(free, 0.5, criterion=criterion, data=loader(), prune_first_last=True)
    for k in r1.masks:
        assert torch.equal(r1.masks[k], r2.masks[k])
    assert [p.requires_grad for p in frozen.parameters()] == [True] + [False] * 5  # restored


def test_meta_device_and_models_without_prunable_layers() -> None:
    with torch.device("meta"):
        meta = mlp()
    with pytest.raises(UnsupportedModelError, match="meta"):
        prune_model(meta, 0.5)
    for model in (nn.ReLU(), nn.Sequential(nn.BatchNorm1d(4), nn.ReLU())):
        with pytest.raises(UnsupportedModelError, match="no prunable layer"):
            prune_model(model, 0.5)
    with pytest.raises(UnsupportedModelError):
        prune_model("model", 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("sparsity", [1.0, 1.5, -0.1, math.nan, math.inf, "0.5", True])
def test_sparsity_out_of_range(sparsity: object) -> None:
    with pytest.raises(InvalidParameterError, match="sparsity"):
        prune_model(mlp(), sparsity)  # type: ignore[arg-type]


@pytest.mark.parametrize("pattern", ["3:2", "0:4", "2:2", "block:0x4", "block:4x0", "2:", "", 5])
def test_bad_patterns(pattern: object) -> None:
    with pytest.raises(InvalidParameterError, match="pattern"):
        prune_model(mlp(), 0.5, pattern=pattern)  # type: ignore[arg-type]


def test_scope_dict_with_unknown_layer() -> None:
    with pytest.raises(InvalidParameterError, match=r"unknown layers \['fc9'\]"):
        prune_model(mlp(), 0.5, scope={"2": 0.5, "fc9": 0.7})
    report = prune_model(mlp(), 0.5, scope={"2.weight": 0.5})  # the parameter name also works
    assert report.layers["2.weight"].sparsity == 0.5


def test_include_exclude_matching_nothing_warn() -> None:
    with pytest.warns(UserWarning, match="exclude pattern 'Conv9d'"):
        prune_model(mlp(), 0.5, exclude=["Conv9d"])
    with (
        pytest.warns(UserWarning, match="include pattern 'decoder.*'"),
        pytest.raises(InvalidParameterError, match="no layer left"),
    ):
        prune_model(mlp(), 0.5, include=["decoder.*"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prune_model(mlp(), 0.5, include=["Linear"], exclude=["4"])


def test_pruner_rejects_empty_loader_at_construction() -> None:
    empty = DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0)))
    with pytest.raises(InvalidParameterError, match="data= is empty"):
        Pruner(mlp(), sparsity=0.5, criterion="taylor", data=empty)


def test_save_compact_refuses_meta_tensors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from prunekit.nn.io import save_compact

    with torch.device("meta"):
        meta = mlp()
    with pytest.raises(UnsupportedModelError, match="meta"):
        save_compact(meta, tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


def test_pruner_load_state_dict_validates() -> None:
    pruner = Pruner(mlp(), sparsity=0.5).prepare()
    good = pruner.state_dict()
    for bad in (
        None,
        {"masks": [1, 2]},
        {"masks": {"2.weight": "x"}},
        {"masks": {"2.weight": torch.full((16, 16), 0.5)}},
        {"masks": {"9.weight": torch.ones(16, 16, dtype=torch.bool)}},
        {**good, "step_count": -1},
        {**good, "current_sparsity": 3.0},
    ):
        with pytest.raises(InvalidParameterError):
            pruner.load_state_dict(bad)  # type: ignore[arg-type]
    pruner.load_state_dict(good)


def test_lottery_rejects_non_callable_evaluate() -> None:
    from prunekit.nn.lottery import lottery_ticket

    with pytest.raises(InvalidParameterError, match="evaluate"):
        lottery_ticket(mlp(), lambda m, on_step: None, 0.5, evaluate=3)  # type: ignore[arg-type]


def test_load_compact_into_argument_types(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from prunekit.nn.io import load_compact_into, save_compact

    path = save_compact(mlp(), tmp_path / "m.safetensors")
    with pytest.raises(UnsupportedModelError):
        load_compact_into("model", path)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="strict"):
        load_compact_into(mlp(), path, strict="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="not a file"):
        load_compact_into(mlp(), tmp_path / "missing.safetensors")


def test_pruner_step_and_torch_prune_export_validate() -> None:
    from prunekit.nn.io import export_torch_prune

    pruner = Pruner(mlp(), sparsity=0.5)
    for bad in ("3", -1, 2.5, True):
        with pytest.raises(InvalidParameterError, match="step"):
            pruner.step(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="masks"):
        export_torch_prune(mlp(), [1])  # type: ignore[arg-type]
    with pytest.raises(ShapeMismatchError, match="shape"):
        export_torch_prune(mlp(), {"0.weight": torch.ones(3, dtype=torch.bool)})


def test_save_pruned_validates_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from prunekit.nn.oneshot.export import save_pruned

    with pytest.raises(InvalidParameterError, match="report"):
        save_pruned(mlp(), tmp_path / "m.safetensors", report={"sparsity": 0.5})  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_sparsity_contradicting_an_nm_pattern_is_reported() -> None:
    with pytest.warns(UserWarning, match="fixes the sparsity at 0.5"):
        report = prune_model(mlp(), 0.9, pattern="2:4", prune_first_last=True)
    assert report.sparsity == 0.5 and any("does not apply" in n for n in report.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prune_model(mlp(), pattern="1:4", prune_first_last=True).sparsity == 0.75
        assert prune_model(mlp(), prune_first_last=True).sparsity == 0.5
