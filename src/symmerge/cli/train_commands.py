"""``symmerge train``, ``symmerge encode`` and ``symmerge reconstruct``."""

from __future__ import annotations

from pathlib import Path

import typer

from symmerge.cli.app import app
from symmerge.cli.devices import device_option, use_device
from symmerge.utils.io import check_output_path, require_finite, save_safetensors


@app.command()
def train(
    zoo: Path | None = typer.Option(None, help="Zoo file (safetensors) to train on."),
    out: Path | None = typer.Option(
        None, help="Run directory (created; an existing run resumes)."
    ),
    preset: str | None = typer.Option(
        None, help="quick (default) | inr | cnn-relu | cnn-tanh | paper-inr | "
        "paper-inr-ablation | paper-inr-permutation | paper-cnn-relu | paper-cnn-tanh | "
        "paper-ng-inr | paper-ng-cnn-relu | paper-ng-cnn-tanh (METHOD.md 4.6)."
    ),
    max_epochs: int | None = typer.Option(None, help="Override the preset's number of epochs."),
    config: Path | None = typer.Option(None, help="YAML file overriding preset values."),
    encoder: str | None = typer.Option(
        None, help="Override the encoder mode: sign | scale | permutation | pna."
    ),
    accelerator: str = typer.Option(
        "auto", help="Lightning accelerator: auto (a GPU when there is one) | cpu | gpu | cuda "
        "| mps | tpu."
    ),
    precision: str | None = typer.Option(
        None, help="Override the configuration's precision: 32 | bf16-mixed (bfloat16 "
        "autocast; the encoder, the decoder's output layer and SIREN renders stay float32)."
    ),
    devices: int = typer.Option(1, help="Devices per node (>1 uses DDP)."),
    num_nodes: int = typer.Option(1, help="Number of nodes for multi-node DDP."),
    logger: str = typer.Option("csv", help="csv | tensorboard | wandb (csv is always written)."),
    seed: int | None = typer.Option(None, help="Override the configuration's seed."),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the resolved configuration as YAML and exit "
        "without training (--zoo resolves its family-dependent values; --out not needed)."
    ),
) -> None:
    """Train the symmetry-aware autoencoder on a zoo.

    An existing run resumes from its last epoch with its saved config.yaml (a larger
    --max-epochs extends it); a finished run, or one its early-stopping rule stopped, is
    left as it is.
    """
    from symmerge.errors import SymmergeError
    from symmerge.training import train as run_train

    overrides: dict = {}
    if encoder is not None:
        overrides["encoder"] = {"mode": encoder}
    if seed is not None:
        overrides["seed"] = seed
    if precision is not None:
        overrides["precision"] = precision
    if print_config:
        _print_config(preset, config, overrides, max_epochs, zoo)
        return
    missing = [name for name, value in (("--zoo", zoo), ("--out", out)) if value is None]
    if missing:
        raise SymmergeError(f"train needs {' and '.join(missing)} (or --print-config)")
    assert zoo is not None and out is not None
    result = run_train(
        zoo, out, preset=preset, config_file=config, overrides=overrides,
        max_epochs=max_epochs, accelerator=accelerator, devices=devices, num_nodes=num_nodes,
        logger=logger, log=lambda msg: typer.echo(msg, err=True),
    )
    if result.metrics and not result.up_to_date:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
        typer.echo(f"trained in {result.timings['total_s']:.1f}s: {metrics}")
        typer.echo(f"run directory: {result.run_dir}")


@app.command()
def encode(
    run: Path = typer.Option(..., help="Training run directory."),
    zoo: Path = typer.Option(..., help="Zoo file to encode."),
    out: Path = typer.Option(..., help="Output safetensors file with tensor `latents` [N, d]."),
    batch_size: int = typer.Option(1024, min=1),
    device: str = device_option(),
) -> None:
    """Encode every network of a zoo to its latent (zoo order)."""
    from symmerge.models.runs import encode as run_encode
    from symmerge.models.runs import load_run
    from symmerge.zoo import load_zoo

    check_output_path(out)
    dev = use_device(device)
    z = load_zoo(zoo)
    model, spec, _ = load_run(run, z.spec, holder=str(zoo))
    z.check_finite()
    latents = run_encode(model, z.params, batch_size, device=dev).contiguous()
    require_finite(latents, f"the latents of {zoo} through {run}")
    save_safetensors(out, {"latents": latents, "labels": z.labels.contiguous()},
                     {"run": str(run), "zoo": str(zoo)})
    typer.echo(f"wrote latents {tuple(latents.shape)} to {out}")


@app.command()
def reconstruct(
    run: Path = typer.Option(..., help="Training run directory."),
    zoo: Path = typer.Option(..., help="Zoo file to reconstruct."),
    out: Path = typer.Option(..., help="Output zoo file of decoded networks."),
    batch_size: int = typer.Option(1024, min=1),
    device: str = device_option(),
) -> None:
    """Decode every network of a zoo through the autoencoder into a new zoo file."""
    from symmerge.models.runs import load_run
    from symmerge.models.runs import reconstruct as run_reconstruct
    from symmerge.zoo import load_zoo, save_zoo

    check_output_path(out)
    dev = use_device(device)
    z = load_zoo(zoo)
    model, spec, _ = load_run(run, z.spec, holder=str(zoo))
    z.check_finite()
    decoded = run_reconstruct(model, z.params, batch_size, device=dev)
    require_finite(decoded, f"the networks of {zoo} decoded through {run}")
    # keep the source's provenance: its data, split and input transform evaluate ZOO2 too
    provenance = {**{k: v for k, v in z.provenance.items() if k != "symmerge_version"},
                  "reconstructed_from": str(zoo), "run": str(run)}
    save_zoo(out, spec, decoded, z.labels, image_index=z.image_index, split=z.stored_split,
             metrics=z.split_metrics(), provenance=provenance)
    typer.echo(f"wrote {decoded.shape[0]} decoded networks to {out}")


def _print_config(
    preset: str | None, config: Path | None, overrides: dict, max_epochs: int | None,
    zoo: Path | None,
) -> None:
    """Echo the configuration a new run would resolve (unresolved family-dependent values
    without a zoo, e.g. ``mode: auto``)."""
    from symmerge.models.train_config import config_yaml, resolve_config
    from symmerge.zoo import load_zoo

    if max_epochs is not None:
        overrides = {**overrides, "optim": {"max_epochs": max_epochs}}
    spec = load_zoo(zoo).spec if zoo is not None else None
    typer.echo(config_yaml(resolve_config(preset or "quick", config, overrides, spec)), nl=False)
