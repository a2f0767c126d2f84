"""The Neural Graphs encoder against hand computations: one layer on a 4-node graph, and
the parameter counts of the reference's INR and CNN configurations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from symmerge.graph import graph_template, params_to_graph
from symmerge.models import EncoderConfig, build_autoencoder
from symmerge.models.pna import PNALayer
from symmerge.models.scalegmn import graph_context
from symmerge.specs import CNNSpec, SirenSpec


def _fill(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _lin(layer: torch.nn.Linear, v: torch.Tensor) -> torch.Tensor:
    return layer.weight @ v + layer.bias


def test_one_layer_matches_hand_computation():
    """Layer 1 of 2 on SIREN [1, 2, 1]: nodes 0 (input), 1, 2 (hidden), 3 (output);
    edges 0->1, 0->2, 1->3, 2->3; in-degrees 0, 1, 1, 2."""
    spec = SirenSpec((1, 2, 1))
    tpl = graph_template(spec)
    edges = tpl.edge_index.t().tolist()
    assert edges == [[0, 1], [0, 2], [1, 3], [2, 3]]
    d = 2
    cfg = EncoderConfig(mode="pna", d_hidden=d, num_layers=2)
    layer = PNALayer(cfg, tpl.in_degree_histogram(), last=False).double()
    _fill(layer, seed=0)
    conv, norm, upd = layer.conv, layer.norm, layer.edge
    # PyG computes the mean log-degree in float32; set it exactly
    avg_log = (0 + 2 * math.log(2) + math.log(3)) / 4  # histogram: 1 x deg 0, 2 x 1, 1 x 2
    assert conv.aggr.avg_deg_log.item() == pytest.approx(avg_log, rel=1e-6)
    conv.aggr.avg_deg_log.fill_(avg_log)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, d, generator=g, dtype=torch.float64)
    e = torch.randn(4, d, generator=g, dtype=torch.float64)
    graph = params_to_graph(spec, spec.init_params(1, dtype=torch.float64))
    x_new, e_new = layer(x, e, graph_context(graph), graph.batch)

    # the convolution, node by node
    h = torch.empty(4, d, dtype=torch.float64)
    for i in range(4):
        msgs = []
        for k, (j, t) in enumerate(edges):
            if t == i:
                st = _lin(conv.edge_mod, e[k])
                scale, shift = st[:d], st[d:]
                msgs.append(scale * _lin(conv.pre, torch.cat([x[i], x[j]])) + shift)
        if msgs:
            m = torch.stack(msgs)
            var = (m**2).mean(0) - m.mean(0) ** 2
            std = torch.where(var > 1e-5, var.clamp_min(1e-5).sqrt(), torch.zeros_like(var))
            aggs = [m.mean(0), m.min(0).values, m.max(0).values, std]
        else:  # no incoming edge: every aggregate is 0
            aggs = [torch.zeros(d, dtype=torch.float64)] * 4
        amp = math.log(len(msgs) + 1) / avg_log
        agg = torch.cat(aggs + [amp * a for a in aggs])
        h[i] = _lin(conv.lin, _lin(conv.post, torch.cat([x[i], agg])))
    # layer norm over the graph's nodes and channels, SiLU; no residual
    mu, var = h.mean(), ((h - h.mean()) ** 2).mean()
    want_x = F.silu((h - mu) / (var + 1e-5).sqrt() * norm.weight + norm.bias)
    torch.testing.assert_close(x_new, want_x, rtol=1e-12, atol=1e-12)
    # the edge update reads the updated node features
    for k, (j, i) in enumerate(edges):
        pre = _lin(upd.lin_e, e[k]) + _lin(upd.lin_s, want_x[j]) + _lin(upd.lin_t, want_x[i])
        torch.testing.assert_close(e_new[k], _lin(upd.out, F.silu(pre)), rtol=1e-12, atol=1e-12)

    last = PNALayer(cfg, tpl.in_degree_histogram(), last=True).double()
    last.conv.load_state_dict(conv.state_dict())
    x_last, e_last = last(x, e, graph_context(graph), graph.batch)
    torch.testing.assert_close(x_last, h, rtol=1e-12, atol=1e-12)  # no norm, act, update
    assert torch.equal(e_last, e)


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def reference_counts(layout: tuple[int, ...], num_params: int, d: int, rff: int = 128,
                     num_layers: int = 4) -> tuple[int, int]:
    """Trainable parameters of Neural Graphs' ``GraphConstructor`` + ``PNA`` and of its
    decoder ``proj_out``, module by module, as its ``model=pna`` configs build them
    (``input_layers=1``, ``sin_emb=True``, 4 aggregators x 2 scalers, one tower,
    ``modulate_edges``, ``update_edge_attr`` without ``final_edge_update``, LayerNorm).
    Its random Fourier matrices are frozen (``requires_grad=False``), so not counted."""
    n_pos = layout[0] + (len(layout) - 2) + layout[-1]
    constructor = (n_pos * d                          # pos_embed
                   + _linear(2 * rff, d) * 2          # proj_weight, proj_bias after the RFF
                   + _linear(d, d) * 2)               # proj_edge_in, proj_node_in
    conv = (_linear(d, 2 * d)                         # edge_encoder (scale, shift)
            + _linear(2 * d, d)                       # pre_nns: [x_i; x_j]
            + _linear((1 + 4 * 2) * d, d)             # post_nns: [x; 8 aggregates]
            + _linear(d, d))                          # lin
    between = 2 * d + 4 * _linear(d, d)               # LayerNorm + EdgeMLP
    encoder = constructor + num_layers * conv + (num_layers - 1) * between
    decoder = (_linear(layout[-1] * d, 2 * d) + _linear(2 * d, 4 * d)
               + _linear(4 * d, num_params))
    return encoder, decoder


@pytest.mark.parametrize(
    "spec,d,want",
    [(SirenSpec((2, 32, 32, 1)), 128, (1_218_432, 772_513)),
     (CNNSpec((1, 16, 16, 16, 10), "relu"), 256, (4_732_928, 6_930_794))],
    ids=["inr", "cnn"],
)
def test_parameter_counts_match_reference(spec, d, want):
    """The reference's CNN encoder has 7 x 256 = 1,792 parameters more: an activation
    embedding its data set never feeds (no ``activations`` field), so it never runs."""
    model = build_autoencoder(spec, EncoderConfig(mode="pna", d_hidden=d))
    ours = (sum(p.numel() for p in model.encoder.parameters()),
            sum(p.numel() for p in model.decoder.parameters()))
    assert reference_counts(spec.layout, spec.num_params, d) == want
    assert ours == want
    assert model.latent_dim == spec.layout[-1] * d
