"""Library errors name parameters (in backticks: ``give either `alpha` or `weights` ``); on
the command line they name the command's flags instead (``--alpha``, ``--weights``).

Decorate a command with :func:`flag_errors` (under ``@app.command()``): a
:class:`SymmergeError` it raises is re-raised with every backticked name of one of the
command's parameters replaced by that parameter's flag (an argument by its metavar, e.g.
``NETWORKS``); other backticked names stay as they are.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from typer.models import ArgumentInfo, OptionInfo

from symmerge.errors import SymmergeError

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def command_flags(command: Callable[..., Any]) -> dict[str, str]:
    """``{parameter name: flag}`` of a typer command function (an option's first long
    flag, by default ``--name-with-dashes``; an argument's metavar, its name upper-cased)."""
    flags = {}
    for name, p in inspect.signature(command).parameters.items():
        info = p.default
        if isinstance(info, ArgumentInfo):
            flags[name] = info.metavar or name.upper()
        elif isinstance(info, OptionInfo):
            decls = [d for d in info.param_decls or () if d.startswith("--")]
            flags[name] = decls[0] if decls else "--" + name.replace("_", "-")
    return flags


def as_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with each backticked parameter of ``flags`` replaced by its flag."""
    return _NAME.sub(lambda m: flags.get(m.group(1), m.group(0)), message)


def flag_errors(command: F) -> F:
    """The command, its :class:`SymmergeError` messages speaking of its flags."""
    flags = command_flags(command)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SymmergeError as exc:
            raise SymmergeError(as_flags(str(exc), flags)) from exc

    wrapper.flags = flags  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
