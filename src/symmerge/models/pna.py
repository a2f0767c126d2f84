"""The permutation-only Neural Graphs baseline encoder on PyG's PNAConv (METHOD.md 3.7)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import PNAConv

from symmerge.graph.template import OUTPUT, num_edge_types, num_node_types
from symmerge.models.config import EncoderConfig
from symmerge.models.scalegmn import EncoderFeatures, check_graph, graph_context

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


class PNAEncoder(nn.Module):
    """Random Fourier feature embeddings, additive learned positional embeddings,
    PNA layers (mean/min/max/std x identity/amplification) with LayerNorm, SiLU,
    dropout and edge updates in between; the latent is the concatenation of the
    output-node features (projected linearly to ``d_latent`` if that differs).

    Only permutation-invariant. ``deg`` is the in-degree histogram of the graphs
    the model is built for (:meth:`GraphTemplate.in_degree_histogram`).
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
        d = config.d_hidden
        self.config = config
        self.n_in, self.n_out, self.edge_dim = n_in, n_out, edge_dim
        self.node_rff = GaussianFourierFeatures(1, d, config.rff_sigma, seed=0)
        self.edge_rff = GaussianFourierFeatures(edge_dim, d, config.rff_sigma, seed=1)
        self.node_proj = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d))
        self.node_dim = 1 + config.probe_points
        self.probe_proj = nn.Linear(config.probe_points, d) if config.probe_points else None
        self.edge_proj = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d))
        self.num_node_types = num_node_types(n_in, n_out, max_hidden_layers)
        self.num_edge_types = num_edge_types(n_in, n_out, max_hidden_layers)
        self.node_pe = (
            nn.Parameter(torch.randn(self.num_node_types, d)) if config.node_pos_embed else None
        )
        self.edge_pe = (
            nn.Parameter(torch.randn(self.num_edge_types, d)) if config.edge_pos_embed else None
        )
        L = config.num_layers
        self.convs = nn.ModuleList(
            PNAConv(d, d, list(AGGREGATORS), list(SCALERS), deg, edge_dim=d) for _ in range(L)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(L - 1))
        if config.update_edges:
            self.edge_lin_e = nn.ModuleList(nn.Linear(d, d) for _ in range(L - 1))
            self.edge_lin_s = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(L - 1))
            self.edge_lin_t = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(L - 1))
            self.edge_out = nn.ModuleList(nn.Linear(d, d) for _ in range(L - 1))
        concat = n_out * d
        self.latent_dim = concat if config.d_latent is None else config.d_latent
        self.project = nn.Linear(concat, self.latent_dim) if self.latent_dim != concat else None

    def forward(
        self, graph: Batch, *, return_features: bool = False
    ) -> Tensor | tuple[Tensor, EncoderFeatures]:
        ctx = graph_context(graph)
        check_graph(graph, ctx, self.n_in + self.n_out, self.num_node_types, self.edge_dim,
                    self.num_edge_types, self.node_dim)
        ea = F.pad(graph.edge_attr, (0, self.edge_dim - graph.edge_attr.shape[1]))
        x = self.node_proj(self.node_rff(graph.x[:, :1]))
        if self.probe_proj is not None:
            x = x + self.probe_proj(graph.x[:, 1:])
        e = self.edge_proj(self.edge_rff(ea))
        if self.node_pe is not None:
            x = x + self.node_pe[graph.node_type]
        if self.edge_pe is not None:
            e = e + self.edge_pe[graph.edge_type]
        feats = EncoderFeatures([x], [e]) if return_features else None
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            h = conv(x, graph.edge_index, e)
            if i < last:
                h = F.dropout(F.silu(self.norms[i](h)), self.config.dropout, self.training)
                if self.config.update_edges:
                    pre = (self.edge_lin_e[i](e) + self.edge_lin_s[i](x)[ctx.src]
                           + self.edge_lin_t[i](x)[ctx.dst])
                    e = self.edge_out[i](F.silu(pre))
            x = x + h if self.config.skip else h
            if feats is not None:
                feats.nodes.append(x)
                feats.edges.append(e)
        out = ctx.nodes.rows[OUTPUT]
        slots = x.new_zeros(ctx.num_graphs, self.n_out, x.shape[1])
        slot = graph.node_type[out] - self.n_in
        slots = slots.index_put((graph.batch[out], slot), x[out])
        z = slots.flatten(1)
        if self.project is not None:
            z = self.project(z)
        return (z, feats) if feats is not None else z

