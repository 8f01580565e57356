"""CLI conventions of issue 13: defaults agree with the API, help text, tables, compact-info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunekit import cli

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(list(args))
    out = capsys.readouterr()
    return int(info.value.code), out.out, out.err


def test_nm_pattern_with_other_sparsity_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "nn", "sparsity", "--pattern", "2:4", "--sparsity", "0.9")
    assert code == 2
    assert "conflicts with --pattern 2:4" in err and "0.5" in err


def test_nm_pattern_sets_its_own_sparsity() -> None:
    from prunekit.nn.sparsity_cli import resolve_sparsity

    assert resolve_sparsity(None, "2:4") == 0.5
    assert resolve_sparsity(0.5, "2:4") == 0.5
    assert resolve_sparsity(None, "unstructured") == 0.9
    assert resolve_sparsity(0.3, "block:1x4") == 0.3


def test_cli_default_keeps_first_last_like_the_api() -> None:
    import inspect

    from prunekit.nn.cli import _load
    from prunekit.nn.sparsity import Pruner, prune_model
    from prunekit.nn.sparsity_cli import run_sparsity_experiment

    sparsity = _load("sparsity")
    option = next(p for p in sparsity.params if p.name == "prune_first_last")
    api = inspect.signature(prune_model).parameters["prune_first_last"].default
    assert option.default is api is False
    assert inspect.signature(Pruner).parameters["prune_first_last"].default is api
    assert inspect.signature(run_sparsity_experiment).parameters["prune_first_last"].default is api


def test_summary_note_names_skipped_first_last_layers() -> None:
    import torch
    from torch import nn

    from prunekit.nn.sparsity import prune_model
    from prunekit.nn.sparsity_cli import sparsity_note

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 10))
    report = prune_model(model, sparsity=0.9)
    note = sparsity_note(report)
    assert "below the 90% target" in note and "--prune-first-last" in note
    full = prune_model(model, sparsity=0.9, prune_first_last=True)
    assert sparsity_note(full) == ""


@pytest.mark.parametrize("args", [["nn", "sparsity"], ["tree"], ["ensemble"],
                                  ["nn", "structured", "prune"], ["llm"], []])
def test_help_has_no_bool_metavar(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, _ = _run(capsys, *args, "--help")
    assert code == 0
    assert "<bool>" not in out


def _compact(path: Path) -> Path:
    import torch
    from torch import nn

    from prunekit.nn.io import save_compact

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 30), nn.Linear(30, 4))
    with torch.no_grad():
        model[0].weight[model[0].weight.abs() < 0.1] = 0
    return save_compact(model, path, metadata={"sparsity": "0.9", "model": "mlp",
                                               "int8": "False", "epochs": "3"})


def test_compact_info_needs_no_torch(tmp_path: Path) -> None:
    path = _compact(tmp_path / "m.safetensors")
    code = ("import sys; from prunekit import cli\n"
            "try:\n    cli.main(['nn', 'compact-info', sys.argv[1]])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "bad = [m for m in ('torch', 'sklearn', 'numpy') if m in sys.modules]\n"
            "assert not bad, bad\n")
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    size = path.stat().st_size
    assert f"file_bytes={size}" in out.stdout and f"{size:,} bytes" in out.stdout
    meta = json.loads(out.stdout[out.stdout.index("{"):])
    assert meta == {"sparsity": 0.9, "model": "mlp", "int8": False, "epochs": 3}


def test_compact_info_rejects_a_huge_header_length(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((2**60).to_bytes(8, "little") + b"{}")
    code, _, err = _run(capsys, "nn", "compact-info", str(bad))
    assert code == 2 and "header length" in err


def test_tables_align_and_separate_thousands() -> None:
    import io

    from prunekit._tables import format_cell, print_table

    assert format_cell(1234567) == "1,234,567"
    assert format_cell(0.97123) == "0.9712"
    assert format_cell(None) == format_cell(float("nan")) == "—"
    buf = io.StringIO()
    print_table([{"name": "a", "bytes": 1234}, {"name": "bb", "bytes": None}], file=buf)
    lines = buf.getvalue().splitlines()
    assert lines[-1].startswith("— = ")
    body = [ln for ln in lines if ln.startswith(("a ", "bb"))]
    assert len({ln.rstrip().__len__() for ln in body}) == 1  # right-aligned numbers


def test_llm_nm_pattern_with_other_sparsity_fails_before_loading(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "llm", "--pattern", "2:4", "--sparsity", "0.9")
    assert code == 2 and "conflicts with --pattern 2:4" in err
    code, _, err = _run(capsys, "llm", "--pattern", "2:4", "--owl")
    assert code == 2 and "--owl" in err


@pytest.mark.parametrize("args", [["nn", "sparsity"], ["nn", "structured", "prune"], ["llm"]])
def test_defaults_in_help_text_are_not_eaten_as_markup(capsys: pytest.CaptureFixture[str],
                                                       args: list[str]) -> None:
    """Rich treats [...] as markup: a default written in brackets vanished from --help."""
    code, out, _ = _run(capsys, *args, "--help")
    assert code == 0 and "(default" in out
