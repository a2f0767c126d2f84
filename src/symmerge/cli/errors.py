"""Library errors in the CLI's words: the parameters a message names become the flags of
the running command's options (``per_image must be positive`` -> ``--per-image must be
positive``), from the options click knows (each one's parameter name and flags)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from symmerge.errors import SymmergeError

#: a message that begins with ``<parameter> must`` names that parameter
_LEADING = re.compile(r"(\w+) must\b")


@dataclass(frozen=True)
class Flag:
    """How the CLI spells one parameter: its flag, and for a switch the flag that turns
    it off (``--no-x``), if any."""

    flag: str
    switch: bool = False
    off: str | None = None


def option_flags(command: Any) -> dict[str, Flag]:
    """``{parameter name: Flag}`` of a click command's options (its longest flag)."""
    out = {}
    for param in command.params:
        if getattr(param, "param_type_name", None) == "option" and param.name and param.opts:
            off = max(param.secondary_opts, key=len) if param.secondary_opts else None
            out[param.name] = Flag(max(param.opts, key=len), bool(param.is_flag), off)
    return out


def _value(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text


def _spelled(spec: Flag, value: str) -> str:
    """How the CLI writes ``name=value`` of the parameter whose flag is ``spec``."""
    if spec.switch and value in ("True", "False"):
        return spec.flag if value == "True" else (spec.off or f"{spec.flag}=False")
    return f"{spec.flag} {_value(value)}"


def flag_names(message: str, flags: Mapping[str, Flag], params: Iterable[str] = ()) -> str:
    """``message`` with every parameter it names (``params``, and the one it begins
    with when it begins with ``<parameter> must``) that has a flag in ``flags`` written as
    the flag: ``name=True`` of a switch as its flag (``name=False`` as its off flag),
    ``name=value`` as ``flag value``; a name the message never writes as ``name=...``
    wherever it stands as a word of its own."""
    names = set(params)
    leading = _LEADING.match(message)
    if leading:
        names.add(leading.group(1))
    for name in sorted(names & set(flags), key=len, reverse=True):
        spec = flags[name]
        word = rf"(?<![\w.-]){re.escape(name)}"
        if re.search(rf"{word}=", message):
            message = re.sub(rf"{word}=('[^']*'|\"[^\"]*\"|[^\s,;)]+)",
                             lambda m, spec=spec: _spelled(spec, m.group(1)), message)
        else:
            message = re.sub(rf"{word}(?![\w-])", lambda _m, flag=spec.flag: flag, message)
    return message


def _leaves(command: Any) -> Iterator[Any]:
    commands = getattr(command, "commands", None)
    if commands is None:
        yield command
        return
    for sub in commands.values():
        yield from _leaves(sub)


def _speaking_flags(callback: Callable[..., Any], flags: Mapping[str, Flag]
                    ) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except SymmergeError as exc:
            exc.args = (flag_names(str(exc), flags, exc.params),)
            raise

    return run


def speak_flags(command: Any) -> Any:
    """``command`` (a click command or group), every command of which now raises its
    :class:`SymmergeError` messages with its own flags for the parameters they name."""
    for leaf in _leaves(command):
        if leaf.callback is not None:
            leaf.callback = _speaking_flags(leaf.callback, option_flags(leaf))
    return command
