"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """Run a test once per floating dtype."""
    return request.param


@pytest.fixture
def generator() -> torch.Generator:
    """A CPU torch.Generator seeded with 0 (fresh per test)."""
    return torch.Generator().manual_seed(0)
