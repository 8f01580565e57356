"""Atomic writes: one temp file of ours, fsync + rename, stale temps cleaned on the next write."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from prunekit._io import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_output_path,
    stale_temp_files,
)
from prunekit.errors import InvalidParameterError
from prunekit.nn.io import load_compact, save_compact

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failure_mid_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half-written")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and _temps(tmp_path) == []


def test_kill_9_mid_write_leaves_stale_temp_that_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {SRC!r})
        from prunekit._io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"x" * 100000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    assert not target.exists() and len(_temps(tmp_path)) == 1  # the orphan of the killed write
    assert stale_temp_files(target) == [tmp_path / _temps(tmp_path)[0]]
    other = tmp_path / f".other.{_dead_pid()}.0123456789abcdef.tmp"  # another target's: kept
    other.write_bytes(b"")
    save_compact({"w": torch.ones(3)}, target)
    assert _temps(tmp_path) == [other.name]
    assert torch.equal(load_compact(target)["w"], torch.ones(3))


def test_temp_of_a_live_writer_is_not_removed(tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    live = tmp_path / f".r.html.{os.getppid()}.0123456789abcdef.tmp"  # a running process
    live.write_bytes(b"")
    atomic_write_text(target, "<html></html>")
    assert live.exists() and target.read_text() == "<html></html>"


def test_save_compact_writes_exactly_one_temp_file(tmp_path: Path, monkeypatch) -> None:
    import safetensors.torch

    def no_save_file(*a: object, **k: object) -> None:
        raise AssertionError("save_file would create its own temporary file")

    monkeypatch.setattr(safetensors.torch, "save_file", no_save_file)
    created: list[str] = []
    real_open = os.open

    def spy(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT:
            created.append(os.fspath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", spy)
    save_compact({"w": torch.zeros(4, 4)}, tmp_path / "m.safetensors")
    assert len(created) == 1 and Path(created[0]).name.startswith(".m.safetensors.")
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("kind", ["dir", "devnull", "fifo", "parent_is_file", "long"])
def test_bad_targets_are_refused_before_writing(tmp_path: Path, kind: str) -> None:
    if kind == "dir":
        target = tmp_path
    elif kind == "devnull":
        target = Path(os.devnull)
        if not stat.S_ISCHR(os.stat(target).st_mode):  # a shared machine may have broken it
            pytest.skip("/dev/null is not a character device on this machine right now")
    elif kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "parent_is_file":
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "out.safetensors"
    else:
        target = tmp_path / ("a" * 300)
    with pytest.raises(InvalidParameterError, match="path"):
        check_output_path(target)
    with pytest.raises(InvalidParameterError, match="path"):
        save_compact({"w": torch.zeros(2)}, target)
    with pytest.raises(InvalidParameterError, match="path"):
        atomic_write_bytes(target, b"x")
    assert _temps(tmp_path) == []


def test_long_name_and_symlink_and_mode(tmp_path: Path) -> None:
    long_target = tmp_path / ("n" * 250)
    atomic_write_bytes(long_target, b"ok")  # the temp name is shortened, not too long
    assert long_target.read_bytes() == b"ok"
    real = tmp_path / "real.txt"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert real.stat().st_mode & 0o777 == 0o640


def test_report_html_is_atomic(tmp_path: Path, monkeypatch) -> None:
    from prunekit.report import Report

    report = Report("t")
    target = tmp_path / "r.html"
    stale = tmp_path / f".r.html.{_dead_pid()}.0123456789abcdef.tmp"
    stale.write_bytes(b"partial")

    def broken(self: Report) -> str:
        raise RuntimeError("render failed")

    with monkeypatch.context() as m:
        m.setattr(Report, "to_html", broken)
        with pytest.raises(RuntimeError):
            report.write_html(target)
    assert not target.exists()
    report.write_html(target)
    assert target.read_text().startswith("<!") and _temps(tmp_path) == []


def test_ctrl_c_mid_write_leaves_no_partial_output(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("<html>partial")
        raise KeyboardInterrupt
    assert not target.exists() and _temps(tmp_path) == []
