"""The ``symmerge`` command-line interface (typer)."""
