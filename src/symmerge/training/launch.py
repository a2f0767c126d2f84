"""Checks of a training call's hardware and logger options, before any work; the process
state a fit changes (seeds, Lightning's loggers), put back after it."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.accelerators import AcceleratorRegistry

from symmerge.errors import SymmergeError
from symmerge.utils.device import describe_device
from symmerge.utils.seed import random_state_kept

#: logger -> packages that can serve it (any one is enough)
_LOGGER_PACKAGES = {"csv": (), "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}

#: accelerator name -> (Lightning accelerators that can serve it, what it needs when none can)
_ACCELERATORS = {
    "gpu": (("cuda", "mps"), "a CUDA or Apple MPS GPU"),
    "cuda": (("cuda",), "a CUDA GPU"),
    "mps": (("mps",), "an Apple MPS GPU"),
    "tpu": (("tpu",), "the torch_xla package and a TPU"),
}


def check_logger(logger: str) -> None:
    """Raise unless ``logger`` is known and its package is installed."""
    if logger not in _LOGGER_PACKAGES:
        raise SymmergeError(f"unknown logger {logger!r}; choose csv, tensorboard or wandb")
    packages = _LOGGER_PACKAGES[logger]
    if packages and all(importlib.util.find_spec(p) is None for p in packages):
        raise SymmergeError(
            f"the {logger} logger needs the {packages[0]} package: pip install {packages[0]}"
        )


def _available(name: str) -> bool:
    if name == "tpu" and importlib.util.find_spec("torch_xla") is None:
        return False  # Lightning's check raises instead of answering without the package
    return bool(AcceleratorRegistry[name]["accelerator"].is_available())


def check_hardware(accelerator: str, devices: int, num_nodes: int) -> None:
    """Raise unless ``devices`` and ``num_nodes`` are positive and ``accelerator`` is a
    known Lightning accelerator that this machine has (``auto`` and ``cpu`` always do)."""
    if devices < 1:
        raise SymmergeError(f"devices must be at least 1 (got {devices})")
    if num_nodes < 1:
        raise SymmergeError(f"num_nodes must be at least 1 (got {num_nodes})")
    if accelerator in ("auto", "cpu"):
        return
    if accelerator not in _ACCELERATORS:
        raise SymmergeError(f"unknown accelerator {accelerator!r}; choose cpu, gpu, cuda, mps, "
                            "tpu or auto")
    names, needs = _ACCELERATORS[accelerator]
    if not any(_available(n) for n in names):
        cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ", without CUDA"
        raise SymmergeError(f"accelerator {accelerator!r} is not available here: it needs "
                            f"{needs} (torch {torch.__version__}{cuda}); use cpu")


def resolve_accelerator(accelerator: str) -> str:
    """The Lightning accelerator ``accelerator`` stands for here: ``auto`` is the first of
    tpu, mps, cuda this machine has (Lightning's own order), else cpu; ``gpu`` is mps or
    cuda; other names are returned as they are (checked by :func:`check_hardware`)."""
    if accelerator == "auto":
        return next((n for n in ("tpu", "mps", "cuda") if _available(n)), "cpu")
    if accelerator == "gpu":
        return next((n for n in ("mps", "cuda") if _available(n)), accelerator)
    return accelerator


def accelerator_device(accelerator: str) -> torch.device:
    """The torch device this process works on for a resolved ``accelerator`` outside
    Lightning (evaluating the trained model): the current CUDA device, else the CPU (the
    evaluation computes in float64 in places, which MPS lacks)."""
    if accelerator == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def describe_accelerator(accelerator: str, devices: int, num_nodes: int) -> str:
    """``training on cuda:0 (NVIDIA H100 80GB HBM3)``, ``training on cuda (4 devices x 2
    nodes, DDP)``: the line a training run prints about its hardware."""
    if devices * num_nodes > 1:
        nodes = f" x {num_nodes} nodes" if num_nodes > 1 else ""
        return f"training on {accelerator} ({devices} devices{nodes}, DDP)"
    if accelerator in ("cuda", "cpu"):
        return f"training on {describe_device(accelerator_device(accelerator))}"
    return f"training on {accelerator}"


def owns_run() -> bool:
    """Whether this process owns the run it trains: global rank 0. The DDP workers
    Lightning launches for it (and the processes of other nodes) carry their rank in
    the environment and join the owner's run without taking its lock."""
    return rank_zero_only.rank == 0 and int(os.environ.get("NODE_RANK") or 0) == 0


#: Lightning's informational lines (hardware summary, product tips, loop notes) and the
#: deprecation notes its own code triggers: framework chatter, not results
_QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric")
_QUIET_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Run a fit with only Lightning's warnings and errors shown (and its progress bar);
    the loggers' levels and the warning filters are put back afterwards."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", pattern)
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


@contextlib.contextmanager
def interrupt_kept(trainer: L.Trainer) -> Iterator[None]:
    """Run a fit so that Ctrl+C stays a :class:`KeyboardInterrupt` for the caller.

    Lightning answers one inside a fit by ignoring SIGINT from then on and calling
    ``sys.exit(1)``, which would end the caller's process (or leave a notebook unable to
    interrupt anything); here the handler is put back and the interrupt raised again
    (the fit's last checkpoint is kept: a run resumes from it). A SIGTERM, which
    Lightning ends the fit with as a ``SystemExit`` (exit status 0), is one too."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        if main and handler is not None and signal.getsignal(signal.SIGINT) is not handler:
            signal.signal(signal.SIGINT, handler)


#: what Lightning's ``seed_everything`` writes to the environment (read by DDP workers)
_SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a fit with every global random generator seeded with ``seed`` (Lightning's
    ``seed_everything``: Python, NumPy, torch, CUDA, and the environment variables that
    pass the seed to DDP workers); afterwards the caller's random states and those
    variables are as they were (:func:`~symmerge.utils.seed.random_state_kept`)."""
    before = {name: os.environ.get(name) for name in _SEED_VARIABLES}
    with random_state_kept():
        try:
            L.seed_everything(seed, verbose=False)
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
