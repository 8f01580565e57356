"""Happy paths of ``prunekit nn sensitivity`` and ``--max-drop`` on ``tree`` / ``ensemble``."""

from __future__ import annotations

import json

from prunekit._cli_common import run_cli
from prunekit.cli import app


def _run(argv: list[str], capsys) -> str:
    import typer

    code = run_cli(typer.main.get_command(app), argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_tree_max_drop_adds_budget_row(tmp_path, capsys) -> None:
    out = _run(["tree", "--data", "iris", "--methods", "c45", "--max-drop", "0.02", "-q",
                "--out", str(tmp_path)], capsys)
    assert "budget (max drop 0.02): method=" in out
    res = json.loads((tmp_path / "results.json").read_text())
    budget = res["info"]["budget"]
    assert budget["max_drop"] == 0.02 and budget["domain"] == "tree"
    assert budget["chosen"]["metric"] >= budget["baseline"] - 0.02 - 1e-12
    row = [r for r in res["rows"] if r["method"].startswith("budget")]
    assert len(row) == 1 and row[0]["leaves"] <= res["rows"][0]["leaves"]


def test_ensemble_max_drop_relative(tmp_path, capsys) -> None:
    out = _run(["ensemble", "--data", "iris", "--n-estimators", "8", "--methods",
                "reduce_error", "--max-drop", "0.05", "--relative", "-q", "--out",
                str(tmp_path)], capsys)
    assert "budget (max drop 0.05 relative): method=reduce_error, size=" in out
    budget = json.loads((tmp_path / "results.json").read_text())["info"]["budget"]
    assert budget["relative"] and budget["chosen"]["size"] < 8
    assert budget["chosen"]["metric"] >= budget["baseline"] * 0.95 - 1e-12


def test_nn_sensitivity_weights(tmp_path, capsys) -> None:
    out = _run(["nn", "sensitivity", "--model", "digits-cnn", "--grid", "0.5,0.9",
                "--epochs", "0", "--max-batches", "1", "--out", str(tmp_path)], capsys)
    assert "features.0.weight" in out and "0.9" in out
    data = json.loads((tmp_path / "sensitivity.json").read_text())
    sens = data["sensitivity"]
    assert sens["kind"] == "weights" and sens["grid"] == [0.5, 0.9]
    assert all(len(v) == 2 for v in sens["metrics"].values())
    assert (tmp_path / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert "<html" in (tmp_path / "sensitivity.html").read_text().lower()


def test_nn_sensitivity_groups_loss_proxy(tmp_path, capsys) -> None:
    out = _run(["nn", "sensitivity", "--model", "lenet", "--kind", "groups", "--proxy",
                "loss", "--grid", "0.5", "--epochs", "0", "--max-batches", "1", "--out",
                str(tmp_path)], capsys)
    assert "group" in out
    sens = json.loads((tmp_path / "sensitivity.json").read_text())["sensitivity"]
    assert sens["kind"] == "groups" and not sens["higher_is_better"]
    assert set(sens["metrics"]) and all(len(v) == 1 for v in sens["metrics"].values())
