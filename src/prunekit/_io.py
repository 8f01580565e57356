"""Atomic file output: one temporary file of ours in the target folder, fsync, rename.

Every writer goes through :func:`atomic_path` (for code that wants a file name) or
:func:`atomic_write_bytes` (preferred: the bytes are written by us). The protocol:

1. :func:`check_output_path` refuses a target that is a directory or an existing non-regular
   file (``/dev/null``, a FIFO, a socket), or whose folder cannot be created, *before* any work;
   a symbolic link to a regular file is followed (the link stays, its target is replaced).
2. Exactly one temporary file is created next to the target, named
   ``.<target name>.<pid>.<random>.tmp`` (recognisable and tied to that target), written,
   ``fsync``-ed, given the mode a plain ``open()`` would give, and renamed onto the target; the
   folder is then ``fsync``-ed so the rename survives a power cut.
3. A failure removes the temporary file. A ``kill -9`` cannot be caught, so the next write to
   the same target removes stale temporary files of ours: those whose writing process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prunekit.errors import InvalidParameterError

__all__ = [
    "check_output_path",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "stale_temp_files",
]

_ACTIVE: set[str] = set()  # temp files being written by this process
_LOCK = threading.Lock()
_NAME_ROOM = 160  # longest target name kept verbatim in a temp name (NAME_MAX is 255)


def check_output_path(path: str | os.PathLike[str], *, create_parent: bool = True) -> Path:
    """Check that ``path`` can receive a file; return the path to write (links resolved).

    Raises :class:`InvalidParameterError` naming the path when it is a directory, an existing
    non-regular file, or its folder is not a writable directory. Call it before long work.
    """
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise InvalidParameterError(f"path must be a non-empty str or os.PathLike, got {path!r}")
    target = Path(path)
    if len(target.name.encode()) > 255:
        raise InvalidParameterError(f"path {str(path)!r}: file name longer than 255 bytes")
    try:
        if target.is_symlink() and target.resolve().is_file():
            target = target.resolve()
        is_dir, exists = target.is_dir(), target.exists()
        regular = exists and stat.S_ISREG(target.stat().st_mode)
    except OSError as exc:
        raise InvalidParameterError(
            f"path {str(path)!r} cannot be written ({exc.strerror or exc})"
        ) from None
    if is_dir:
        raise InvalidParameterError(f"path {str(path)!r} is a directory; give a file name")
    if exists and not regular:
        raise InvalidParameterError(
            f"path {str(path)!r} exists and is not a regular file (a device, FIFO or socket); "
            "give a file name"
        )
    parent = target.parent
    try:
        if create_parent:
            parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(
            f"path {str(path)!r}: cannot create its folder ({exc.strerror or exc})"
        ) from None
    if not parent.is_dir():
        raise InvalidParameterError(f"path {str(path)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"path {str(path)!r}: folder {str(parent)!r} is not writable")
    return target


def _temp_stem(target: Path) -> str:
    """``.<name>.`` — or a shortened name plus a hash when the name is long."""
    name = target.name
    if len(name.encode()) > _NAME_ROOM:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = name.encode()[:80].decode(errors="ignore") + "~" + digest
    return f".{name}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of ours for ``path`` whose writer is gone (killed before renaming)."""
    target = Path(path)
    stem = _temp_stem(target)
    pattern = re.compile(re.escape(stem) + r"(\d+)\.[0-9a-f]{16}\.tmp")
    out = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            m = pattern.fullmatch(entry.name)
            if not m or not entry.is_file(follow_symlinks=False):
                continue
            pid = int(m.group(1))
            with _LOCK:
                ours_active = entry.path in _ACTIVE
            if ours_active or (pid != os.getpid() and _pid_alive(pid)):
                continue
            out.append(Path(entry.path))
    return out


def _clean_stale(target: Path) -> None:
    for tmp in stale_temp_files(target):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _new_temp(target: Path) -> Path:
    """Create (O_EXCL) and return our one temporary file next to ``target``."""
    tmp = target.parent / f"{_temp_stem(target)}{os.getpid()}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with _LOCK:
        _ACTIVE.add(str(tmp))
    return tmp


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsync-ed
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _final_mode(target: Path) -> int:
    """The existing file's mode, else what a plain ``open()`` gives (0666 minus the umask)."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield our temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    For writers that want a file name (``torch.save``, ``fig.savefig``); they must write the
    yielded path itself (not a temporary file of their own). The target is checked first
    (:func:`check_output_path`) and stale temporary files of earlier killed writes are removed.
    """
    target = check_output_path(path)
    _clean_stale(target)
    tmp = _new_temp(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, _final_mode(target))
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        with _LOCK:
            _ACTIVE.discard(str(tmp))
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (fsync-ed) and return the path."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidParameterError(f"data must be bytes, got {type(data).__name__}")
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy scalars and arrays are converted)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
