"""``prunekit nn sparsity`` / ``compact-info``, and the optional Lightning callback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from prunekit.nn import sparsity_cli
from prunekit.nn.io import save_compact
from prunekit.nn.models import LeNet300100


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~10x slower."""
    torch.set_num_threads(1)


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    nn_app = typer.Typer()
    sparsity_cli.register(nn_app)
    app.add_typer(nn_app, name="nn")
    return app


def test_help(app: typer.Typer) -> None:
    runner = CliRunner()
    for cmd in (["nn", "sparsity", "--help"], ["nn", "compact-info", "--help"]):
        result = runner.invoke(app, cmd)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_compact_info(app: typer.Typer, tmp_path: Path) -> None:
    path = save_compact(
        LeNet300100(in_features=8), tmp_path / "m.safetensors", metadata={"who": "test"}
    )
    result = CliRunner().invoke(app, ["nn", "compact-info", str(path)])
    assert result.exit_code == 0, result.output
    assert "fc1.weight" in result.output and "dense" in result.output and "test" in result.output


@pytest.fixture()
def small_showcase(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real showcase loader, cut to a few batches so the command runs in seconds."""
    from torch.utils.data import DataLoader, Subset

    real = sparsity_cli.load_showcase

    def small(name: str, **kwargs):  # type: ignore[no-untyped-def]
        show = real(name, **kwargs)
        show.train = DataLoader(Subset(show.train.dataset, range(96)), batch_size=32)
        show.test = DataLoader(Subset(show.test.dataset, range(64)), batch_size=64)
        return show

    monkeypatch.setattr(sparsity_cli, "load_showcase", small)


@pytest.mark.usefixtures("small_showcase")
def test_sparsity_command_runs_and_writes(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "nn",
            "sparsity",
            "--model",
            "cnn",
            "--epochs",
            "1",
            "--finetune-epochs",
            "1",
            "--sparsity",
            "0.5",
            "--method",
            "oneshot",
            "--pattern",
            "2:4",
            "--keep-first-last",
            "--quiet",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.split()[:4] == ["model", "method", "criterion", "pattern"]
    assert ["cnn", "oneshot", "magnitude", "2:4", "50.00%"] in [
        ln.split()[:5] for ln in result.output.splitlines()]
    assert "| cnn | oneshot | magnitude | 2:4 | 50.00%" in (out / "report.md").read_text()
    assert "first layer" in result.output
    for name in ("model.safetensors", "report.md", "report.json"):
        assert (out / name).exists()


def test_bad_option_is_a_clean_error(app: typer.Typer) -> None:
    from prunekit.errors import InvalidParameterError

    result = CliRunner().invoke(app, ["nn", "sparsity", "--method", "sometimes", "--quiet"])
    assert isinstance(result.exception, InvalidParameterError)
    assert "method" in str(result.exception)


def test_lightning_callback() -> None:
    from prunekit.nn import lightning as pk_lightning

    if not pk_lightning.lightning_available():
        from prunekit.errors import OptionalDependencyError

        with pytest.raises(OptionalDependencyError, match="lightning"):
            pk_lightning.SparsityCallback  # noqa: B018
        pytest.skip("lightning is not installed")
    cb = pk_lightning.SparsityCallback(sparsity=0.5)
    assert cb.pruner is None


def test_lightning_callback_hooks_with_a_stand_in_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drive the callback's hooks as Lightning would, with a stand-in ``lightning.pytorch``."""
    import sys
    import types

    from torch import nn

    from prunekit.nn import agp
    from prunekit.nn import lightning as pk_lightning

    fake_pl = types.ModuleType("lightning.pytorch")
    fake_pl.Callback = type("Callback", (), {})  # type: ignore[attr-defined]
    fake_root = types.ModuleType("lightning")
    fake_root.pytorch = fake_pl  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lightning", fake_root)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", fake_pl)
    monkeypatch.setattr(pk_lightning, "_CLASS", None)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
    )
    cb = pk_lightning.SparsityCallback(schedule=agp(0.8, 0, 20, frequency=5))
    cb.setup(None, model, "fit")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    for i in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        cb.on_before_optimizer_step(None, model, opt)
        opt.step()
        cb.on_train_batch_end(None, model, None, (x, y), i)
    cb.on_train_end(None, model)
    assert cb.pruner is not None
    assert cb.pruner.report().sparsity == pytest.approx(0.8, abs=1e-2)
    assert (model[2].weight == 0).float().mean() == pytest.approx(0.8, abs=1e-2)
    monkeypatch.setattr(pk_lightning, "_CLASS", None)


def test_lightning_callback_counts_optimizer_steps_not_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With gradient accumulation (2 batches per step) the schedule follows ``global_step``."""
    import sys
    import types

    from torch import nn

    from prunekit.nn import agp
    from prunekit.nn import lightning as pk_lightning

    fake_pl = types.ModuleType("lightning.pytorch")
    fake_pl.Callback = type("Callback", (), {})  # type: ignore[attr-defined]
    fake_root = types.ModuleType("lightning")
    fake_root.pytorch = fake_pl  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lightning", fake_root)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", fake_pl)
    monkeypatch.setattr(pk_lightning, "_CLASS", None)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 2))
    cb = pk_lightning.SparsityCallback(schedule=agp(0.8, 0, 20, frequency=5))
    cb.setup(None, model, "fit")
    trainer = types.SimpleNamespace(global_step=0)
    for batch in range(20):  # 20 batches = 10 optimizer steps
        trainer.global_step = (batch + 1) // 2
        cb.on_train_batch_end(trainer, model, None, None, batch)
    assert cb.pruner is not None and cb.pruner.step_count == 10
    assert cb.pruner.current_sparsity == pytest.approx(agp(0.8, 0, 20, frequency=5).sparsity_at(10))
    monkeypatch.setattr(pk_lightning, "_CLASS", None)
