"""Devices: which one a command runs on, where a module lives, float32 regions.

``resolve_device("auto")`` is the first CUDA GPU when torch sees one, else the CPU; an
explicit name (``cpu``, ``cuda``, ``cuda:N``) is checked, so that asking for a device this
machine does not have is one clear error, not a failure deep inside a run. Apple's MPS is
refused: weight matching, scale statistics and the experiments' curves compute in
float64, which MPS lacks (``train --accelerator mps`` is Lightning's own).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from symmerge.errors import SymmergeError

#: Device names a command accepts (besides ``cuda:N``).
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def _torch_build() -> str:
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "without CUDA"
    return f"torch {torch.__version__}, {cuda}"


def resolve_device(name: str | torch.device | None = "auto", *, option: str = "device"
                   ) -> torch.device:
    """The torch device ``name`` stands for on this machine.

    ``auto`` (or None): the current CUDA device if torch sees a GPU, else the CPU.
    ``cpu``, ``cuda`` and ``cuda:N`` are checked against the machine; anything else, or a
    device it does not have, raises a :class:`SymmergeError` naming the parameter
    ``option`` (whose flag the CLI shows).
    """
    said = (option,)
    if name is None or (isinstance(name, str) and name.strip().lower() == "auto"):
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
            else torch.device("cpu")
    try:
        dev = torch.device(name.strip().lower() if isinstance(name, str) else name)
    except (RuntimeError, TypeError) as exc:
        raise SymmergeError(
            f"unknown {option} {name!r}; choose {', '.join(DEVICE_CHOICES)} or cuda:N",
            params=said,
        ) from exc
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SymmergeError(f"{option} {name}, but no CUDA GPU is available here "
                                f"({_torch_build()}); use {option} cpu or auto", params=said)
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= count:
            raise SymmergeError(f"{option} {name}, but this machine has {count} CUDA "
                                f"device(s): cuda:0 .. cuda:{count - 1}", params=said)
        return torch.device("cuda", index)
    if dev.type == "mps":
        raise SymmergeError(f"{option} mps is not supported: weight matching and the "
                            f"experiments compute in float64, which MPS lacks; use {option} cpu",
                            params=said)
    raise SymmergeError(
        f"unsupported {option} {name!r}; choose {', '.join(DEVICE_CHOICES)} or cuda:N",
        params=said,
    )


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)``, ``cpu (16 threads)``: for the line a command
    prints about where it runs."""
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for an empty one."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def float32_region(like: Tensor) -> contextlib.AbstractContextManager[None]:
    """A block where autocast (mixed precision) is off on ``like``'s device: the parts
    whose precision matters (the invariant encoder, SIREN phases ``w0 * z``) run in
    float32 under ``precision: bf16-mixed``; a no-op without autocast."""
    device_type = like.device.type
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)


@contextlib.contextmanager
def torch_flags_kept() -> Iterator[None]:
    """Put back, after the block, the global flags a deterministic run changes
    (deterministic algorithms, cuDNN's benchmark mode): a Lightning ``Trainer(deterministic=
    True)`` turns them on for the whole process, and other work in it (the experiments'
    cross-entropy on a GPU has no deterministic kernel) should run as before."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark


@contextlib.contextmanager
def reproducible(device: torch.device) -> Iterator[None]:
    """On a GPU, deterministic kernels inside the block: the encoders' scatter sums
    otherwise add in a different order on every run, and the same seed would not give the
    same numbers (as it does on the CPU). Kernels without a deterministic version warn
    instead of failing; the flags are put back afterwards. A no-op off CUDA."""
    if device.type != "cuda":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    with torch_flags_kept():
        torch.use_deterministic_algorithms(True, warn_only=True)
        yield
