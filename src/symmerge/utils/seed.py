"""Seeding helpers: same seed, same result; global random states left as they were."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from symmerge.errors import SymmergeError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (the caller's choice: the library itself draws from
    its own generators, or puts the global states back, :func:`random_state_kept`)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def random_state_kept() -> Iterator[None]:
    """Put back, after the block, the global random states of Python, NumPy, PyTorch and
    CUDA: work inside may seed and draw from them (a Lightning fit does) without changing
    what the caller draws next. CUDA, if the block initialized it, is left as it would have
    started: seeded with ``torch.initial_seed()``, which is what ``torch.manual_seed``
    queues for it."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        elif torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(torch.initial_seed())


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


def sample_rows(x: Tensor, count: int, seed: int = 0) -> Tensor:
    """``count`` rows of ``x`` (all if it holds fewer) drawn at random with ``seed``, in
    index order: a class-balanced sample from sources sorted by class (the embedded
    digits)."""
    if count < 1:
        raise SymmergeError(f"count must be at least 1, got {count}")
    if x.shape[0] <= count:
        return x
    pick = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed),
                          device="cpu")[:count]  # a CPU draw: the same rows on any device
    return x[torch.sort(pick).values.to(x.device)]
