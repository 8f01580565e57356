"""The ``prunekit`` command: help, version, the demo's options and clean user errors."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from prunekit import __version__
from prunekit.cli import app

runner = CliRunner()


def test_help_lists_demo():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "demo" in result.output and "--version" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"prunekit {__version__}"


def test_demo_help_shows_options_but_not_hidden_fast():
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    for opt in ("--output-dir", "--quiet", "--seed", "--threads"):
        assert opt in result.output
    assert "--fast" not in result.output


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "Usage" in result.output


def test_user_error_is_printed_cleanly(monkeypatch, tmp_path, capsys):
    from prunekit import cli

    monkeypatch.setattr(sys, "argv", ["prunekit", "demo", "--threads", "0",
                                      "-o", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: threads must be an integer >= 1")
    assert "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


def test_root_help_does_not_import_heavy_domains() -> None:
    """`prunekit --help` lists every command without importing torch or scikit-learn."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from prunekit.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert all(c in r.output for c in ('demo', 'tree', 'ensemble', 'nn', 'llm')), r.output\n"
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
