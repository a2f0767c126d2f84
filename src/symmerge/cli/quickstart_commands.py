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
        "default", help="default (sized for a 10-minute budget on 2 CPU cores) | full (all "
        "5,000 digits x 2 INRs, 1,000 CNNs per activation; sized for 90 minutes) | tiny "
        "(for tests). Measured times in BENCHMARKS.md."
    ),
) -> None:
    """Zoo -> autoencoder -> experiments -> report, on the embedded MNIST digits.

    Each stage prints its number, the time so far and an ETA. Rerunning the same command
    into the same --out resumes an interrupted run from its finished stages.
    """
    from symmerge.pipeline import quickstart as run_quickstart

    try:
        result = run_quickstart(out, seed=seed, size=size,
                                log=lambda m: typer.echo(m, err=True))
    except KeyboardInterrupt:
        again = f"symmerge quickstart --out {out} --seed {seed} --size {size}"
        typer.echo(f"\ninterrupted: `{again}` resumes from the finished stages", err=True)
        raise typer.Exit(130) from None
    typer.echo("PD-orbit loss barriers: " + ", ".join(
        f"{m}={v:.3g}" for m, v in result.orbit_interpolation.barriers().items()))
    typer.echo(f"total {result.timings['total']:.0f}s; report: {result.report}")
