"""Tiny zoos the training tests share (seconds to train on a CPU)."""

import pytest
import torch

from symmerge import CNNSpec, SirenSpec
from symmerge.zoo import save_zoo


@pytest.fixture(scope="module")
def siren_zoo(tmp_path_factory):
    spec = SirenSpec((2, 8, 8, 1))
    params = spec.init_params(48, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("zoo") / "inr.safetensors"
    save_zoo(path, spec, params, torch.arange(48) % 10)
    return path


@pytest.fixture(scope="module")
def cnn_zoo(tmp_path_factory):
    spec = CNNSpec((1, 4, 4, 10), "relu")
    params = spec.init_params(24, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("zoo") / "cnn.safetensors"
    save_zoo(path, spec, params, provenance={"data": "mnist-embedded"})
    return path
