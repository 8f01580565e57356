"""``prunekit tree``: the comparison table, the report files and input errors."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from prunekit.errors import InvalidParameterError
from prunekit.trees.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    return app


def test_tree_command_prints_table_and_writes_report(tmp_path):
    out = tmp_path / "rep"
    res = CliRunner().invoke(_app(), ["tree", "--data", "iris", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["method", "leaves", "depth", "test_accuracy", "f1_macro",
                                "prune_s"]
    rows = [ln for ln in lines[2:] if ln.strip() and not ln.startswith("wrote ")]
    names = [ln.split("  ")[0].strip() for ln in rows]
    assert names[0] == "unpruned" and {"c45", "mdl", "pessimistic", "min_error"} <= set(names)
    html = (out / "report.html").read_text()
    assert "<img" in html and "reduced_error" in html
    assert "Tree: unpruned" in html  # the tree is drawn before and after pruning
    assert f"wrote {out / 'report.html'}" in res.output
    results = json.loads((out / "results.json").read_text())
    assert results["info"]["task"] == "classification"
    assert all(r["leaves"] <= results["rows"][0]["leaves"] for r in results["rows"])


def test_tree_command_regression_csv_and_method_filter(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X[:, 0] * 2 + rng.normal(scale=0.3, size=120)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c,y\n" + "\n".join(",".join(f"{v:.5f}" for v in [*x, t])
                                           for x, t in zip(X, y, strict=True)))
    res = CliRunner().invoke(
        _app(),
        ["tree", "--csv", str(csv), "--methods", "rep,ccp", "--out", str(tmp_path / "o"), "-q"],
    )
    assert res.exit_code == 0, res.output
    assert "test_r2" in res.output and "reduced_error" in res.output
    assert "pessimistic" not in res.output


def test_tree_command_rejects_unknown_method(tmp_path):
    res = CliRunner().invoke(_app(), ["tree", "--methods", "magic", "--out", str(tmp_path)])
    assert isinstance(res.exception, InvalidParameterError)
    assert "magic" in str(res.exception)


def test_tree_help_is_registered_on_the_root_command():
    from prunekit.cli import app

    res = CliRunner().invoke(app, ["tree", "--help"])
    assert res.exit_code == 0 and "--methods" in res.output
