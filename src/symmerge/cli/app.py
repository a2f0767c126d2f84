"""Top-level typer app: every command module registers itself here.

User errors (:class:`SymmergeError`) are printed as one ``error: ...`` line on
stderr with exit code 2; no traceback.
"""

from __future__ import annotations

import sys

import typer

from symmerge import __version__
from symmerge.errors import SymmergeError

app = typer.Typer(
    name="symmerge",
    help="Symmetry-aware model merging through parameter canonicalization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Build, import and inspect model zoos.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"symmerge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Symmetry-aware model merging through parameter canonicalization."""


def _register() -> None:
    # Command modules attach their commands to `app` / `zoo_app` on import.
    from symmerge.cli import (  # noqa: F401
        canon_commands,
        experiment_commands,
        quickstart_commands,
        train_commands,
        zoo_build,
        zoo_commands,
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from symmerge.utils.malloc import retain_freed_memory

    retain_freed_memory()  # large CPU tensors: reuse freed blocks (SYMMERGE_MALLOC=0: off)
    _register()
    try:
        app(args=argv)
    except SymmergeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
