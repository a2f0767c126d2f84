"""The permutation-only Neural Graphs baseline encoder (Kofinas et al., ICLR 2024; METHOD.md 3.7).

Follows the PNA model of the Neural Graphs code (``nn/gnn.py``, ``nn/graph_constructor.py``)
as the ScaleGMN autoencoder paper configured it (``model=pna``): 4 layers; random Fourier
features of every bias and weight (kernel), each followed by two linear maps; learned
positional embeddings added to the nodes (one per input neuron, one per hidden layer, one
per output neuron); PNA layers whose messages are modulated by the edge features; between
layers a layer norm, SiLU, dropout and an edge update from the *updated* node features; no
residual connections; the latent is the concatenation of the output nodes' features.

Parameter counts (trainable, as the reference counts them) with its INR configuration
(``d_hidden=128``, SIREN ``[2, 32, 32, 1]``): encoder 1,218,432, decoder 772,513; with its
CNN configuration (``d_hidden=256``, Small CNN Zoo ``[1, 16, 16, 16, 10]``): encoder
4,732,928, decoder 6,930,794. The reference CNN encoder has 1,792 more: an activation
embedding (7 x 256) that its data set never feeds (no ``activations`` field), so it is
never used and is not built here. Its random Fourier matrices are frozen parameters there
and buffers here; neither counts.

Deliberate differences from the reference:

* its layer norm is PyG's ``LayerNorm`` in ``graph`` mode called *without* the batch
  vector, so it normalizes over the whole minibatch and a network's latent depends on its
  batch neighbours; here each network is normalized on its own (``pna_norm="graph"``);
* its CNN graphs place a dense layer's weight in the centre slot of the 9-d kernel
  feature, ours in slot 0; the Fourier matrix has i.i.d. entries, so this only relabels
  its columns (the same model, in distribution over initializations).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn.aggr import DegreeScalerAggregation
from torch_geometric.nn.norm import LayerNorm as GraphLayerNorm

from symmerge.graph.template import OUTPUT, num_edge_types, num_node_types
from symmerge.models.config import EncoderConfig
from symmerge.models.scalegmn import (
    EncoderFeatures,
    GraphContext,
    check_graph,
    graph_context,
)

AGGREGATORS = ("mean", "min", "max", "std")
SCALERS = ("identity", "amplification")


class GaussianFourierFeatures(nn.Module):
    """``v -> [cos(2 pi v B^T), sin(2 pi v B^T)]`` with a fixed ``B ~ N(0, sigma^2)``
    of shape ``[m, d_in]``, drawn from a seeded generator and kept as a buffer."""

    def __init__(self, d_in: int, m: int, sigma: float, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(m, d_in, generator=g) * sigma)

    def forward(self, v: Tensor) -> Tensor:
        proj = 2 * math.pi * v @ self.B.T
        return torch.cat([proj.cos(), proj.sin()], dim=-1)


class ModulatedPNAConv(nn.Module):
    """Neural Graphs' PNA convolution with edge modulation (one tower).

    Message along ``j -> i``: ``m_ji = s_ji * pre([x_i; x_j]) + t_ji`` with
    ``[s_ji; t_ji] = edge_mod(e_ji)``. The messages into ``i`` are aggregated by mean, min,
    max and std, each taken as is and amplified by ``log(deg_i + 1) / avg log(deg + 1)``
    (PyG's :class:`DegreeScalerAggregation`, ``deg``: the in-degree histogram); the output
    is ``lin(post([x_i; aggregates]))``.
    """

    def __init__(self, d: int, deg: Tensor) -> None:
        super().__init__()
        self.aggr = DegreeScalerAggregation(list(AGGREGATORS), list(SCALERS), deg)
        self.edge_mod = nn.Linear(d, 2 * d)
        self.pre = nn.Linear(2 * d, d)
        self.post = nn.Linear((1 + len(AGGREGATORS) * len(SCALERS)) * d, d)
        self.lin = nn.Linear(d, d)

    def forward(self, x: Tensor, e: Tensor, ctx: GraphContext) -> Tensor:
        scale, shift = self.edge_mod(e).chunk(2, dim=-1)
        w_dst, w_src = self.pre.weight.chunk(2, dim=1)  # pre([x_i; x_j]), applied per node
        h = (x @ w_dst.T)[ctx.dst] + (x @ w_src.T + self.pre.bias)[ctx.src]
        agg = self.aggr(scale * h + shift, ctx.dst, dim_size=ctx.num_nodes, dim=0)
        return self.lin(self.post(torch.cat([x, agg], dim=-1)))


class EdgeUpdate(nn.Module):
    """``e' = out(SiLU(lin_e(e) + lin_s(x_src) + lin_t(x_dst)))`` (Neural Graphs' ``EdgeMLP``)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin_e, self.lin_s, self.lin_t, self.out = (nn.Linear(d, d) for _ in range(4))

    def forward(self, e: Tensor, x: Tensor, ctx: GraphContext) -> Tensor:
        h = self.lin_e(e) + self.lin_s(x)[ctx.src] + self.lin_t(x)[ctx.dst]
        return self.out(F.silu(h))


class PNALayer(nn.Module):
    """One convolution; unless ``last``: norm, SiLU and dropout of the new node features,
    then the edge update from them (the reference updates no edges after its last layer).
    ``skip`` adds the layer's input to its output (not in the reference)."""

    def __init__(self, config: EncoderConfig, deg: Tensor, *, last: bool) -> None:
        super().__init__()
        d = config.d_hidden
        self.conv = ModulatedPNAConv(d, deg)
        self.last, self.dropout, self.skip = last, config.dropout, config.skip
        self.graph_norm = config.pna_norm == "graph"
        self.norm: nn.Module | None = None
        if not last:
            self.norm = GraphLayerNorm(d) if self.graph_norm else nn.LayerNorm(d)
        self.edge = EdgeUpdate(d) if config.update_edges and not last else None

    def forward(
        self, x: Tensor, e: Tensor, ctx: GraphContext, batch: Tensor
    ) -> tuple[Tensor, Tensor]:
        h = self.conv(x, e, ctx)
        if self.norm is not None:
            h = self.norm(h, batch, ctx.num_graphs) if self.graph_norm else self.norm(h)
            h = F.dropout(F.silu(h), self.dropout, self.training)
        if self.edge is not None:
            e = self.edge(e, h, ctx)
        return (x + h if self.skip else h), e


class PNAEncoder(nn.Module):
    """Graph batch -> latent: the Neural Graphs encoder (see the module docstring).

    Only permutation-invariant. ``deg`` is the in-degree histogram of the graphs the
    model is built for (:meth:`GraphTemplate.in_degree_histogram`). The latent is the
    concatenation of the output nodes' features (``n_out * d_hidden``), projected
    linearly to ``d_latent`` if that is set and differs (not in the reference).
    """

    def __init__(
        self,
        config: EncoderConfig,
        *,
        n_in: int,
        n_out: int,
        edge_dim: int,
        max_hidden_layers: int,
        deg: Tensor,
    ) -> None:
        super().__init__()
        d, m = config.d_hidden, config.rff_dim
        self.config = config
        self.n_in, self.n_out, self.edge_dim = n_in, n_out, edge_dim
        # graph construction: Fourier features -> Linear -> (+ probes) -> Linear, per kind
        self.node_rff = GaussianFourierFeatures(1, m, config.rff_sigma, seed=0)
        self.edge_rff = GaussianFourierFeatures(edge_dim, m, config.rff_sigma, seed=1)
        self.node_in = nn.Linear(2 * m, d)
        self.edge_in = nn.Linear(2 * m, d)
        self.node_dim = 1 + config.probe_points
        self.probe_proj = nn.Linear(config.probe_points, d) if config.probe_points else None
        self.node_proj = nn.Linear(d, d)
        self.edge_proj = nn.Linear(d, d)
        self.num_node_types = num_node_types(n_in, n_out, max_hidden_layers)
        self.num_edge_types = num_edge_types(n_in, n_out, max_hidden_layers)
        self.node_pe = (
            nn.Parameter(torch.randn(self.num_node_types, d)) if config.node_pos_embed else None
        )
        self.edge_pe = (
            nn.Parameter(torch.randn(self.num_edge_types, d)) if config.edge_pos_embed else None
        )
        L = config.num_layers
        self.layers = nn.ModuleList(PNALayer(config, deg, last=i == L - 1) for i in range(L))
        concat = n_out * d
        self.latent_dim = concat if config.d_latent is None else config.d_latent
        self.project = nn.Linear(concat, self.latent_dim) if self.latent_dim != concat else None

    def embed(self, graph: Batch) -> tuple[Tensor, Tensor]:
        """Initial node and edge features (the reference's graph constructor)."""
        ea = F.pad(graph.edge_attr, (0, self.edge_dim - graph.edge_attr.shape[1]))
        x = self.node_in(self.node_rff(graph.x[:, :1]))
        if self.probe_proj is not None:
            x = x + self.probe_proj(graph.x[:, 1:])
        x = self.node_proj(x)
        e = self.edge_proj(self.edge_in(self.edge_rff(ea)))
        if self.node_pe is not None:
            x = x + self.node_pe[graph.node_type]
        if self.edge_pe is not None:
            e = e + self.edge_pe[graph.edge_type]
        return x, e

    def forward(
        self, graph: Batch, *, return_features: bool = False
    ) -> Tensor | tuple[Tensor, EncoderFeatures]:
        """``z [B, latent_dim]``; with ``return_features`` also the intermediate features."""
        ctx = graph_context(graph)
        check_graph(graph, ctx, self.n_in + self.n_out, self.num_node_types, self.edge_dim,
                    self.num_edge_types, self.node_dim)
        x, e = self.embed(graph)
        feats = EncoderFeatures([x], [e]) if return_features else None
        for layer in self.layers:
            x, e = layer(x, e, ctx, graph.batch)
            if feats is not None:
                feats.nodes.append(x)
                feats.edges.append(e)
        out = ctx.nodes.rows[OUTPUT]
        slots = x.new_zeros(ctx.num_graphs, self.n_out, x.shape[1])
        slot = graph.node_type[out] - self.n_in
        z = slots.index_put((graph.batch[out], slot), x[out]).flatten(1)
        if self.project is not None:
            z = self.project(z)
        return (z, feats) if feats is not None else z
