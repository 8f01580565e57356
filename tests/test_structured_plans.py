"""Plans are validated against the model before anything is changed; the wrong entry is named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from prunekit.errors import InvalidParameterError, PrunekitError, ShapeMismatchError
from prunekit.nn.structured import apply_plan, load_plan, prune, save_plan


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8, 2)
        self.pos = nn.Parameter(torch.zeros(8, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c2(torch.relu(self.bn(self.c1(x)) + self.pos)))
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def plan() -> dict[str, Any]:
    torch.manual_seed(0)
    _, report = prune(Net().eval(), torch.randn(1, 3, 8, 8), ratio=0.5)
    return report.plan


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        d = p
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


BAD: dict[str, tuple[Callable[[dict[str, Any]], None], type[Exception], str]] = {
    "format": (_set(["format"], "other/1"), InvalidParameterError, "format"),
    "unknown key": (_set(["extra"], 1), InvalidParameterError, "extra"),
    "layers not dict": (_set(["layers"], []), InvalidParameterError, "layers"),
    "unknown layer": (_set(["layers", "nope"], {"out": [0]}), ShapeMismatchError, "nope"),
    "unknown role": (_set(["layers", "c1", "chan"], [0, 1]), InvalidParameterError, "chan"),
    "empty keep": (_set(["layers", "c1", "out"], []), InvalidParameterError, "c1"),
    "duplicate": (_set(["layers", "c1", "out"], [0, 0, 1, 2]), InvalidParameterError,
                  "duplicate"),
    "unsorted": (_set(["layers", "c1", "out"], [3, 1, 2, 0]), InvalidParameterError,
                 "unsorted"),
    "out of range": (_set(["layers", "c1", "out"], [0, 1, 2, 99]), InvalidParameterError,
                     "out of range"),
    "negative": (_set(["layers", "c1", "out"], [-1, 1, 2, 3]), InvalidParameterError,
                 "out of range"),
    "not ints": (_set(["layers", "c1", "out"], [0.5, 1]), InvalidParameterError, "integers"),
    "identity model": (_set(["blocks"], [""]), InvalidParameterError, "blocks"),
    "missing block": (_set(["blocks"], ["zz"]), ShapeMismatchError, "zz"),
    "param size": (_set(["params", "pos"], {"dim": 0, "keep": [0], "size": 5}),
                   ShapeMismatchError, "pos"),
    "param dim": (_set(["params", "pos"], {"dim": 7, "keep": [0], "size": 8}),
                  InvalidParameterError, "dim"),
    "attr value": (_set(["attrs", "c1"], {"out_channels": -3}), InvalidParameterError,
                   "positive"),
    "attr name": (_set(["attrs", "c1"], {"padding_mode": 3}), InvalidParameterError,
                  "padding_mode"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_plan_entry_is_named_and_model_untouched(plan: dict[str, Any], case: str) -> None:
    edit, exc, match = BAD[case]
    bad = copy.deepcopy(plan)
    edit(bad)
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(exc, match=match):
        apply_plan(model, bad, inplace=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert issubclass(exc, PrunekitError)


def test_valid_plan_round_trips_through_json(plan: dict[str, Any], tmp_path) -> None:
    save_plan(plan, tmp_path / "p.json")
    fresh = apply_plan(Net(), load_plan(tmp_path / "p.json"))
    assert fresh.c1.out_channels == len(plan["layers"]["c1"]["out"])


def test_plan_never_names_tracing_constants() -> None:
    """Tensors created inside forward become fx constants, which a fresh model lacks."""

    class WithConst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 8)
            self.b = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x) * torch.ones(8))

    torch.manual_seed(0)
    model, x = WithConst().eval(), torch.randn(2, 4)
    slim, report = prune(model, x, ratio=0.5)
    assert not any("_tensor_constant" in k for k in report.plan["params"])
    fresh = apply_plan(WithConst(), report.plan)
    fresh.load_state_dict(slim.state_dict())
