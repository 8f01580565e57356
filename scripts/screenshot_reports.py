"""Build one report of each kind and check or screenshot them in headless Chromium.

    python scripts/screenshot_reports.py [--out DIR] [--width 1200] [--quick]

Writes ``DIR/<kind>.html`` (tree, ensemble, sparsity, structured, llm when the transformers
extra is installed, demo, a library comparison) and ``DIR/<kind>.png`` screenshots, and prints, per
report, whether any element runs past the page width and whether every image loaded. Needs
``chromium``, ``chromium-browser`` or ``google-chrome`` on PATH. ``tests/test_report_render.py``
uses the same helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Injected before </body>: after load (and Plotly's first draw) record layout problems in an
# attribute that --dump-dom prints.
_CHECK_JS = r"""
<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var width = document.documentElement.clientWidth, bad = [];
    function clipped(el) {  // inside a scroll container: it may be wider than the page
      for (var p = el.parentElement; p; p = p.parentElement) {
        var o = getComputedStyle(p).overflowX;
        if (o === "auto" || o === "scroll" || o === "hidden") return true;
      }
      return false;
    }
    document.querySelectorAll("body *").forEach(function (el) {
      var r = el.getBoundingClientRect();
      if (r.width > 0 && r.right > width + 1 && !clipped(el))
        bad.push(el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
          ? "." + el.className : "") + " right=" + Math.round(r.right));
    });
    var imgs = Array.prototype.slice.call(document.images);
    var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    var plots = document.querySelectorAll(".plotly-fig");
    var drawn = document.querySelectorAll(".plotly-fig .main-svg").length > 0 || !plots.length;
    document.body.setAttribute("data-check", JSON.stringify({
      page_width: width, scroll_width: document.documentElement.scrollWidth,
      overflowing: bad.slice(0, 20), images: imgs.length,
      broken_images: broken.map(function (i) { return i.alt || "image"; }),
      plotly: plots.length, plotly_drawn: drawn}));
  }, 300);
});
</script>
"""


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _flags(width: int, height: int) -> list[str]:
    return ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
            "--disable-dev-shm-usage", f"--window-size={width},{height}",
            "--virtual-time-budget=8000", "--run-all-compositor-stages-before-draw"]


def check_layout(browser: str, html_path: Path, width: int = 1200) -> dict:
    """Render ``html_path`` and return the layout check (overflow, images, plotly)."""
    text = html_path.read_text(encoding="utf-8")
    probe = text.replace("</body>", _CHECK_JS + "</body>", 1)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(probe, encoding="utf-8")
        out = subprocess.run([browser, *_flags(width, 900), f"--user-data-dir={tmp}/profile",
                              "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120)
    m = re.search(r'data-check="([^"]*)"', out.stdout)
    if not m:
        raise RuntimeError(f"no layout result for {html_path} (chromium said: "
                           f"{out.stderr.strip()[-500:]})")
    import html

    return json.loads(html.unescape(m.group(1)))


def screenshot(browser: str, html_path: Path, png: Path, width: int = 1200,
               height: int = 3000) -> Path:
    """Save a PNG of the top ``height`` pixels of the report."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([browser, *_flags(width, height), f"--user-data-dir={tmp}/profile",
                        f"--screenshot={png}", html_path.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120, check=True)
    return png


def _cli(args: list[str]) -> None:
    from prunekit import cli

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            cli.main(args)
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"prunekit {' '.join(args)} failed:\n{sink.getvalue()}"
                                   ) from None


def _tree(d: Path, quick: bool) -> Path:
    _cli(["tree", "--data", "wine" if quick else "breast_cancer", "--out", str(d / "tree"), "-q"])
    return d / "tree" / "report.html"


def _ensemble(d: Path, quick: bool) -> Path:
    _cli(["ensemble", "--n-estimators", "15" if quick else "100", "--out",
          str(d / "ensemble"), "-q"])
    return d / "ensemble" / "report.html"


def _sparsity(d: Path, quick: bool) -> Path:
    _cli(["nn", "sparsity", "--model", "cnn", "--epochs", "1" if quick else "5",
          "--finetune-epochs", "1", "--method", "oneshot", "--out", str(d / "sparsity"), "-q"])
    return d / "sparsity" / "report.html"


def _structured(d: Path, quick: bool) -> Path:
    _cli(["nn", "structured", "prune", "--model", "digits-cnn", "--train-epochs",
          "1" if quick else "10", "--finetune-epochs", "1", "--report",
          str(d / "structured.html"), "-q"])
    return d / "structured.html"


def _llm(d: Path, quick: bool) -> Path:
    _cli(["llm", "--n-samples", "4" if quick else "64", "--max-length", "32", "--threads", "1",
          "--report", str(d / "llm.html"), "-q"])
    return d / "llm.html"


def _demo(d: Path, quick: bool) -> Path:
    _cli(["demo", *(["--fast"] if quick else []), "--output-dir", str(d / "demo")])
    return d / "demo" / "report.html"


def _comparison(d: Path, quick: bool) -> Path:
    """A library report: a comparison table and confusion matrices with long class names."""
    from sklearn.datasets import load_wine
    from sklearn.tree import DecisionTreeClassifier

    from prunekit import metrics
    from prunekit.report import Report, plots
    from prunekit.trees import prune_tree

    X, y = load_wine(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0).fit(X[::2], y[::2])
    pruned = prune_tree(tree, "cost_complexity", ccp_alpha=0.02)
    cmp = metrics.compare(tree, pruned, X[1::2], y[1::2])
    rep = Report("Comparison report")
    rep.add_comparison("Decision tree, cost-complexity pruning", cmp)
    names = ["class_0 (barolo, long name)", "class_1 (grignolino)", "class_2 (barbera)"]
    rep.add_figure(plots.confusion_matrices(cmp.before_confusion, cmp.after_confusion,
                                            names), "Confusion matrices")
    wide = [{f"column {i}": f"value {i} " * 3 for i in range(16)}]
    rep.add_table(wide, "A wide table (scrolls inside the page)")
    return rep.write_html(d / "comparison.html")


BUILDERS: dict[str, Callable[[Path, bool], Path]] = {
    "tree": _tree, "ensemble": _ensemble, "sparsity": _sparsity, "structured": _structured,
    "llm": _llm, "demo": _demo, "comparison": _comparison,
}


def build_reports(folder: Path, kinds: list[str] | None = None, quick: bool = True
                  ) -> dict[str, Path]:
    """Write one report of each kind into ``folder``; ``llm`` only with transformers."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind in kinds or list(BUILDERS):
        if kind == "llm" and importlib.util.find_spec("transformers") is None:
            continue
        out[kind] = BUILDERS[kind](folder, quick)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("report-screenshots"))
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--quick", action="store_true", help="tiny settings")
    ap.add_argument("--kinds", default="all", help="comma-separated: " + ", ".join(BUILDERS))
    args = ap.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no chromium / google-chrome on PATH; install one (apt-get install chromium)",
              file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kinds = None if args.kinds == "all" else args.kinds.split(",")
    ok = True
    for kind, html_path in build_reports(args.out, kinds, args.quick).items():
        res = check_layout(browser, html_path, args.width)
        png = screenshot(browser, html_path, args.out / f"{kind}.png", args.width)
        good = not res["overflowing"] and not res["broken_images"] and res["plotly_drawn"]
        ok &= good
        print(f"{kind:11s} {'ok ' if good else 'BAD'} {png}  images={res['images']} "
              f"plotly={res['plotly']} overflowing={res['overflowing']} "
              f"broken={res['broken_images']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
