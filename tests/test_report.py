"""prunekit.report: Markdown, self-contained HTML, JSON, plots, atomic writes."""

from __future__ import annotations

import base64
import json
import os
import re

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from prunekit import metrics
from prunekit.data import load_dataset
from prunekit.errors import InvalidParameterError, ShapeMismatchError
from prunekit.report import Report, figure_to_png, plots


@pytest.fixture(scope="module")
def comparison():
    d = load_dataset("iris")
    big = DecisionTreeClassifier(random_state=0).fit(d.X_train, d.y_train)
    small = DecisionTreeClassifier(max_depth=1, random_state=0).fit(d.X_train, d.y_train)
    return metrics.compare(big, small, d.X_test, d.y_test, repeats=2, names=("full", "stump"))


@pytest.fixture(scope="module")
def report(comparison):
    rep = Report("Demo <b>report</b>")
    rep.add_text("## Intro\nPruned with **magnitude** `criterion`.\n\n- one\n- two")
    rep.add_table([{"model": "a", "acc": 0.91234}, {"model": "b", "acc": 0.5}], title="Scores")
    rep.add_comparison("tree <vs> stump", comparison)
    rep.add_figure(plots.accuracy_vs_sparsity({"magnitude": [(0.5, 0.8), (0.0, 0.9)]},
                                              baseline=0.9), "Curve")
    rep.add_figure(plots.confusion_matrices(comparison.before_confusion,
                                            comparison.after_confusion, comparison.labels),
                   "Confusion")
    rep.add_figure(plots.layer_sparsity({"conv1": 0.5, "fc": 0.9}), "Layers")
    rep.add_figure(plots.size_latency([{"name": "dense", "size_bytes": 4096, "latency_ms": 2.0},
                                       {"name": "pruned", "size_bytes": 1024}]), "Size")
    return rep


def test_markdown_summary(report):
    md = report.to_markdown()
    assert md.startswith("# Demo <b>report</b>")
    assert "| model | acc |" in md and "| a | 0.9123 |" in md
    assert "### tree <vs> stump" in md and "| metric | full | stump | change |" in md
    assert md.count("*Figure:") == 4


def test_html_is_self_contained_with_embedded_pngs(report):
    page = report.to_html()
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) == 4
    for b64 in imgs:
        assert base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n")
    # nothing external is referenced
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<strong>magnitude</strong>" in page and "<code>criterion</code>" in page
    assert "<li>one</li>" in page and "<h2>Intro</h2>" in page


def test_html_escapes_user_text():
    rep = Report('<script>alert("x")</script>')
    rep.add_text("<img src=x onerror=alert(1)> & **ok**")
    rep.add_table([{"<th>": "<td>"}], title="<i>t</i>")
    page = rep.to_html()
    assert "<script>" not in page and "<img src=x" not in page and "<i>t</i>" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt; &amp;" in page
    assert "&lt;th&gt;" in page and "&lt;td&gt;" in page


def test_write_html_json_and_figures(report, tmp_path):
    html_path = report.write_html(tmp_path / "sub" / "report.html")
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    umask = os.umask(0)
    os.umask(umask)
    assert html_path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    data = json.loads(report.write_json(tmp_path / "report.json").read_text())
    assert [s["type"] for s in data["sections"]] == [
        "text", "table", "comparison", "figure", "figure", "figure", "figure"
    ]
    assert data["sections"][2]["comparison"]["names"] == ["full", "stump"]
    figs = json.loads(report.write_figures_json(tmp_path / "figures.json").read_text())
    kinds = [f["data"]["kind"] for f in figs["figures"]]
    assert kinds == ["accuracy_vs_sparsity", "confusion_matrices", "layer_sparsity",
                     "size_latency"]
    assert figs["figures"][0]["data"]["curves"]["magnitude"] == [[0.0, 0.9], [0.5, 0.8]]
    assert figs["figures"][3]["data"]["values"]["latency_ms"] == [2.0, None]
    md = report.write_markdown(tmp_path / "report.md").read_text()
    assert md == report.to_markdown()


def test_atomic_write_leaves_no_partial_file(report, tmp_path, monkeypatch):
    import prunekit._io as io_mod

    target = tmp_path / "report.html"
    target.write_text("old content")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(io_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        report.write_html(target)
    assert target.read_text() == "old content"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp file left
    with pytest.raises(OSError):
        report.write_json(tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()


def test_figure_to_png_without_pyplot():
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    assert figure_to_png(fig)[:4] == b"\x89PNG"


def test_custom_figure_data_and_pyplot_figure_closed():
    import matplotlib.pyplot as plt

    fig = plt.figure()
    rep = Report("x").add_figure(fig, "mine", data={"k": [1, 2]})
    assert rep.figures() == [{"title": "mine", "data": {"k": [1, 2]}}]
    assert not plt.fignum_exists(fig.number)


def test_plot_and_report_errors(comparison):
    with pytest.raises(InvalidParameterError):
        Report("")
    with pytest.raises(InvalidParameterError, match="Comparison"):
        Report("x").add_comparison("c", {"not": "a comparison"})  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        Report("x").add_table({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ShapeMismatchError):
        plots.confusion_matrices(np.eye(2), np.eye(3))
    with pytest.raises(ShapeMismatchError):
        plots.confusion_matrices(np.eye(2), np.eye(2), labels=["a"])
    with pytest.raises(InvalidParameterError):
        plots.accuracy_vs_sparsity({})
    with pytest.raises(InvalidParameterError):
        plots.size_latency([{"size_bytes": 1}])
    with pytest.raises(InvalidParameterError):
        plots.layer_sparsity({})


def test_add_figure_rejects_a_non_figure() -> None:
    with pytest.raises(InvalidParameterError, match="matplotlib Figure"):
        Report("t").add_figure("not a figure", "caption")
