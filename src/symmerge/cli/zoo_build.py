"""``symmerge zoo inr`` and ``symmerge zoo cnn``: build model zoos.

Both run in resumable chunks (``<out>.shards/``, locked while a run uses it), show a
progress bar and, when launched by ``torchrun --nproc-per-node W``, split the chunks over
W ranks. Their worker processes end with the command, however it is stopped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import typer

from symmerge.cli.app import zoo_app
from symmerge.cli.devices import device_option
from symmerge.errors import SymmergeError
from symmerge.utils.device import resolve_device
from symmerge.zoo.io import Zoo


def _hidden(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError as exc:
        raise SymmergeError(f"--hidden takes comma-separated integers, got {text!r}") from exc


def _quantiles(t: torch.Tensor, scale: float = 1.0, fmt: str = ".2f") -> str:
    q = torch.quantile(t.double() * scale,
                       torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, device=t.device))
    return f"median {q[1]:{fmt}} (p10 {q[0]:{fmt}}, p90 {q[2]:{fmt}})"


_DATA = typer.Option("mnist-embedded", "--data", help="Image source (as for load_images).")
_SEED = typer.Option(0, "--seed", help="Seed; same seed, same zoo.")
_OUT = typer.Option(..., "--out", help="Zoo file to write (safetensors).")
_CHUNK = typer.Option(
    None, "--chunk-size", min=1,
    help="Networks per resumable chunk (default: 128 INRs on the CPU, 8192 on a GPU; 50 CNNs).",
)
_WORKERS = typer.Option(
    None, "--workers", help="Local worker processes (default: one per torch thread)."
)
_FRESH = typer.Option(
    False, "--fresh", help="Empty the shard folder (<out>.shards/) first: discard its chunks."
)
_KEEP = typer.Option(False, "--keep-shards", help="Keep the chunk files after assembling.")
_MAX_CHUNKS = typer.Option(
    None, "--max-chunks", min=1, help="Fit at most this many chunks, then exit."
)
_QUIET = typer.Option(False, "--quiet", help="No progress bar.")
_DEVICE = device_option("cpu", help="Torch device: cpu (bitwise the same zoo for any workers "
                        "and threads) | auto | cuda | cuda:N.")


@zoo_app.command("inr")
def inr(
    data: str = _DATA,
    limit: int | None = typer.Option(
        None, "--limit", help="Use the first N images (default: all)."
    ),
    per_image: int = typer.Option(1, "--per-image", help="Networks per image (different seeds)."),
    stride: int = typer.Option(1, "--stride", help="Take every K-th image (0, K, 2K, ...)."),
    seed: int = _SEED,
    out: Path = _OUT,
    preset: str = typer.Option("default", "--preset", help="Fit recipe: default or quick."),
    steps: int | None = typer.Option(None, "--steps", help="Step cap (overrides the preset)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (overrides preset)."),
    target_psnr: float | None = typer.Option(
        None, "--target-psnr", help="Stop a network at this PSNR (overrides preset)."
    ),
    hidden: str | None = typer.Option(None, "--hidden", help="Hidden sizes, e.g. 32,32."),
    micro_batch: int | None = typer.Option(
        None, "--micro-batch", min=1,
        help="Networks per kernel call (default: 32 on the CPU, a whole chunk on a GPU); "
        "changes speed and memory, not results.",
    ),
    chunk_size: int | None = _CHUNK,
    workers: int | None = _WORKERS,
    fresh: bool = _FRESH,
    keep_shards: bool = _KEEP,
    max_chunks: int | None = _MAX_CHUNKS,
    quiet: bool = _QUIET,
    device: str = _DEVICE,
) -> None:
    """Fit SIRENs to images, many at once (batched Adam, per-network early stopping)."""
    from symmerge.zoo.fit_inr import fit_inr_zoo, inr_config

    cfg = inr_config(preset, steps=steps, lr=lr, target_psnr=target_psnr, hidden=_hidden(hidden),
                     micro_batch=micro_batch)
    started = time.perf_counter()
    path = fit_inr_zoo(data, out=out, limit=limit, stride=stride, per_image=per_image, seed=seed,
                       config=cfg,
                       chunk_size=chunk_size, fresh=fresh,
                       keep_shards=keep_shards,
                       progress=not quiet, max_chunks=max_chunks, workers=workers,
                       device=str(resolve_device(device)))
    _report(path, started, "psnr", "PSNR", " dB", 1.0, ".2f")


@zoo_app.command("cnn")
def cnn(
    data: str = _DATA,
    activation: str = typer.Option("relu", "--activation", help="relu or tanh."),
    n: int = typer.Option(..., "--n", help="Number of networks."),
    seed: int = _SEED,
    out: Path = _OUT,
    preset: str = typer.Option("default", "--preset", help="Training recipe: default or quick."),
    steps: int | None = typer.Option(None, "--steps", help="Adam steps (overrides preset)."),
    hidden: str | None = typer.Option(None, "--hidden", help="Hidden channels, e.g. 16,16,16."),
    chunk_size: int | None = _CHUNK,
    workers: int | None = _WORKERS,
    fresh: bool = _FRESH,
    keep_shards: bool = _KEEP,
    max_chunks: int | None = _MAX_CHUNKS,
    quiet: bool = _QUIET,
    device: str = _DEVICE,
) -> None:
    """Train small CNNs with random hyperparameters, many at once (grouped convolutions)."""
    from symmerge.zoo.train_cnn import cnn_config, train_cnn_zoo

    if activation not in ("relu", "tanh"):
        raise SymmergeError(f"--activation must be relu or tanh, got {activation!r}")
    cfg = cnn_config(preset, steps=steps, hidden=_hidden(hidden))
    started = time.perf_counter()
    path = train_cnn_zoo(data, out=out, n=n, activation=activation, seed=seed, config=cfg,
                         chunk_size=50 if chunk_size is None else chunk_size, fresh=fresh,
                         keep_shards=keep_shards,
                         progress=not quiet, max_chunks=max_chunks, workers=workers,
                         device=str(resolve_device(device)))
    zoo = _report(path, started, "test_accuracy", "test accuracy", "%", 100.0, ".1f")
    bad = int(zoo.metric("diverged").sum()) if zoo and "diverged" in zoo.metric_names else 0
    if bad:
        typer.echo(f"note: {bad} network(s) diverged and kept their last finite parameters "
                   "(metric `diverged`)", err=True)
    failed = int(zoo.metric("failed").sum()) if zoo and "failed" in zoo.metric_names else 0
    if failed:
        typer.echo(f"note: {failed} network(s) failed (diverged or at chance level; metric "
                   "`failed`): the experiments leave them out", err=True)


def _report(path: Path | None, started: float, metric: str, name: str, unit: str, scale: float,
            fmt: str) -> Zoo | None:
    """Print the summary line (rank 0 only); the written zoo, or None."""
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return None
    elapsed = time.perf_counter() - started
    if path is None:
        typer.echo(f"stopped after --max-chunks ({elapsed:.0f} s); rerun to continue")
        return None
    zoo = Zoo(path)
    typer.echo(f"wrote {path}: {len(zoo)} networks in {elapsed:.0f} s; "
               f"{name} {_quantiles(zoo.metric(metric), scale, fmt)}{unit}")
    return zoo
