"""``symmerge quickstart``."""

from __future__ import annotations

from pathlib import Path

import typer

from symmerge.cli.app import app
from symmerge.limits import MAX_SEED


@app.command()
def quickstart(
    out: Path = typer.Option(Path("quickstart-out"), help="Output directory."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Seed of every stage."),
    size: str = typer.Option(
        "default", help="default (sized for a 10-minute budget on 2 CPU cores; measured "
        "times in BENCHMARKS.md) | tiny (for tests)."
    ),
) -> None:
    """Zoo -> autoencoder -> experiments -> report, on the embedded MNIST digits."""
    from symmerge.pipeline import quickstart as run_quickstart

    result = run_quickstart(out, seed=seed, size=size, log=lambda m: typer.echo(m, err=True))
    typer.echo("PD-orbit loss barriers: " + ", ".join(
        f"{m}={v:.3g}" for m, v in result.orbit_interpolation.barriers().items()))
    typer.echo(f"total {result.timings['total']:.0f}s; report: {result.report}")
