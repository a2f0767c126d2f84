"""``symmerge zoo import dwsnets|cnn-zoo``, ``symmerge zoo info`` and
``symmerge zoo canonicalize-phase``."""

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
    prov = zoo.provenance
    if zoo.split is None:
        typer.echo("split: none stored (no split file; see `symmerge zoo info`)")
        return
    counts = ", ".join(f"{k} {v}" for k, v in prov["split_counts"].items())
    typer.echo(f"split: {counts} (published, from {prov['split_file']})")
    if prov.get("not_in_split_file"):
        typer.echo(f"left out {prov['not_in_split_file']} of the folder's networks: "
                   "the split file does not list them")


@import_app.command("dwsnets")
def import_dwsnets_command(
    directory: Path = typer.Argument(
        ..., help="Folder of mnist_png_{training|testing}_{label}_{idx}[_augmented_{k}]/"
        "checkpoints/model_final.pth or {train|test}/model_{idx}.pth (Fashion-MNIST)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Zoo file to write (safetensors)."),
    split_file: Path | None = typer.Option(
        None, help="Published split JSON ({split: {path: [...], label: [...]}}); default: the "
        "one *splits.json in DIRECTORY, if any. Its assignment is stored in the zoo."
    ),
    several_orbits: bool = typer.Option(
        False, help="Accept an orbit folder holding the orbits of several images."
    ),
) -> None:
    """Import DWSNets INRs (MNIST, Fashion-MNIST) or the paper's orbit datasets."""
    from symmerge.utils.io import check_output_path
    from symmerge.zoo.importers import import_dwsnets

    check_output_path(out)  # fail before a long import rather than after it
    _save(import_dwsnets(directory, split_file=split_file, several_orbits=several_orbits), out)


@import_app.command("cnn-zoo")
def import_cnn_zoo_command(
    directory: Path = typer.Argument(
        ..., help="Folder with weights.npy, metrics.csv[.gz] and layout.csv."
    ),
    activation: Activation = typer.Option(..., help="Keep the networks with this activation."),
    out: Path = typer.Option(..., "--out", "-o", help="Zoo file to write (safetensors)."),
    split_file: Path | None = typer.Option(
        None, help="NFN's index file (e.g. nfn_cifar10_split.csv, one row index per line): "
        "import the published networks and train/val/test split, as the paper's code does."
    ),
) -> None:
    """Import the final checkpoints of the Small CNN Zoo (e.g. CIFAR10-GS)."""
    from symmerge.utils.io import check_output_path
    from symmerge.zoo.importers import import_cnn_zoo

    check_output_path(out)  # fail before a long import rather than after it
    _save(import_cnn_zoo(directory, activation.value, split_file=split_file), out)


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
    """Lines of ``symmerge zoo info``: spec, count, finiteness, failed networks
    (:mod:`symmerge.zoo.quality`), labels, splits, metrics, provenance."""
    import numpy as np
    import torch

    from symmerge.zoo.quality import failed_networks

    lines = [
        f"zoo: {zoo.path}",
        f"spec: {zoo.spec.describe()}",
        f"networks: {len(zoo)} ({zoo.spec.num_params} parameters each)",
        _finiteness(zoo),
        failed_networks(zoo).describe(),
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
    lines.append(_describe_splits(zoo))
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


def _describe_splits(zoo: Zoo) -> str:
    """``splits: train N, val N, test N (where they come from)``."""
    parts = zoo.splits()
    counts = ", ".join(f"{name} {len(idx)}" for name, idx in parts.items())
    if zoo.stored_split is not None:
        return f"splits: {counts} (stored in the zoo: the published split)"
    seeded = "seeded (seed 0, fractions 0.8/0.1/0.1, networks of one image together)"
    if "is_test" in zoo.metric_names:
        return f"splits: {counts} (test: the published is_test; train/val: {seeded})"
    return f"splits: {counts} ({seeded}; training uses its config's split settings)"


@zoo_app.command("info")
def info(zoo: Path = typer.Argument(..., help="Zoo file (safetensors).")) -> None:
    """Show a zoo's architecture, size, labels, metric summary and provenance."""
    from symmerge.zoo.io import load_zoo

    typer.echo("\n".join(describe_zoo(load_zoo(zoo))))


@zoo_app.command("canonicalize-phase")
def canonicalize_phase_command(
    zoo: Path = typer.Argument(..., help="SIREN zoo file (safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", help="Zoo file to write (safetensors)."),
    batch_size: int = typer.Option(4096, min=1, help="Networks per batch."),
) -> None:
    """Phase-canonicalize a SIREN zoo: every function preserved, every hidden w0*b in
    [0, pi/2]; labels, image indices, split and metrics are kept."""
    from symmerge.canon.zoo import canonicalize_phase_zoo
    from symmerge.utils.io import check_output_path

    check_output_path(out)
    path = canonicalize_phase_zoo(zoo, out, batch_size=batch_size)
    typer.echo(f"wrote the phase-canonical form of {zoo} to {path}")
