"""Autoencoder API, builder, config validation, mixed batches, parameter counts."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from symmerge.errors import SymmergeError
from symmerge.graph import graphs_from_groups, params_to_graph
from symmerge.models import (
    EncoderConfig,
    PNAEncoder,
    ScaleGMNEncoder,
    build_autoencoder,
    build_encoder,
)
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec
from tests.devices import assert_on
from tests.models._util import random_params, tiny_model


@pytest.mark.parametrize("mode", ["sign", "permutation", "pna"])
def test_api_shapes_and_order(mode, dtype, device):
    spec = SirenSpec((2, 8, 8, 1))
    model = tiny_model(spec, dtype, mode=mode, probe_points=4).to(device)
    params = random_params(spec, 3, dtype).to(device)
    z = model.encode(params)
    assert z.shape == (3, model.latent_dim) and z.dtype == dtype
    graph = model.graph(params)
    assert_on((z, [graph[k] for k in graph.keys()], model(params)), device)  # noqa: SIM118
    torch.testing.assert_close(model.encode_graph(model.graph(params)), z)
    out = model(params)
    assert out.shape == params.shape
    torch.testing.assert_close(model.decode(z), out)
    ws, _ = spec.unflatten(out)  # flat PyTorch order of the spec
    assert ws[0].shape == (3, 8, 2)


@pytest.mark.parametrize(
    "spec,overrides",
    [
        (SirenSpec((2, 6, 5, 1)), {}),
        (SirenSpec((2, 6, 5, 1)), {"bidirectional": True, "num_io_mlps": 3}),
        (CNNSpec((1, 4, 4, 3), "relu"), {"bidirectional": True}),
        (CNNSpec((1, 4, 4, 3), "relu"), {"ablate": True}),
        (CNNSpec((1, 4, 4, 3), "tanh"), {"mode": "permutation", "bidirectional": True}),
        (CNNSpec((1, 4, 4, 3), "tanh"), {"mode": "pna"}),
    ],
    ids=["sign", "sign-bidir-io3", "scale-bidir", "scale-ablate", "perm-bidir", "pna"],
)
def test_every_parameter_gets_a_gradient(spec, overrides):
    model = tiny_model(spec, torch.float32, dropout=0.0, **overrides).train()
    model(random_params(spec, 2, torch.float32)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize("mode", ["auto", "pna"])
def test_mixed_architectures_match_single_encodings(mode):
    base = SirenSpec((2, 8, 8, 1))
    others = [SirenSpec((2, 5, 4, 6, 1)), MLPSpec((2, 7, 1), "tanh")]
    model = tiny_model(base, mode=mode, max_hidden_layers=3)
    groups = [(s, random_params(s, n, seed=i)) for i, (s, n) in
              enumerate([(base, 2), (others[0], 3), (others[1], 1)])]
    with torch.no_grad():
        mixed = model.encode_graph(graphs_from_groups(groups))
        alone = torch.cat([model.encode_graph(params_to_graph(s, p)) for s, p in groups])
    torch.testing.assert_close(mixed, alone, rtol=1e-10, atol=1e-12)


def test_batch_checks():
    model = tiny_model(SirenSpec((2, 8, 8, 1)))
    deep = SirenSpec((2, 4, 4, 4, 1))
    with pytest.raises(SymmergeError, match="max_hidden_layers"):
        model.encode_graph(params_to_graph(deep, deep.init_params(1)))
    wide_io = MLPSpec((3, 4, 1), "tanh")
    with pytest.raises(SymmergeError, match="input \\+ output"):
        model.encode_graph(params_to_graph(wide_io, wide_io.init_params(1)))


def test_builder_picks_encoder_and_resolves_auto():
    relu, tanh = CNNSpec((1, 4, 3), "relu"), CNNSpec((1, 4, 3), "tanh")
    assert build_encoder(relu, EncoderConfig(mode="auto", d_hidden=8)).mode == "scale"
    assert build_encoder(tanh, EncoderConfig(mode="auto", d_hidden=8)).mode == "sign"
    assert isinstance(build_encoder(tanh, EncoderConfig(mode="pna", d_hidden=8)), PNAEncoder)
    enc = build_encoder(tanh, EncoderConfig(mode="permutation", d_hidden=8))
    assert isinstance(enc, ScaleGMNEncoder)
    with pytest.raises(SymmergeError, match="does not match"):
        build_encoder(relu, EncoderConfig(mode="sign", d_hidden=8))
    with pytest.raises(SymmergeError, match="max_hidden_layers"):
        build_encoder(CNNSpec((1, 4, 4, 3)), EncoderConfig(d_hidden=8, mode="auto",
                                                           max_hidden_layers=1))
    model = build_autoencoder(tanh, EncoderConfig(mode="auto", d_hidden=8, d_latent=4),
                              decoder_widths=(3,))
    assert [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)] == [
        24, tanh.num_params
    ]


def test_config_validation():
    with pytest.raises(ValidationError):
        EncoderConfig(unknown=1)
    with pytest.raises(ValidationError):
        EncoderConfig(mode="permutation", ablate=True)
    with pytest.raises(ValidationError):
        EncoderConfig(mode="pna", bidirectional=True)
    with pytest.raises(ValidationError):
        EncoderConfig(mode="sign", d_latent=None)
    cfg = EncoderConfig.model_validate({"mode": "scale", "num_io_mlps": 3})
    assert EncoderConfig.model_validate(cfg.model_dump(mode="json")) == cfg


@pytest.mark.parametrize("spec", [SirenSpec((2, 8, 8, 1)), CNNSpec((1, 4, 4, 3), "relu")])
def test_param_scale_keeps_invariance_and_scales_io(spec, device):
    from symmerge.symmetry import invariance_error, sample_group_elements

    model = tiny_model(spec).to(device)
    zoo = random_params(spec, 16, seed=1).to(device)
    z_before = model.encode(zoo)
    scale = model.set_param_scale(zoo.cpu())  # fitted on the model's device, whatever the input's
    assert_on((scale, model.param_scale), device)
    # one constant per tensor: the RMS of that tensor over the zoo
    for a, b in zip(spec.offsets[:-1], spec.offsets[1:], strict=True):
        assert torch.allclose(scale[a:b], zoo[:, a:b].square().mean().sqrt().expand(b - a))
    assert not torch.allclose(model.encode(zoo), z_before)
    g = sample_group_elements(spec, 16, scale_range=(1e-2, 1e2), dtype=torch.float64,
                              generator=torch.Generator().manual_seed(2), device=device)
    assert invariance_error(model.encode, spec, zoo, g) < 1e-8
    z = model.encode(zoo)
    assert torch.allclose(model.decode(z), model.decoder(z) * scale)
    reloaded = tiny_model(spec)
    reloaded.load_state_dict(model.state_dict())
    assert torch.equal(reloaded.param_scale, scale.cpu())


@pytest.mark.parametrize("spec", [SirenSpec((2, 8, 8, 1)), CNNSpec((1, 4, 4, 3), "relu")])
def test_latent_norm_standardizes_and_keeps_invariance(spec):
    from symmerge.symmetry import invariance_error, sample_group_elements

    model = tiny_model(spec, latent_norm=True)
    zoo = random_params(spec, 24, seed=3)
    model.recompute_latent_stats(zoo.split(8))
    assert model.training is False  # the mode is restored
    z = model.encode(zoo)
    # exact mean over the three batches; the variance is their mean unbiased variance
    torch.testing.assert_close(z.mean(0), torch.zeros_like(z[0]), atol=1e-10, rtol=0)
    assert 0.5 < float(z.detach().std(0).mean()) < 1.5
    g = sample_group_elements(spec, 24, scale_range=(1e-2, 1e2), dtype=torch.float64,
                              generator=torch.Generator().manual_seed(4))
    assert invariance_error(model.encode, spec, zoo, g) < 1e-8
    # one network alone encodes as inside the batch (eval mode: a fixed affine map)
    torch.testing.assert_close(model.encode(zoo[:1]), z[:1])
    plain = tiny_model(spec)
    model.recompute_latent_stats([zoo[:1]])  # a batch of one is skipped, stats reset
    torch.testing.assert_close(model.encode(zoo), plain.encode(zoo))


@pytest.mark.parametrize("spec", [SirenSpec((2, 8, 8, 1)), CNNSpec((1, 4, 4, 3), "relu")])
def test_probe_inputs_and_scales_are_fixed_and_saved(spec):
    """Probe inputs come from a fixed seed; set_param_scale fits one scale per level
    (the RMS of that level's values over the zoo), and both travel with the weights."""
    model = tiny_model(spec, probe_points=5)
    again = tiny_model(spec, probe_points=5)
    assert torch.equal(model.probe_inputs, again.probe_inputs)
    zoo = random_params(spec, 12, seed=2)
    model.set_param_scale(zoo)
    levels = spec.neuron_values(zoo, model.probe_inputs)
    want = torch.stack([v.square().mean().sqrt() for v in levels])
    torch.testing.assert_close(model.probe_scale, want)
    graph = model.graph(zoo)
    assert graph.x.shape == (zoo.shape[0] * sum(spec.layout), 6)
    # scaled probe values have unit RMS per level over the zoo
    for level in range(len(spec.layout)):
        rows = graph.node_layer == level
        rms = graph.x[rows, 1:].square().mean().sqrt()
        torch.testing.assert_close(rms, torch.ones_like(rms))
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.encode(zoo), model.encode(zoo))
    plain = tiny_model(spec)
    assert "probe_inputs" not in plain.state_dict()
    with pytest.raises(RuntimeError):
        plain.load_state_dict(model.state_dict())


@pytest.mark.parametrize("probes", [0, 8], ids=["bias", "probes"])
@pytest.mark.parametrize("spec", [SirenSpec((2, 8, 8, 1)), CNNSpec((1, 4, 4, 3), "relu")],
                         ids=["sign", "scale"])
def test_bf16_autocast_keeps_the_latent_float32_and_invariant(spec, probes, device):
    """Under ``precision: bf16-mixed`` (autocast to bfloat16) the encoder runs in float32:
    the latent is the float32 one and invariant to the float32 tolerance; the decoder's
    hidden layers run in bfloat16, its output layer in float32."""
    from symmerge.symmetry import invariance_error, sample_group_elements, tolerance

    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    model = tiny_model(spec, torch.float32, probe_points=probes).to(device)
    params = random_params(spec, 4, torch.float32).to(device)
    g = sample_group_elements(spec, 4, scale_range=(1e-2, 1e2), device=device,
                              generator=torch.Generator().manual_seed(1))
    plain = model.encode(params)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        z = model.encode(params)
        err = invariance_error(model.encode, spec, params, g)
        hidden = model.decoder[0](z)
        decoded = model(params)
    assert z.dtype == torch.float32  # the plain float32 latent (a GPU's scatter sums vary)
    assert (z - plain).abs().max() <= tolerance(torch.float32) * plain.abs().max()
    assert err <= tolerance(torch.float32)
    assert hidden.dtype == torch.bfloat16 and decoded.dtype == torch.float32


def test_probe_points_validated():
    with pytest.raises(ValidationError):
        EncoderConfig(probe_points=-1)
    assert EncoderConfig().probe_points == 0


def test_phase_canonical_gives_phase_shifted_copies_one_latent():
    from symmerge.symmetry import canonicalize_phase, invariance_error, sample_group_elements

    spec = SirenSpec((2, 8, 8, 1))
    zoo = random_params(spec, 12, seed=4)
    g = sample_group_elements(spec, 12, phase=True, max_shift=2, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(5))
    assert invariance_error(tiny_model(spec).encode, spec, zoo, g) > 1e-5  # shifts matter
    model = tiny_model(spec, phase_canonical=True)
    assert invariance_error(model.encode, spec, zoo, g) < 1e-10
    # the parameter statistics are those of the networks the encoder sees
    plain = tiny_model(spec, standardize="rms")
    assert torch.allclose(model.set_param_scale(zoo),
                          plain.set_param_scale(canonicalize_phase(spec, zoo)))
    assert invariance_error(model.encode, spec, zoo, g) < 1e-10
    with pytest.raises(SymmergeError, match="SIREN networks only"):
        tiny_model(CNNSpec((1, 4, 4, 3), "relu"), phase_canonical=True)
