"""Pruning reports: a Markdown summary for the terminal and one self-contained HTML file.

    rep = Report("Pruning digits CNN")
    rep.add_text("Magnitude pruning, **unstructured**.")
    rep.add_comparison("50 % sparsity", prunekit.metrics.compare(dense, pruned, X, y))
    rep.add_figure(plots.accuracy_vs_sparsity({"magnitude": [(0.0, 0.97), (0.5, 0.96)]}), "Curve")
    print(rep.to_markdown()); rep.write_html("report.html"); rep.write_json("report.json")

Figures are rendered to PNG (matplotlib Agg) when added and embedded in the HTML as base64, so
the HTML file needs nothing else. All user text is HTML-escaped. Every file is written atomically
(:mod:`prunekit._io`): a failure leaves no partial file behind.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunekit import __version__
from prunekit._io import atomic_write_json, atomic_write_text, check_output_path
from prunekit.errors import InvalidParameterError
from prunekit.metrics.compare import Comparison, markdown_table
from prunekit.report import plots
from prunekit.report._html import inline, markdown_to_html, table_html

__all__ = ["Report", "plots", "figure_to_png"]


def figure_to_png(fig: Any, *, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes (Agg renderer; no pyplot, no display needed).

    ``savefig`` switches to the Agg canvas only for this call, so a figure shown in an
    interactive backend keeps its own canvas.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


@dataclass
class _Section:
    kind: str  # text | table | comparison | figure
    title: str | None = None
    text: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    comparison: Comparison | None = None
    png: bytes = b""
    data: dict[str, Any] | None = None


class Report:
    """An ordered list of sections (text, tables, comparisons, figures) rendered three ways."""

    def __init__(self, title: str, *, subtitle: str = "") -> None:
        if not isinstance(title, str) or not title.strip():
            raise InvalidParameterError("title must be a non-empty string")
        self.title = title
        self.subtitle = subtitle
        self.sections: list[_Section] = []

    # ------------------------------------------------------------------ building
    def add_text(self, md: str) -> Report:
        """Add Markdown text (headings, paragraphs, lists, code, pipe tables)."""
        self.sections.append(_Section("text", text=str(md)))
        return self

    def add_table(self, rows: list[dict[str, Any]], title: str | None = None) -> Report:
        """Add a table: one dict per row, keys are the column names."""
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InvalidParameterError("rows must be a list of dicts (one per table row)")
        self.sections.append(_Section("table", title=title, rows=[dict(r) for r in rows]))
        return self

    def add_comparison(self, name: str, comparison: Comparison) -> Report:
        """Add a before/after table from :func:`prunekit.metrics.compare`."""
        if not isinstance(comparison, Comparison):
            raise InvalidParameterError(
                f"comparison must be a prunekit.metrics.Comparison, got {type(comparison).__name__}"
            )
        self.sections.append(_Section("comparison", title=name, comparison=comparison))
        return self

    def add_figure(
        self, fig: Any, title: str, *, data: dict[str, Any] | None = None, close: bool = True
    ) -> Report:
        """Render ``fig`` to PNG now and add it; ``data`` (or the plot's own data) goes to JSON.

        With ``close=True`` a pyplot-managed figure is closed after rendering.
        """
        if not callable(getattr(fig, "savefig", None)):
            raise InvalidParameterError(
                f"fig must be a matplotlib Figure, got {type(fig).__name__}"
            )
        png = figure_to_png(fig)
        if data is None:
            data = plots.figure_data(fig)
        self.sections.append(_Section("figure", title=title, png=png, data=data))
        if close:
            import sys

            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close(fig)
        return self

    # ------------------------------------------------------------------ rendering
    def to_markdown(self) -> str:
        """Markdown summary (figures are listed by title; they live in the HTML report)."""
        parts = [f"# {self.title}"]
        if self.subtitle:
            parts.append(self.subtitle)
        for s in self.sections:
            if s.kind == "text":
                parts.append(s.text.strip())
            elif s.kind == "table":
                if s.title:
                    parts.append(f"### {s.title}")
                parts.append(markdown_table(s.rows))
            elif s.kind == "comparison":
                assert s.comparison is not None
                parts.append(f"### {s.title}")
                parts.append(s.comparison.to_markdown())
            else:
                parts.append(f"*Figure: {s.title}* (in the HTML report)")
        return "\n\n".join(p for p in parts if p) + "\n"

    def to_html(self) -> str:
        """One self-contained HTML page: inline CSS, PNG figures embedded as base64."""
        body: list[str] = []
        for s in self.sections:
            if s.kind == "text":
                body.append(markdown_to_html(s.text))
            elif s.kind == "table":
                if s.title:
                    body.append(f"<h3>{inline(s.title)}</h3>")
                body.append(_rows_html(s.rows))
            elif s.kind == "comparison":
                assert s.comparison is not None
                body.append(f"<h3>{inline(s.title or '')}</h3>")
                body.append(_rows_html(s.comparison.rows()))
            else:
                b64 = base64.b64encode(s.png).decode("ascii")
                alt = html.escape(s.title or "figure", quote=True)
                body.append(
                    f'<figure><img alt="{alt}" src="data:image/png;base64,{b64}">'
                    f"<figcaption>{inline(s.title or '')}</figcaption></figure>"
                )
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        sub = f"<p class=sub>{inline(self.subtitle)}</p>" if self.subtitle else ""
        return _PAGE.format(
            title=html.escape(self.title),
            heading=inline(self.title),
            subtitle=sub,
            body="\n".join(body),
            footer=html.escape(f"prunekit {__version__} · {stamp}"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content: texts, tables, comparison dicts and figure data (no images)."""
        out: list[dict[str, Any]] = []
        for s in self.sections:
            if s.kind == "text":
                out.append({"type": "text", "text": s.text})
            elif s.kind == "table":
                out.append({"type": "table", "title": s.title, "rows": s.rows})
            elif s.kind == "comparison":
                assert s.comparison is not None
                out.append({"type": "comparison", "title": s.title,
                            "comparison": s.comparison.to_dict()})
            else:
                out.append({"type": "figure", "title": s.title, "data": s.data})
        return {"title": self.title, "subtitle": self.subtitle, "prunekit": __version__,
                "sections": out}

    def figures(self) -> list[dict[str, Any]]:
        """``[{"title", "data"}]`` of every figure, in order."""
        return [{"title": s.title, "data": s.data} for s in self.sections if s.kind == "figure"]

    # ------------------------------------------------------------------ writing
    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the self-contained HTML report atomically; returns the path."""
        check_output_path(path)  # refuse a bad destination before rendering
        return atomic_write_text(path, self.to_html())

    def write_markdown(self, path: str | os.PathLike[str]) -> Path:
        """Write the Markdown summary atomically; returns the path."""
        check_output_path(path)  # refuse a bad destination before rendering
        return atomic_write_text(path, self.to_markdown())

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON atomically; returns the path."""
        check_output_path(path)  # refuse a bad destination before rendering
        return atomic_write_json(path, self.to_dict())

    def write_figures_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the data of every figure (:meth:`figures`) as JSON atomically."""
        check_output_path(path)  # refuse a bad destination before rendering
        return atomic_write_json(path, {"title": self.title, "figures": self.figures()})


def _rows_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>(empty table)</em></p>"
    cols: list[str] = []
    for r in rows:
        cols += [str(c) for c in r if str(c) not in cols]

    def fmt(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    body = [[fmt(r.get(c)) for c in cols] for r in rows]
    return table_html(cols, body)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1f2328; line-height: 1.45; }}
h1 {{ border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }}
h2 {{ margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; }}
.sub {{ color: #59636e; margin-top: -.5rem; }}
table {{ border-collapse: collapse; margin: .8rem 0 1.4rem; font-size: .9rem; }}
th, td {{ border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
thead th {{ background: #f6f8fa; }}
tbody tr:nth-child(even) {{ background: #fbfcfd; }}
code {{ background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }}
pre {{ background: #f6f8fa; padding: .8rem; overflow-x: auto; }}
figure {{ margin: 1rem 0 2rem; }}
figure img {{ max-width: 100%; height: auto; border: 1px solid #eaeef2; }}
figcaption {{ color: #59636e; font-size: .9rem; }}
footer {{ margin-top: 3rem; color: #8c959f; font-size: .8rem; }}
</style>
</head>
<body>
<h1>{heading}</h1>
{subtitle}
{body}
<footer>{footer}</footer>
</body>
</html>
"""
