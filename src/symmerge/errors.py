"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any


class SymmergeError(Exception):
    """An error caused by bad input (files, shapes, options), reported without a traceback.

    A message names a function's parameters by their Python names, as a caller passes
    them (``per_image must be positive, got 0``; ``pass fresh=True``). A message that
    begins with ``<parameter> must`` names that parameter; ``params`` lists any others
    it names. The CLI shows the flags of the command's options instead
    (``--per-image must be positive, got 0``; ``pass --fresh``).
    """

    def __init__(self, *args: object, params: Iterable[str] = ()) -> None:
        super().__init__(*args)
        self.params: tuple[str, ...] = tuple(params)

    def __reduce__(self) -> tuple[Any, ...]:  # keeps ``params`` across processes
        return functools.partial(type(self), params=self.params), self.args
