"""What every ``prunekit`` command shares: the error wrapper, output/input checks, option checks.

Exit codes of the ``prunekit`` command (see README, "Errors and guarantees"):

* ``0`` success;
* ``2`` an expected failure: a bad option or input file, an output that cannot be written, a
  missing optional dependency, a full disk. Exactly one line ``error: ...`` on stderr;
* ``1`` an unexpected failure (a bug): one line ``error: unexpected <Type>: ...`` and how to see
  the traceback (``prunekit --debug ...`` or ``PRUNEKIT_DEBUG=1``); ``prunekit demo`` also exits
  1 when one of its sections failed;
* ``130`` interrupted (Ctrl-C): one line ``interrupted``; outputs are written atomically at the
  end of a command, so an interrupted command leaves no partial files.

This module imports only the standard library and click at import time (``prunekit --help``
stays fast).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import numbers
import os
import pickle
import re
import stat
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from prunekit.errors import InvalidParameterError, PrunekitError

EXIT_OK, EXIT_UNEXPECTED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
NAME_MAX = 255  # bytes per path component on every common file system
PATH_MAX = 4096
DEBUG_ENV = "PRUNEKIT_DEBUG"
_state = {"debug": False}


class CommandInterrupted(BaseException):
    """A KeyboardInterrupt inside a command, carried past click's own Ctrl-C handling."""


def set_debug(value: bool) -> None:
    """Turn traceback printing on (the root ``--debug`` option)."""
    _state["debug"] = bool(value)


def debug_enabled() -> bool:
    """``--debug`` was given, or ``PRUNEKIT_DEBUG`` is set to a true value."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return _state["debug"] or env not in ("", "0", "false", "no", "off")


def one_line(text: str, limit: int = 2000) -> str:
    """Collapse ``text`` to one line (whitespace runs become one space), cut at ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --------------------------------------------------------------------------- the wrapper
def _classes(name: str) -> tuple[type[BaseException], ...]:
    """Exception class ``name`` of the click typer uses (vendored since typer 0.2x) and of click."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if cls not in found:
            found.append(cls)
    return tuple(found)


def run_cli(command: Any, argv: Sequence[str] | None = None, prog_name: str = "prunekit"
            ) -> int:
    """Run ``command`` on ``argv`` and return the exit code; every failure is one stderr line."""
    set_debug(False)
    args = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.showwarning = _warning_once(set())
        return _run(command, args, prog_name)


def _warning_once(seen: set[tuple[str, str]]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing each distinct warning once, as one stderr line."""

    def show(message: Warning | str, category: type[Warning], *_args: Any, **_kw: Any) -> None:
        key = (category.__name__, one_line(str(message), 300))
        if key not in seen:
            seen.add(key)
            print(f"warning: {key[0]}: {key[1]}", file=sys.stderr, flush=True)

    return show


def _run(command: Any, args: list[str], prog_name: str) -> int:
    try:
        rv = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except (CommandInterrupted, KeyboardInterrupt):
        return _interrupted()
    except _classes("NoArgsIsHelpError") as exc:
        exc.show()  # type: ignore[attr-defined]
        return EXIT_ERROR
    except (typer.Abort, *_classes("Abort")) as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted()
        return _fail(EXIT_ERROR, "aborted (end of input)", exc)
    except (typer.TyperException, *_classes("ClickException")) as exc:
        return _fail(EXIT_ERROR, _click_message(exc), exc)
    except BrokenPipeError:  # `prunekit ... | head`: the reader left, nothing to report
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_UNEXPECTED
    except SystemExit as exc:  # a library calling sys.exit: keep its code
        return exc.code if isinstance(exc.code, int) else EXIT_UNEXPECTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        code, message = describe_error(exc)
        return _fail(code, message, exc)
    if rv == EXIT_INTERRUPTED:  # typer turns a Ctrl-C outside a command into Exit(130)
        return _interrupted()
    return rv if isinstance(rv, int) else EXIT_OK


def _interrupted() -> int:
    _flush_stdout()
    print("interrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def _flush_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed or broken stdout
        sys.stdout.flush()


def _fail(code: int, message: str, exc: BaseException) -> int:
    _flush_stdout()
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    return code


def _click_message(exc: Any) -> str:
    message = exc.format_message()
    param = getattr(exc, "param", None)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if isinstance(low, numbers.Real) or isinstance(high, numbers.Real):
        lo = "" if low is None else f"{low}"
        hi = "" if high is None else f"{high}"
        message += f"; accepted range: {lo}..{hi}"
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _classes("UsageError")) and ctx is not None:
        help_opt = ctx.help_option_names[0] if ctx.help_option_names else "--help"
        message += f" (see '{ctx.command_path} {help_opt}')"
    return message


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit code and one-line message for an exception raised by a command."""
    if isinstance(exc, PrunekitError):
        return EXIT_ERROR, str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return EXIT_ERROR, os_error_message(exc)
    if isinstance(exc, MemoryError):
        return EXIT_ERROR, "out of memory" + (f": {exc}" if str(exc) else "") + (
            "; try a smaller input or smaller settings")
    hint = f"run 'prunekit --debug ...' or set {DEBUG_ENV}=1 for the traceback"
    return EXIT_UNEXPECTED, f"unexpected {type(exc).__name__}: {exc} ({hint})"


def os_error_message(exc: OSError) -> str:
    """``cannot write 'x': Permission denied`` style text for an OSError."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        target = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            return f"{what}: {target!r} -> {os.fsdecode(exc.filename2)!r}"
        return f"{what}: {target!r}"
    return what


# --------------------------------------------------------------------------- outputs
def _path_error(option: str, path: Path, why: str) -> InvalidParameterError:
    return InvalidParameterError(f"{option} {str(path)!r}: {why}")


def _check_names(option: str, path: Path) -> None:
    text = str(path)
    if "\x00" in text:
        raise _path_error(option, path, "a path cannot contain a NUL character")
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise _path_error(
                option, path, f"the name {part[:24]!r}... is {size} bytes long; file names are "
                f"limited to {NAME_MAX} bytes")
    if len(os.fsencode(os.path.abspath(text))) >= PATH_MAX:
        raise _path_error(option, path, f"the path is longer than {PATH_MAX} bytes")


def _nearest_existing_dir(option: str, path: Path) -> Path:
    """The closest existing ancestor of ``path``; it must be a directory."""
    for parent in Path(os.path.abspath(path)).parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise _path_error(option, path, f"{str(parent)!r} is a file, not a directory")
            return parent
    return Path(os.path.abspath(os.sep))  # pragma: no cover - the root always exists


def _check_writable_dir(option: str, path: Path, directory: Path) -> None:
    """Create and remove a probe file in ``directory`` (catches read-only dirs and mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".prunekit-probe-", dir=directory)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise _path_error(option, path, f"cannot write in {str(directory)!r} ({why})") from None
    os.close(fd)
    os.unlink(probe)


def _kind(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError:
        return "missing"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "special"


def check_output_file(option: str, path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that a file can be written (atomically) at ``path``.

    Rejects a directory, a device such as ``/dev/null`` or a pipe, a name longer than 255
    bytes, a parent that is a file, and a folder that cannot be written. Creates nothing.
    """
    p = Path(path)
    _check_names(option, p)
    kind = _kind(p)
    if kind == "dir" or str(path).endswith(("/", os.sep)):
        raise _path_error(option, p, "is a directory; give a file name")
    if kind == "special":
        raise _path_error(option, p, "is not a regular file (a device or a pipe); prunekit "
                          "writes files atomically (temporary file + rename), give a file path")
    if kind == "missing" and os.path.lexists(p):
        raise _path_error(option, p, "is a broken symbolic link")
    parent = p.parent if kind == "file" else _nearest_existing_dir(option, p)
    _check_writable_dir(option, p, parent)
    return p


def check_output_dir(option: str, path: str | os.PathLike[str], files: Iterable[str] = ()) -> Path:
    """Check, before any work, that folder ``path`` can hold the output ``files``.

    ``path`` may not exist yet (it is created at the end); if it exists it must be a writable
    directory, and none of ``files`` inside it may be a directory. Creates nothing.
    """
    p = Path(path)
    _check_names(option, p)
    kind = _kind(p)
    if kind in ("file", "special"):
        raise _path_error(option, p, "exists and is not a directory; give a folder")
    if kind == "missing":
        if os.path.lexists(p):
            raise _path_error(option, p, "is a broken symbolic link")
        _check_writable_dir(option, p, _nearest_existing_dir(option, p))
        return p
    for name in files:
        child = p / name
        if _kind(child) in ("dir", "special"):
            raise _path_error(option, p, f"{name!r} inside it exists and is not a regular file")
    _check_writable_dir(option, p, p)
    return p


def check_distinct_outputs(paths: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """Two output options may not name the same file."""
    seen: dict[str, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = os.path.normcase(os.path.realpath(path))
        if key in seen:
            raise InvalidParameterError(
                f"{seen[key]} and {option} name the same file {os.fspath(path)!r}")
        seen[key] = option


# --------------------------------------------------------------------------- inputs
def check_input_file(option: str, path: str | os.PathLike[str]) -> Path:
    """An existing regular file (or pipe) to read; directories and devices are refused."""
    p = Path(path)
    if "\x00" in str(p):
        raise _path_error(option, p, "a path cannot contain a NUL character")
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise _path_error(option, p, "does not exist") from None
    except OSError as exc:
        raise _path_error(option, p, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(mode):
        raise _path_error(option, p, "is a directory, not a file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise _path_error(option, p, "is not a regular file (a device?)")
    if not os.access(p, os.R_OK):
        raise _path_error(option, p, "is not readable (permission denied)")
    return p


# --------------------------------------------------------------------------- option values
def check_number(
    option: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A finite number within the bounds; the error names the option and the accepted range."""
    if value is None:
        return value
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (low is None or (v > low if low_open else v >= low)) and (
            high is None or (v < high if high_open else v <= high))
    if not ok:
        lb = "(" if low_open or low is None else "["
        rb = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise InvalidParameterError(
            f"{option}={value!r} is not accepted; it must be a finite number in {lb}{lo}, {hi}{rb}")
    return value


def parse_list(option: str, text: str, choices: Sequence[str] | None = None,
               aliases: Mapping[str, str] | None = None) -> list[str] | None:
    """``"all"`` -> None, else the comma-separated names (each checked against ``choices``)."""
    if text.strip().lower() == "all":
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    accepted = ", ".join(choices) if choices else ""
    if not names:
        raise InvalidParameterError(
            f"{option}={text!r} names nothing; give comma-separated names or 'all'"
            + (f" (accepted: {accepted})" if accepted else ""))
    out: list[str] = []
    for name in names:
        name = (aliases or {}).get(name, name)
        if choices is not None and name not in choices:
            raise InvalidParameterError(
                f"{option}: {name!r} is not supported; accepted values: {accepted}, all")
        if name not in out:
            out.append(name)
    return out


def check_option_choice(option: str, value: Any, choices: Iterable[Any], context: str = ""
                        ) -> Any:
    """``value`` if it is one of ``choices``; the error names ``option`` and lists them."""
    choices = list(choices)
    if value not in choices:
        raise InvalidParameterError(
            f"{option}={value!r} is not supported{context}; accepted values: "
            + ", ".join(str(c) for c in choices))
    return value


SEED_MAX = 2**32 - 1


# --------------------------------------------------------------------------- writing
Writer = Callable[[Path], object]


def write_outputs(files: Mapping[Path, str | bytes | Writer]) -> None:
    """Write several output files as one step, through ``prunekit._io.atomic_path``.

    Each value (text, bytes, or ``writer(tmp_path)``) fills a temporary file next to its
    target; the files are renamed into place only after every one was written, so an error or
    Ctrl-C leaves neither partial files nor temporary ones.
    """
    from prunekit._io import atomic_path

    with contextlib.ExitStack() as stack:
        tmps = {target: stack.enter_context(atomic_path(target)) for target in files}
        for target, content in files.items():
            tmp = tmps[target]
            if isinstance(content, str):
                tmp.write_text(content, encoding="utf-8")
            elif isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                content(tmp)


# --------------------------------------------------------------------------- tables
def load_table(data: str, csv: Path | None, target: str, seed: int) -> Any:
    """The :class:`prunekit.data.Dataset` of ``--data`` or ``--csv``/``--target``.

    Errors name the option; a classification training split must hold two classes.
    """
    from prunekit.data import DATASETS, load_csv, load_dataset

    if csv is None:
        check_option_choice("--data", data, [d for d in DATASETS if d != "mnist"])
        return load_dataset(data, seed=seed)
    check_input_file("--csv", csv)
    text = target.strip()
    tgt: str | int = int(text) if re.fullmatch(r"-?[0-9]+", text) else target
    try:
        ds = load_csv(csv, target=tgt, seed=seed)
    except InvalidParameterError as exc:
        msg, where = str(exc), os.fspath(csv)
        if msg.startswith("target="):
            raise InvalidParameterError("--" + msg) from None
        if msg.startswith(where):
            msg = msg[len(where):].lstrip(": ")
        raise InvalidParameterError(f"--csv {where!r}: {msg}") from None
    if ds.task == "classification" and len(set(ds.y_train.tolist())) < 2:
        raise InvalidParameterError(
            f"--csv {str(csv)!r}: the training split holds a single class; give more rows of "
            "every class")
    if ds.task == "classification":
        held_out = set(ds.y_val.tolist()) | set(ds.y_test.tolist())
        unseen = sorted(held_out - set(ds.y_train.tolist()))
        if unseen:
            names = ", ".join(repr(ds.target_names[i]) for i in unseen[:5])
            raise InvalidParameterError(
                f"--csv {str(csv)!r}: {len(unseen)} classes ({names}"
                f"{', ...' if len(unseen) > 5 else ''}) have too few rows to appear in the "
                f"training split ({len(ds.target_names)} classes in "
                f"{len(ds.y_train) + len(ds.y_val) + len(ds.y_test)} rows); is --target the "
                "label column?")
    if len(ds.y_train) < 5 or len(ds.y_test) < 1:
        raise InvalidParameterError(
            f"--csv {str(csv)!r}: {len(ds.y_train) + len(ds.y_val) + len(ds.y_test)} data rows "
            "are too few to train, prune and test (at least 10 are needed)")
    return ds


def fit_model(option: str, model: Any, X: Any, y: Any) -> Any:
    """``model.fit(X, y)``; scikit-learn's complaints about the data become one-line errors."""
    try:
        return model.fit(X, y)
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"cannot fit {type(model).__name__} with {option}: {one_line(str(exc), 300)}"
        ) from exc


# --------------------------------------------------------------------------- checkpoints
def load_state_dict_file(option: str, path: Path) -> dict[str, Any]:
    """A state dict from a ``.safetensors`` file or a ``torch.save`` file.

    ``torch.save`` files are read with ``torch.load(weights_only=True)``: no pickled code ever
    runs. A ``{"state_dict": {...}}`` wrapper (Lightning) is unwrapped.
    """
    import torch

    check_input_file(option, path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: one line only
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                obj: Any = load_file(str(path))
            else:
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except pickle.UnpicklingError:
        raise _path_error(option, path, "holds pickled Python objects, not only tensors; "
                          "torch.load(weights_only=True) refuses them and prunekit never runs "
                          "pickled code (save model.state_dict() instead)") from None
    except Exception as exc:  # noqa: BLE001 - every loader failure means "not a usable file"
        reader = "safetensors" if path.suffix == ".safetensors" else (
            "torch.load(weights_only=True)")
        raise _path_error(option, path, f"not a state_dict file readable by {reader} "
                          f"({type(exc).__name__}: {one_line(str(exc), 200)})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise _path_error(option, path, f"holds a {type(obj).__name__}, not a state_dict "
                          "(a mapping of parameter names to tensors)")
    return dict(obj)


def apply_state_dict(option: str, path: Path, model: Any, state: Mapping[str, Any],
                     what: str) -> None:
    """Load ``state`` into ``model``; a mismatch names the keys and shapes, in one line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]

    def few(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")

    problems = [f"missing keys: {few(missing)}" if missing else "",
                f"unexpected keys: {few(unexpected)}" if unexpected else "",
                f"shape mismatch: {few(shapes)}" if shapes else ""]
    problems = [p for p in problems if p]
    if problems:
        raise _path_error(option, path, f"does not match {what}: " + "; ".join(problems))
    model.load_state_dict(dict(state))


# --------------------------------------------------------------------------- help text
def hide_flag_metavars(command: Any) -> Any:
    """Drop the ``<bool>`` type column of on/off flags in ``--help`` (for ``command`` and below).

    A flag takes no value, so a metavar only misleads; the help shows ``--int8 / --no-int8``.
    """
    from typer.core import TyperGroup

    try:
        from typer import _click as click
    except ImportError:  # pragma: no cover - older typer
        import click  # type: ignore[no-redef]
    params = list(getattr(command, "params", []))
    with contextlib.suppress(Exception):  # the cached --help option (created on demand)
        helper = command.get_help_option(click.Context(command))
        if helper is not None:
            params.append(helper)
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""
    if isinstance(command, TyperGroup) or hasattr(command, "commands"):
        for sub in getattr(command, "commands", {}).values():
            hide_flag_metavars(sub)
    return command


def echo_written(folder: Path | None, names: Iterable[str | Path]) -> None:
    """Print every file written, one per line with its size (``wrote out/r.html (1,234 bytes)``)."""
    paths = [Path(n) if folder is None else Path(folder) / n for n in names]
    for p in paths:
        try:
            size = f" ({p.stat().st_size:,} bytes)"
        except OSError:
            size = ""
        print(f"wrote {p}{size}", flush=True)
