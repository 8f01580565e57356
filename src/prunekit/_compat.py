"""Optional dependencies: import them with a clear error naming the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

from prunekit.errors import OptionalDependencyError


def optional_import(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`OptionalDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OptionalDependencyError(
            f"{module!r} is needed here; install it with: pip install 'prunekit[{extra}]'"
        ) from exc


def import_torchvision() -> ModuleType:
    """Import torchvision, working around a C extension that does not load on the CPU torch.

    torchvision 0.28's compiled ops do not load beside the CPU build of torch 2.13; importing it
    then fails because the op schemas ``torchvision::nms`` and ``torchvision::qnms`` are missing.
    If (and only if) that happens, define those schemas and import again: the pure-Python parts
    (models, transforms) then work; the detection ops stay unavailable.
    """
    global _TV_LIBRARY
    try:
        return importlib.import_module("torchvision")
    except ImportError as exc:
        raise OptionalDependencyError(
            "'torchvision' is needed here; install it with: pip install 'prunekit[bench]'"
        ) from exc
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc) or _TV_LIBRARY is not None:
            raise
    import sys

    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIBRARY = lib
    return importlib.import_module("torchvision")


_TV_LIBRARY = None
