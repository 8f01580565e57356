"""Save a one-shot-pruned model in the compact format and load it back into the same class.

The file is :func:`prunekit.nn.io.save_compact`'s safetensors file; for a transformers model its
metadata also holds the model class and config, so :func:`load_pruned` rebuilds the model
without the original checkpoint. Plain torch modules load with
:func:`prunekit.nn.io.load_compact_into` into a freshly built instance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from prunekit.errors import PrunekitError
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


def load_pruned(path: str | os.PathLike[str], model: nn.Module | None = None) -> nn.Module:
    """Load a file of :func:`save_pruned`: into ``model`` if given, else a new transformers model
    of the recorded class and config. Returns the model in eval mode."""
    if model is None:
        user: dict[str, Any] = read_compact_metadata(path).get("user", {})
        cls_name = user.get("transformers_class")
        if not cls_name:
            raise PrunekitError(
                f"{path} holds no transformers class; pass model= (a fresh instance of "
                f"{user.get('torch_class', 'the original class')}) to load it into"
            )
        transformers = import_transformers()
        cls = getattr(transformers, cls_name, None)
        if cls is None:
            raise PrunekitError(f"{path}: transformers has no class {cls_name!r}")
        config_dict = json.loads(user["transformers_config"])
        config = transformers.AutoConfig.for_model(**config_dict)
        model = cls(config)
    load_compact_into(model, path)
    return model.eval()
