"""A small, safe Markdown-to-HTML renderer for report text (escapes everything first)."""

from __future__ import annotations

import html
import re

_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
]


def inline(text: str) -> str:
    """Escape ``text`` and render `code`, **bold** and *emphasis*."""
    out = html.escape(text, quote=True)
    for pat, rep in _INLINE:
        out = pat.sub(rep, out)
    return out


def _table(lines: list[str]) -> str:
    def cells(line: str) -> list[str]:
        parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        return [p.strip().replace("\\|", "|") for p in parts]

    head = cells(lines[0])
    body = [cells(x) for x in lines[2:]] if len(lines) > 1 and set(lines[1]) <= set("|-: ") \
        else [cells(x) for x in lines[1:]]
    return table_html(head, body)


def table_html(head: list[str], body: list[list[str]], caption: str | None = None) -> str:
    """An HTML table of escaped cells (inline Markdown allowed)."""
    cap = f"<caption>{inline(caption)}</caption>" if caption else ""
    th = "".join(f"<th>{inline(h)}</th>" for h in head)
    body = [[c if str(c).strip() else "—" for c in r] for r in body]
    rows = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
    legend = ""
    if any(c.strip() in ("—", "-", "") for r in body for c in r):
        legend = ('<p class="legend">— : not measured or not applicable to this row '
                  "(e.g. a method that does not report this quantity)</p>")
    return (f'<div class="table-wrap"><table>{cap}<thead><tr>{th}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>{legend}")


def markdown_to_html(md: str) -> str:
    """Render headings, paragraphs, bullet lists, code blocks and pipe tables."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append("<p>" + inline(" ".join(para)) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append("<pre><code>" + html.escape("\n".join(lines[i + 1 : j])) + "</code></pre>")
            i = j + 1
            continue
        m = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if m:
            flush()
            level = max(len(m.group(1)), 2)  # the report title is the only <h1>
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif stripped.startswith("|"):
            flush()
            j = i
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
            continue
        elif re.match(r"^[-*]\s+", stripped):
            flush()
            items = []
            while i < len(lines) and re.match(r"^[-*]\s+", lines[i].strip()):
                items.append("<li>" + inline(re.sub(r"^[-*]\s+", "", lines[i].strip())) + "</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif not stripped:
            flush()
        else:
            para.append(stripped)
        i += 1
    flush()
    return "\n".join(out)
