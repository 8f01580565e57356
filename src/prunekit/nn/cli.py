"""``prunekit nn``: neural-network pruning commands, gathered from the nn subpackages.

Each module in ``_COMMAND_MODULES`` defines ``register(nn_app: typer.Typer) -> None``.
"""

from __future__ import annotations

import importlib

import typer

nn_app = typer.Typer(
    help="Prune PyTorch networks: sparsity (masks), structured removal, one-shot calibration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = (
    "prunekit.nn.sparsity_cli",
    "prunekit.nn.structured.cli",
    "prunekit.nn.oneshot.cli",
)


def register(app: typer.Typer) -> None:
    """Add ``prunekit nn ...`` (and ``prunekit llm``, an alias of ``nn oneshot``) to ``app``."""
    for module in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(nn_app)
        root = getattr(mod, "register_root", None)
        if root is not None:
            root(app)
    app.add_typer(nn_app, name="nn")
