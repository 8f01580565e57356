"""Import transformers safely: torchvision (which transformers imports) needs a workaround here."""

from __future__ import annotations

import contextlib
from types import ModuleType

from prunekit._compat import import_torchvision, optional_import
from prunekit.errors import OptionalDependencyError


def import_transformers() -> ModuleType:
    """Import ``transformers`` after :func:`prunekit._compat.import_torchvision`.

    transformers imports torchvision when present; torchvision's C extension does not load on
    the CPU build of torch, and the compat shim makes that import work. Raises
    :class:`OptionalDependencyError` naming the ``transformers`` extra when it is missing.
    """
    # no torchvision: transformers then does not import it
    with contextlib.suppress(OptionalDependencyError):
        import_torchvision()
    return optional_import("transformers", "transformers")
