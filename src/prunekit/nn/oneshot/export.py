"""Save a one-shot-pruned model in the compact format and load it back into the same class.

The file is :func:`prunekit.nn.io.save_compact`'s safetensors file; for a transformers model its
metadata also holds the model class and config, so :func:`load_pruned` rebuilds the model
without the original checkpoint. Plain torch modules load with
:func:`prunekit.nn.io.load_compact_into` into a freshly built instance.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.errors import CorruptFileError, InvalidParameterError, PrunekitError
from prunekit.nn.io import load_compact_into, read_compact_metadata, save_compact
from prunekit.nn.oneshot._hf import import_transformers
from prunekit.nn.oneshot.core import OneShotReport


def save_pruned(
    model: nn.Module,
    path: str | os.PathLike[str],
    report: OneShotReport | None = None,
    *,
    int8: bool = False,
) -> Path:
    """Write ``model`` (pruned) to ``path`` in the compact format; return the path."""
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be an nn.Module, got {type(model).__name__}")
    if report is not None and not isinstance(report, OneShotReport):
        raise InvalidParameterError(
            f"report must be the OneShotReport returned by oneshot(), got {type(report).__name__}"
        )
    meta: dict[str, str] = {}
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        meta["transformers_class"] = type(model).__name__
        meta["transformers_config"] = config.to_json_string()
    else:
        meta["torch_class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    if report is not None:
        meta["oneshot_report"] = json.dumps(report.to_dict(), default=str)
    return save_compact(model, path, int8=int8, metadata=meta)


_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,99}$")


def _transformers_class(path: str | os.PathLike[str], cls_name: Any) -> type:
    """The transformers model class named in a file, if it is a real ``PreTrainedModel``."""
    transformers = import_transformers()
    if not isinstance(cls_name, str) or not _CLASS_NAME.match(cls_name):
        raise CorruptFileError(f"{path}: invalid transformers class name {cls_name!r}")
    try:
        cls = getattr(transformers, cls_name, None)
    except Exception:  # transformers' lazy module may fail to import an optional backend
        cls = None
    base = transformers.PreTrainedModel
    if not (isinstance(cls, type) and issubclass(cls, base) and cls is not base):
        raise CorruptFileError(
            f"{path}: {cls_name!r} is not a transformers model class (a PreTrainedModel subclass)"
        )
    return cls


def _check_layer_counts(config: dict[str, Any], n_tensors: int) -> None:
    """Layer counts of a config cannot exceed the tensors stored: each layer stores at least one
    (this bounds the module objects built before the shapes are compared)."""
    for key, value in config.items():
        if "layer" in key and type(value) is int and not 0 <= value <= n_tensors:
            raise ValueError(f"{key}={value} but the file stores only {n_tensors} tensors")


def _build_transformers_model(path: str | os.PathLike[str], user: dict[str, Any]) -> nn.Module:
    """Instantiate the recorded class and config, after checking on the meta device that the
    model's parameter shapes are exactly the ones stored in the file (no memory bomb)."""
    cls = _transformers_class(path, user.get("transformers_class"))
    transformers = import_transformers()
    try:
        config_dict = json.loads(user.get("transformers_config", ""))
        if not isinstance(config_dict, dict) or not isinstance(config_dict.get("model_type"), str):
            raise ValueError("the config must be a JSON object with a 'model_type'")
        _check_layer_counts(config_dict, len(read_compact_metadata(path)["tensors"]))
        config = transformers.AutoConfig.for_model(**config_dict)
        with torch.device("meta"):
            meta_model = cls(config)
    except Exception as exc:  # any failure here means the file describes no buildable model
        raise CorruptFileError(
            f"{path}: cannot build {cls.__name__} from the recorded config ({exc})"
        ) from None
    stored = read_compact_metadata(path)["tensors"]
    wanted = {k: list(v.shape) for k, v in meta_model.state_dict().items()}
    if any(stored.get(k, {}).get("shape") != shape for k, shape in wanted.items()):
        bad = [k for k, s in wanted.items() if stored.get(k, {}).get("shape") != s][:3]
        raise CorruptFileError(
            f"{path}: the recorded config does not match the stored tensors (e.g. {bad})"
        )
    del meta_model
    return cls(config)


def load_pruned(path: str | os.PathLike[str], model: nn.Module | None = None) -> nn.Module:
    """Load a file of :func:`save_pruned`: into ``model`` if given, else a new transformers model
    of the recorded class and config. Returns the model in eval mode.

    Only a transformers ``PreTrainedModel`` subclass named in the file is ever instantiated, and
    only once its parameter shapes (checked on the meta device) match the tensors stored in the
    file; a malformed file raises :class:`~prunekit.errors.CorruptFileError`.
    """
    if model is not None and not isinstance(model, nn.Module):
        raise InvalidParameterError(
            f"model must be an nn.Module or None, got {type(model).__name__}"
        )
    if model is None:
        user: dict[str, Any] = read_compact_metadata(path).get("user", {})
        if not user.get("transformers_class"):
            raise PrunekitError(
                f"{path} holds no transformers class; pass model= (a fresh instance of "
                f"{user.get('torch_class', 'the original class')}) to load it into"
            )
        model = _build_transformers_model(path, user)
    load_compact_into(model, path)
    return model.eval()
