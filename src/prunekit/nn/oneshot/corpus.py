"""Built-in local text for calibration and evaluation (nothing is downloaded).

- :func:`builtin_sentences`: 100 short English sentences in ten topics (ten each, in order),
  written for prunekit and shipped with it; topic ``i // 10`` is the label of sentence ``i``.
  Keep it for evaluation (held out).
- :func:`everyday_sentences`: 264 more everyday English sentences in 22 other topics (twelve
  each), for calibration and distillation; :func:`everyday_paragraphs` joins them into
  short seeded paragraphs. None of their topics is one of :func:`builtin_sentences`'s.
- :func:`stdlib_text`: docstrings of a fixed list of Python standard-library modules, a few
  hundred KB of English prose found on every Python install (identical for one Python version).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import random
import warnings
from importlib import resources

_STDLIB_MODULES = (
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "contextlib", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "email", "enum", "fractions", "functools",
    "gettext", "glob", "gzip", "hashlib", "heapq", "http.client", "inspect", "io", "ipaddress",
    "itertools", "json", "logging", "mailbox", "math", "numbers", "operator", "os", "pathlib",
    "pickle", "pprint", "queue", "random", "re", "shlex", "shutil", "socket", "sqlite3",
    "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
    "timeit", "tokenize", "typing", "unittest", "urllib.parse", "uuid", "warnings",
    "weakref", "zipfile",
)


def _shipped_lines(name: str) -> list[str]:
    text = resources.files("prunekit.nn.oneshot").joinpath("data", name).read_text(
        encoding="utf-8"
    )
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def builtin_sentences() -> list[str]:
    """The shipped sentence set (100 sentences, ten topics of ten, in topic order)."""
    return _shipped_lines("sentences.txt")


def everyday_sentences() -> list[str]:
    """The shipped calibration sentences (264, 22 topics of twelve, in topic order), disjoint in
    topic from :func:`builtin_sentences`, which stays the held-out evaluation set."""
    return _shipped_lines("everyday.txt")


def everyday_paragraphs(n: int, *, sentences: int = 3, seed: int = 0) -> list[str]:
    """``n`` seeded paragraphs of ``sentences`` distinct :func:`everyday_sentences` each (any
    topics mixed), for calibration or distillation text beyond the 264 single sentences."""
    pool = everyday_sentences()
    rng = random.Random(seed)
    return [" ".join(rng.sample(pool, sentences)) for _ in range(n)]


@functools.lru_cache(maxsize=4)
def stdlib_text(modules: tuple[str, ...] = _STDLIB_MODULES) -> str:
    """Docstrings of ``modules`` and their public classes, functions and methods, joined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated aliases (typing.io, ...) warn on access
        return _collect_docstrings(modules)


def _collect_docstrings(modules: tuple[str, ...]) -> str:
    parts: list[str] = []
    seen: set[int] = set()

    def add(obj: object) -> None:
        doc = inspect.getdoc(obj)
        if doc and id(doc) not in seen and len(doc) > 40:
            seen.add(id(doc))
            parts.append(doc)

    for name in modules:
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module missing on this platform is skipped
            continue
        add(mod)
        for attr in sorted(vars(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            add(obj)
            if inspect.isclass(obj):
                for meth in sorted(vars(obj)):
                    if not meth.startswith("_"):
                        add(getattr(obj, meth, None))
    return "\n\n".join(parts)


def stdlib_paragraphs(n: int, *, min_chars: int = 80, seed: int = 0) -> list[str]:
    """``n`` randomly chosen (seeded) docstring paragraphs of at least ``min_chars`` characters."""
    paras = [p.strip() for p in stdlib_text().split("\n\n") if len(p.strip()) >= min_chars]
    rng = random.Random(seed)
    return rng.sample(paras, min(n, len(paras)))
