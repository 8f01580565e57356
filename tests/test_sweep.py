"""Parallel budget sweeps: the same points as one worker, threads per worker, fall-backs."""

from __future__ import annotations

import threading

import joblib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunekit import _sweep, budget
from prunekit._evaluation import Accuracy
from prunekit.errors import InvalidParameterError
from prunekit.nn.models import LeNet300100


def _feasible_table(knob: float, table: tuple[bool, ...], cut: float) -> tuple[float, bool]:
    """Grid knobs (< 1) look feasible per ``table``; bisection points below ``cut``."""
    i = round(knob * 10)
    ok = table[i] if abs(knob * 10 - i) < 1e-9 and i < len(table) else knob <= cut
    return knob, ok


def _trace(workers: int, table: tuple[bool, ...], patience: int, refine: int,
           cut: float) -> list[tuple[float, bool]]:
    seen: list[tuple[float, bool]] = []

    def record(k: float, out: tuple[float, bool]) -> bool:
        assert out[0] == k
        seen.append(out)
        return out[1]

    knobs = [i / 10 for i in range(len(table))]
    with _sweep.Runner(_feasible_table, (), workers) as runner:
        _sweep_scan(knobs, runner, record, patience, refine, table, cut)
    return seen


def _sweep_scan(knobs, runner, record, patience, refine, table, cut):  # noqa: ANN001, ANN202
    # the tasks are (knob, table, cut): route the extra args through the scan's `args`
    budget._scan(knobs, runner, record, patience, refine, (table, cut))


@settings(derandomize=True, max_examples=40, deadline=None)
@given(table=st.lists(st.booleans(), min_size=1, max_size=8).map(tuple),
       patience=st.integers(1, 3), refine=st.integers(0, 4), workers=st.integers(2, 7),
       cut=st.floats(0.0, 0.8))
def test_parallel_scan_and_bisection_record_exactly_the_serial_points(table, patience, refine,
                                                                       workers, cut):
    serial = _trace(1, table, patience, refine, cut)
    with joblib.parallel_backend("threading"):  # fast: no processes, same dispatch logic
        parallel = _trace(workers, table, patience, refine, cut)
    assert parallel == serial


def test_speculative_bisection_uses_extra_workers():
    calls: list[float] = []
    lock = threading.Lock()

    def fn(k: float) -> bool:
        with lock:
            calls.append(k)
        return k <= 0.3

    with joblib.parallel_backend("threading"), _sweep.Runner(fn, (), 3) as runner:
        lo, hi = _sweep.bisect(0.0, 1.0, 2, runner, lambda k, ok: ok)
    # 3 workers: both levels of a 2-step bisection at once (0.5, then 0.25 or 0.75)
    assert sorted(calls) == [0.25, 0.5, 0.75] and (lo, hi) == (0.25, 0.5)


def test_threads_per_worker_and_parent_threads_restored():
    before = torch.get_num_threads()
    seen = []
    with _sweep.torch_threads(max(1, before + 1)):
        seen.append(torch.get_num_threads())
    assert seen == [max(1, before + 1)] and torch.get_num_threads() == before
    with joblib.parallel_backend("threading"), _sweep.Runner(lambda: 0, (), 2) as runner:
        assert runner.threads == 0  # threads of one process: never changed from several
    with _sweep.Runner(lambda: 0, (), 1) as runner:
        assert runner.threads == 0 and runner.mode == "inline"


def _pid_threads(pause: float) -> tuple[int, int]:
    import os
    import time

    time.sleep(pause)
    return os.getpid(), torch.get_num_threads()


@pytest.fixture(scope="module")
def warm_pool():
    """Start the reusable worker process once (the searches below then find it ready)."""
    with _sweep.Runner(_pid_threads, (), 2) as runner:
        for f in runner._warm:
            f.result(timeout=120)
        yield runner


def test_loky_worker_and_caller_share_the_work_with_cores_over_workers_threads(warm_pool):
    import os

    before = torch.get_num_threads()
    with _sweep.Runner(_pid_threads, (), 2) as runner:
        assert runner.mode == "loky"
        for f in runner._warm:
            f.result(timeout=120)
        out = runner.map([(0.05,)] * 6)
    pids = {p for p, _ in out}
    assert os.getpid() in pids and len(pids) == 2  # this process and one worker process
    assert {t for _, t in out} == {max(1, _sweep.cpu_cores() // 2)}
    assert torch.get_num_threads() == before  # the caller gets its own setting back


def test_loky_sparsity_search_same_points_as_serial(warm_pool):
    from prunekit.data import load_dataset

    d = load_dataset("digits")
    torch.manual_seed(0)
    tr, va, _ = d.loaders(64)
    m = LeNet300100(64)
    acc = Accuracy(list(va)[:4])
    kw = dict(max_drop=0.05, grid=(0.5, 0.7, 0.9, 0.95, 0.99), prune_first_last=True,
              patience=2, refine=2)
    with _sweep.torch_threads(1):  # same thread count in every evaluator: identical maths
        one = budget.search_sparsity(m, acc, n_jobs=1, **kw)
        two = budget.search_sparsity(m, acc, n_jobs=2, **kw)
    assert [(p.setting, p.metric, p.size) for p in one.points] == \
        [(p.setting, p.metric, p.size) for p in two.points]
    assert one.chosen.setting == two.chosen.setting
    assert two.model is not None


def test_unpicklable_eval_fn_and_bad_scan_arguments_are_clear():
    lock = threading.Lock()

    def eval_fn(model: torch.nn.Module) -> float:
        with lock:
            return 1.0

    model = torch.nn.Linear(4, 3)
    with pytest.raises(InvalidParameterError, match="cannot be pickled"):
        budget.search_sparsity(model, eval_fn, n_jobs=2, higher_is_better=True)
    with pytest.raises(InvalidParameterError, match="patience"):
        budget.search_sparsity(model, eval_fn, patience=0, higher_is_better=True)
    with pytest.raises(InvalidParameterError, match="refine"):
        budget.search_sparsity(model, eval_fn, refine=-1, higher_is_better=True)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        budget.search_sparsity(model, eval_fn, n_jobs=0, higher_is_better=True)


def test_ensemble_and_tree_searches_in_parallel_match_serial(warm_pool):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    from prunekit.data import load_dataset

    d = load_dataset("breast_cancer")
    data = {"X_val": d.X_val, "y_val": d.y_val, "X_eval": d.X_test, "y_eval": d.y_test}
    forest = RandomForestClassifier(12, random_state=0).fit(d.X_train, d.y_train)
    kw = dict(max_drop=0.01, methods=["reduce_error", "margin_distance"], **data)
    one = budget.search_ensemble(forest, **kw)
    two = budget.search_ensemble(forest, n_jobs=2, **kw)
    assert [(p.setting, p.metric) for p in one.points] == \
        [(p.setting, p.metric) for p in two.points]
    assert one.chosen.setting == two.chosen.setting
    assert len(two.model.estimators_) == int(two.chosen.size)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        budget.search_ensemble(forest, n_jobs=-2, **kw)
    tree = DecisionTreeClassifier(random_state=0).fit(d.X_train, d.y_train)
    t1 = budget.search_tree(tree, max_drop=0.02, methods=["c45", "min_error"], **data)
    t2 = budget.search_tree(tree, max_drop=0.02, methods=["c45", "min_error"], n_jobs=2, **data)
    assert [(p.setting, p.metric) for p in t1.points] == \
        [(p.setting, p.metric) for p in t2.points]


def _weight_metric(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(model.weight.abs().sum())


def test_parallel_search_with_bisection_leaves_the_callers_threads_alone(warm_pool):
    """Regression: single-candidate refine steps ran in the caller with cores // n_jobs threads
    and left them set."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    with _sweep.torch_threads(max(2, _sweep.cpu_cores() // 2 + 1)):
        mine = torch.get_num_threads()
        budget.search_sparsity(model, _weight_metric, max_drop=2.0, grid=(0.2, 0.5, 0.9),
                               n_jobs=2, refine=3, patience=1, higher_is_better=True,
                               prune_first_last=True)
        assert torch.get_num_threads() == mine
