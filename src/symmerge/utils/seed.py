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
