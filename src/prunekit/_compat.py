"""Optional dependencies: import them with a clear error naming the extra that provides them."""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from prunekit.errors import OptionalDependencyError


def optional_import(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`OptionalDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OptionalDependencyError(
            f"{module!r} is needed here; install it with: pip install 'prunekit[{extra}]'"
        ) from exc


def ensure_torchvision_ops() -> bool:
    """Make ``import torchvision`` work when its compiled ops do not load beside this torch.

    torchvision 0.28's C extension does not load beside the CPU build of torch 2.13; importing
    torchvision then fails because the op schemas ``torchvision::nms`` and ``torchvision::qnms``
    are missing. This loads the extension the way torchvision does and, only if that fails,
    defines those two schemas (the pure-Python parts -- models, transforms -- then work; the
    detection ops stay unavailable). Torchvision itself is not imported. Returns True when the
    schemas had to be defined. Called on ``import prunekit.nn``; safe to call many times.
    """
    global _TV_LIBRARY
    if _TV_LIBRARY is not None:
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    import torch

    if _has_schema(torch, "torchvision::nms"):
        return False
    folder = Path(next(iter(spec.submodule_search_locations)))
    for lib_path in sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd")):
        try:
            torch.ops.load_library(str(lib_path))
            return False
        except (ImportError, OSError):
            break
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIBRARY = lib
    return True


class _TorchvisionImportHook(importlib.abc.MetaPathFinder):
    """Runs :func:`ensure_torchvision_ops` just before the first ``import torchvision``.

    Installed by :func:`prepare_torchvision_import` when torch is not imported yet, so that
    ``import prunekit.nn`` stays free of torch; it removes itself on first use and otherwise
    leaves the import to the normal finders.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "torchvision":
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
            ensure_torchvision_ops()
        return None


def prepare_torchvision_import() -> None:
    """Make a later plain ``import torchvision`` work (see :func:`ensure_torchvision_ops`).

    If torch is already imported the schemas are checked now; otherwise a one-shot import hook
    does it when torchvision is first imported, so importing prunekit costs no torch import.
    """
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return
    if "torch" in sys.modules:
        ensure_torchvision_ops()
    elif not any(isinstance(f, _TorchvisionImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionImportHook())


def _has_schema(torch: ModuleType, name: str) -> bool:
    try:
        torch._C._get_schema(name, "")
    except RuntimeError:
        return False
    return True


def import_torchvision() -> ModuleType:
    """Import torchvision (see :func:`ensure_torchvision_ops`), or name the extra to install."""
    if importlib.util.find_spec("torchvision") is None:
        raise OptionalDependencyError(
            "'torchvision' is needed here; install it with: pip install 'prunekit[bench]'"
        )
    ensure_torchvision_ops()
    return importlib.import_module("torchvision")


_TV_LIBRARY = None
