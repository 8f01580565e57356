"""The documentation site builds with ``mkdocs build --strict`` and documents the real API.

The build (mkdocs-material + mkdocstrings, extra ``docs``) is skipped when those are not
installed. Code blocks of the pages are checked without running them: they must compile, and
every name they import from prunekit must exist.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

# page -> anchors its API reference must contain (the domain's entry points)
ENTRY_POINTS = {
    "trees": ["prunekit.trees.prune_tree", "prunekit.trees.PrunedTreeClassifier"],
    "ensembles": ["prunekit.ensembles.prune_ensemble", "prunekit.ensembles.build_member_matrix"],
    "nn-sparsity": ["prunekit.nn.sparsity.prune_model", "prunekit.nn.sparsity.Pruner",
                    "prunekit.nn.schedules.agp", "prunekit.nn.io.save_compact"],
    "structured": ["prunekit.nn.structured.prune", "prunekit.nn.structured.prune_transformer",
                   "prunekit.nn.distill.finetune"],
    "oneshot": ["prunekit.nn.oneshot.oneshot", "prunekit.nn.oneshot.save_pruned"],
    "evaluation": ["prunekit.metrics.compare.compare", "prunekit.report.Report",
                   "prunekit.data.load_dataset"],
    "errors": ["prunekit.errors.InvalidParameterError"],
}


def _blocks() -> list[tuple[str, int, str]]:
    return [(page.stem, i, code) for page in PAGES
            for i, code in enumerate(_PYTHON.findall(page.read_text(encoding="utf-8")))]


BLOCKS = _blocks()


def test_every_nav_page_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.findall(r":\s*([\w-]+\.md)\s*$", config, flags=re.M)
    assert len(nav) >= 9
    for name in nav:
        assert (DOCS / name).is_file(), f"mkdocs.yml lists {name}, which is not in docs/"


@pytest.mark.parametrize(("page", "index", "code"), BLOCKS,
                         ids=[f"{p}-{i}" for p, i, _ in BLOCKS])
def test_code_blocks_compile_and_import_real_names(page: str, index: int, code: str) -> None:
    tree = ast.parse(code, filename=f"docs/{page}.md block {index}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prunekit"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), (
                    f"docs/{page}.md imports {alias.name} from {node.module}: no such name"
                )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _html(site: Path, page: str) -> str:
    path = site / "index.html" if page == "index" else site / page / "index.html"
    return path.read_text(encoding="utf-8")


def test_site_builds_strict_with_every_page(site: Path) -> None:
    for page in PAGES:
        if page.stem != "index":
            assert (site / page.stem / "index.html").is_file(), page.name
    assert (site / "index.html").is_file()


@pytest.mark.parametrize("page", sorted(ENTRY_POINTS))
def test_api_reference_is_generated(site: Path, page: str) -> None:
    html = _html(site, page)
    for anchor in ENTRY_POINTS[page]:
        assert f'id="{anchor}"' in html, f"{page}: no API reference for {anchor}"
    # docstrings are turned into Markdown: no Sphinx roles, no doctest prompts as block quotes
    assert not re.search(r":(func|class|mod|meth|attr|data):", html), page
    assert "<blockquote>\n<blockquote>" not in html, page


def test_every_public_module_is_on_the_site(site: Path) -> None:
    html = "".join(p.read_text(encoding="utf-8") for p in site.glob("*/index.html"))
    for module in ("prunekit.data", "prunekit.errors", "prunekit.metrics", "prunekit.report",
                   "prunekit.trees", "prunekit.ensembles", "prunekit.nn.structured",
                   "prunekit.nn.oneshot", "prunekit.nn.lightning", *_public_modules()):
        assert f'id="{module}' in html, f"{module} is documented nowhere on the site"


def _public_modules() -> list[str]:
    names = []
    for package in ("prunekit", "prunekit.nn"):
        for path in sorted((ROOT / "src" / package.replace(".", "/")).iterdir()):
            name = path.stem if path.suffix == ".py" else path.name
            is_module = path.suffix == ".py" or (path / "__init__.py").is_file()
            if is_module and not name.startswith("_") and not name.endswith("cli"):
                names.append(f"{package}.{name}")
    return [n for n in names if n != "prunekit.nn"]


def test_which_method_when_on_every_domain_page() -> None:
    for page in ("trees", "ensembles", "nn-sparsity", "structured", "oneshot"):
        text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
        assert re.search(r"^## (Which|Wanda or SparseGPT)", text, flags=re.M), page
        assert "benchmarks/" in text, f"{page}: say which benchmark the numbers come from"


def test_cli_page_shows_real_help(site: Path) -> None:
    html = _html(site, "cli")
    for command in ("prunekit tree", "prunekit ensemble", "prunekit nn sparsity",
                    "prunekit nn structured prune", "prunekit nn oneshot"):
        assert f"Usage: {command}" in html, command


def test_changelog_is_included(site: Path) -> None:
    html = _html(site, "changelog")
    assert "Unreleased" in html and "0.1.0" in html
