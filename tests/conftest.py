"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from tests.assets import Assets, build_assets
from tests.devices import DEVICES


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


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Run a test once per available device (``tests.devices.DEVICES``: cpu, and cuda
    where torch sees a GPU), PyTorch Geometric's ``withDevice`` style."""
    return torch.device(request.param)


@pytest.fixture(autouse=True, scope="session")
def _full_float32_on_cuda():
    """Tolerances are float32's: no TF32 (cuDNN's convolutions default to it on GPUs
    with tensor cores, matmuls may be switched to it), restored after the session."""
    if not torch.cuda.is_available():
        yield
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    """The shared tiny zoos and autoencoder runs (``tests/assets.py``), built once per
    session on first use, with one thread (session fixtures are set up before
    ``_one_thread``: two threads made this take 50 s instead of 4 on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_assets(tmp_path_factory.mktemp("assets"))
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def quiet_places(tmp_path, monkeypatch) -> dict[str, Path]:
    """An empty working directory, HOME and temporary directory, to see what is written."""
    places = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for p in places.values():
        p.mkdir()
    monkeypatch.chdir(places["cwd"])
    monkeypatch.setenv("HOME", str(places["home"]))
    for var in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(var, str(places["tmp"]))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read from the environment
    return places
