"""Local fixtures: every test runs under float32 and float64 (e3nn style)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh CPU generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests use tiny tensors; on the shared 2-core machine torch's intra-op
    threads spin against each other (a float64 CNN forward took 1.3 s with 2 threads
    under load, 6 ms with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
