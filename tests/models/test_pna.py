"""The PNA (Neural Graphs) baseline encoder."""

from __future__ import annotations

import pytest
import torch

from symmerge.graph import graph_action, graph_template
from symmerge.models import GaussianFourierFeatures
from symmerge.specs import CNNSpec, SirenSpec
from symmerge.symmetry import invariance_error, sample_group_elements
from tests.devices import assert_on
from tests.models._util import random_params, tiny_model

SPECS = [SirenSpec((2, 8, 8, 1)), CNNSpec((1, 4, 4, 3), "relu")]


@pytest.mark.parametrize("spec", SPECS, ids=["siren", "cnn"])
def test_permutation_invariant_not_sign_invariant(spec, device):
    model = tiny_model(spec, mode="pna").to(device)
    params = random_params(spec, 3).to(device)
    assert_on(model.encode(params), device)
    gen = torch.Generator().manual_seed(1)
    perm = sample_group_elements(spec, 3, diagonal=False, dtype=torch.float64, generator=gen,
                                 device=device)
    diag = sample_group_elements(spec, 3, permute=False, dtype=torch.float64, generator=gen,
                                 device=device)
    assert invariance_error(model.encode, spec, params, perm) <= 1e-8
    assert invariance_error(model.encode, spec, params, diag) > 1e-4


def test_node_features_permutation_equivariant():
    spec = SPECS[0]
    model = tiny_model(spec, mode="pna")
    params = random_params(spec, 2)
    g = sample_group_elements(spec, 2, diagonal=False, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(2))
    act, n = graph_action(spec, g), graph_template(spec).num_nodes
    with torch.no_grad():
        _, f = model.encoder(model.graph(params), return_features=True)
        _, fg = model.encoder(model.graph(g.apply(spec, params)), return_features=True)
    for a, b in zip(f.nodes, fg.nodes, strict=True):
        want = act.nodes(a.reshape(2, n, -1))
        torch.testing.assert_close(b.reshape(want.shape), want, rtol=1e-9, atol=1e-12)


def test_latent_is_output_node_concat():
    spec = CNNSpec((1, 4, 4, 3), "relu")
    assert tiny_model(spec, mode="pna", d_latent=None).latent_dim == 3 * 16
    model = tiny_model(spec, mode="pna", d_latent=5)
    assert model.encode(random_params(spec, 2)).shape == (2, 5)


def test_fourier_features_fixed_and_seeded():
    a, b = GaussianFourierFeatures(2, 8, 3.0, seed=0), GaussianFourierFeatures(2, 8, 3.0, seed=0)
    assert torch.equal(a.B, b.B) and "B" in a.state_dict()
    v = torch.randn(5, 2)
    out = a(v)
    assert out.shape == (5, 16)
    torch.testing.assert_close(out[:, :8] ** 2 + out[:, 8:] ** 2, torch.ones(5, 8))
