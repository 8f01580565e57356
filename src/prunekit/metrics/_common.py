"""Helpers shared by the metric modules: model kind detection, fitted checks, input conversion."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from prunekit._modes import eval_mode as eval_mode  # re-exported for the metric modules
from prunekit.errors import NotFittedError, ShapeMismatchError, UnsupportedModelError


def is_torch_module(model: Any) -> bool:
    """True if ``model`` is a ``torch.nn.Module`` (torch is not imported when not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_dataloader(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.utils.data.DataLoader)


def is_sklearn_estimator(model: Any) -> bool:
    """True for objects that follow the scikit-learn estimator API (``fit`` + ``get_params``)."""
    return hasattr(model, "fit") and hasattr(model, "get_params")


def check_model(model: Any, name: str = "model") -> str:
    """Return ``"torch"`` or ``"sklearn"``; raise for other objects and for unfitted estimators."""
    if is_torch_module(model):
        return "torch"
    if is_sklearn_estimator(model):
        from sklearn.exceptions import NotFittedError as SkNotFitted
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except SkNotFitted:
            raise NotFittedError(
                f"{name} ({type(model).__name__}) is not fitted; call {name}.fit(X, y) first"
            ) from None
        return "sklearn"
    raise UnsupportedModelError(
        f"{name} must be a fitted scikit-learn estimator or a torch.nn.Module, "
        f"got {type(model).__name__}"
    )


def to_numpy(a: Any) -> np.ndarray:
    """Convert arrays, tensors and lists to a numpy array (tensors detached, moved to CPU)."""
    if is_torch_tensor(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def check_same_length(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise ShapeMismatchError(
            f"{name_a} and {name_b} must have the same number of samples, got {len(a)} and {len(b)}"
        )


def model_device_dtype(model: Any) -> tuple[Any, Any]:
    """First parameter's (or buffer's) device and floating dtype of a torch module."""
    import torch

    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def as_model_input(x: Any, device: Any, dtype: Any) -> Any:
    """Move a tensor / ndarray / tuple / dict of inputs to ``device``; floats get ``dtype``."""
    import torch

    if isinstance(x, dict):
        return {k: as_model_input(v, device, dtype) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(as_model_input(v, device, dtype) for v in x)
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        if x.is_floating_point():
            return x.to(device=device, dtype=dtype)
        return x.to(device=device)
    return x


def call_module(model: Any, inputs: Any) -> Any:
    """Call ``model`` with ``inputs``: a tuple/list is unpacked, a dict passed as keywords."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def output_tensor(out: Any) -> Any:
    """The main tensor of a module output: itself, ``.logits`` (Hugging Face) or the first item."""
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    if isinstance(out, dict):
        return out.get("logits", next(iter(out.values())))
    return out


def num_samples(inputs: Any) -> int:
    """Batch size (first dimension) of an input: array, tensor, tuple of them or dict of them."""
    if isinstance(inputs, dict):
        inputs = next(iter(inputs.values()))
    if isinstance(inputs, (tuple, list)) and inputs and not np.isscalar(inputs[0]):
        inputs = inputs[0]
    shape = getattr(inputs, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    return len(inputs)


def slice_batch(inputs: Any, n: int) -> Any:
    """The first ``n`` samples of an input (array, tensor, tuple or dict of them)."""
    if isinstance(inputs, dict):
        return {k: slice_batch(v, n) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(slice_batch(v, n) for v in inputs)
    return inputs[:n]
