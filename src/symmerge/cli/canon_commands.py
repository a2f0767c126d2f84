"""``symmerge canonicalize`` and ``symmerge merge``."""

from __future__ import annotations

from pathlib import Path

import typer

from symmerge.cli.app import app
from symmerge.cli.devices import device_option, use_device
from symmerge.errors import SymmergeError
from symmerge.limits import MAX_ITER, MAX_RESTARTS, MAX_SEED


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise SymmergeError(f"--weights must be comma-separated numbers, got {text!r}") from exc


def _check_method(method: str, choices: tuple[str, ...], run: Path | None) -> None:
    from symmerge.canon import RUN_METHODS

    if method not in choices:
        raise SymmergeError(f"unknown method {method!r}; choose one of {', '.join(choices)}")
    if method in RUN_METHODS and run is None:
        raise SymmergeError(f"method {method!r} needs a trained autoencoder: pass --run RUN")


@app.command()
def canonicalize(
    zoo: Path = typer.Option(..., help="Zoo file to canonicalize."),
    out: Path = typer.Option(..., help="Output zoo file of canonical networks."),
    method: str = typer.Option("sort", help="sort (exact, no learning) | ae | ae-lift"),
    run: Path | None = typer.Option(None, help="Training run directory (ae, ae-lift)."),
    batch_size: int = typer.Option(1024, min=1, help="Networks per batch."),
    strategy: str = typer.Option(
        "forward", help="ae-lift: weight matching to the template, forward (one in-order pass) "
        "| descent (coordinate ascent; --restarts, --max-iter, --seed apply)."
    ),
    restarts: int = typer.Option(0, min=0, max=MAX_RESTARTS,
                                 help="ae-lift, descent: random restarts."),
    max_iter: int = typer.Option(100, min=1, max=MAX_ITER,
                                 help="ae-lift, descent: weight-matching sweeps."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="ae-lift, descent: weight-matching "
                             "seed."),
    device: str = device_option(),
) -> None:
    """Map every network of a zoo to its canonical representative."""
    from symmerge.align import check_strategy
    from symmerge.canon import CANON_METHODS, canonicalize_zoo

    _check_method(method, CANON_METHODS, run)
    check_strategy(strategy)
    dev = use_device(device)
    rep = canonicalize_zoo(zoo, out, method, run=run, batch_size=batch_size, restarts=restarts,
                           max_iter=max_iter, seed=seed, strategy=strategy, device=dev)
    kind = "function-preserving" if rep.exact else "lossy (reconstructions)"
    typer.echo(
        f"canonicalized {rep.networks} networks with {method} ({kind}) in {rep.seconds:.2f}s "
        f"({rep.networks_per_second:.0f} networks/s); wrote {rep.out}"
    )


@app.command()
def merge(
    networks: list[str] = typer.Argument(
        ..., help="Networks to merge: FILE.pth, FILE.safetensors or ZOO:INDEX (two or more)."
    ),
    out: Path = typer.Option(..., help="Output .safetensors state dict (spec in its metadata)."),
    method: str = typer.Option("naive", help="naive | wm | sort | ae | ae-lift"),
    run: Path | None = typer.Option(None, help="Training run directory (ae, ae-lift)."),
    alpha: float | None = typer.Option(None, min=0.0, max=1.0,
                                       help="Two networks: weight of the second (0..1)."),
    weights: str | None = typer.Option(None, help="Comma-separated weights, one per network."),
    spec: str | None = typer.Option(
        None, help="Architecture for .pth inputs: spec JSON, a .json file or a zoo file."
    ),
    wm_iters: int = typer.Option(5, min=0, max=MAX_ITER,
                                 help="wm, N > 2: rounds of re-matching to the mean."),
    strategy: str = typer.Option(
        "forward", help="ae-lift: matching to the template, forward | descent (as canonicalize)."
    ),
    restarts: int = typer.Option(0, min=0, max=MAX_RESTARTS, help="Weight-matching random "
                                 "restarts (wm; ae-lift with --strategy descent)."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED,
                             help="Weight-matching seed (wm; ae-lift with descent)."),
    device: str = device_option(),
) -> None:
    """Merge networks of one architecture by a weighted average in an aligned frame."""
    from symmerge.align import check_strategy
    from symmerge.merge import MERGE_METHODS, check_merge_options, parse_spec
    from symmerge.merge import merge as run_merge
    from symmerge.merge.io import load_network, save_network, stack_networks
    from symmerge.utils.io import check_output_path

    _check_method(method, MERGE_METHODS, run)
    check_strategy(strategy)
    if len(networks) < 2:
        raise SymmergeError(f"merge needs at least two networks, got {len(networks)}")
    w = _parse_weights(weights)
    check_merge_options(len(networks), alpha=alpha, weights=w, wm_iters=wm_iters,
                        restarts=restarts, seed=seed)  # before loading anything
    check_output_path(out)  # before loading and merging
    dev = use_device(device)
    given = parse_spec(spec) if spec else None
    nets = [load_network(n, given) for n in networks]
    for net in nets:
        if net.inferred:
            typer.echo(f"note: {net.source} has no architecture metadata; read as a "
                       f"{net.spec.describe()} (pass --spec for ReLU or tanh MLPs)", err=True)
    net_spec, params = stack_networks(nets)
    result = run_merge(params, net_spec, method, weights=w, alpha=alpha, run=run,
                       wm_iters=wm_iters, restarts=restarts, seed=seed, strategy=strategy,
                       device=dev)
    save_network(out, net_spec, result.params, provenance={
        "merged_from": list(networks), "method": method, "weights": result.weights.tolist(),
        **({"lift_strategy": strategy} if method == "ae-lift" else {}),
        **({"run": str(run)} if run is not None else {}), **result.info,
    })
    typer.echo(
        f"merged {len(networks)} {net_spec.describe()} networks with {method} "
        f"(weights {', '.join(f'{x:.3g}' for x in result.weights.tolist())}) in "
        f"{result.seconds:.2f}s; wrote {out}"
    )
