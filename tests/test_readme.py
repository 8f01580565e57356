"""Every Python code block of README.md runs as written.

Blocks run in order; the blocks of one ``##`` section share one namespace, so a block may use what
an earlier block of the same section defined (and nothing else). Each section runs in a fresh
working directory so files it writes stay out of the checkout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _sections() -> list[tuple[str, list[str]]]:
    text = README.read_text(encoding="utf-8")
    parts = re.split(r"^## +(.+)$", text, flags=re.M)
    out = []
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        blocks = _FENCE.findall(body)
        if blocks:
            out.append((title.strip(), blocks))
    return out


SECTIONS = _sections()


def test_readme_has_python_blocks() -> None:
    assert sum(len(b) for _, b in SECTIONS) >= 7


@pytest.mark.parametrize(("title", "blocks"), SECTIONS, ids=[t for t, _ in SECTIONS])
def test_readme_section_runs(title: str, blocks: list[str], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict[str, object] = {"__name__": f"readme_{title}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"README.md [{title}] block {i + 1}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"README section {title!r}, block {i + 1} failed: "
                        f"{type(exc).__name__}: {exc}\n---\n{code}")
    assert os.getcwd() == str(tmp_path)
