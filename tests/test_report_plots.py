"""Trade-off plots (Pareto front, chosen sizes, small multiples), tree drawings, HTML tables."""

from __future__ import annotations

import re

import numpy as np
import pytest

from prunekit.errors import InvalidParameterError
from prunekit.report import Report, plots


def test_pareto_front_keeps_only_unbeaten_points() -> None:
    pts = [(10, 0.9), (5, 0.9), (3, 0.8), (8, 0.95), (2, 0.5), (4, 0.7)]
    assert plots.pareto_front(pts) == [(2, 0.5), (3, 0.8), (5, 0.9), (8, 0.95)]
    # sparsity: higher x is better
    assert plots.pareto_front([(0.5, 0.9), (0.9, 0.8), (0.7, 0.7)], x_better="higher") == [
        (0.5, 0.9), (0.9, 0.8)]
    with pytest.raises(InvalidParameterError):
        plots.pareto_front(pts, x_better="left")


def test_many_series_get_small_multiples_with_distinct_colours() -> None:
    curves = {f"m{i}": [(k, 0.5 + 0.01 * i + 0.001 * k) for k in range(1, 6)] for i in range(13)}
    fig = plots.tradeoff(curves, xlabel="members", chosen={"m3": (2, 0.532)})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 13  # one panel per method, no legend over the data
    colours = {ax.get_title(loc="center") and ax.title.get_color() for ax in visible}
    assert len(colours) == 13
    data = plots.figure_data(fig)
    assert data["kind"] == "tradeoff" and data["chosen"] == {"m3": [2.0, 0.532]}
    assert data["pareto"][-1][1] == pytest.approx(max(v for c in curves.values() for _, v in c))


def test_tradeoff_is_interactive_with_plotly_and_png_without(monkeypatch) -> None:
    import prunekit.report as rep_mod

    curves = {"a": [(1, 0.8), (2, 0.9)], "b": [(1, 0.85)]}
    if rep_mod.plotly_js():
        page = Report("t").add_tradeoff("T", curves, xlabel="x", chosen={"a": (2, 0.9)}).to_html()
        assert re.search(r'<div id="pk-plot-0" class="plotly-fig">', page)
        assert "Plotly.newPlot" in page and "<img" not in page
        assert "https://cdn" not in page.split("<script>")[1][:200]  # embedded, not linked
    monkeypatch.setattr(rep_mod, "plotly_js", lambda: "")
    page = Report("t").add_tradeoff("T", curves, xlabel="x").to_html()
    assert "plotly-fig" not in page.split("</style>")[1] and '<img alt="T"' in page


def test_tree_drawing_limits_depth_of_big_trees() -> None:
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_digits(return_X_y=True)
    big = DecisionTreeClassifier(random_state=0).fit(X, y)
    fig = plots.tree_drawing(big, max_leaves=16)
    data = plots.figure_data(fig)
    assert data["levels_drawn"] == 4 < data["depth"]
    assert "first 4 of" in fig.axes[0].get_title()
    small = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    assert plots.figure_data(plots.tree_drawing(small))["levels_drawn"] == 2
    with pytest.raises(InvalidParameterError):
        plots.tree_drawing(np.zeros(3))


def test_tables_scroll_and_missing_cells_are_explained() -> None:
    page = Report("t").add_table([{"a": 1234567, "b": None}, {"a": 0.5, "b": "x"}]).to_html()
    assert '<div class="table-wrap"><table>' in page
    assert "1,234,567" in page and "—" in page and 'class="legend"' in page
    assert ".table-wrap" in page and "overflow-x: auto" in page
    full = Report("t").add_table([{"a": 1, "b": "x"}]).to_html()
    assert 'class="legend"' not in full


def test_confusion_labels_fit_the_figure() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    labels = [f"a rather long class name {i}" for i in range(8)]
    cm = np.arange(64).reshape(8, 8)
    fig = plots.confusion_matrices(cm, cm, labels)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    for ax in fig.axes:
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            ext = label.get_window_extent(renderer)
            assert ext.x0 >= box.x0 - 1 and ext.y0 >= box.y0 - 1, label.get_text()


def test_wide_figures_scroll_at_a_readable_size() -> None:
    from matplotlib.figure import Figure

    wide = Figure(figsize=(24, 3), dpi=100)
    wide.add_subplot().plot([0, 1])
    page = Report("t").add_figure(wide, "wide").to_html()
    assert '<div class="figure-scroll"><img class="wide"' in page
    small = Figure(figsize=(6, 3), dpi=100)
    small.add_subplot().plot([0, 1])
    assert "figure-scroll\"><img" not in Report("t").add_figure(small, "s").to_html()
