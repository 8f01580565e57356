"""MkDocs hooks that keep the site true to the code it documents.

- ``<!-- cli-help: nn sparsity -->`` becomes the real ``prunekit nn sparsity --help`` text.
- ``<!-- api-rest: prunekit.trees -->`` becomes a ``:::`` mkdocstrings entry for every class and
  function in that package's ``__all__`` that the page does not already document, so a new
  public name appears in the reference without anyone editing the page.
- ``<!-- api-modules -->`` becomes a ``:::`` entry for every public module of ``prunekit`` and
  ``prunekit.nn`` that no page documents, so a new module is never missing from the site.

The package is imported from ``src/`` next to ``mkdocs.yml``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

_CLI = re.compile(r"<!--\s*cli-help:\s*([a-z0-9 _-]*?)\s*-->")
_REST = re.compile(r"<!--\s*api-rest:\s*([A-Za-z0-9_.]+)\s*-->")
_MODULES = re.compile(r"<!--\s*api-modules\s*-->")
_DIRECTIVE = re.compile(r"^:::\s*([A-Za-z0-9_.]+)", re.MULTILINE)
_SRC = str(Path(__file__).resolve().parent.parent / "src")


def _import(name: str) -> Any:
    if _SRC not in sys.path:
        sys.path.insert(0, _SRC)
    return importlib.import_module(name)


def _cli_help(args: list[str]) -> str:
    from typer.testing import CliRunner

    app = _import("prunekit.cli").app
    env = {"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        result = CliRunner().invoke(app, [*args, "--help"], env=env, prog_name="prunekit")
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    if result.exit_code != 0:
        raise RuntimeError(f"`prunekit {' '.join(args)} --help` failed:\n{result.output}")
    return "\n".join(line.rstrip() for line in result.output.splitlines()).strip("\n")


def _render_cli(match: re.Match[str]) -> str:
    args = match.group(1).split()
    command = " ".join(["prunekit", *args, "--help"])
    return f"```text\n$ {command}\n{_cli_help(args)}\n```"


def _documented(markdown: str) -> set[str]:
    return set(_DIRECTIVE.findall(markdown))


def _rest(package: str, markdown: str) -> str:
    pkg = _import(package)
    done = _documented(markdown)
    entries = []
    for name in getattr(pkg, "__all__", []):
        obj = getattr(pkg, name, None)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # submodules and constants are described in the text
        module = getattr(obj, "__module__", "") or ""
        if {f"{package}.{name}", f"{module}.{name}", module} & done:
            continue
        # lazily exported names (module __getattr__) are invisible to griffe's static analysis
        path = f"{module}.{name}" if hasattr(pkg, "__getattr__") else f"{package}.{name}"
        entries.append(f"::: {path}")
    if not entries:
        return ""
    return "### Other public names\n\n" + "\n\n".join(entries)


def _public_modules() -> list[str]:
    names = []
    for package in ("prunekit", "prunekit.nn"):
        path = Path(_SRC, *package.split("."))
        for info in pkgutil.iter_modules([str(path)]):
            if not info.name.startswith("_") and not info.name.endswith("cli"):
                names.append(f"{package}.{info.name}")
    return sorted(names)


def _undocumented_modules(docs_dir: Path, page: str) -> str:
    done: set[str] = set()
    for md in docs_dir.glob("*.md"):
        if md.name != page:
            done |= _documented(md.read_text(encoding="utf-8"))
    missing = [m for m in _public_modules()
               if m != "prunekit.nn" and not any(d == m or d.startswith(m + ".") for d in done)]
    if not missing:
        return "Every public module is documented on the pages above."
    return "\n\n".join(f"::: {m}\n    options:\n      heading_level: 2" for m in missing)


def on_page_markdown(markdown: str, *, page: Any = None, config: Any = None, **kwargs: Any) -> str:
    markdown = _CLI.sub(_render_cli, markdown)
    markdown = _REST.sub(lambda m: _rest(m.group(1), markdown), markdown)
    if _MODULES.search(markdown):
        docs_dir = Path(config["docs_dir"])
        name = Path(page.file.src_path).name
        markdown = _MODULES.sub(lambda m: _undocumented_modules(docs_dir, name), markdown)
    return markdown
