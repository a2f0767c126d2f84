"""Network -> graph conversion: sizes, ordering, features, types, batching, round trips."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from symmerge.errors import SymmergeError
from symmerge.graph import (
    HIDDEN,
    INPUT,
    OUTPUT,
    graph_action,
    graph_template,
    graph_to_params,
    graphs_from_groups,
    params_to_graph,
)
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec
from symmerge.symmetry import sample_group_elements
from tests.devices import assert_on

SPECS = [
    SirenSpec((2, 8, 8, 1)),
    MLPSpec((3, 4, 5, 2), "tanh"),
    MLPSpec((3, 4, 5, 4, 3), "relu"),  # n_L > 1 and n_{L-1} > 1
    CNNSpec((1, 4, 4, 3), "relu"),
    CNNSpec((2, 3, 4, 5), "tanh", kernel_size=2),
]
IDS = ["siren", "mlp-tanh", "mlp-relu-deep", "cnn", "cnn-k2"]


def reference_graph(spec, row: torch.Tensor, input_value: float) -> dict[str, torch.Tensor]:
    """One network's graph built with plain loops from the rules in METHOD.md 2."""
    ws, bs = spec.unflatten(row)
    layout, L = spec.layout, spec.num_layers
    n_in, n_out = layout[0], layout[-1]
    off = [sum(layout[:k]) for k in range(len(layout))]
    d_e = max(w[0, 0].numel() for w in ws)
    src, dst, attr, etype = [], [], [], []
    for layer, w in enumerate(ws):
        for j in range(layout[layer]):
            for i in range(layout[layer + 1]):
                src.append(off[layer] + j)
                dst.append(off[layer + 1] + i)
                a = torch.zeros(d_e, dtype=row.dtype)
                k = w[i, j].reshape(-1)
                a[: k.numel()] = k
                attr.append(a)
                if layer == 0:
                    etype.append(j)
                elif layer == L - 1:
                    etype.append(n_in + i)
                else:
                    etype.append(n_in + n_out + layer - 1)
    x, ntype, ncls = [], [], []
    for level, n in enumerate(layout):
        for k in range(n):
            if level == 0:
                x.append(input_value)
                ntype.append(k)
                ncls.append(INPUT)
            elif level == L:
                x.append(float(bs[-1][k]))
                ntype.append(n_in + k)
                ncls.append(OUTPUT)
            else:
                x.append(float(bs[level - 1][k]))
                ntype.append(n_in + n_out + level - 1)
                ncls.append(HIDDEN)
    return {
        "x": torch.tensor(x, dtype=row.dtype).unsqueeze(1),
        "edge_index": torch.tensor([src, dst]),
        "edge_attr": torch.stack(attr),
        "edge_type": torch.tensor(etype),
        "node_type": torch.tensor(ntype),
        "node_class": torch.tensor(ncls),
    }


def test_paper_sizes():
    siren = graph_template(SirenSpec())
    assert (siren.num_nodes, siren.num_edges, siren.edge_dim) == (67, 1120, 1)
    assert (siren.num_node_types, siren.num_edge_types) == (5, 4)
    cnn = graph_template(CNNSpec())
    assert (cnn.num_nodes, cnn.num_edges, cnn.edge_dim) == (59, 688, 9)
    assert (cnn.num_node_types, cnn.num_edge_types) == (14, 13)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_matches_loop_reference(spec, dtype, gen):
    params = spec.init_params(3, generator=gen, dtype=dtype)
    params = params + 0.1 * torch.randn(params.shape, generator=gen, dtype=dtype)
    batch = params_to_graph(spec, params, input_node_value=0.25)
    assert batch.num_graphs == 3 and batch.x.dtype == dtype
    for b in range(3):
        ref = reference_graph(spec, params[b], 0.25)
        got = batch.get_example(b)
        for key, want in ref.items():
            assert torch.equal(got[key], want), key


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_edges_sorted_by_layer_source_target(spec):
    tpl = graph_template(spec)
    src, dst = tpl.edge_index
    key = (tpl.edge_layer * tpl.num_nodes + src) * tpl.num_nodes + dst
    assert bool((key.diff() > 0).all())
    assert torch.equal(tpl.node_layer[src] + 1, tpl.node_layer[dst])


def test_last_block_edge_types_follow_targets():
    """The reference's bug: types of the last block enumerated output-major."""
    spec = MLPSpec((3, 4, 5, 4, 3), "relu")
    tpl = graph_template(spec)
    src, dst = tpl.edge_index
    last = tpl.node_class[dst] == OUTPUT
    out_pos = dst[last] - (tpl.num_nodes - 3)
    assert torch.equal(tpl.edge_type[last], 3 + out_pos)
    assert tpl.edge_type[last][:3].tolist() == [3, 4, 5]  # source-major: targets cycle


def test_input_node_defaults():
    siren, cnn = SirenSpec((2, 4, 1)), CNNSpec((1, 2, 3))
    g = params_to_graph(siren, siren.init_params(1))
    assert g.x[g.node_class == INPUT].eq(1.0).all()
    g = params_to_graph(cnn, cnn.init_params(1))
    assert g.x[g.node_class == INPUT].eq(0.0).all()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_round_trip_and_each_parameter_once(spec, gen, device):
    params = spec.init_params(4, generator=gen, device=device).requires_grad_(True)
    batch = params_to_graph(spec, params)
    assert_on([batch[k] for k in batch.keys()], device)  # noqa: SIM118 (Batch is not a dict)
    assert torch.equal(graph_to_params(spec, batch), params.detach())
    (batch.x.sum() + batch.edge_attr.sum()).backward()
    assert torch.equal(params.grad, torch.ones_like(params))  # every parameter exactly once


def test_batch_is_pyg_compatible(gen, device):
    spec = CNNSpec((1, 4, 4, 3), "relu")
    params = spec.init_params(3, generator=gen, device=device)
    batch = params_to_graph(spec, params)
    again = Batch.from_data_list(batch.to_data_list())
    assert set(again.keys()) == set(batch.keys())
    for key in batch.keys():  # noqa: SIM118 (Batch is not a dict)
        assert torch.equal(again[key], batch[key]), key
    n = graph_template(spec).num_nodes
    assert torch.equal(batch.batch.cpu(), torch.arange(3).repeat_interleave(n))
    assert torch.equal(batch.ptr.cpu(), torch.arange(4) * n)


def test_mixed_groups(gen, device):
    a, b, c = SirenSpec((2, 8, 8, 1)), MLPSpec((2, 3, 4, 5, 1), "tanh"), CNNSpec((1, 4, 3), "relu")
    pa, pb, pc = (s.init_params(n, generator=gen, device=device)
                  for s, n in ((a, 2), (b, 3), (c, 1)))
    mixed = graphs_from_groups([(a, pa), (b, pb), (c, pc)])
    assert mixed.num_graphs == 6 and mixed.edge_attr.shape[1] == 9
    assert_on([mixed[k] for k in mixed.keys()], device)  # noqa: SIM118 (Batch is not a dict)
    groups = ((a, pa), (b, pb), (c, pc))
    singles = [g for s, p in groups for g in params_to_graph(s, p).to_data_list()]
    for i, want in enumerate(singles):
        got = mixed.get_example(i)
        for key in want.keys():  # noqa: SIM118 (Data is not a dict)
            w = want[key]
            if key == "edge_attr":
                assert got[key][:, w.shape[1]:].eq(0).all()
                w = torch.nn.functional.pad(w, (0, 9 - w.shape[1]))
            assert torch.equal(got[key], w), (i, key)
    counts = torch.bincount(mixed.batch).tolist()
    assert counts == [19, 19, 15, 15, 15, 8]
    assert torch.equal(mixed.ptr.cpu(), torch.tensor([0, 19, 38, 53, 68, 83, 91]))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_graph_action_matches_parameter_action(spec, gen, device):
    params = spec.init_params(3, generator=gen, dtype=torch.float64, device=device)
    g = sample_group_elements(spec, 3, generator=gen, dtype=torch.float64, device=device)
    tpl = graph_template(spec)
    before = params_to_graph(spec, params)
    after = params_to_graph(spec, g.apply(spec, params))
    act = graph_action(spec, g)
    assert_on((act.node_perm, act.node_mult, act.edge_perm, act.edge_mult), device)
    x = before.x.reshape(3, tpl.num_nodes, -1)
    e = before.edge_attr.reshape(3, tpl.num_edges, -1)
    torch.testing.assert_close(act.nodes(x), after.x.reshape(x.shape), rtol=1e-12, atol=0)
    torch.testing.assert_close(act.edges(e), after.edge_attr.reshape(e.shape), rtol=1e-12, atol=0)


def test_template_cached():
    assert graph_template(SirenSpec((2, 8, 1))) is graph_template(SirenSpec((2, 8, 1)))


def test_errors():
    spec = SirenSpec((2, 4, 1))
    with pytest.raises(SymmergeError):
        params_to_graph(spec, torch.zeros(2, spec.num_params + 1))
    with pytest.raises(SymmergeError):
        graphs_from_groups([])
    g = sample_group_elements(spec, 1, phase=True, max_shift=3,
                              generator=torch.Generator().manual_seed(1))
    g = type(g)(g.perms, g.mults, tuple(torch.ones_like(s) for s in g.shifts))
    with pytest.raises(SymmergeError):
        graph_action(spec, g)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_probe_features_follow_node_order_and_act_like_biases(spec, gen):
    """Row ``j`` of the probe features is node ``j``'s value at each probe input, and
    the group acts on them as on the node features (biases): hidden rows permute,
    flip sign and scale with their neuron, I/O rows are invariant."""
    from symmerge.graph import probe_node_features

    params = spec.init_params(3, generator=gen, dtype=torch.float64)
    inputs = spec.probe_inputs(6, dtype=torch.float64, generator=gen)
    feats = probe_node_features(spec, params, inputs)
    tpl = graph_template(spec)
    assert feats.shape == (3 * tpl.num_nodes, 6)
    levels = spec.neuron_values(params, inputs)
    per_net = feats.reshape(3, tpl.num_nodes, 6)
    for level, vals in enumerate(levels):
        rows = (tpl.node_layer == level).nonzero().squeeze(1)
        torch.testing.assert_close(per_net[:, rows], vals.mT, rtol=0, atol=0)
    g = sample_group_elements(spec, 3, scale_range=(1e-2, 1e2), generator=gen,
                              dtype=torch.float64)
    moved = probe_node_features(spec, g.apply(spec, params), inputs).reshape(per_net.shape)
    want = graph_action(spec, g).nodes(per_net)
    torch.testing.assert_close(moved, want, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(moved, per_net)  # the action is not trivial here
