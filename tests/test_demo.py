"""``prunekit demo --fast`` end to end, and the skip path of a missing domain API."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from typer.testing import CliRunner

from prunekit import demo as demo_mod
from prunekit.cli import app
from prunekit.report import Report


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, ["demo", "--fast", "--output-dir", str(out)])
    return out, result, time.perf_counter() - t0


def test_demo_fast_writes_report_and_figures(demo_run):
    out, result, seconds = demo_run
    assert result.exit_code == 0, result.output
    assert seconds < 30  # the fast demo takes well under 20 s on an idle 2-core machine
    page = (out / "report.html").read_text()
    imgs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) >= 4
    assert base64.b64decode(imgs[0])[:4] == b"\x89PNG"
    figs = json.loads((out / "figures.json").read_text())
    assert figs["title"] == "prunekit demo"
    interactive = len(re.findall(r'<div id="pk-plot-[0-9]+" class="plotly-fig">', page))
    assert len(figs["figures"]) == len(imgs) + interactive
    kinds = {f["data"]["kind"] for f in figs["figures"] if f["data"]}
    assert {"tradeoff", "size_latency"} <= kinds
    assert not list(out.glob(".*.tmp"))  # atomic writes left no temporary files


def test_demo_prints_markdown_summary(demo_run):
    _, result, _ = demo_run
    text = result.output
    assert text.lstrip().startswith("# prunekit demo")
    assert "| model | pruning | accuracy | size | speed |" in text
    assert "report.html" in text and "figures.json" in text
    assert "failed" not in text


def test_demo_sections_ran_or_explained_their_skip(demo_run):
    out, _, _ = demo_run
    page = (out / "report.html").read_text()
    for heading in ("1. Decision tree", "2. Random forest", "3. Unstructured", "4. Structured",
                    "5. Deployment"):
        assert heading in page
    assert "section failed" not in page
    # every section either produced its before/after table or printed why it was skipped
    n_skipped = page.count("section skipped:")
    assert page.count("<h3>") + n_skipped >= 4


def test_missing_domain_api_skips_section_with_note(monkeypatch):
    real = demo_mod._lookup

    def lookup(module, attr):
        if module == "prunekit.trees":
            return None, "prunekit.trees.prune_tree not available (ImportError: test)"
        return real(module, attr)

    monkeypatch.setattr(demo_mod, "_lookup", lookup)
    rep = Report("t")
    res = demo_mod._section_trees(demo_mod._config(True, 0), rep)
    assert res.status == "skipped"
    assert res.note == "section skipped: prunekit.trees not available"
    assert "section skipped: prunekit.trees not available" in rep.to_markdown()
    assert not rep.figures()


def test_demo_quiet_prints_nothing(tmp_path, monkeypatch):
    calls = {}

    def fake_run(output_dir, **kwargs):
        calls.update(kwargs, output_dir=output_dir)
        rep = Report("prunekit demo")
        return demo_mod.DemoResult(rep, [], tmp_path / "report.html",
                                   tmp_path / "figures.json", 0.0)

    monkeypatch.setattr(demo_mod, "run_demo", fake_run)
    result = CliRunner().invoke(app, ["demo", "--quiet", "-o", str(tmp_path), "--seed", "3"])
    assert result.exit_code == 0 and result.output == ""
    assert calls["quiet"] is True and calls["seed"] == 3 and calls["fast"] is False


def test_demo_deployment_section_measures_onnx_and_int8(demo_run):
    pytest.importorskip("onnxruntime")
    out, result, _ = demo_run
    page = (out / "report.html").read_text()
    assert "Deployment: dense vs slim vs ONNX vs int8" in page
    for variant in ("dense, PyTorch eager", "slim, ONNX Runtime fp32",
                    "slim, ONNX Runtime int8 (static QDQ)"):
        assert variant in page
    assert "structured 50 % + int8 ONNX" in result.output
