"""prunekit.deploy.quantization: ORT dynamic / static QDQ int8, max_drop, torch dynamic Linear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunekit.errors import InvalidParameterError

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from prunekit.deploy import (  # noqa: E402
    QuantizationAccuracyError,
    export_onnx,
    quantize,
    quantize_torch_dynamic,
)
from prunekit.deploy.quantization import batch_feeds  # noqa: E402


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4)).eval()


@pytest.fixture()
def cnn_onnx(tmp_path):
    path = tmp_path / "cnn.onnx"
    export_onnx(_cnn(), torch.randn(2, 1, 8, 8), path, exporter="torchscript")
    return path


def _batches(n=4, labels=True):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.randn(8, 1, 8, 8, generator=g)
        out.append((x, torch.randint(0, 4, (8,), generator=g)) if labels else x)
    return out


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_static_qdq_per_channel(cnn_onnx, tmp_path):
    out = tmp_path / "cnn.int8.onnx"
    report = quantize(cnn_onnx, out, "static", calibration=_batches(3), eval_data=_batches(2))
    assert report.calibration_batches == 3 and report.metric == "accuracy"
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(out)
    m = onnx.load(str(out))
    inits = {t.name: t for t in m.graph.initializer}
    per_channel = [n for n in m.graph.node if n.op_type == "DequantizeLinear"
                   and n.input[1] in inits and len(inits[n.input[1]].dims) == 1
                   and inits[n.input[1]].dims[0] == 8]
    assert per_channel  # weight scales: one per output channel
    assert report.output_bytes == out.stat().st_size  # tiny model: QDQ nodes outweigh int8
    assert report.latency_before_s > 0 and report.latency_after_s > 0
    assert "int8 quantization" in report.to_markdown()


def test_dynamic_mlp_cosine(tmp_path):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16)).eval()
    src, out = tmp_path / "mlp.onnx", tmp_path / "mlp.int8.onnx"
    export_onnx(mlp, torch.randn(4, 32), src, exporter="torchscript")
    data = [torch.randn(16, 32) for _ in range(2)]
    report = quantize(src, out, "dynamic", eval_data=data)
    assert report.metric == "cosine" and report.after > 0.99
    assert _ops(out) & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}


def test_max_drop_error_names_layers_and_writes_nothing(cnn_onnx, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(QuantizationAccuracyError, match=r"max_drop=0.*Layers adding the most"):
        quantize(cnn_onnx, out, "static", calibration=_batches(1, labels=False),
                 eval_data=_batches(2, labels=False), max_drop=0.0)
    assert not out.exists()


def test_bad_arguments(cnn_onnx, tmp_path):
    out = tmp_path / "x.onnx"
    with pytest.raises(InvalidParameterError, match="calibration"):
        quantize(cnn_onnx, out, "static")
    with pytest.raises(InvalidParameterError, match="mode"):
        quantize(cnn_onnx, out, "int4")
    with pytest.raises(InvalidParameterError, match="eval_data"):
        quantize(cnn_onnx, out, max_drop=0.01)
    with pytest.raises(InvalidParameterError, match="not a file"):
        quantize(tmp_path / "missing.onnx", out)


def test_batch_feeds_shapes():
    specs = [("input_ids", np.int64), ("attention_mask", np.int64)]
    ids = torch.ones(2, 5, dtype=torch.int32)
    feeds, y = batch_feeds({"input_ids": ids, "attention_mask": ids, "labels": ids[:, 0]}, specs)
    assert feeds["input_ids"].dtype == np.int64 and y.shape == (2,)
    with pytest.raises(InvalidParameterError, match="lacks"):
        batch_feeds({"input_ids": ids}, specs)
    feeds, y = batch_feeds((torch.zeros(3, 4), torch.arange(3)), [("x", np.float32)])
    assert feeds["x"].shape == (3, 4) and y.tolist() == [0, 1, 2]


def test_torch_dynamic_int8_linear():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8)).eval()
    q, report = quantize_torch_dynamic(mlp, torch.randn(4, 32))
    assert report.deprecated and "deprecated" in report.to_markdown()
    assert type(q[0]).__name__ == "Linear" and type(q[0]).__module__.startswith("torch.ao")
    assert isinstance(mlp[0], nn.Linear) and type(mlp[0]) is nn.Linear  # input untouched
    assert report.after > 0.99 and report.output_bytes < report.source_bytes


def test_max_drop_localises_the_layer_that_adds_the_error(tmp_path):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                        nn.Linear(32, 8)).eval()
    with torch.no_grad():  # layer "2": an outlier weight on an always-zero input crushes the rest
        mlp[0].weight[0] = 0
        mlp[0].bias[0] = 0
        mlp[2].weight[:, 0] = 1000.0
    src = tmp_path / "mlp.onnx"
    export_onnx(mlp, torch.randn(4, 16), src, exporter="torchscript")
    data = [torch.randn(32, 16) for _ in range(2)]
    with pytest.raises(QuantizationAccuracyError, match=r"adding the most output error[^,]*/2/"):
        quantize(src, tmp_path / "q.onnx", "static", calibration=data, eval_data=data,
                 max_drop=0.01)


def test_dynamic_int8_hf_encoder_leaves_no_stray_files(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from prunekit.nn.oneshot._hf import import_transformers

    tr = import_transformers()
    cfg = tr.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16)
    torch.manual_seed(0)
    bert = tr.BertModel(cfg).eval()
    batch = {"input_ids": torch.randint(0, 50, (4, 8)),
             "attention_mask": torch.ones(4, 8, dtype=torch.long)}
    src = tmp_path / "bert.onnx"
    export_onnx(bert, batch, src, exporter="torchscript")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    report = quantize(src, tmp_path / "bert.int8.onnx", "dynamic", eval_data=[batch])
    assert report.metric == "cosine" and report.after > 0.95
    assert not list(cwd.iterdir())  # onnxruntime's shape-inference leftovers stay in a temp dir
