"""``prunekit nn structured`` commands."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from prunekit.cli import app


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_structured_prune_command_writes_model_plan_and_report(tmp_path) -> None:
    from prunekit.nn.models import DigitsCNN
    from prunekit.nn.structured import apply_plan, load_plan

    out, plan, rep = tmp_path / "m.pt", tmp_path / "plan.json", tmp_path / "r.json"
    res = CliRunner().invoke(app, [
        "nn", "structured", "prune", "--model", "digits-cnn", "--train-epochs", "1",
        "--finetune-epochs", "1", "--ratio", "0.5", "--quiet", "--out", str(out),
        "--plan", str(plan), "--report", str(rep)])
    assert res.exit_code == 0, res.output
    assert "MACs" in res.output and "latency" in res.output and "Test accuracy" in res.output
    data = json.loads(rep.read_text())
    assert data["macs_after"] < data["macs_before"]
    fresh = apply_plan(DigitsCNN(), load_plan(plan))
    fresh.load_state_dict(torch.load(out, weights_only=True))


def test_structured_groups_and_help() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["nn", "structured", "groups", "--model", "digits-cnn"])
    assert res.exit_code == 0, res.output
    assert ["0", "16"] in [ln.split()[:2] for ln in res.output.splitlines()]
    assert runner.invoke(app, ["nn", "structured", "prune", "--help"]).exit_code == 0


def test_bad_choice_is_a_clean_error() -> None:
    res = CliRunner().invoke(app, ["nn", "structured", "groups", "--model", "nope"])
    assert res.exit_code != 0
    assert "accepted values" in str(res.exception)


def test_user_model_factory_without_data_says_what_is_skipped(tmp_path, monkeypatch) -> None:
    (tmp_path / "user_nets_13.py").write_text(
        "from torch import nn\n\n\ndef mlp():\n"
        "    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))\n")
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["nn", "structured", "prune", "--model", "user_nets_13:mlp",
                                   "--input-shape", "1,6", "--report", str(report), "-q"])
    assert res.exit_code == 0, res.output
    assert "accuracy and fine-tuning are skipped" in res.output
    assert "parameters" in res.output and report.exists()
    res = CliRunner().invoke(app, ["nn", "structured", "prune", "--model", "user_nets_13:mlp"])
    assert res.exit_code != 0 and "--input-shape" in str(res.exception)
