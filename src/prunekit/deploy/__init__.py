"""From a pruned model to a deployable artefact, measured against the dense original.

* :func:`export_onnx` — ONNX export (PyTorch modules, or scikit-learn trees/ensembles through
  ``skl2onnx``), BatchNorm folding, verification in onnxruntime.
* :func:`quantize` — int8 ONNX (dynamic, or static QDQ per-channel with calibration batches);
  :func:`quantize_torch_dynamic` — PyTorch-native dynamic int8 Linear (deprecated in torch).
* :func:`to_sparse_inference` — swap sparse Linear / 1x1 conv layers for CSR kernels where
  measured faster on the example input.
* :func:`masked_finetune`, :func:`masked_distill_hidden_states`, :func:`masked_distill_outputs`,
  :func:`keep_zeros` — recovery training that keeps pruned weights at zero.

Needs the ``deploy`` extra (onnx, onnxruntime, onnxscript, skl2onnx) for the ONNX parts; those
packages load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "export_onnx": "prunekit.deploy.onnx_export",
    "ExportReport": "prunekit.deploy.onnx_export",
    "ExportVerificationError": "prunekit.deploy.onnx_export",
    "fold_batchnorm": "prunekit.deploy.onnx_export",
    "quantize": "prunekit.deploy.quantization",
    "QuantizeReport": "prunekit.deploy.quantization",
    "QuantizationAccuracyError": "prunekit.deploy.quantization",
    "quantize_torch_dynamic": "prunekit.deploy.quantization",
    "evaluate_onnx": "prunekit.deploy.quantization",
    "to_sparse_inference": "prunekit.deploy.sparse",
    "SparseInferenceReport": "prunekit.deploy.sparse",
    "SparseLinear": "prunekit.deploy.sparse",
    "SparseConv1x1": "prunekit.deploy.sparse",
    "export_sklearn_onnx": "prunekit.deploy.trees",
    "keep_zeros": "prunekit.deploy.recover",
    "masked_finetune": "prunekit.deploy.recover",
    "masked_distill_hidden_states": "prunekit.deploy.recover",
    "masked_distill_outputs": "prunekit.deploy.recover",
    "zero_masks": "prunekit.deploy.recover",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'prunekit.deploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
