"""Top-level typer app: every command module registers itself here.

User errors (:class:`SymmergeError`) and usage errors (unknown flags, option values out
of range) are printed as one ``error: ...`` line on stderr with exit code 2; no traceback.
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


#: click's exception classes, wherever this typer takes click from (vendored or the package)
_CLICK_ERROR, _USAGE_ERROR = (
    next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)
    for name in ("ClickException", "UsageError")
)


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
        code = app(args=argv, standalone_mode=False)
    except SymmergeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except _USAGE_ERROR as exc:  # bad flags or option values: one line, like our own errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command group: its help
            exc.show()
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(exc.exit_code)
    except _CLICK_ERROR as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
