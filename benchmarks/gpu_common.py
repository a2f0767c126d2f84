"""Timing helpers shared by the benchmarks that may run on a GPU.

CUDA work is queued: a wall-clock time is complete only after ``synchronize``, and a
timed region must also start from an idle device. Peak memory is PyTorch's caching
allocator's (tensors this process allocated on the device).
"""

from __future__ import annotations

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak-memory window on a CUDA ``device`` (a no-op elsewhere)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device | str) -> float | None:
    """Peak memory allocated on a CUDA ``device`` since the last reset, in MiB (None on
    other devices, or while CUDA has not been initialized in this process)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
