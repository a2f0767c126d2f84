"""The ``--device`` option the commands share, and the line each prints about it."""

from __future__ import annotations

from typing import Any

import torch
import typer

from symmerge.utils.device import describe_device, resolve_device

DEVICE_HELP = ("Torch device: auto (a CUDA GPU when there is one, else the CPU) | cpu | cuda "
               "| cuda:N.")


def device_option(default: str = "auto", help: str = DEVICE_HELP) -> Any:
    """A ``--device`` option (default ``auto``)."""
    return typer.Option(default, "--device", help=help)


def use_device(name: str) -> torch.device:
    """The device ``name`` stands for (a clear error if this machine lacks it), announced
    on stderr as a note (``note: running on cuda:0 (NVIDIA H100 80GB HBM3)``), so that a
    command that then fails on bad input still prints one error line and notes only."""
    device = resolve_device(name)
    typer.echo(f"note: running on {describe_device(device)}", err=True)
    return device
