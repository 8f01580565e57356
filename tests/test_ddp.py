"""The Pruner under torch.distributed: 2 CPU processes (gloo), DDP and Lightning's ddp_spawn."""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from prunekit.errors import InvalidParameterError
from prunekit.nn import Pruner, agp

STEPS = 12
WORKER_TIMEOUT_S = 240
CRITERIA = ("taylor", "obd", "movement")
SCHEDULE = dict(begin_step=0, end_step=8, frequency=4)


def _mlp(hidden: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 3))


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 10, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()


def _train(model: nn.Module, local: tuple[torch.Tensor, torch.Tensor], criterion: str,
           pruned: nn.Module | None = None) -> tuple[Pruner, list[float]]:
    """Train STEPS SGD steps on ``local`` with a gradual Taylor/OBD schedule."""
    x, y = local
    pruner = Pruner(model, schedule=agp(0.75, **SCHEDULE), criterion=criterion,
                    data=[(x[:16], y[:16]), (x[16:], y[16:])], prune_first_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    pruner.optimizer = opt
    pruner.prepare()
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        pruner.mask_gradients()
        opt.step()
        pruner.step()
        losses.append(float(loss))
    pruner.finalize()
    return pruner, losses


def _init(rank: int, init_file: str) -> None:
    # a collective that waits for a rank that is gone fails after 60 s instead of 30 min
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))


def _ddp_worker(rank: int, init_file: str, out: str) -> None:
    """Both criteria's training runs, then the bad-input cases, in one spawn (spawns are slow)."""
    torch.set_num_threads(1)
    _init(rank, init_file)
    try:
        x, y = _global_batch()
        local = (x[rank * 32 : (rank + 1) * 32], y[rank * 32 : (rank + 1) * 32])
        for criterion in CRITERIA:
            ddp = nn.parallel.DistributedDataParallel(_mlp())
            pruner, losses = _train(ddp, local, criterion)
            assert pruner.distributed
            torch.save({"masks": pruner.masks, "losses": losses,
                        "state": ddp.module.state_dict()}, f"{out}/{criterion}{rank}.pt")
        _bad_cases(rank, out)
        dist.barrier()  # both ranks are done before either tears the group down
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(_ddp_worker, args=(str(out / "init"), str(out)), nprocs=2,
                             start_method="fork", join=False)
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while not ctx.join(timeout=2):  # a watchdog: a stuck worker fails the test, never hangs it
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the DDP workers did not finish within {WORKER_TIMEOUT_S} s")
    return out


@contextlib.contextmanager
def _fail_after(seconds: int) -> Iterator[None]:
    """A watchdog for code that waits on worker processes: past ``seconds`` the workers are
    killed and the test fails, so a stuck collective can never hang the suite."""

    def expire(*_: object) -> None:
        for child in multiprocessing.active_children():
            child.kill()
        raise TimeoutError(f"the DDP workers did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _single_process(criterion: str) -> Pruner:
    """The same run in one process: global batch, each rank's half as one data batch."""
    x, y = _global_batch()
    model = _mlp()
    halves = [(x[:32], y[:32]), (x[32:], y[32:])]
    # the data-driven statistics of the 2 ranks: their local batches split in 2 each
    data = [(h[0][:16], h[1][:16]) for h in halves] + [(h[0][16:], h[1][16:]) for h in halves]
    pruner = Pruner(model, schedule=agp(0.75, **SCHEDULE), criterion=criterion,
                    data=data, prune_first_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    pruner.optimizer = opt
    pruner.prepare()
    for _ in range(STEPS):
        opt.zero_grad()
        # mean of the two ranks' mean losses = DDP's averaged gradient
        loss = sum(nn.functional.cross_entropy(model(h[0]), h[1]) for h in halves) / 2
        loss.backward()
        pruner.mask_gradients()
        opt.step()
        pruner.step()
    pruner.finalize()
    return pruner


@pytest.mark.slow
@pytest.mark.parametrize("criterion", CRITERIA)
def test_ddp_masks_identical_on_target_and_equal_to_one_process(
    ddp_run: Path, criterion: str
) -> None:
    r0, r1 = (torch.load(ddp_run / f"{criterion}{r}.pt") for r in (0, 1))
    assert r0["masks"].keys() == r1["masks"].keys() and len(r0["masks"]) == 3
    for k in r0["masks"]:
        assert torch.equal(r0["masks"][k], r1["masks"][k]), k
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    kept = sum(int(m.sum()) for m in r0["masks"].values())
    total = sum(m.numel() for m in r0["masks"].values())
    assert 1 - kept / total == pytest.approx(0.75, abs=0.01)
    for r in (r0, r1):
        assert sum(r["losses"][-3:]) < sum(r["losses"][:3])
    # the same run in one process with the same global batch and statistics
    single = _single_process(criterion)
    for k, m in single.masks.items():
        assert torch.equal(m, r0["masks"][k.removeprefix("module.")]), k
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(v, r0["state"][k], rtol=1e-4, atol=1e-5)


def _bad_cases(rank: int, out: str) -> None:
    messages = []
    model = _mlp(hidden=32 if rank == 0 else 24)  # a different model on rank 1
    try:
        Pruner(model, sparsity=0.5).prepare()
    except Exception as exc:  # noqa: BLE001 - recorded for the parent
        messages.append(f"{type(exc).__name__}: {exc}")
    torch.manual_seed(rank)  # same architecture, different weights, no DDP
    model = nn.Linear(4, 4)
    try:
        Pruner(model, sparsity=0.5, prune_first_last=True).prepare()
    except Exception as exc:  # noqa: BLE001
        messages.append(f"{type(exc).__name__}: {exc}")
    model = _mlp()  # schedules out of step: rank 1 passes another step count
    pruner = Pruner(model, sparsity=0.5, schedule=agp(0.5, 0, 4, frequency=1)).prepare()
    try:
        pruner.step(2 if rank == 0 else 3)
    except Exception as exc:  # noqa: BLE001
        messages.append(f"{type(exc).__name__}: {exc}")
    torch.save(messages, f"{out}/bad{rank}.pt")


@pytest.mark.slow
def test_ddp_ranks_with_different_models_are_refused(ddp_run: Path) -> None:
    for rank in (0, 1):
        messages = torch.load(ddp_run / f"bad{rank}.pt")
        assert len(messages) == 3
        assert messages[0].startswith("UnsupportedModelError") and "different models" in messages[0]
        assert "different weights" in messages[1] and "DistributedDataParallel" in messages[1]
        assert "lockstep" in messages[2] and "2 to 3" in messages[2]


def test_distributed_true_without_a_process_group_is_refused() -> None:
    assert not dist.is_initialized()
    with pytest.raises(InvalidParameterError, match="init_process_group"):
        Pruner(_mlp(), sparsity=0.5, distributed=True)
    with pytest.raises(InvalidParameterError, match="distributed"):
        Pruner(_mlp(), sparsity=0.5, distributed="yes")  # type: ignore[arg-type]
    pruner = Pruner(_mlp(), sparsity=0.5)  # auto: no process group, no synchronisation
    assert not pruner.distributed


def test_ddp_wrapped_model_uses_inner_names_in_one_process() -> None:
    """DataParallel/DDP wrappers are looked through: names are the inner module's."""
    model = _mlp()
    pruner = Pruner(nn.DataParallel(model), sparsity=0.5, prune_first_last=True)
    assert pruner.targets == ["0.weight", "2.weight", "4.weight"]
    assert isinstance(pruner.finalize(), nn.DataParallel)
    assert (model[2].weight == 0).float().mean() > 0.3


# ------------------------------------------------------------------ Lightning (real library)
@pytest.mark.slow
def test_lightning_callback_under_ddp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's DDP with forked workers ("ddp" relaunches the script, impractical in pytest;
    "ddp_fork" runs the same DDP strategy in processes that share the set-up already done)."""
    from prunekit.nn import lightning as pk_lightning

    if not pk_lightning.lightning_available():
        pytest.skip("lightning is not installed")
    import lightning.pytorch as pl

    monkeypatch.setenv("PK_TEST_OUT", str(tmp_path))
    x, y = _global_batch()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    cb = pk_lightning.SparsityCallback(schedule=agp(0.6, **SCHEDULE), prune_first_last=True)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_fork", max_steps=STEPS,
                         callbacks=[cb], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    from _ddp_lightning import Tiny

    with _fail_after(WORKER_TIMEOUT_S):
        trainer.fit(Tiny(), loader)
    r0, r1 = (torch.load(tmp_path / f"pl{r}.pt") for r in (0, 1))
    assert r0["distributed"] and r1["distributed"]
    for k in r0["masks"]:
        assert torch.equal(r0["masks"][k], r1["masks"][k]), k
        assert torch.equal(r0["state"][k.removeprefix("net.")], r1["state"][k.removeprefix("net.")])
    kept = sum(int(m.sum()) for m in r0["masks"].values())
    total = sum(m.numel() for m in r0["masks"].values())
    assert 1 - kept / total == pytest.approx(0.6, abs=0.01)
    assert sum(r0["losses"][-2:]) < sum(r0["losses"][:2])
