"""Griffe extension used by the docs build: turn prunekit's reST-flavoured docstrings into Markdown.

The docstrings are written for ``help()`` and Sphinx habits: ``>>>`` examples without fences and
roles such as ``:func:`prune_tree```. Markdown would render the first as nested block quotes and
print the second literally, so before mkdocstrings parses a docstring this extension

- wraps each run of ``>>>`` / ``...`` lines in a ``pycon`` code fence (doctest flags removed), and
- replaces ``:role:`~a.b.name``` with the code span ``name`` (``a.b.name`` without the ``~``).

Only the docs build loads this file (``mkdocs.yml``: ``extensions``); the package never imports it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const|ref|term):`(~?)([^`]+)`")
_DOCTEST_FLAG = re.compile(r"\s*#\s*doctest:.*$")
_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)(\s|$)")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    target = target.strip()
    if "<" in target and target.endswith(">"):  # :func:`title <target>`
        target = target.split("<", 1)[0].strip()
    if tilde:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _fence_doctests(lines: list[str]) -> list[str]:
    out: list[str] = []
    in_fence = False
    in_example = False
    indent = ""
    for line in lines:
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        prompt = None if in_fence else _PROMPT.match(line)
        starts = prompt is not None and (prompt.group(2) == ">>>" or in_example)
        if starts and not in_example:
            indent = prompt.group(1)
            if out and out[-1].strip():
                out.append("")
            out.append(f"{indent}```pycon")
            in_example = True
        elif in_example and not starts and line.strip():
            # an output line of the example: keep it inside the fence
            out.append(line)
            continue
        elif in_example and not line.strip():
            out.append(f"{indent}```")
            in_example = False
        if starts:
            line = _DOCTEST_FLAG.sub("", line)
        out.append(line)
    if in_example:
        out.append(f"{indent}```")
    return out


def markdownify(text: str) -> str:
    """Return ``text`` with doctest runs fenced and Sphinx roles turned into code spans."""
    lines = _fence_doctests(text.splitlines())
    return "\n".join(_ROLE.sub(_role, line) for line in lines)


class MarkdownDocstrings(griffe.Extension):
    """Rewrite every docstring with :func:`markdownify` as objects are loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and obj.docstring.value:
            obj.docstring.value = markdownify(obj.docstring.value)
