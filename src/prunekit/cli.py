"""The ``prunekit`` command.

Each domain module defines ``register(app: typer.Typer) -> None`` adding its commands. The root
group loads a domain only when its command runs, so ``prunekit --help`` and ``prunekit --version``
do not pay for importing torch and scikit-learn.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from prunekit import __version__

try:  # typer >= 0.20 ships its own copy of click; older releases use click itself
    from typer import _click as click
except ImportError:  # pragma: no cover - depends on the installed typer
    import click  # type: ignore[no-redef]

# command name -> (module defining register(app), one-line help shown by `prunekit --help`)
_LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("prunekit.demo", "Run the end-to-end showcase on bundled data and write a report."),
    "tree": ("prunekit.trees.cli", "Grow a decision tree, apply every pruning method, compare."),
    "ensemble": ("prunekit.ensembles.cli", "Prune a tree ensemble to a small sub-ensemble."),
    "nn": ("prunekit.nn.cli", "Prune PyTorch networks: sparsity, structured, one-shot."),
    "llm": ("prunekit.nn.oneshot.cli",
            "One-shot pruning of a transformer (alias of `nn oneshot`)."),
    "export": ("prunekit.deploy.cli", "Export a model to verified ONNX, optionally int8."),
}


@functools.cache
def _load_command(name: str) -> click.Command | None:
    return load_registered(_LAZY_COMMANDS[name][0], name, root=True)


def load_registered(module: str, name: str, *, root: bool = False) -> click.Command | None:
    """Command ``name`` of ``module``'s ``register`` (``register_root`` for a root alias)."""
    holder = typer.Typer()
    mod = importlib.import_module(module)
    registrar = getattr(mod, "register_root", None) if root else None
    (registrar or mod.register)(holder)
    from prunekit._cli_common import hide_flag_metavars

    group = typer.main.get_group(holder)
    return hide_flag_metavars(group.get_command(click.Context(group), name))


class _LazyCommand(TyperCommand):
    """Stands for a domain command in help listings; the real command is built when it runs."""

    rich_help_panel = None

    def __init__(self, name: str, help_text: str, loader: Any = None) -> None:
        super().__init__(name, help=help_text, short_help=help_text)
        self._loader = loader or _load_command

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> click.Context:
        real = self._loader(self.name or "")
        if real is None:  # pragma: no cover - a registration bug, not a user error
            raise click.UsageError(f"command {self.name!r} is not available")
        return real.make_context(info_name, args, parent=parent, **extra)


class _LazyGroup(TyperGroup):
    def invoke(self, ctx: click.Context) -> Any:
        from prunekit._cli_common import CommandInterrupted

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # past click/typer, which would print or hide it
            raise CommandInterrupted() from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            command = _LazyCommand(cmd_name, _LAZY_COMMANDS[cmd_name][1])
        return command


app = typer.Typer(
    name="prunekit",
    cls=_LazyGroup,
    help="Prune decision trees, ensembles and neural networks; measure what it cost and gained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"prunekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of an error (or set PRUNEKIT_DEBUG=1)."
    ),
) -> None:
    """prunekit: smaller, faster models that keep their accuracy.

    Exit status: 0 success, 2 a bad option, input or output (one 'error:' line), 1 an
    unexpected error (a bug; --debug shows its traceback), 130 interrupted.
    """
    if debug:
        from prunekit._cli_common import set_debug

        set_debug(True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``prunekit`` console script (``argv`` defaults to ``sys.argv[1:]``).

    Every failure ends as one stderr line and an exit status; see :mod:`prunekit._cli_common`.
    """
    from prunekit._cli_common import hide_flag_metavars, run_cli

    raise SystemExit(run_cli(hide_flag_metavars(typer.main.get_command(app)), argv))


if __name__ == "__main__":
    main()
