"""Fuzz the weight-pruning entry points with careless inputs (hypothesis, derandomized).

Every call must either raise a :class:`PrunekitError` subclass or succeed with a correct result:
reported sparsities equal the measured ones, masks fit their weights, weights stay finite.
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.nn import Pruner, prune_model
from prunekit.nn.io import load_compact, load_compact_into, save_compact
from prunekit.nn.oneshot import oneshot

FUZZ = settings(
    derandomize=True, max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 4))


def _batches(n_features: int = 8, n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(8, n_features, generator=g), torch.randint(0, 4, (8,), generator=g))
            for _ in range(n)]


def _nan_scores(model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
    return {k: torch.full_like(p, math.nan) for k, p in params.items()}


def _ok_scores(model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
    return {k: p.detach().abs() for k, p in params.items()}


def _short_scores(model, params, data=None, loss_fn=None):  # type: ignore[no-untyped-def]
    return {k: torch.ones(3) for k in params}


# every argument: (valid values, careless values); each example makes at most two arguments
# careless so that the success paths are exercised too
PRUNE_ARGS: dict[str, tuple[list[Any], list[Any]]] = {
    "sparsity": ([0.0, 0.3, 0.5, 0.9, 0.99], [1.0, -0.5, math.nan, math.inf, "0.5", None, True]),
    "criterion": (["magnitude", "l2", "random", "taylor", "movement", "obd", "obs", _ok_scores],
                  ["bogus", "", 5, None, _nan_scores, _short_scores]),
    "pattern": (["unstructured", "2:4", "4:8", "block:2x2", "rowwise"],
                ["3:2", "block:0x4", "", "2:", None, 7]),
    "scope": (["global", "layer", {"2": 0.5}, {"2.weight": 0.7, "4": 0.2}],
              [{"nope": 0.5}, {"2": 1.5}, {3: 0.5}, "bogus", 3, None]),
    "data": (["ok"], ["empty", "wrong_features", "no_targets", "string", "nan", "int"]),
    "include": ([None, [], ["Linear"], ["2"], "Linear"], [["nothing"], [3], 4, [""]]),
    "exclude": ([None, [], ["4"], "Conv2d"], [[3], 4]),
    "min_sparsity": ([0.0, 0.1], [-1.0, math.nan, "x", 0.995]),
    "max_sparsity": ([0.99, 0.8, 1.0], [-1.0, math.nan, 2.0]),
    "normalize": (["none", "l2", "mean"], ["bogus", None]),
    "criterion_options": ([None, {}], [{"p": 3}, {"bogus": 1}, {"max_batches": 0}, "x"]),
    "prune_first_last": ([True, False], [None, "yes"]),
}


def _draw_args(data: Any, table: dict[str, tuple[list[Any], list[Any]]]) -> dict[str, Any]:
    careless = data.draw(st.lists(st.sampled_from(sorted(table)), max_size=2), label="careless")
    return {
        name: data.draw(st.sampled_from(bad if name in careless else good), label=name)
        for name, (good, bad) in table.items()
    }


def _data(kind: str) -> Any:
    return {
        "ok": _batches(),
        "empty": [],
        "wrong_features": _batches(5),
        "no_targets": [torch.randn(4, 8)],
        "string": "data",
        "nan": [(torch.full((4, 8), math.nan), torch.zeros(4, dtype=torch.long))],
        "int": 12,
    }[kind]


def _check_success(model: nn.Module, report: Any) -> None:
    for name, layer in report.layers.items():
        w = model.get_parameter(name)
        assert layer.n_zero == int((w == 0).sum())  # reported = measured
        if name in report.masks:  # no masks at sparsity 0
            assert report.masks[name].shape == w.shape
            assert bool((w[~report.masks[name]] == 0).all())  # masked weights are zero
    assert 0.0 <= report.sparsity <= 1.0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _call(fn: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn()
        except PrunekitError:
            return None


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_prune_model_fuzz(data: Any) -> None:
    args = _draw_args(data, PRUNE_ARGS)
    args["data"] = _data(args["data"])
    model = mlp()
    report = _call(lambda: prune_model(model, **args))
    if report is not None:
        _check_success(model, report)


PRUNER_ARGS: dict[str, tuple[list[Any], list[Any]]] = {
    **{k: PRUNE_ARGS[k] for k in ("sparsity", "criterion", "pattern", "data")},
    "schedule": ([None, "oneshot", "agp", "cubic"], ["bogus", 3]),
    "total_steps": ([4, 10], [-1, "4", 2.5]),
}


@settings(FUZZ, max_examples=30)
@given(data=st.data(), steps=st.integers(0, 5))
def test_pruner_fuzz(data: Any, steps: int) -> None:
    args = _draw_args(data, PRUNER_ARGS)
    args["data"] = _data(args["data"])
    model = mlp()

    def run() -> Any:
        pruner = Pruner(model, **args)
        pruner.prepare()
        for _ in range(steps):
            pruner.step()
        pruner.finalize()
        return pruner.report()

    report = _call(run)
    if report is not None:
        _check_success(model, report)


def _calib(kind: str) -> Any:
    g = torch.Generator().manual_seed(5)
    return {
        "ok": torch.randn(16, 8, generator=g),
        "pairs": _batches(),
        "list": [torch.randn(4, 8, generator=g) for _ in range(3)],
        "empty": torch.zeros(0, 8),
        "wrong_features": torch.randn(16, 5, generator=g),
        "nan": torch.full((4, 8), math.nan),
        "string": ["a text"],
        "ints": [1, 2],
        "dict_bad": {"x": torch.randn(4, 8), "y": torch.randn(3, 8)},
        "none": None,
    }[kind]


ONESHOT_ARGS: dict[str, tuple[list[Any], list[Any]]] = {
    "calibration_data": (["ok", "pairs", "list"],
                         ["empty", "wrong_features", "nan", "string", "ints", "dict_bad", "none"]),
    "method": (["wanda", "sparsegpt", "magnitude"], ["obs", None, 3]),
    "sparsity": ([None, 0.5, 0.7], [1.0, -0.5, math.nan, "0.5", True]),
    "pattern": (["unstructured", "2:4", "4:8"], ["block:2x2", "3:2", "", None]),
    "owl": ([False, True], []),
    "blocks": ([None, "0", "<model>"], ["nope", 3, []]),
    "ignore": ([(), ["0"], "2"], [["*"], [1]]),
    "blocksize": ([128, 4], [0, -1, 2.5]),
    "percdamp": ([0.01, 0.0], [-1.0, math.nan]),
}


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_oneshot_fuzz(data: Any) -> None:
    args = _draw_args(data, ONESHOT_ARGS)
    args["calibration_data"] = _calib(args["calibration_data"])
    if args["blocks"] == "<model>":
        args["blocks"] = None
    model = mlp()
    report = _call(lambda: oneshot(model, **args))
    if report is not None:
        for layer in report.layers:
            w = model.get_submodule(layer.name).weight
            assert layer.sparsity == pytest.approx(float((w == 0).float().mean()))
        assert report.sparsity == pytest.approx(
            sum(r.sparsity * r.shape[0] * r.shape[1] for r in report.layers)
            / sum(r.shape[0] * r.shape[1] for r in report.layers)
        )
        assert all(torch.isfinite(p).all() for p in model.parameters())


# ----------------------------------------------------------------- structured header fuzz
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def compact_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    model = mlp()
    prune_model(model, 0.7, prune_first_last=True)
    with torch.no_grad():
        model[2].weight.mul_(torch.tensor([1.0, 1.0, 0.0, 0.0]).repeat(16, 4))
    path = tmp_path_factory.mktemp("f") / "m.safetensors"
    return save_compact(model, path, nm={"2.weight": (2, 4)}).read_bytes()


@FUZZ
@given(data=st.data())
def test_compact_header_field_fuzz(tmp_path: Path, compact_file: bytes, data: Any) -> None:
    n = struct.unpack("<Q", compact_file[:8])[0]
    outer = json.loads(compact_file[8 : 8 + n])
    meta = json.loads(outer["__metadata__"]["prunekit"])
    name = data.draw(st.sampled_from(sorted(meta["tensors"])))
    field = data.draw(st.sampled_from(["shape", "dtype", "enc", "int8", "n", "m", "extra"]))
    value = data.draw(JSON_VALUE | st.lists(st.integers(-5, 2**33), max_size=4))
    meta["tensors"][name][field] = value
    outer["__metadata__"]["prunekit"] = json.dumps(meta)
    head = json.dumps(outer).encode()
    head += b" " * (-len(head) % 8)
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(head)) + head + compact_file[8 + n :])
    into = data.draw(st.booleans())
    try:
        if into:
            load_compact_into(mlp(), path)
        else:
            out = load_compact(path)
            assert sum(t.numel() for t in out.values()) <= 8 * path.stat().st_size
    except PrunekitError:
        pass
