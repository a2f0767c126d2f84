"""Seeding helpers: same seed, same result."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def torch_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded with ``seed`` (a fresh nondeterministic one if None)."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def draw_device(
    generator: torch.Generator | None, device: str | torch.device | None = None
) -> torch.device:
    """Where to draw random numbers meant for ``device``: on ``generator``'s device when
    one is given (a seeded CPU generator then gives the same numbers whatever ``device``
    is; the draws are moved there once), else on ``device`` itself (default the CPU),
    from that device's global generator."""
    if generator is not None:
        return generator.device
    return torch.device("cpu") if device is None else torch.device(device)
