"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """Run a test once per floating dtype (e3nn style)."""
    return request.param


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh CPU generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests use tiny tensors: one intra-op thread is faster than two spinning against
    each other (a float64 CNN forward took 1.3 s with 2 threads on a busy 2-core
    machine, 6 ms with 1). Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
