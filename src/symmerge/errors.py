"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class SymmergeError(Exception):
    """An error caused by bad input (files, shapes, options), reported without a traceback."""
