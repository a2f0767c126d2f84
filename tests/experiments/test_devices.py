"""The experiments' machinery on a device: paths where the networks are, curves back on
the CPU (the same numbers as computed there), and one experiment end to end."""

from __future__ import annotations

import pytest
import torch

from symmerge.experiments import orbit_interpolation
from symmerge.experiments.common import (
    Autoencoders,
    PathOptions,
    classifier_curves,
    load_autoencoders,
    method_paths,
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


@pytest.mark.parametrize("method", ["naive", "wm", "sort"])
def test_paths_are_built_where_the_networks_are(method, device):
    a, b = _pairs(SIREN)
    alphas = alpha_grid(5)  # float64 on the CPU, as the experiments make it
    paths = method_paths(method, SIREN, a.to(device), b.to(device), alphas, Autoencoders(SIREN),
                         PathOptions())
    assert_on(paths, device)
    cpu = method_paths(method, SIREN, a, b, alphas, Autoencoders(SIREN), PathOptions())
    torch.testing.assert_close(paths.cpu(), cpu)


def test_ae_paths_use_the_autoencoder_on_the_device(assets, device):
    z = load_zoo(assets.inr_zoo)
    aes = load_autoencoders(z.spec, assets.run, device=device)
    a, b = z.params[:2].to(device), z.params[2:4].to(device)
    extras: dict = {}
    for method in ("ae", "ae-latent", "ae-lift"):
        paths = method_paths(method, z.spec, a, b, alpha_grid(3), aes, PathOptions(), extras)
        assert_on(paths, device)
    assert_on(extras["template_distance"], device)


def test_curves_come_back_on_the_cpu_with_the_cpu_numbers(device):
    a, b = _pairs(SIREN)
    paths = method_paths("naive", SIREN, a, b, alpha_grid(4), Autoencoders(SIREN), PathOptions())
    targets = {"mse": torch.rand(3, 7, 7, generator=torch.Generator().manual_seed(1))}
    here = render_curves(SIREN, targets, chunk=5)(paths.to(device))
    assert_on(here, "cpu")
    cpu = render_curves(SIREN, targets, chunk=5)(paths)
    torch.testing.assert_close(here, cpu, rtol=1e-4, atol=1e-8)  # float32 renders
    a, b = _pairs(CNN)
    paths = method_paths("naive", CNN, a, b, alpha_grid(3), Autoencoders(CNN), PathOptions())
    gen = torch.Generator().manual_seed(2)
    images, labels = torch.randn(6, 1, 16, 16, generator=gen), torch.arange(6) % 3
    curves = classifier_curves(CNN, images, labels, net_chunk=4, image_chunk=4)
    here = curves(paths.to(device))
    assert_on(here, "cpu")
    torch.testing.assert_close(here, curves(paths), rtol=1e-4, atol=1e-8)


def test_an_experiment_runs_on_the_device(assets, tmp_path, device):
    result = orbit_interpolation(assets.inr_zoo, tmp_path / "e", run=assets.run, runs=1,
                                 orbit_size=3, steps=3, split="all",
                                 methods=["naive", "sort", "ae-lift"], device=device)
    assert set(result.metrics["methods"]) == {"naive", "sort", "ae-lift"}
    assert result.curves["naive"]["mse"].shape == (3, 3)
