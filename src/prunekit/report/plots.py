"""Plots for pruning reports, drawn on plain :class:`matplotlib.figure.Figure` objects.

No pyplot and no global backend: figures render with the Agg canvas, so they work headless and
from threads. Each function returns the figure; the numbers it shows are kept with it (read them
with :func:`figure_data`) so a report can save them as JSON next to the picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from prunekit.errors import InvalidParameterError, ShapeMismatchError

_DATA_ATTR = "_prunekit_data"


def _attach(fig: Figure, kind: str, **data: Any) -> Figure:
    setattr(fig, _DATA_ATTR, {"kind": kind, **data})
    return fig


def figure_data(fig: Figure) -> dict[str, Any] | None:
    """The data a prunekit plot was drawn from (``None`` for other figures)."""
    return getattr(fig, _DATA_ATTR, None)


def accuracy_vs_sparsity(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    *,
    metric: str = "accuracy",
    baseline: float | None = None,
    title: str = "Accuracy vs. sparsity",
    xlabel: str = "sparsity",
    baseline_label: str = "unpruned",
) -> Figure:
    """One line per method: ``curves[name] = [(sparsity, score), ...]``; dashed baseline."""
    if not curves:
        raise InvalidParameterError("curves must hold at least one named curve")
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    clean: dict[str, list[list[float]]] = {}
    for name, pts in curves.items():
        arr = np.asarray(sorted(pts), dtype=float).reshape(-1, 2)
        ax.plot(arr[:, 0], arr[:, 1], marker="o", label=str(name))
        clean[str(name)] = arr.tolist()
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label=baseline_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return _attach(fig, "accuracy_vs_sparsity", metric=metric, baseline=baseline, curves=clean)


def confusion_matrices(
    before: Any,
    after: Any,
    labels: Sequence[Any] | None = None,
    *,
    names: tuple[str, str] = ("before", "after"),
    title: str = "Confusion matrices",
) -> Figure:
    """Two heat maps side by side (rows: true class, columns: predicted class)."""
    b, a = np.asarray(before), np.asarray(after)
    if b.shape != a.shape or b.ndim != 2 or b.shape[0] != b.shape[1]:
        raise ShapeMismatchError(
            f"before and after must be square matrices of one shape, got {b.shape} and {a.shape}"
        )
    n = b.shape[0]
    labels = [str(v) for v in (labels if labels is not None else range(n))]
    if len(labels) != n:
        raise ShapeMismatchError(f"labels has {len(labels)} entries for a {n}x{n} matrix")
    fig = Figure(figsize=(9.0, 4.2), dpi=100)
    vmax = max(int(b.max(initial=0)), int(a.max(initial=0)), 1)
    for i, (cm, name) in enumerate(((b, names[0]), (a, names[1]))):
        ax = fig.add_subplot(1, 2, i + 1)
        im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=vmax)
        ax.set_title(f"{name} (acc {np.trace(cm) / max(cm.sum(), 1):.3f})")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(n), labels, fontsize="small", rotation=90 if n > 6 else 0)
        ax.set_yticks(range(n), labels, fontsize="small")
        if n <= 12:
            for (r, c), v in np.ndenumerate(cm):
                ax.text(c, r, str(v), ha="center", va="center", fontsize="x-small",
                        color="white" if v > vmax / 2 else "black")
    fig.colorbar(im, ax=fig.axes, shrink=0.8)
    fig.suptitle(title)
    return _attach(fig, "confusion_matrices", labels=labels, names=list(names),
                   before=b.tolist(), after=a.tolist())


def layer_sparsity(
    sparsity: Mapping[str, float], *, title: str = "Sparsity per layer"
) -> Figure:
    """Horizontal bars: fraction of zero weights of each layer (in model order, top to bottom)."""
    if not sparsity:
        raise InvalidParameterError("sparsity must map at least one layer name to a fraction")
    names = list(sparsity)
    vals = np.asarray([float(sparsity[k]) for k in names])
    fig = Figure(figsize=(6.4, max(2.0, 0.28 * len(names) + 1.2)), dpi=100)
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, vals, color="tab:orange")
    ax.set_yticks(y, names, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("sparsity (fraction of zero weights)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _attach(fig, "layer_sparsity", sparsity=dict(zip(names, vals.tolist(), strict=True)))


def _human(v: float) -> str:
    """Short bar label: 0.734, 12.3, 40.5k, 1.2M; ``n/a`` for missing values."""
    if not np.isfinite(v):
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


_COLUMN_LABELS = {
    "size_bytes": "size (KiB)",
    "latency_ms": "latency (ms)",
    "n_params": "parameters",
    "n_nonzero": "non-zero parameters",
    "macs": "MACs",
    "n_nodes": "nodes",
    "accuracy": "accuracy",
}


def size_latency(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    title: str = "Size and latency",
) -> Figure:
    """Bar charts comparing models, ``rows = [{"name", "size_bytes", "latency_ms"}, ...]``.

    ``columns`` picks the numeric keys to plot (default: those of ``size_bytes``, ``latency_ms``
    present in the rows); one panel per column, one bar per row.
    """
    if not rows:
        raise InvalidParameterError("rows must hold at least one model")
    if any("name" not in r for r in rows):
        raise InvalidParameterError("every row needs a 'name' key")
    if columns is None:
        columns = [
            c for c in ("size_bytes", "latency_ms") if any(r.get(c) is not None for r in rows)
        ]
    if not columns:
        raise InvalidParameterError("rows have no numeric column to plot (e.g. size_bytes)")
    names = [str(r["name"]) for r in rows]
    fig = Figure(figsize=(4.0 * len(columns), 3.6), dpi=100)
    data: dict[str, list[float | None]] = {}
    for i, col in enumerate(columns):
        ax = fig.add_subplot(1, len(columns), i + 1)
        vals = [r.get(col) for r in rows]
        data[col] = [None if v is None else float(v) for v in vals]
        shown = np.asarray([np.nan if v is None else float(v) for v in vals])
        if col == "size_bytes":
            shown = shown / 1024.0
        bars = ax.bar(range(len(names)), np.nan_to_num(shown), color=f"C{i}")
        ax.bar_label(bars, labels=[_human(v) for v in shown], fontsize="x-small")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize="small")
        ax.set_title(_COLUMN_LABELS.get(col, col))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _attach(fig, "size_latency", names=names, values=data)
