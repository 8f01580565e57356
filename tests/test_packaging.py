"""Conventions a user brings: `python -m prunekit`, sklearn-compatible errors, plain torchvision."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys

import pytest
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

import prunekit
from prunekit import errors


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "prunekit", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"prunekit {prunekit.__version__}"


def test_errors_are_caught_by_the_except_clauses_users_already_write() -> None:
    assert issubclass(prunekit.NotFittedError, SklearnNotFittedError)
    assert issubclass(prunekit.NotFittedError, prunekit.PrunekitError)
    assert prunekit.NotFittedError is errors.NotFittedError
    assert issubclass(prunekit.InvalidParameterError, ValueError)
    assert issubclass(prunekit.UnsupportedModelError, TypeError)
    assert issubclass(prunekit.OptionalDependencyError, ImportError)
    err = pickle.loads(pickle.dumps(prunekit.NotFittedError("not fitted")))
    assert type(err) is prunekit.NotFittedError and str(err) == "not fitted"


def test_import_prunekit_stays_light() -> None:
    code = (
        "import sys, prunekit\n"
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")
def test_plain_import_torchvision_works_after_import_prunekit_nn() -> None:
    code = (
        "import prunekit.nn\n"
        "import torchvision\n"
        "print(type(torchvision.models.resnet18()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ResNet"


def test_the_package_is_typed() -> None:
    from pathlib import Path

    assert (Path(prunekit.__file__).parent / "py.typed").exists()
