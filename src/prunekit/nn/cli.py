"""``prunekit nn``: neural-network pruning commands, gathered from the nn subpackages.

Each module in ``_COMMANDS`` defines ``register(nn_app: typer.Typer) -> None``. A subcommand's
module is imported only when that subcommand runs, so ``prunekit nn compact-info`` (which reads
a JSON header) never imports torch.
"""

from __future__ import annotations

import functools
from typing import Any

import typer
from typer.core import TyperGroup

# subcommand -> (module defining register(nn_app), one-line help for `prunekit nn --help`)
_COMMANDS: dict[str, tuple[str, str]] = {
    "sparsity": ("prunekit.nn.sparsity_cli",
                 "Train a showcase network, prune it, fine-tune with masks kept, and report."),
    "compact-info": ("prunekit.nn.sparsity_cli",
                     "Show how each tensor of a compact sparse file is stored (no torch import)."),
    "structured": ("prunekit.nn.structured.cli",
                   "Structured pruning: remove channels, heads, blocks (real speed-ups)."),
    "sensitivity": ("prunekit.nn.sensitivity_cli",
                    "Train a showcase briefly; how each layer/group tolerates pruning."),
    "oneshot": ("prunekit.nn.oneshot.cli",
                "One-shot pruning of a transformer with calibration data (SparseGPT, Wanda)."),
}


@functools.cache
def _load(name: str) -> Any:
    from prunekit._cli_common import hide_flag_metavars
    from prunekit.cli import load_registered

    return hide_flag_metavars(load_registered(_COMMANDS[name][0], name))


class _LazyNNGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from prunekit.cli import _LazyCommand

        if cmd_name not in _COMMANDS:
            return super().get_command(ctx, cmd_name)
        return _LazyCommand(cmd_name, _COMMANDS[cmd_name][1], loader=_load)


nn_app = typer.Typer(
    cls=_LazyNNGroup,
    help="Prune PyTorch networks: sparsity (masks), structured removal, one-shot calibration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@nn_app.callback()
def _nn() -> None:
    """Prune PyTorch networks: sparsity (masks), structured removal, one-shot calibration."""


def register(app: typer.Typer) -> None:
    """Add ``prunekit nn ...`` to ``app`` (``prunekit llm`` is registered by the root)."""
    app.add_typer(nn_app, name="nn")
