"""The Neural Graphs (PNA) baseline encoder: invariance, sensitivity, configuration."""

from __future__ import annotations

import pytest
import torch

from symmerge.graph import graph_action, graph_template
from symmerge.models import EncoderConfig, GaussianFourierFeatures, build_autoencoder
from symmerge.models.config import PNA_DEFAULTS
from symmerge.specs import CNNSpec, SirenSpec
from symmerge.symmetry import invariance_error, sample_group_elements, tolerance
from tests.devices import assert_on
from tests.models._util import random_params

SIREN, CNN = SirenSpec((2, 8, 8, 1)), CNNSpec((1, 4, 4, 3), "relu")
SPECS = [SIREN, SirenSpec((2, 6, 5, 4, 1)), CNN, CNNSpec((1, 3, 4, 5, 2), "tanh")]
IDS = ["siren", "siren-deep", "cnn", "cnn-deep"]
#: Tiny sizes; everything else is the Neural Graphs configuration (mode pna defaults).
TINY = {"mode": "pna", "d_hidden": 16, "num_layers": 3, "rff_dim": 8}


def ng_model(spec, dtype=torch.float64, **overrides):
    """A tiny Neural Graphs autoencoder in eval mode, its statistics fitted to a zoo."""
    torch.manual_seed(0)
    model = build_autoencoder(spec, EncoderConfig(**{**TINY, **overrides})).to(dtype).eval()
    model.set_param_scale(random_params(spec, 16, dtype, seed=5))
    return model


def permutations(spec, batch, dtype=torch.float64, seed=1, device=None):
    return sample_group_elements(spec, batch, diagonal=False, dtype=dtype, device=device,
                                 generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_latent_permutation_invariant_float64(spec, device):
    model = ng_model(spec).to(device)
    params = random_params(spec, 3).to(device)
    assert_on(model.encode(params), device)
    g = permutations(spec, 3, device=device)
    assert invariance_error(model.encode, spec, params, g) <= 1e-8


@pytest.mark.parametrize("spec", [SIREN, CNN], ids=["siren", "cnn"])
def test_latent_permutation_invariant_float32(spec, device):
    model = ng_model(spec, torch.float32).to(device)
    params = random_params(spec, 4, torch.float32).to(device)
    g = permutations(spec, 4, torch.float32, device=device)
    assert_on(model.encode(params), device)
    assert invariance_error(model.encode, spec, params, g) <= tolerance(torch.float32)


@pytest.mark.parametrize("spec", [SIREN, CNN], ids=["siren", "cnn"])
def test_not_sign_or_scale_invariant(spec):
    model = ng_model(spec)
    params = random_params(spec, 3)
    diag = sample_group_elements(spec, 3, permute=False, dtype=torch.float64,
                                 generator=torch.Generator().manual_seed(2))
    assert invariance_error(model.encode, spec, params, diag) > 1e-4


@pytest.mark.parametrize(
    "variant",
    [{"skip": True, "edge_pos_embed": True, "d_latent": 7, "dropout": 0.2},
     {"pna_norm": "node", "update_edges": False, "node_pos_embed": False},
     {"probe_points": 5, "standardize": "rms", "decode_standardized": True}],
    ids=["skip-epe-proj", "node-norm", "probes-rms"],
)
@pytest.mark.parametrize("spec", [SPECS[1], SPECS[3]], ids=["siren", "cnn"])
def test_additions_keep_permutation_invariance(spec, variant):
    model = ng_model(spec, **variant)
    params = random_params(spec, 3)
    assert invariance_error(model.encode, spec, params, permutations(spec, 3)) <= 1e-8


@pytest.mark.parametrize("spec", [SPECS[1], SPECS[3]], ids=["siren", "cnn"])
def test_features_permutation_equivariant(spec):
    model = ng_model(spec)
    params = random_params(spec, 2)
    g = permutations(spec, 2, seed=3)
    act, tpl = graph_action(spec, g), graph_template(spec)
    with torch.no_grad():
        _, f = model.encoder(model.graph(params), return_features=True)
        _, fg = model.encoder(model.graph(g.apply(spec, params)), return_features=True)
    assert len(f.nodes) == len(f.edges) == 1 + TINY["num_layers"]
    for a, b in zip(f.nodes, fg.nodes, strict=True):
        want = act.nodes(a.reshape(2, tpl.num_nodes, -1))
        torch.testing.assert_close(b.reshape(want.shape), want, rtol=1e-9, atol=1e-12)
    for a, b in zip(f.edges, fg.edges, strict=True):
        want = act.edges(a.reshape(2, tpl.num_edges, -1))
        torch.testing.assert_close(b.reshape(want.shape), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec", [SPECS[1], SPECS[3]], ids=["siren", "cnn"])
def test_latent_sensitive_to_every_layer(spec):
    """Changing one weight or one bias of any layer moves the latent."""
    model = ng_model(spec)
    params = random_params(spec, 1)
    z = model.encode(params)
    offs = spec.offsets
    for index in offs[:-1]:  # the first entry of every weight and bias tensor
        moved = params.clone()
        moved[:, index] += 0.3 * model.param_scale[index]
        dz = (model.encode(moved) - z).abs().max() / z.abs().max()
        assert dz > 1e-4, index


def test_latent_of_a_network_does_not_depend_on_its_batch():
    """Per-network graph norm (the reference's norm spans the whole minibatch)."""
    model = ng_model(SIREN)
    params = random_params(SIREN, 4)
    together = model.encode(params)
    alone = torch.cat([model.encode(p) for p in params.split(1)])
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)


def test_latent_is_output_node_concat_without_projection():
    model = ng_model(CNN)
    assert model.encoder.project is None and model.latent_dim == 3 * TINY["d_hidden"]
    params = random_params(CNN, 2)
    z, feats = model.encoder(model.graph(params), return_features=True)
    n = graph_template(CNN).num_nodes
    last = feats.nodes[-1].reshape(2, n, -1)
    torch.testing.assert_close(z, last[:, -3:].flatten(1))  # output nodes come last
    projected = ng_model(CNN, d_latent=5)
    assert projected.encode(params).shape == (2, 5)


def test_pna_defaults_are_neural_graphs_values():
    cfg = EncoderConfig(mode="pna")
    assert {k: getattr(cfg, k) for k in PNA_DEFAULTS} == PNA_DEFAULTS
    assert (cfg.rff_dim, cfg.rff_sigma, cfg.num_layers, cfg.pna_norm) == (128, 3.0, 4, "graph")
    assert cfg.update_edges and cfg.node_pos_embed and cfg.probe_points == 0
    ours = EncoderConfig(mode="pna", skip=True, d_latent=64, standardize="rms")
    assert (ours.skip, ours.d_latent, ours.standardize) == (True, 64, "rms")
    assert EncoderConfig.model_validate(ours.model_dump(mode="json")) == ours
    sign = EncoderConfig(mode="sign")  # other modes keep the field defaults
    assert (sign.skip, sign.dropout, sign.d_latent, sign.standardize) == (True, 0.2, 128, "rms")
    with pytest.raises(ValueError, match="mean-std"):
        EncoderConfig(mode="sign", standardize="mean-std")


@pytest.mark.parametrize("spec", [SIREN, CNN], ids=["siren", "cnn"])
def test_mean_std_standardization_and_raw_decoder(spec):
    """``mean-std``: the encoder sees every tensor with zero mean and unit standard
    deviation over the zoo; input nodes carry 0; the decoder predicts raw parameters."""
    torch.manual_seed(0)
    model = build_autoencoder(spec, EncoderConfig(**TINY)).double().eval()
    zoo = random_params(spec, 16, seed=5) + 0.5
    model.set_param_scale(zoo)
    graph = model.graph(zoo)
    x = graph.x[:, 0].reshape(16, -1)
    tpl = graph_template(spec)
    assert torch.equal(x[:, : spec.layout[0]], torch.zeros_like(x[:, : spec.layout[0]]))
    for layer in range(1, len(spec.layout)):
        a, b = tpl.node_offsets[layer], tpl.node_offsets[layer + 1]
        torch.testing.assert_close(x[:, a:b].mean(), torch.tensor(0.0, dtype=x.dtype))
        torch.testing.assert_close(x[:, a:b].std(), torch.tensor(1.0, dtype=x.dtype))
    for off, p in zip(spec.offsets[:-1], spec.offsets[1:], strict=True):
        block = zoo[:, off:p]
        torch.testing.assert_close(model.param_shift[off:p], block.mean().expand(p - off))
        torch.testing.assert_close(model.param_scale[off:p], block.std().expand(p - off))
    z = model.encode(zoo)
    torch.testing.assert_close(model.decode(z), model.decoder(z))
    reloaded = build_autoencoder(spec, EncoderConfig(**TINY)).double()
    reloaded.load_state_dict(model.state_dict())
    torch.testing.assert_close(reloaded.eval().encode(zoo), z)


def test_every_parameter_gets_a_gradient_cnn_ng():
    model = ng_model(CNN, torch.float32).train()
    model(random_params(CNN, 2, torch.float32)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_fourier_features_fixed_and_seeded():
    a, b = GaussianFourierFeatures(2, 8, 3.0, seed=0), GaussianFourierFeatures(2, 8, 3.0, seed=0)
    assert torch.equal(a.B, b.B) and "B" in a.state_dict()
    v = torch.randn(5, 2)
    out = a(v)
    assert out.shape == (5, 16)
    torch.testing.assert_close(out[:, :8] ** 2 + out[:, 8:] ** 2, torch.ones(5, 8))
