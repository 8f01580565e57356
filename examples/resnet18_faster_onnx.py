"""Make a torchvision resnet18 about 2x faster by removing channels, then export it to ONNX.

    python examples/resnet18_faster_onnx.py [--quick]

Random weights (nothing is downloaded): the point is the shape of the work -- prune to a
latency target, check the speed-up, export and verify in onnxruntime, quantize to int8.
Needs the `bench` (torchvision) and `deploy` (onnx, onnxruntime) extras.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

import prunekit.nn  # noqa: F401  (first: makes `import torchvision` work beside the CPU torch)

# isort: split
import torchvision

from prunekit.deploy import export_onnx, quantize
from prunekit.metrics import measure_latency
from prunekit.nn.structured import prune

quick = "--quick" in sys.argv
size = 64 if quick else 224
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=1000).eval()
x = torch.randn(1, 3, size, size)

# remove channels until half of the MACs are gone (target_latency=0.5 measures instead)
slim, report = prune(model, x, target_macs=0.5, criterion="l2", round_to=8,
                     ignored_layers=[model.fc])
print(report.to_markdown())

batch = torch.randn(8, 3, size, size)
dense_s = measure_latency(model, batch, repeats=5 if quick else 20).median_s
slim_s = measure_latency(slim, batch, repeats=5 if quick else 20).median_s
print(f"batch 8 at {size}px: dense {dense_s * 1e3:.1f} ms, pruned {slim_s * 1e3:.1f} ms, "
      f"speed-up {dense_s / slim_s:.2f}x")

with tempfile.TemporaryDirectory() as tmp:
    onnx_path = Path(tmp) / "resnet18-slim.onnx"
    exported = export_onnx(slim, x, onnx_path, exporter="torchscript")  # verified in ORT
    print(exported.to_markdown())
    calibration = [torch.randn(8, 3, size, size) for _ in range(2 if quick else 8)]  # your data
    q = quantize(onnx_path, Path(tmp) / "resnet18-slim.int8.onnx", "static",
                 calibration=calibration)
    print(q.to_markdown())
