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
    spec: dict[str, Any] | None = None  # kind "tradeoff": the arguments of plots.tradeoff


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

    def add_tradeoff(
        self,
        title: str,
        curves: dict[str, Any],
        *,
        xlabel: str,
        metric: str = "accuracy",
        baseline: float | None = None,
        baseline_label: str = "unpruned",
        chosen: dict[str, tuple[float, float]] | None = None,
        pareto: bool = True,
        x_better: str = "lower",
        hover: dict[str, list[str]] | None = None,
    ) -> Report:
        """Add a trade-off plot (score vs size / sparsity / MACs / latency) with a Pareto front.

        In the HTML it is an interactive Plotly chart (toggle series in the legend, hover for
        values; plotly.js is embedded, so the file works offline) when the ``plots`` extra is
        installed, else a static PNG (:func:`plots.tradeoff`: small multiples past six series).
        ``chosen[name] = (x, y)`` marks a method's chosen point; ``hover[name]`` labels points.
        """
        spec = {"curves": {str(k): [[float(x), float(y)] for x, y in sorted(v)]
                           for k, v in curves.items()},
                "xlabel": xlabel, "metric": metric, "baseline": baseline,
                "baseline_label": baseline_label, "pareto": pareto, "x_better": x_better,
                "chosen": {str(k): [float(v[0]), float(v[1])] for k, v in (chosen or {}).items()}}
        fig = plots.tradeoff(spec["curves"], xlabel=xlabel, metric=metric, baseline=baseline,
                             baseline_label=baseline_label, chosen=spec["chosen"], pareto=pareto,
                             x_better=x_better, title=title)
        data = plots.figure_data(fig)
        spec["front"] = (data or {}).get("pareto", [])
        spec["hover"] = {str(k): [str(t) for t in v] for k, v in (hover or {}).items()}
        png = b"" if plotly_js() else figure_to_png(fig)
        self.sections.append(_Section("tradeoff", title=title, png=png, data=data, spec=spec))
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
                kind = "Interactive figure" if s.kind == "tradeoff" else "Figure"
                parts.append(f"*{kind}: {s.title}* (in the HTML report)")
        return "\n\n".join(p for p in parts if p) + "\n"

    def to_html(self) -> str:
        """One self-contained HTML page: inline CSS, PNG figures embedded as base64."""
        body: list[str] = []
        js = plotly_js() if any(s.kind == "tradeoff" for s in self.sections) else ""
        for i, s in enumerate(self.sections):
            if s.kind == "tradeoff" and js:
                body.append(_plotly_html(f"pk-plot-{i}", s))
                continue
            if s.kind == "tradeoff" and not s.png:  # plotly went away since: static fallback
                assert s.spec is not None
                s.png = figure_to_png(_tradeoff_fig(s))
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
                img = f'<img alt="{alt}" src="data:image/png;base64,{b64}">'
                width = _png_width(s.png)
                if width > WIDE_FIGURE_PX:  # too small to read when shrunk: scroll instead
                    img = (f'<div class="figure-scroll"><img class="wide" alt="{alt}" '
                           f'style="width: {width * 2 // 3}px" '
                           f'src="data:image/png;base64,{b64}"></div>')
                    cap = f"{inline(s.title or '')} (wide: scroll sideways)"
                else:
                    cap = inline(s.title or "")
                body.append(f"<figure>{img}<figcaption>{cap}</figcaption></figure>")
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        sub = f"<p class=sub>{inline(self.subtitle)}</p>" if self.subtitle else ""
        return _PAGE.format(
            title=html.escape(self.title),
            heading=inline(self.title),
            subtitle=sub,
            body="\n".join(body),
            footer=html.escape(f"prunekit {__version__} · {stamp}"),
            scripts=f"<script>{js}</script>" if js else "",
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
        return [{"title": s.title, "data": s.data} for s in self.sections
                if s.kind in ("figure", "tradeoff")]

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


WIDE_FIGURE_PX = 1650  # PNGs wider than this are shown at 2/3 of their size in a scroll box


def _png_width(png: bytes) -> int:
    """Pixel width from a PNG's IHDR chunk (0 when it is not a PNG)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return 0
    return int.from_bytes(png[16:20], "big")


def _rows_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>(empty table)</em></p>"
    from prunekit._tables import format_cell

    cols: list[str] = []
    for r in rows:
        cols += [str(c) for c in r if str(c) not in cols]
    body = [[format_cell(r.get(c)) for c in cols] for r in rows]
    return table_html(cols, body)


_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down",
            "pentagon", "hexagon", "star-triangle-up", "hourglass", "bowtie")


def plotly_js() -> str:
    """The plotly.js bundle of the installed ``plotly`` package, or ``""`` without it."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        return ""
    return str(get_plotlyjs())


def _tradeoff_fig(s: _Section) -> Any:
    spec = s.spec or {}
    return plots.tradeoff(spec["curves"], xlabel=spec["xlabel"], metric=spec["metric"],
                          baseline=spec["baseline"], baseline_label=spec["baseline_label"],
                          chosen=spec["chosen"], pareto=spec["pareto"],
                          x_better=spec["x_better"], title=s.title or "")


def _plotly_html(div_id: str, s: _Section) -> str:
    """A Plotly chart of a trade-off section: one trace per method, chosen stars, Pareto front."""
    import json

    spec = s.spec or {}
    traces: list[dict[str, Any]] = []
    for i, (name, pts) in enumerate(spec["curves"].items()):
        color = plots.PALETTE[i % len(plots.PALETTE)]
        hover = spec["hover"].get(name)
        traces.append({"type": "scatter", "mode": "lines+markers", "name": name,
                       "legendgroup": name, "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                       "text": hover or None, "line": {"color": color, "width": 2},
                       "marker": {"size": 5 if len(pts) > 1 else 11,
                                  "symbol": _SYMBOLS[i % len(_SYMBOLS)] if len(pts) == 1
                                  else "circle"},
                       "hovertemplate": f"{html.escape(name)}<br>{spec['xlabel']}=%{{x}}<br>"
                       f"{spec['metric']}=%{{y:.4f}}" + ("<br>%{text}" if hover else "")
                       + "<extra></extra>"})
        if name in spec["chosen"]:
            x, y = spec["chosen"][name]
            traces.append({"type": "scatter", "mode": "markers", "name": f"{name}: chosen",
                           "legendgroup": name, "showlegend": False, "x": [x], "y": [y],
                           "marker": {"symbol": "star", "size": 15, "color": color,
                                      "line": {"color": "black", "width": 1}},
                           "hovertemplate": f"{html.escape(name)} chosen<br>{spec['xlabel']}="
                           f"%{{x}}<br>{spec['metric']}=%{{y:.4f}}<extra></extra>"})
    if spec.get("front"):
        traces.append({"type": "scatter", "mode": "lines", "name": "Pareto front",
                       "x": [p[0] for p in spec["front"]], "y": [p[1] for p in spec["front"]],
                       "line": {"color": "black", "width": 1, "dash": "dot", "shape": "hv"},
                       "hoverinfo": "skip"})
    shapes = []
    if spec.get("baseline") is not None:
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                       "y0": spec["baseline"], "y1": spec["baseline"],
                       "line": {"color": "grey", "dash": "dash", "width": 1}})
    layout = {"title": {"text": s.title or ""}, "xaxis": {"title": {"text": spec["xlabel"]}},
              "yaxis": {"title": {"text": spec["metric"]}}, "shapes": shapes,
              "legend": {"orientation": "h", "y": -0.22}, "margin": {"l": 60, "r": 20, "t": 50},
              "hovermode": "closest", "autosize": True, "height": 480}
    if spec.get("baseline") is not None:
        layout["annotations"] = [{"xref": "paper", "x": 1, "y": spec["baseline"], "yref": "y",
                                  "text": spec["baseline_label"], "showarrow": False,
                                  "xanchor": "right", "yanchor": "bottom",
                                  "font": {"color": "grey", "size": 11}}]
    payload = json.dumps({"data": traces, "layout": layout}).replace("</", "<\\/")
    cap = inline(s.title or "")
    keys = ["click legend entries to hide or show a series, hover for values"]
    if spec["chosen"]:
        keys.append("★ the size each method chose")
    if len(spec.get("front") or []) > 1:
        keys.append("dotted line: Pareto front (no other point is better on both axes)")
    return (f'<figure class="interactive"><div id="{div_id}" class="plotly-fig"></div>'
            f"<figcaption>{cap} — interactive: {'; '.join(keys)}.</figcaption>"
            f'<script>(function(){{var f={payload};Plotly.newPlot("{div_id}",f.data,f.layout,'
            '{responsive:true,displaylogo:false});})();</script></figure>')


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
th, td {{ border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; }}
th.num, td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
thead th {{ background: #f6f8fa; }}
tbody tr:nth-child(even) {{ background: #fbfcfd; }}
code {{ background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }}
pre {{ background: #f6f8fa; padding: .8rem; overflow-x: auto; }}
figure {{ margin: 1rem 0 2rem; }}
figure img {{ max-width: 100%; height: auto; border: 1px solid #eaeef2; }}
.figure-scroll {{ max-width: 100%; overflow-x: auto; }}
.figure-scroll img.wide {{ max-width: none; }}
.plotly-fig {{ width: 100%; min-height: 480px; }}
.table-wrap {{ max-width: 100%; overflow-x: auto; margin: .8rem 0 .4rem; }}
.table-wrap table {{ margin: 0 0 .6rem; }}
.legend {{ color: #59636e; font-size: .8rem; margin-top: 0; }}
td {{ white-space: nowrap; }}
p, li {{ overflow-wrap: anywhere; }}
figcaption {{ color: #59636e; font-size: .9rem; }}
footer {{ margin-top: 3rem; color: #8c959f; font-size: .8rem; }}
</style>
{scripts}
</head>
<body>
<h1>{heading}</h1>
{subtitle}
{body}
<footer>{footer}</footer>
</body>
</html>
"""
