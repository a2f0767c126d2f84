"""``symmerge eval``: one network's quality on held-out data; the ``--data`` option it
shares with ``merge``."""

from __future__ import annotations

import json
from typing import Any

import typer

from symmerge.cli.app import app
from symmerge.cli.devices import device_option, use_device

DATA_HELP = (
    "Image source to evaluate on: mnist-embedded | mnist:DIR | fashion-mnist:DIR | "
    "cifar10:DIR | cifar10-gs:DIR. Default: a zoo network's own data, or the data a merged "
    "file records. Classifiers are measured on its held-out images: the split the zoo "
    "records, else the source's published test set, else the CNN zoo builder's seeded split "
    "(20%, seed 0); INRs on the image they fit."
)


def data_option(help: str = DATA_HELP) -> Any:
    """The ``--data SOURCE`` option of the commands that evaluate networks."""
    return typer.Option(None, "--data", help=help)


@app.command("eval")
def evaluate_network(
    network: str = typer.Argument(
        ..., help="Network to evaluate: FILE.pth, FILE.safetensors or ZOO:INDEX."),
    data: str | None = data_option(),
    image: int | None = typer.Option(
        None, min=0, help="INRs: the row of the --data source the network fits (default: "
        "the zoo's image_index, or the merged file's record)."),
    input_transform: str | None = typer.Option(
        None, help="Classifiers: none (pixels in [0, 1]) | x*2-1 (pixels in [-1, 1], what "
        "the CNN zoos' networks take). Default: the zoo's or merged file's record, else none."),
    spec: str | None = typer.Option(
        None, help="Architecture for .pth inputs: spec JSON, a .json file or a zoo file."),
    device: str = device_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Measure a network: accuracy and cross-entropy of a classifier (CNN, MLP) on held-out
    images, PSNR and MSE of an INR against its image."""
    from symmerge.evaluation import evaluate, evaluation_data
    from symmerge.merge import load_network, parse_spec

    dev = use_device(device)
    net = load_network(network, parse_spec(spec) if spec else None)
    if net.inferred:
        typer.echo(f"note: {net.source} has no architecture metadata; read as a "
                   f"{net.spec.describe()} (pass --spec otherwise)", err=True)
    held = evaluation_data(net, data, input_transform=input_transform, image=image)
    quality = evaluate(net.params.to(dev), net.spec, held)
    if as_json:
        typer.echo(json.dumps({"network": network, **quality.to_dict(),
                               "settings": held.settings.to_dict()}, sort_keys=True))
    else:
        typer.echo(f"{network}: {quality.line()} on {quality.data}")
