"""Every report kind renders in headless Chromium: nothing runs past the page, images load.

Skipped where no ``chromium`` / ``chromium-browser`` / ``google-chrome`` is on PATH. The reports
are built by ``scripts/screenshot_reports.py`` (which also saves screenshots).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "screenshot_reports.py"


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("screenshot_reports", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["screenshot_reports"] = mod
    spec.loader.exec_module(mod)
    return mod


shots = _load_script()
BROWSER = shots.find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on PATH")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return shots.build_reports(tmp_path_factory.mktemp("reports"), quick=True)


@pytest.mark.parametrize("kind", list(shots.BUILDERS))
def test_report_fits_the_page_and_images_load(reports: dict[str, Path], kind: str) -> None:
    width = 760  # a half-screen window: narrower than the 1100 px text column
    if kind not in reports:
        pytest.skip(f"{kind} report needs an optional extra")
    res = shots.check_layout(BROWSER, reports[kind], width)
    assert res["overflowing"] == [], res
    assert res["scroll_width"] <= res["page_width"], res
    assert res["broken_images"] == [], res
    assert res["images"] + res["plotly"] >= 1, res  # every report has a picture
    assert res["plotly_drawn"], res


def test_checker_sees_an_overflowing_table(tmp_path: Path) -> None:
    """The check itself can fail: a wide table outside a scroll wrapper is reported."""
    page = tmp_path / "wide.html"
    cells = "".join(f"<td>cell-number-{i}-with-long-text</td>" for i in range(40))
    page.write_text(f"<!DOCTYPE html><html><body><table><tr>{cells}</tr></table>"
                    '<img alt="missing" src="data:image/png;base64,AAAA"></body></html>')
    res = shots.check_layout(BROWSER, page, 800)
    assert any(o.startswith("table") for o in res["overflowing"]), res
    assert res["broken_images"] == ["missing"], res


def test_screenshot_is_a_png(reports: dict[str, Path], tmp_path: Path) -> None:
    png = shots.screenshot(BROWSER, reports["comparison"], tmp_path / "c.png", 900, 1200)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
