"""``prunekit export``: listed lazily, exports a saved model, quantizes, reports clean errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from prunekit.cli import app

pytest.importorskip("onnxruntime")
runner = CliRunner()


def test_export_is_listed():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "export" in result.output


def test_export_saved_module_with_dynamic_int8_and_sparse(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    src = tmp_path / "mlp.pt"
    torch.save(model, src)
    out = tmp_path / "mlp.onnx"
    refused = runner.invoke(app, ["export", str(src), "--input-shape", "2,16", "-o", str(out)])
    assert refused.exit_code != 0 and "--trust-pickle" in str(refused.exception)
    assert not out.exists()
    result = runner.invoke(app, ["export", str(src), "--trust-pickle", "--input-shape", "2,16",
                                 "-o", str(out),
                                 "--quantize", "dynamic", "--sparse-inference",
                                 "--sparsity", "0.8", "--exporter", "torchscript",
                                 "--report", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "mlp.int8.onnx").is_file()
    text = (tmp_path / "r.md").read_text()
    for part in ("ONNX export", "int8 quantization", "Sparse inference"):
        assert part in text


def test_export_bad_input(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "nope.pt")])
    assert result.exit_code != 0
    assert "neither a built-in" in str(result.exception)
    result = runner.invoke(app, ["export", "lenet", "--format", "tflite"])
    assert result.exit_code != 0 and "--format" in str(result.exception)
