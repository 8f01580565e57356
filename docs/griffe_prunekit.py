"""Griffe extension used by the docs build: turn prunekit's reST-flavoured docstrings into Markdown.

The docstrings are written for ``help()`` and Sphinx habits: ``>>>`` examples without fences and
roles such as ``:func:`prune_tree```. Markdown would render the first as nested block quotes and
print the second literally, so before mkdocstrings parses a docstring this extension

- wraps each run of ``>>>`` / ``...`` lines in a ``pycon`` code fence (doctest flags removed), and
- replaces ``:role:`~a.b.name``` with the code span ``name`` (``a.b.name`` without the ``~``),
- reads numpydoc sections written as prose the way a reader means them: ``name : a sentence``
  becomes a parameter with that description (not a type), and a ``Returns`` section that is only
  a sentence becomes a "**Returns:** ..." paragraph.

Only the docs build loads this file (``mkdocs.yml``: ``extensions``); the package never imports it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLES = "func|class|mod|meth|attr|data|obj|exc|const|ref|term"
_ROLE = re.compile(rf":(?:py:)?(?:{_ROLES}):`(~?)([^`]+)`")
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


_TITLES = {"Parameters", "Other Parameters", "Returns", "Yields", "Raises", "Attributes"}
_DASHES = re.compile(r"^\s*-{3,}\s*$")
_ITEM = re.compile(r"^(\s*)([\w*][\w, *]*?)\s+:\s+(.+)$")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _is_prose(text: str) -> bool:
    return len(text.split()) >= 5 or text.rstrip().endswith(".")


def _prose_block(lines: list[str], start: int, base: str) -> int:
    """End (exclusive) of the paragraph at ``start`` whose lines are all at indent ``base``."""
    end = start
    while end < len(lines) and lines[end].strip() and _indent(lines[end]) == base:
        end += 1
    return end


def _fix_numpy_sections(lines: list[str]) -> list[str]:
    out: list[str] = []
    section, base, i = None, "", 0
    while i < len(lines):
        line = lines[i]
        if line.strip() in _TITLES and i + 1 < len(lines) and _DASHES.match(lines[i + 1]):
            section, base = line.strip(), _indent(line)
            start = i + 2
            end = _prose_block(lines, start, base)
            prose_only = end > start and (end == len(lines) or not lines[end].strip())
            if section in ("Returns", "Yields") and prose_only and _is_prose(lines[start]):
                out.append(f"{base}**{section}:** {lines[start].strip()}")
                out.extend(lines[start + 1 : end])
                section, i = None, end
                continue
            out.extend(lines[i : i + 2])
            i += 2
            continue
        item = _ITEM.match(line) if section in ("Parameters", "Other Parameters") else None
        if item and item.group(1) == base and _is_prose(item.group(3)):
            out.append(f"{base}{item.group(2)}")
            out.append(f"{base}    {item.group(3)}")
        else:
            out.append(line)
        i += 1
    return out


def markdownify(text: str) -> str:
    """Return ``text`` as Markdown: see the module docstring for what changes."""
    lines = _fence_doctests(_fix_numpy_sections(text.splitlines()))
    return "\n".join(_ROLE.sub(_role, line) for line in lines)


class MarkdownDocstrings(griffe.Extension):
    """Rewrite every docstring with :func:`markdownify` as objects are loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and obj.docstring.value:
            obj.docstring.value = markdownify(obj.docstring.value)
