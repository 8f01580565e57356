"""Careless inputs to oneshot(): clear PrunekitErrors before the model is touched."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from prunekit.errors import (
    InvalidParameterError,
    PrunekitError,
    ShapeMismatchError,
    UnsupportedModelError,
)
from prunekit.nn.oneshot import oneshot


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 4))


def _unchanged(call, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=match):
        call(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    "data",
    [[], (), torch.zeros(0, 16), {}, {"x": torch.zeros(0, 16)}, iter([])],
    ids=["list", "tuple", "tensor", "dict", "dict-empty", "iterator"],
)
def test_empty_calibration(data: object) -> None:
    _unchanged(lambda m: oneshot(m, data, "wanda", 0.5), InvalidParameterError, "calibration_data")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (5, InvalidParameterError),
        ("some text", InvalidParameterError),  # texts need a tokenizer
        ([1, 2, 3], InvalidParameterError),
        ([object()], InvalidParameterError),
        (torch.randn(8, 7), ShapeMismatchError),  # 7 features, the model takes 16
        (torch.randn(8, 16).double(), ShapeMismatchError),  # wrong dtype
        ({"a": torch.randn(8, 16), "b": torch.randn(4, 16)}, InvalidParameterError),
        (torch.full((8, 16), math.nan), InvalidParameterError),
        ([torch.randn(4, 16), torch.full((4, 16), math.inf)], InvalidParameterError),
    ],
)
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_bad_calibration(data: object, error: type[Exception], method: str) -> None:
    _unchanged(lambda m: oneshot(m, data, method, 0.5), error, "calibration_data")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"blocks": "no.such.path"}, "blocks"),
        ({"blocks": 5}, "blocks"),
        ({"blocks": [nn.Linear(2, 2)]}, "blocks"),
        ({"blocks": []}, "blocks"),
        ({"method": "bogus"}, "method"),
        ({"method": 3}, "method"),
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": "0.5"}, "sparsity"),
        ({"sparsity": math.nan}, "sparsity"),
        ({"pattern": "block:2x2"}, "pattern"),
        ({"pattern": "3:2"}, "pattern"),
        ({"blocksize": 0}, "blocksize"),
        ({"mask_blocksize": -1}, "mask_blocksize"),
        ({"percdamp": -0.1}, "percdamp"),
        ({"percdamp": math.nan}, "percdamp"),
        ({"owl_m": 0}, "owl_m"),
        ({"owl_lambda": -1}, "owl_lambda"),
        ({"ignore": [1]}, "ignore"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": -1}, "max_length"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"method": "wanda", "sparsity": 0.5, **kwargs}
    _unchanged(lambda m: oneshot(m, torch.randn(8, 16), **args), InvalidParameterError, match)


def test_unsupported_models() -> None:
    with torch.device("meta"):
        meta = mlp()
    with pytest.raises(UnsupportedModelError, match="meta"):
        oneshot(meta, None, "magnitude", 0.5)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(UnsupportedModelError, match="nothing to prune"):
        oneshot(conv, torch.randn(2, 3, 8, 8), "wanda", 0.5)
    _unchanged(lambda m: oneshot(m, torch.randn(8, 16), "wanda", 0.5, ignore=["*"]),
               UnsupportedModelError, "nothing to prune")


def test_all_errors_are_prunekit_errors() -> None:
    for call in (
        lambda: oneshot(mlp(), torch.randn(8, 16), "sparsegpt", 0.5, blocksize=2.5),
        lambda: oneshot(nn.Linear(4, 4), torch.randn(4, 5), "wanda"),
    ):
        with pytest.raises(PrunekitError):
            call()
