"""Fuzz suite: random bad inputs to every public entry point raise a PrunekitError or work.

The per-domain fuzzers live beside this file and run in the same suite:
``test_fuzz_trees.py`` (prune_tree, PrunedTree*, prune_ensemble, build_member_matrix),
``test_fuzz_nn.py`` (prune_model, Pruner, oneshot, load_compact/_into with mutated headers and
bytes) and ``test_fuzz_cli.py`` (the command line). This file covers the rest: structured
``prune``, ``apply_plan``/``load_plan`` with mutated plans, the data loaders (``load_dataset``,
``load_csv``) and byte mutations of a compact checkpoint under a memory limit. All derandomized.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import resource
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from prunekit.data import load_csv, load_dataset
from prunekit.errors import PrunekitError
from prunekit.nn import prune_model
from prunekit.nn.io import load_compact, save_compact
from prunekit.nn.structured import apply_plan, load_plan, prune, save_plan

FUZZ = settings(derandomize=True, max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


class Net(nn.Module):
    """Conv/BN/residual/Linear: the couplings structured pruning has to respect."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = h + torch.relu(self.conv2(h))
        return self.fc(h.mean((2, 3)))


def _net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; a PrunekitError is a fine answer, any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except PrunekitError:
            return None


_X = torch.randn(2, 3, 8, 8)
_BAD_INPUTS = [None, 3, "x", [], {}, torch.randn(2, 5, 8, 8), torch.randn(3),
               np.zeros((2, 3, 8, 8)), torch.full((2, 3, 8, 8), float("nan")),
               (torch.randn(2, 3, 8, 8), "extra")]
_BAD_VALUES = [None, -1, 0, 0.5, 1.0, 1.5, float("nan"), float("inf"), "0.5", True, [0.5]]


@FUZZ
@given(
    example=st.sampled_from([_X] + _BAD_INPUTS),
    key=st.sampled_from(["ratio", "target_macs", "target_params"]),
    value=st.sampled_from(_BAD_VALUES),
    criterion=st.sampled_from(["l1", "l2", "fpgm", "random", "bn_scale", "taylor", "bogus", 3]),
    allocation=st.sampled_from(["uniform", "global", "sensitivity", "nope"]),
    ignored=st.sampled_from([(), ["fc"], ["nope"], [nn.Linear(2, 2)], "fc", [3]]),
    round_to=st.sampled_from([None, 0, 1, 4, -2, 2.5]),
)
def test_structured_prune_raises_prunekit_errors_or_works(example, key, value, criterion,
                                                          allocation, ignored, round_to) -> None:
    model = _net()
    before = copy.deepcopy(model.state_dict())
    out = _call(prune, model, example, **{key: value}, criterion=criterion, allocation=allocation,
                ignored_layers=ignored, round_to=round_to)
    # the caller's model is never modified, success or not
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    if out is not None:
        slim, report = out
        assert slim(_X).shape == model(_X).shape
        assert report.params_after <= report.params_before
        fresh = apply_plan(_net(), report.plan)
        fresh.load_state_dict(slim.state_dict())
        assert torch.allclose(fresh(_X), slim(_X), atol=1e-6)


def _mutate(obj: Any, rng: random.Random) -> Any:
    """One random careless edit somewhere inside a JSON-like plan."""
    if isinstance(obj, dict) and obj and rng.random() < 0.8:
        key = rng.choice(sorted(obj))
        roll = rng.random()
        if roll < 0.15:
            obj.pop(key)
        elif roll < 0.25:
            obj[f"{key}_typo"] = obj[key]
        else:
            obj[key] = _mutate(obj[key], rng)
        return obj
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        i = rng.randrange(len(obj))
        roll = rng.random()
        if roll < 0.2:
            obj.append(obj[i])  # duplicate
        elif roll < 0.35:
            obj.clear()  # empty
        else:
            obj[i] = _mutate(obj[i], rng)
        return obj
    return rng.choice([-1, 10**6, 2.5, "x", None, [], {}, True, obj])


@FUZZ
@given(seed=st.integers(0, 10**6), n_edits=st.integers(1, 3))
def test_apply_plan_validates_mutated_plans(seed: int, n_edits: int) -> None:
    _, report = prune(_net(), _X, ratio=0.5)
    rng = random.Random(seed)
    plan = copy.deepcopy(report.plan)
    for _ in range(n_edits):
        plan = _mutate(plan, rng)
    target = _net()
    before = copy.deepcopy(target.state_dict())
    out = _call(apply_plan, target, plan, inplace=True, example_inputs=_X)
    if out is None:  # refused before anything was touched
        for k, v in target.state_dict().items():
            assert torch.equal(v, before[k]), k
    else:
        assert out(_X).shape == (2, 4)


@FUZZ
@given(payload=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_load_plan_rejects_garbage(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(payload)
    _call(load_plan, path)


def test_load_plan_round_trip_and_missing_file(tmp_path: Path) -> None:
    _, report = prune(_net(), _X, ratio=0.25)
    save_plan(report.plan, tmp_path / "p.json")
    assert load_plan(tmp_path / "p.json") == json.loads(json.dumps(report.plan))
    with pytest.raises(PrunekitError):
        load_plan(tmp_path / "missing.json")


@FUZZ
@given(name=st.sampled_from(["iris", "digits", "wine", "nope", "", 3, None]),
       seed=st.sampled_from([0, -1, 2.5, "0", None]),
       val_size=st.sampled_from([0.2, 0.0, 1.0, -0.1, float("nan"), "0.2"]),
       test_size=st.sampled_from([0.2, 0.9, 0.0, float("inf")]))
def test_load_dataset_raises_prunekit_errors_or_works(name, seed, val_size, test_size) -> None:
    ds = _call(load_dataset, name, seed=seed, val_size=val_size, test_size=test_size)
    if ds is not None:
        n = len(ds.X_train) + len(ds.X_val) + len(ds.X_test)
        assert n == len(ds.y_train) + len(ds.y_val) + len(ds.y_test) > 0
        assert np.isfinite(ds.X_train).all()


_CSV_ROWS = "a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(40))


@FUZZ
@given(data=st.data())
def test_load_csv_raises_prunekit_errors_or_works(tmp_path: Path, data: Any) -> None:
    raw = bytearray(_CSV_ROWS.encode())
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = bytearray(data.draw(st.binary(max_size=300)))
    path = tmp_path / "d.csv"
    path.write_bytes(bytes(raw))
    target = data.draw(st.sampled_from(["label", "a", "missing", ""]))
    ds = _call(load_csv, path, target=target)
    if ds is not None:
        assert np.isfinite(ds.X_train).all() and len(ds.X_train) == len(ds.y_train)


def test_mutated_compact_files_fail_cleanly_under_a_memory_limit(tmp_path: Path) -> None:
    """Random byte edits of a valid compact file: PrunekitError, never a MemoryError."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    prune_model(model, 0.8, prune_first_last=True)
    good = tmp_path / "m.safetensors"
    save_compact(model, good)
    blob = good.read_bytes()
    rng = random.Random(0)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        vm_bytes = int(fh.read().split()[0]) * resource.getpagesize()
    limit = vm_bytes + 512 * 2**20  # this process may grow by 512 MiB at most
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        for _ in range(60):
            data = bytearray(blob)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            bad = tmp_path / "bad.safetensors"
            bad.write_bytes(bytes(data))
            with contextlib.suppress(PrunekitError):
                load_compact(bad)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
