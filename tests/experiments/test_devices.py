"""The experiments' machinery on a device: paths where the networks are, curves back on
the CPU (the same numbers as computed there), and one experiment end to end."""

from __future__ import annotations

import pytest
import torch

from symmerge.align import MatchOptions
from symmerge.experiments import orbit_interpolation
from symmerge.experiments.common import (
    Autoencoders,
    classifier_curves,
    load_autoencoders,
    render_curves,
)
from symmerge.experiments.metrics import alpha_grid
from symmerge.specs import CNNSpec, SirenSpec
from symmerge.zoo import load_zoo
from tests.devices import assert_on

SIREN = SirenSpec((2, 6, 6, 1))
CNN = CNNSpec((1, 3, 4, 3), "relu")


def _pairs(spec, n=3, seed=0):
    params = spec.init_params(2 * n, generator=torch.Generator().manual_seed(seed))
    return params[:n], params[n:]


def _paths(method, spec, a, b, alphas, aes=None, extras=None):
    frame = (aes or Autoencoders(spec)).frames([method], MatchOptions())[method]
    return frame.paths(a, b, alphas, extras)


@pytest.mark.parametrize("method", ["naive", "wm", "sort"])
def test_paths_are_built_where_the_networks_are(method, device):
    a, b = _pairs(SIREN)
    alphas = alpha_grid(5)  # float64 on the CPU, as the experiments make it
    paths = _paths(method, SIREN, a.to(device), b.to(device), alphas)
    assert_on(paths, device)
    cpu = _paths(method, SIREN, a, b, alphas)
    torch.testing.assert_close(paths.cpu(), cpu)


def test_ae_paths_use_the_autoencoder_on_the_device(assets, device):
    z = load_zoo(assets.inr_zoo)
    aes = load_autoencoders(z.spec, assets.run, device=device)
    a, b = z.params[:2].to(device), z.params[2:4].to(device)
    extras: dict = {}
    for method in ("ae", "ae-latent", "ae-lift"):
        paths = _paths(method, z.spec, a, b, alpha_grid(3), aes, extras)
        assert_on(paths, device)
    assert_on(extras["template_distance"], device)


def test_curves_come_back_on_the_cpu_with_the_cpu_numbers(device):
    a, b = _pairs(SIREN)
    paths = _paths("naive", SIREN, a, b, alpha_grid(4))
    targets = {"mse": torch.rand(3, 7, 7, generator=torch.Generator().manual_seed(1))}
    here = render_curves(SIREN, targets, chunk=5)(paths.to(device))
    assert_on(here, "cpu")
    cpu = render_curves(SIREN, targets, chunk=5)(paths)
    torch.testing.assert_close(here, cpu, rtol=1e-4, atol=1e-8)  # float32 renders
    a, b = _pairs(CNN)
    paths = _paths("naive", CNN, a, b, alpha_grid(3))
    gen = torch.Generator().manual_seed(2)
    images, labels = torch.randn(6, 1, 16, 16, generator=gen), torch.arange(6) % 3
    curves = classifier_curves(CNN, images, labels, net_chunk=4, image_chunk=4)
    here = curves(paths.to(device))
    assert_on(here, "cpu")
    torch.testing.assert_close(here, curves(paths), rtol=1e-4, atol=1e-8)


def test_an_experiment_runs_on_the_device(assets, tmp_path, device):
    result = orbit_interpolation(assets.inr_zoo, run=assets.run, runs=1,
                                 orbit_size=3, steps=3, split="all",
                                 methods=["naive", "sort", "ae-lift"], device=device)
    assert set(result.methods) == {"naive", "sort", "ae-lift"}
    assert result.curves["naive"]["mse"].shape == (3, 3)
