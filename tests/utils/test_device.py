"""Choosing devices: ``auto``, explicit names, machines without the device asked for."""

from __future__ import annotations

import os

import pytest
import torch

from symmerge.errors import SymmergeError
from symmerge.utils.device import (
    describe_device,
    float32_region,
    module_device,
    reproducible,
    resolve_device,
    torch_flags_kept,
)
from symmerge.utils.seed import draw_device


def test_auto_is_the_gpu_when_there_is_one():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device(None).type == want
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two CUDA devices, as far as resolve_device asks."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_cuda_names_on_a_two_gpu_machine(two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(SymmergeError, match="has 2 CUDA device.*cuda:0 .. cuda:1"):
        resolve_device("cuda:2")


def test_missing_or_unknown_devices_are_one_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SymmergeError, match="^device cuda, but no CUDA GPU is available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SymmergeError, match="unknown device 'quantum'; choose auto, cpu"):
        resolve_device("quantum")
    with pytest.raises(SymmergeError, match="unsupported device 'meta'") as info:
        resolve_device("meta")
    assert info.value.params == ("device",)  # the CLI shows its flag
    with pytest.raises(SymmergeError, match="pna_device mps is not supported.*float64") as info:
        resolve_device("mps", option="pna_device")
    assert info.value.params == ("pna_device",)


def test_describe_and_module_device():
    assert describe_device(torch.device("cpu")) == f"cpu ({torch.get_num_threads()} threads)"
    assert module_device(torch.nn.Linear(2, 3).to("meta")) == torch.device("meta")
    assert module_device(torch.nn.Identity()) == torch.device("cpu")


def test_draws_happen_on_the_generator_device():
    assert draw_device(torch.Generator(), "meta") == torch.device("cpu")
    assert draw_device(None, "meta") == torch.device("meta")
    assert draw_device(None) == torch.device("cpu")


def test_float32_region_turns_autocast_off_only_where_it_is_on():
    x = torch.ones(2, 3)
    w = torch.ones(4, 3)
    with float32_region(x):
        assert (x @ w.T).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (x @ w.T).dtype == torch.bfloat16
        with float32_region(x):
            assert (x @ w.T).dtype == torch.float32
        assert (x @ w.T).dtype == torch.bfloat16


def test_reproducible_turns_deterministic_kernels_on_for_cuda_only(monkeypatch):
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items()
                                        if k != "CUBLAS_WORKSPACE_CONFIG"})
    before = torch.are_deterministic_algorithms_enabled()
    with reproducible(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled() == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    with reproducible(torch.device("cuda", 0)):  # flags only: no GPU needed
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled() == before


def test_torch_flags_kept_puts_the_flags_back():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    with torch_flags_kept():
        torch.use_deterministic_algorithms(not before[0])
        torch.backends.cudnn.benchmark = not before[1]
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
