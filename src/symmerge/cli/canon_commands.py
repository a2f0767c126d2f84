"""``symmerge canonicalize`` and ``symmerge merge``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from symmerge.cli.app import app
from symmerge.cli.devices import device_option, use_device
from symmerge.cli.eval_commands import DATA_HELP, data_option
from symmerge.errors import SymmergeError
from symmerge.limits import MAX_ITER, MAX_RESTARTS, MAX_SEED, REPAIR_IMAGES
from symmerge.methods import default_method, get_method, method_names, methods_needing

if TYPE_CHECKING:
    from symmerge.evaluation import EvalData
    from symmerge.merge import Network


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise SymmergeError(f"weights must be comma-separated numbers, got {text!r}") from exc


def _parse_ints(text: str | None, name: str) -> int | tuple[int, ...] | None:
    """``"2"`` -> 2, ``"1,2,1"`` -> (1, 2, 1) (one per convolution); None stays None."""
    if text is None:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise SymmergeError(f"{name} must be an integer or comma-separated integers (one per "
                            f"convolution), got {text!r}") from exc
    return values[0] if len(values) == 1 else values


def _hints(activation: str | None, w0: float | None, stride: str | None,
           padding: str | None):
    """The architecture hints of plain state dicts (None when no option was given)."""
    from symmerge.merge import ArchitectureHints

    if activation is None:
        given = [n for n, v in (("w0", w0), ("stride", stride), ("padding", padding))
                 if v is not None]
        if given:
            raise SymmergeError(f"{', '.join(given)}: only with activation (they describe "
                                "plain state dicts); pass activation too",
                                params=(*given, "activation"))
        return None
    return ArchitectureHints(activation, w0, _parse_ints(stride, "stride"),
                             _parse_ints(padding, "padding"))


def _check_method(method: str, use: str, run: Path | None) -> None:
    """Refuse an unknown method, and a method without the run it needs, before any work."""
    from symmerge.methods import missing_resource

    why = missing_resource(get_method(method, use), {"run": run})
    if why is not None:
        raise SymmergeError(f"method {method!r} {why}", params=("run",))


def _choices(use: str) -> str:
    return " | ".join(method_names(use))


def _run_help(use: str) -> str:
    return f"Training run directory ({', '.join(methods_needing('run', use))})."


@app.command()
def canonicalize(
    zoo: Path = typer.Option(..., help="Zoo file to canonicalize."),
    out: Path = typer.Option(..., help="Output zoo file of canonical networks."),
    method: str = typer.Option(default_method("canonicalize"), help=_choices("canonicalize")),
    run: Path | None = typer.Option(
        None, help=_run_help("canonicalize")),
    batch_size: int = typer.Option(1024, min=1, help="Networks per batch."),
    strategy: str | None = typer.Option(
        None, help="Weight matching to the template (methods that match): forward (one "
        "in-order pass; the default) | descent (coordinate ascent; --restarts, --max-iter, "
        "--seed apply)."
    ),
    restarts: int = typer.Option(0, min=0, max=MAX_RESTARTS,
                                 help="Weight matching, descent: random restarts."),
    max_iter: int = typer.Option(100, min=1, max=MAX_ITER,
                                 help="Weight matching, descent: sweeps."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Weight matching, descent: seed."),
    device: str = device_option(),
) -> None:
    """Map every network of a zoo to its canonical representative."""
    from symmerge.align import MatchOptions
    from symmerge.canon import canonicalize_zoo
    from symmerge.utils.io import check_output_path

    _check_method(method, "canonicalize", run)
    matching = MatchOptions(restarts=restarts, max_iter=max_iter, seed=seed, strategy=strategy)
    check_output_path(out)
    dev = use_device(device)
    rep = canonicalize_zoo(zoo, out, method, run=run, batch_size=batch_size, matching=matching,
                           device=dev)
    kind = "function-preserving" if rep.exact else "lossy (reconstructions)"
    typer.echo(
        f"canonicalized {rep.networks} networks with {method} ({kind}) in {rep.seconds:.2f}s "
        f"({rep.networks_per_second:.0f} networks/s); wrote {rep.out}"
    )


@app.command()
def merge(
    networks: list[str] = typer.Argument(
        ..., help="Networks to merge: FILE.pth, FILE.safetensors or ZOO:INDEX (INDEX from 0; "
        "two or more)."
    ),
    out: Path = typer.Option(
        ..., help="Output state dict: .safetensors (the spec in its metadata) or .pth/.pt (a "
        "torch state dict). Inputs that are plain state dicts give it their own keys and "
        "dtypes, so it loads into their module."),
    method: str = typer.Option(default_method("merge"), help=_choices("merge")),
    run: Path | None = typer.Option(
        None, help=_run_help("merge")),
    alpha: float | None = typer.Option(None, min=0.0, max=1.0,
                                       help="Two networks: weight of the second (0..1)."),
    weights: str | None = typer.Option(None, help="Comma-separated weights, one per network."),
    spec: str | None = typer.Option(
        None, help="Architecture of plain state dicts (.pth, or safetensors without "
        "symmerge's metadata): spec JSON, a .json file or a zoo file. Instead of --activation."
    ),
    activation: str | None = typer.Option(
        None, help="Plain state dicts (an nn.Sequential MLP, or a CNN: Conv2d layers, "
        "global average pooling, Linear layers): the hidden activation, relu | tanh | sine "
        "(sine: MLPs only). Instead of --spec."),
    w0: float | None = typer.Option(
        None, help="With --activation sine: the frequency w0 of sin(w0 x) (default 30)."),
    stride: str | None = typer.Option(
        None, help="With --activation, CNNs: the convolutions' stride, one integer or one "
        "per convolution (1,2,2); default 1."),
    padding: str | None = typer.Option(
        None, help="With --activation, CNNs: the convolutions' zero padding, one integer or "
        "one per convolution; default 0."),
    wm_iters: int = typer.Option(5, min=0, max=MAX_ITER,
                                 help="Weight matching, N > 2: rounds of re-matching to the "
                                      "mean."),
    strategy: str | None = typer.Option(
        None, help="Weight matching: forward | descent (default: descent to another network, "
        "forward to a template, as canonicalize)."
    ),
    restarts: int = typer.Option(0, min=0, max=MAX_RESTARTS, help="Weight-matching random "
                                 "restarts (descent)."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED,
                             help="Weight-matching seed (descent)."),
    data: str | None = data_option(
        DATA_HELP + " --repair measures on the training images of the same source and split."),
    repair: bool = typer.Option(
        False, "--repair", help="REPAIR the merge (MLPs, CNNs): rescale each hidden neuron so "
        "that its pre-activation mean and std on training images (see --data) are the "
        "weighted mix of the aligned inputs' (METHOD.md 8.7)."),
    repair_images: int = typer.Option(REPAIR_IMAGES, min=2,
                                      help="--repair: images measured (a seeded sample)."),
    device: str = device_option(),
) -> None:
    """Merge networks of one architecture by a weighted average in an aligned frame, and
    show the merged network's quality beside the inputs' (see ``symmerge eval``)."""
    from symmerge.align import MatchOptions
    from symmerge.evaluation import merge_quality
    from symmerge.merge import check_merge_options, parse_spec
    from symmerge.merge import merge as run_merge
    from symmerge.merge.io import (
        TORCH_SUFFIXES,
        load_network,
        output_keys,
        save_network,
        stack_networks,
    )
    from symmerge.specs import SirenSpec
    from symmerge.utils.io import check_output_path

    _check_method(method, "merge", run)
    hints = _hints(activation, w0, stride, padding)
    matching = MatchOptions(restarts=restarts, seed=seed, strategy=strategy)
    if len(networks) < 2:
        raise SymmergeError(f"merge needs at least two networks, got {len(networks)}")
    w = _parse_weights(weights)
    check_merge_options(len(networks), alpha=alpha, weights=w, wm_iters=wm_iters)
    check_output_path(out)  # before loading and merging
    dev = use_device(device)
    given = parse_spec(spec) if spec else None
    nets = [load_network(n, given, hints) for n in networks]
    for net in nets:
        if net.inferred:
            typer.echo(f"note: {net.source} has no architecture metadata; read as a "
                       f"{net.spec.describe()} (pass --activation for other networks)",
                       err=True)
    net_spec, params = stack_networks(nets)
    held, no_data = _merge_data(nets, data)  # before merging: a bad --data stops it
    keys = output_keys(nets)
    if repair:  # its images before merging too
        from symmerge.merge.repair import REPAIR_EPS, repair_inputs

        # REPAIR gives every hidden layer a bias: the user's layout must have one to write
        if keys is not None:
            last = len(keys.keys) // 2 - 1
            if bias_less := [i for i in keys.bias_free_layers() if i < last]:
                owner = next(n.source for n in nets if n.keys is keys)
                raise SymmergeError(
                    f"repair sets the biases of the hidden layers, and layer(s) "
                    f"{', '.join(map(str, bias_less))} of {owner} have none (bias=False); "
                    "merge without repair, or give those layers biases", params=("repair",))
        if held is None:
            raise SymmergeError(f"repair=True needs images: {no_data}", params=("repair",))
        images, described = repair_inputs(net_spec, held.settings, count=repair_images)
    result = run_merge(params, net_spec, method, weights=w, alpha=alpha, run=run,
                       wm_iters=wm_iters, matching=matching, device=dev)
    merged, repaired = result.params, {}
    if repair:
        from symmerge.merge.repair import repair as run_repair

        merged = run_repair(net_spec, merged.to(dev), result.aligned.to(dev), images.to(dev),
                            weights=result.weights).to(result.params.device)
        repaired = {"repair": {"images": described, "eps": REPAIR_EPS}}
    quality = None if held is None else merge_quality(
        [(n.source, n.params) for n in nets], merged, net_spec, held)
    save_network(out, net_spec, merged, provenance={
        "merged_from": list(networks), "method": method, "weights": result.weights.tolist(),
        **result.provenance, **({"run": str(run)} if run is not None else {}), **result.info,
        **repaired,
    }, keys=keys, quality=None if quality is None else quality.to_dict())
    typer.echo(
        f"merged {len(networks)} {net_spec.describe()} networks with {method} "
        f"(weights {', '.join(f'{x:.3g}' for x in result.weights.tolist())}) in "
        f"{result.seconds:.2f}s" + (f", repaired on {described}" if repair else "")
        + f"; wrote {out}"
    )
    typer.echo(quality.table() if quality is not None else f"quality not measured: {no_data}")
    if keys is None and Path(out).suffix.lower() in TORCH_SUFFIXES \
            and not isinstance(net_spec, SirenSpec):
        typer.echo(f"note: {out} is a plain state dict, which records no architecture; read "
                   f"it back with the flags of a {net_spec.describe()} (--activation ...)",
                   err=True)


def _merge_data(nets: list[Network], data: str | None) -> tuple[EvalData | None, str | None]:
    """The evaluation data of a merge, or None and why there is none (in flags' words)."""
    from symmerge.cli.errors import Flag, flag_names
    from symmerge.evaluation import NoEvalData, merge_evaluation_data

    try:
        return merge_evaluation_data(nets, data), None
    except NoEvalData as exc:
        return None, flag_names(str(exc), {"data": Flag("--data")}, exc.params)
