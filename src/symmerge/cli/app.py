"""Top-level typer app: every command module registers itself here.

User errors (:class:`SymmergeError`) and usage errors (unknown flags, option values out
of range) are printed as one ``error: ...`` line on stderr with exit code 2; no traceback.
The parameters a library error names are shown as the command's flags
(:mod:`symmerge.cli.errors`). :func:`main` changes no setting of the process it runs in
(tests call it); the console script, :func:`console_main`, also tunes the allocator.
"""

from __future__ import annotations

import sys

import typer
import typer.main

from symmerge import __version__
from symmerge.cli.errors import speak_flags
from symmerge.errors import SymmergeError
from symmerge.utils.malloc import retain_freed_memory

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
        eval_commands,
        experiment_commands,
        quickstart_commands,
        train_commands,
        zoo_build,
        zoo_commands,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default: the process's arguments) and exit with its code.

    It leaves the process's settings alone (the allocator, ``sys.excepthook``), so that
    calling it from Python, as tests do, changes nothing for what runs after it.
    """
    _register()
    command = speak_flags(typer.main.get_command(app))
    try:
        code = command.main(args=argv, standalone_mode=False)
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


def console_main() -> None:
    """The ``symmerge`` console script and ``python -m symmerge``: :func:`main` in a
    process of its own, which first tells the C allocator to keep freed memory for
    large CPU tensors (:func:`~symmerge.utils.malloc.retain_freed_memory`;
    ``SYMMERGE_MALLOC=0``: off)."""
    retain_freed_memory()
    main()
