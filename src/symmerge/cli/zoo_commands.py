"""``symmerge zoo import dwsnets|cnn-zoo`` and ``symmerge zoo info``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from symmerge.cli.app import zoo_app

if TYPE_CHECKING:
    from symmerge.zoo.importers import ImportedZoo
    from symmerge.zoo.io import Zoo

import_app = typer.Typer(
    help="Import a published zoo into a symmerge zoo file.", no_args_is_help=True
)
zoo_app.add_typer(import_app, name="import")


class Activation(str, Enum):
    relu = "relu"
    tanh = "tanh"


def _save(zoo: ImportedZoo, out: Path) -> None:
    zoo.save(out)
    typer.echo(f"wrote {len(zoo)} networks ({zoo.spec.describe()}) to {out}")


@import_app.command("dwsnets")
def import_dwsnets_command(
    directory: Path = typer.Argument(
        ..., help="Folder of mnist_png_{training|testing}_{label}_{idx}/checkpoints/model_final.pth"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Zoo file to write (safetensors)."),
) -> None:
    """Import the DWSNets MNIST INRs (SIREN checkpoints)."""
    from symmerge.utils.io import check_output_path
    from symmerge.zoo.importers import import_dwsnets

    check_output_path(out)  # fail before a long import rather than after it
    _save(import_dwsnets(directory), out)


@import_app.command("cnn-zoo")
def import_cnn_zoo_command(
    directory: Path = typer.Argument(
        ..., help="Folder with weights.npy, metrics.csv[.gz] and layout.csv."
    ),
    activation: Activation = typer.Option(..., help="Keep the networks with this activation."),
    out: Path = typer.Option(..., "--out", "-o", help="Zoo file to write (safetensors)."),
) -> None:
    """Import the final checkpoints of the Small CNN Zoo (e.g. CIFAR10-GS)."""
    from symmerge.utils.io import check_output_path
    from symmerge.zoo.importers import import_cnn_zoo

    check_output_path(out)  # fail before a long import rather than after it
    _save(import_cnn_zoo(directory, activation.value), out)


def _format_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _finiteness(zoo: Zoo, show: int = 10) -> str:
    """``params: all finite``, or which networks hold NaN / Inf values."""
    bad = zoo.non_finite()
    if not bad.networks.numel():
        return "params: all finite"
    first = ", ".join(str(i) for i in bad.networks[:show].tolist())
    more = ", ..." if bad.networks.numel() > show else ""
    return (f"params: NOT FINITE in {bad.networks.numel()} of {len(zoo)} networks "
            f"({bad.nan} NaN, {bad.inf} Inf values): networks {first}{more}")


def describe_zoo(zoo: Zoo) -> list[str]:
    """Lines of ``symmerge zoo info``: spec, count, labels, metrics, provenance."""
    import numpy as np
    import torch

    lines = [
        f"zoo: {zoo.path}",
        f"spec: {zoo.spec.describe()}",
        f"networks: {len(zoo)} ({zoo.spec.num_params} parameters each)",
        _finiteness(zoo),
    ]
    labels = zoo.labels
    labelled = labels[labels >= 0]
    if labelled.numel():
        counts = torch.bincount(labelled)
        hist = ", ".join(f"{c}: {int(n)}" for c, n in enumerate(counts) if n > 0)
        unlabelled = labels.numel() - labelled.numel()
        lines.append(f"labels: {hist}" + (f" (unlabelled: {unlabelled})" if unlabelled else ""))
    else:
        lines.append("labels: none")
    lines.append(f"image_index: {'yes' if zoo.image_index is not None else 'no'}")
    names = zoo.metric_names
    lines.append("metrics:" if names else "metrics: none")
    for name in names:
        v = zoo.metric(name).double().numpy()
        finite = v[np.isfinite(v)]
        bad = f"  ({v.size - finite.size} not finite)" if finite.size < v.size else ""
        if not finite.size:
            lines.append(f"  {name}: no finite values{bad}")
            continue
        lines.append(
            f"  {name}: min {finite.min():.6g}  median {np.median(finite):.6g}  "
            f"mean {finite.mean():.6g}  max {finite.max():.6g}{bad}"
        )
    lines.append("provenance:" if zoo.provenance else "provenance: none")
    lines += [f"  {k}: {_format_value(v)}" for k, v in zoo.provenance.items()]
    return lines


@zoo_app.command("info")
def info(zoo: Path = typer.Argument(..., help="Zoo file (safetensors).")) -> None:
    """Show a zoo's architecture, size, labels, metric summary and provenance."""
    from symmerge.zoo.io import load_zoo

    typer.echo("\n".join(describe_zoo(load_zoo(zoo))))
