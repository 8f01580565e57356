"""The ``prunekit`` command. Each domain adds its own subcommands through ``register(app)``."""

from __future__ import annotations

import importlib

import typer

from prunekit import __version__

app = typer.Typer(
    name="prunekit",
    help="Prune decision trees, ensembles and neural networks; measure what it cost and gained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that define ``register(app: typer.Typer) -> None``; each adds its commands.
_COMMAND_MODULES = (
    "prunekit.demo",
    "prunekit.trees.cli",
    "prunekit.ensembles.cli",
    "prunekit.nn.cli",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"prunekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """prunekit: smaller, faster models that keep their accuracy."""


for _module in _COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as _exc:  # a domain not built yet must not break the others
        if _exc.name != _module:
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Entry point of the ``prunekit`` console script."""
    from prunekit.errors import PrunekitError

    try:
        app()
    except PrunekitError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
