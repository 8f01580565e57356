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


_NUM = re.compile(r"^\s*[-+(]?[0-9.,]+")


def table_html(head: list[str], body: list[list[str]], caption: str | None = None) -> str:
    """An HTML table of escaped cells (inline Markdown allowed)."""
    cap = f"<caption>{inline(caption)}</caption>" if caption else ""
    body = [[c if str(c).strip() else "—" for c in r] for r in body]
    numeric = [bool(body) and all(_NUM.match(str(r[i])) or str(r[i]).strip() == "—"
                                  for r in body if i < len(r)) for i in range(len(head))]

    def td(i: int, c: str) -> str:
        cls = ' class="num"' if i < len(numeric) and numeric[i] else ""
        return f"<td{cls}>{inline(c)}</td>"

    th = "".join(f'<th{" class=num" if i < len(numeric) and numeric[i] else ""}>{inline(h)}</th>'
                 for i, h in enumerate(head))
    rows = "".join("<tr>" + "".join(td(i, c) for i, c in enumerate(r)) + "</tr>" for r in body)
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
