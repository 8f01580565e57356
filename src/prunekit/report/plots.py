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
    short = [lab if len(lab) <= 16 else lab[:15] + "…" for lab in labels]
    longest = max(len(lab) for lab in short)
    rotate = n > 6 or longest > 6
    side = max(3.6, 0.36 * n + 1.4 + (0.07 * longest if rotate else 0))
    fig = Figure(figsize=(2 * side + 1.2, 0.8 * side + 0.05 * longest + 0.5), dpi=100,
                 layout="constrained")
    vmax = max(int(b.max(initial=0)), int(a.max(initial=0)), 1)
    for i, (cm, name) in enumerate(((b, names[0]), (a, names[1]))):
        ax = fig.add_subplot(1, 2, i + 1)
        im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=vmax)
        ax.set_title(f"{name} (acc {np.trace(cm) / max(cm.sum(), 1):.3f})")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(n), short, fontsize="small", rotation=45 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor")
        ax.set_yticks(range(n), short, fontsize="small")
        if n <= 12:
            for (r, c), v in np.ndenumerate(cm):
                ax.text(c, r, str(v), ha="center", va="center", fontsize="x-small",
                        color="white" if v > vmax / 2 else "black")
    fig.colorbar(im, ax=fig.axes, shrink=0.8)
    fig.suptitle(title)
    return _attach(fig, "confusion_matrices", labels=labels, names=list(names),
                   before=b.tolist(), after=a.tolist())


def layer_sparsity(
    sparsity: Mapping[str, float], *, title: str = "Sparsity per layer",
    xlabel: str = "sparsity (fraction of zero weights)",
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
    ax.set_xlabel(xlabel)
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


# 20 colours that stay apart from each other (Okabe-Ito first, then tab20's dark half)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442",
           "#000000", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#2ca02c",
           "#d62728", "#1f77b4", "#ff7f0e", "#e377c2", "#393b79", "#637939")
SMALL_MULTIPLES_FROM = 6  # more series than this: one panel per series


def pareto_front(points: Sequence[tuple[float, float]], *, x_better: str = "lower"
                 ) -> list[tuple[float, float]]:
    """The points not beaten on both axes (higher y is better; x lower or higher is better).

    Sorted by x; ties on x keep the best y. Empty input gives an empty list.
    """
    if x_better not in ("lower", "higher"):
        raise InvalidParameterError("x_better must be 'lower' or 'higher'")
    pts = [(float(x), float(y)) for x, y in points if np.isfinite(x) and np.isfinite(y)]
    sign = 1.0 if x_better == "lower" else -1.0
    front: list[tuple[float, float]] = []
    best = -np.inf
    for x, y in sorted(pts, key=lambda p: (sign * p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return sorted(front)


def tradeoff(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    *,
    xlabel: str,
    metric: str = "accuracy",
    baseline: float | None = None,
    baseline_label: str = "unpruned",
    chosen: Mapping[str, tuple[float, float]] | None = None,
    pareto: bool = True,
    x_better: str = "lower",
    title: str = "Trade-off",
) -> Figure:
    """Score against a cost (size, sparsity, MACs, latency) for several methods.

    Up to six series share one axis (legend outside the plot); more get one small panel each
    (the other series faint grey behind), so colours never repeat and no legend covers data.
    ``chosen[name] = (x, y)`` marks each method's chosen point with a star; the Pareto front
    over all points is a black step line.
    """
    if not curves:
        raise InvalidParameterError("curves must hold at least one named curve")
    clean = {str(k): np.asarray(sorted(v), dtype=float).reshape(-1, 2) for k, v in curves.items()}
    chosen = {str(k): (float(v[0]), float(v[1])) for k, v in (chosen or {}).items()}
    front = pareto_front([tuple(p) for a in clean.values() for p in a], x_better=x_better) \
        if pareto else []
    names = list(clean)
    many = len(names) > SMALL_MULTIPLES_FROM
    ncols = min(4, len(names)) if many else 1
    nrows = -(-len(names) // ncols) if many else 1
    size = (3.1 * ncols + 0.4, 2.5 * nrows + 0.8) if many else (8.0, 4.4)
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
    for i, name in enumerate(names):
        ax = axes[i if many else 0]
        color = PALETTE[i % len(PALETTE)]
        if many:
            for other, arr in clean.items():
                if other != name:
                    ax.plot(arr[:, 0], arr[:, 1], color="#d0d7de", linewidth=0.8)
            ax.set_title(name, fontsize="small", color=color)
        arr = clean[name]
        ax.plot(arr[:, 0], arr[:, 1], marker="o", markersize=3, color=color, label=name)
        if name in chosen:
            ax.plot(*chosen[name], marker="*", markersize=13, color=color,
                    markeredgecolor="black", linestyle="none",
                    label="chosen size" if (many or i == 0) else None)
    for ax in axes[: len(names) if many else 1]:
        if baseline is not None:
            ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label=baseline_label)
        if front:
            f = np.asarray(front)
            ax.step(f[:, 0], f[:, 1], where="post", color="black", linewidth=0.9,
                    alpha=0.7, label="Pareto front")
        ax.grid(alpha=0.3)
    for ax in axes[len(names) if many else 1:]:
        ax.set_visible(False)
    fig.supxlabel(xlabel)
    fig.supylabel(metric)
    fig.suptitle(title)
    if many:
        handles, labels = axes[0].get_legend_handles_labels()
        keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if lab != names[0]]
        if keep:
            fig.legend(*zip(*keep, strict=True), loc="outside lower center", ncols=len(keep),
                       fontsize="small")
    else:
        fig.legend(loc="outside right upper", fontsize="small")
    return _attach(fig, "tradeoff", metric=metric, xlabel=xlabel, baseline=baseline,
                   curves={k: v.tolist() for k, v in clean.items()},
                   chosen={k: list(v) for k, v in chosen.items()},
                   pareto=[list(p) for p in front])


def tree_drawing(
    tree: Any,
    *,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    max_leaves: int = 16,
    title: str = "Tree",
) -> Figure:
    """Draw a fitted scikit-learn decision tree (``sklearn.tree.plot_tree``).

    Trees with more than ``max_leaves`` leaves are drawn to the depth that fits about that many
    leaves; the title says so (the counts stay in the tables).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from sklearn.tree import plot_tree

    t = getattr(tree, "tree_", None)
    if t is None:
        raise InvalidParameterError(
            f"tree must be a fitted decision tree, got {type(tree).__name__}")
    n_leaves = int(t.n_leaves)
    depth = int(t.max_depth)
    shown = depth
    if n_leaves > max_leaves:
        shown = max(1, int(np.floor(np.log2(max_leaves))))
    leaves_shown = min(n_leaves, 2 ** shown)
    n_values = int(t.value.shape[-1]) if t.value.ndim == 3 else 1
    width = min(24.0, max(5.0, (1.0 + 0.12 * min(n_values, 10)) * leaves_shown))
    fig = Figure(figsize=(width, min(12.0, 1.3 * (shown + 1) + 0.6)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # plot_tree measures text boxes: it needs a renderer
    ax = fig.add_subplot()
    names = None if feature_names is None else [str(f)[:18] for f in feature_names]
    classes = None if class_names is None else [str(c)[:14] for c in class_names]
    plot_tree(tree, ax=ax, max_depth=None if shown == depth else shown, filled=True,
              impurity=False, proportion=False, rounded=True, fontsize=7,
              feature_names=names, class_names=classes, label="root")
    note = "" if shown == depth else f" (first {shown} of {depth} levels drawn)"
    ax.set_title(f"{title}: {n_leaves} leaves, depth {depth}{note}", fontsize="medium")
    return _attach(fig, "tree", n_leaves=n_leaves, depth=depth, levels_drawn=shown,
                   n_nodes=int(t.node_count))
