"""ScaleGMN: invariance of the latent, equivariance of the features, sensitivity."""

from __future__ import annotations

import pytest
import torch

from symmerge.graph import graph_action, graph_template
from symmerge.models import MLP
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec
from symmerge.symmetry import invariance_error, sample_group_elements, tolerance
from tests.devices import assert_on
from tests.models._util import random_params, tiny_model

SIGN = [
    SirenSpec((2, 32, 32, 1)),
    SirenSpec((2, 8, 8, 8, 1)),
    MLPSpec((3, 6, 5, 2), "tanh"),
    CNNSpec((1, 4, 4, 3), "tanh"),
]
SCALE = [MLPSpec((3, 6, 5, 2), "relu"), CNNSpec((1, 4, 4, 3), "relu"),
         CNNSpec((1, 3, 4, 5, 2), "relu")]
TRANSFORMS = {"P": {"diagonal": False}, "D": {"permute": False}, "PD": {}}


def element(spec, batch, transform, dtype=torch.float64, seed=1, device=None):
    return sample_group_elements(
        spec, batch, scale_range=(1e-2, 1e2), dtype=dtype, device=device,
        generator=torch.Generator().manual_seed(seed), **TRANSFORMS[transform],
    )


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("spec", SIGN + SCALE, ids=lambda s: f"{s.activation}{list(s.layout)}")
def test_latent_invariant_float64(spec, transform, device):
    model = tiny_model(spec).to(device)
    params = random_params(spec, 3).to(device)
    assert_on(model.encode(params), device)
    err = invariance_error(model.encode, spec, params, element(spec, 3, transform, device=device))
    assert err <= 1e-8


@pytest.mark.parametrize("variant", [{"bidirectional": True}, {"num_io_mlps": 3},
                                     {"skip": False, "update_edges": False,
                                      "node_pos_embed": False, "edge_pos_embed": False},
                                     {"mlp_on_io": True, "num_io_mlps": 3, "bidirectional": True},
                                     {"probe_points": 7},
                                     {"probe_points": 5, "bidirectional": True}],
                         ids=["bidir", "io3", "bare", "mlp_on_io", "probes", "probes-bidir"])
@pytest.mark.parametrize("spec", [SIGN[1], SCALE[1]], ids=["sign", "scale"])
def test_variants_invariant_float64(spec, variant):
    model = tiny_model(spec, **variant)
    params = random_params(spec, 3)
    assert invariance_error(model.encode, spec, params, element(spec, 3, "PD")) <= 1e-8


@pytest.mark.parametrize("probes", [0, 16], ids=["bias", "probes"])
@pytest.mark.parametrize("spec", [SIGN[0], SCALE[1]], ids=["sign", "scale"])
def test_latent_invariant_float32(spec, probes, device):
    model = tiny_model(spec, torch.float32, probe_points=probes).to(device)
    params = random_params(spec, 4, torch.float32).to(device)
    g = element(spec, 4, "PD", torch.float32, device=device)
    assert_on(model.encode(params), device)
    assert invariance_error(model.encode, spec, params, g) <= tolerance(torch.float32)


@pytest.mark.parametrize("probes", [0, 6], ids=["bias", "probes"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["fw", "bidir"])
@pytest.mark.parametrize("spec", [SIGN[1], SCALE[2]], ids=["sign", "scale"])
def test_features_equivariant(spec, bidirectional, probes):
    model = tiny_model(spec, bidirectional=bidirectional, probe_points=probes)
    params = random_params(spec, 2)
    model.set_param_scale(params)
    g = element(spec, 2, "PD")
    act, tpl = graph_action(spec, g), graph_template(spec)
    with torch.no_grad():
        _, f = model.encoder(model.graph(params), return_features=True)
        _, fg = model.encoder(model.graph(g.apply(spec, params)), return_features=True)
    assert len(f.nodes) == 1 + model.encoder.config.num_layers
    for a, b in zip(f.nodes, fg.nodes, strict=True):
        want = act.nodes(a.reshape(2, tpl.num_nodes, -1))
        torch.testing.assert_close(b.reshape(want.shape), want, rtol=1e-9, atol=1e-12)
    for a, b in zip(f.edges, fg.edges, strict=True):
        want = act.edges(a.reshape(2, tpl.num_edges, -1))
        torch.testing.assert_close(b.reshape(want.shape), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec", [SIGN[1], SCALE[1]], ids=["sign", "scale"])
def test_latent_sensitive_to_non_symmetry_changes(spec):
    """Changing one weight or bias of any layer moves z far above the float64 noise
    (~1e-16). At initialization the sign encoder barely sees hidden -> hidden weights
    (~1e-8 here, ~1e-10 for [2, 32, 32, 1]), so the threshold is low on purpose."""
    model = tiny_model(spec)
    params = random_params(spec, 1)
    z = model.encode(params)
    offs = spec.offsets
    for index in (offs[0] + 1, offs[1], offs[2] + 1, offs[-3] + 1, offs[-2]):
        moved = params.clone()
        moved[:, index] += 0.3
        dz = (model.encode(moved) - z).abs().max() / z.abs().max()
        assert dz > 1e-10, index


@pytest.mark.parametrize("spec", [SIGN[1], SCALE[0]], ids=["sign", "scale"])
def test_ablation_only_permutation_invariant(spec):
    model = tiny_model(spec, ablate=True)
    params = random_params(spec, 3)
    assert invariance_error(model.encode, spec, params, element(spec, 3, "P")) <= 1e-8
    assert invariance_error(model.encode, spec, params, element(spec, 3, "D")) > 1e-4


@pytest.mark.parametrize("bidirectional", [False, True], ids=["fw", "bidir"])
@pytest.mark.parametrize("spec", [SIGN[1], SCALE[1]], ids=["sign", "scale"])
def test_permutation_mode_only_permutation_invariant(spec, bidirectional):
    model = tiny_model(spec, mode="permutation", bidirectional=bidirectional)
    params = random_params(spec, 3)
    assert invariance_error(model.encode, spec, params, element(spec, 3, "P")) <= 1e-8
    assert invariance_error(model.encode, spec, params, element(spec, 3, "D")) > 1e-4


def test_branches_see_only_their_rows():
    """Hidden-branch MLPs run on hidden rows only, I/O MLPs on I/O rows only."""
    spec = SirenSpec((2, 5, 4, 3))
    model = tiny_model(spec, num_io_mlps=3, num_layers=1)
    layer = model.encoder.layers[0]
    rows: dict[str, int] = {}

    def hook(name):
        return lambda mod, inp, out: rows.__setitem__(name, inp[0].shape[0])

    layer.msg.phi.lin2.register_forward_hook(hook("msg_hidden"))
    layer.msg.phi_io[0].register_forward_hook(hook("msg_out"))
    layer.upd.phi.lin2.register_forward_hook(hook("upd_hidden"))
    layer.upd.phi_io[0].register_forward_hook(hook("upd_in"))
    layer.upd.phi_io[1].register_forward_hook(hook("upd_out"))
    model.encode(random_params(spec, 2))
    assert len(layer.msg.phi_io) == 1  # forward messages never reach input nodes
    assert rows == {"msg_hidden": 2 * (10 + 20), "msg_out": 2 * 12,
                    "upd_hidden": 2 * 9, "upd_in": 2 * 2, "upd_out": 2 * 3}


def test_forward_gathered_matches_concatenation(gen):
    mlp = MLP(7, 3, 5).double()
    a = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    idx = torch.tensor([0, 5, 5, 2, 1, 0, 3, 3])
    i2 = torch.tensor([3, 1, 0, 0, 2, 2, 1, 3])
    want = mlp(torch.cat([a[i2], b[idx]], dim=1))
    torch.testing.assert_close(mlp.forward_gathered([(a, i2), (b, idx)]), want)


def test_symmetrized_mlp_matches_definition(gen):
    mlp = MLP(5, 4, 6).double()
    u = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(mlp.forward_symmetrized(u), mlp(u) + mlp(-u))
    assert torch.equal(mlp.forward_symmetrized(-u), mlp.forward_symmetrized(u))


@pytest.mark.parametrize("ablate", [False, True], ids=["sign", "ablate"])
def test_phi_of_canon_matches_composition(gen, ablate):
    from symmerge.models.blocks import Canon, phi_of_canon

    canon = Canon("sign", 5, 6, ablate=ablate).double()
    phi = MLP(5, 4, 6).double()
    u = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(phi_of_canon(phi, canon, u), phi(canon(u)))


def test_mlp_on_io_gives_io_rows_the_plain_mlp():
    from symmerge.graph.template import HIDDEN, INPUT, OUTPUT
    from symmerge.models.blocks import Partition, ScaleEquivariant

    torch.manual_seed(0)
    classes = torch.tensor([INPUT, HIDDEN, HIDDEN, OUTPUT, HIDDEN])
    part = Partition.from_classes(classes)
    u = torch.randn(5, 4, dtype=torch.float64)
    plain = ScaleEquivariant("sign", 4, 4, 8).double()
    io = ScaleEquivariant("sign", 4, 4, 8, mlp_on_io=True).double()
    io.load_state_dict(plain.state_dict())
    a, b = plain(u, part), io(u, part)
    hid, ends = part.rows[HIDDEN], part.select((INPUT, OUTPUT))
    torch.testing.assert_close(b[hid], a[hid])  # hidden rows unchanged
    torch.testing.assert_close(b[ends], io.phi_io[0](u[ends]))  # no Gamma u factor
    assert not torch.allclose(a[ends], b[ends])


@pytest.mark.parametrize("spec", SIGN + SCALE, ids=lambda s: f"{s.activation}{list(s.layout)}")
def test_probe_features_keep_invariance_float64(spec):
    """With probe features fitted to a zoo (the scales of training): invariant under
    P, D and PD, with scale factors across 1e-2..1e2."""
    model = tiny_model(spec, probe_points=8)
    params = random_params(spec, 3)
    model.set_param_scale(params)
    for transform in TRANSFORMS:
        assert invariance_error(model.encode, spec, params, element(spec, 3, transform)) <= 1e-8


@pytest.mark.parametrize("spec", [SIGN[0], SCALE[1]], ids=["sign", "scale"])
def test_probe_features_are_seen(spec):
    """The probe features change the latent, and a function change that leaves
    every weight but the last bias alone moves it through them."""
    params = random_params(spec, 2)
    plain, probed = tiny_model(spec), tiny_model(spec, probe_points=8)
    assert probed.encoder.node_init.weight.shape[1] == 9
    assert not torch.allclose(plain.encode(params), probed.encode(params))
    probed.encoder.node_init.weight.data[:, 0] = 0  # the encoder sees the probes only
    moved = params.clone()
    moved[:, spec.offsets[1] - 1] += 0.5  # one first-layer weight: every later value moves
    assert (probed.encode(moved) - probed.encode(params)).abs().max() > 1e-6


@pytest.mark.parametrize("mode", ["auto", "pna"])
def test_probe_encoder_refuses_graphs_without_probes(mode):
    from symmerge.errors import SymmergeError
    from symmerge.graph import params_to_graph

    spec = SIGN[1]
    model = tiny_model(spec, mode=mode, probe_points=4)
    graph = params_to_graph(spec, random_params(spec, 1))
    with pytest.raises(SymmergeError, match="node features of width 5"):
        model.encode_graph(graph)


def test_pna_with_probes_permutation_but_not_sign_invariant():
    spec = SIGN[1]
    model = tiny_model(spec, mode="pna", probe_points=6)
    params = random_params(spec, 3)
    model.set_param_scale(params)
    assert invariance_error(model.encode, spec, params, element(spec, 3, "P")) <= 1e-8
    assert invariance_error(model.encode, spec, params, element(spec, 3, "D")) > 1e-4
