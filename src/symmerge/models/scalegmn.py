"""The ScaleGMN encoder (METHOD.md 3): an invariant graph metanetwork.

Modes: ``sign`` / ``scale`` (equivariant messages, updates and edge updates;
invariant readout), ``permutation`` (plain MLPs, additive positional
embeddings, DeepSet readout). Branches that depend on the node class (hidden
vs. I/O) run only on the rows of that class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from symmerge.errors import SymmergeError
from symmerge.graph.template import (
    HIDDEN,
    INPUT,
    OUTPUT,
    num_edge_types,
    num_node_types,
)
from symmerge.models.blocks import MLP, Canon, Partition, ScaleEquivariant, phi_of_canon
from symmerge.models.config import EncoderConfig


@dataclass
class EncoderFeatures:
    """Node and edge features after the input stage and after every layer."""

    nodes: list[Tensor] = field(default_factory=list)
    edges: list[Tensor] = field(default_factory=list)


@dataclass(frozen=True)
class GraphContext:
    """Per-forward indices shared by all layers."""

    src: Tensor
    dst: Tensor
    num_nodes: int
    num_graphs: int
    nodes: Partition  # node rows by class
    fw: Partition  # edge rows by receiver (target) class
    bw: Partition | None  # edge rows by backward receiver (source) class


def graph_context(graph: Batch, *, backward: bool = False) -> GraphContext:
    src, dst = graph.edge_index
    cls = graph.node_class
    return GraphContext(
        src=src,
        dst=dst,
        num_nodes=cls.numel(),
        num_graphs=graph.num_graphs,
        nodes=Partition.from_classes(cls),
        fw=Partition.from_classes(cls[dst]),
        bw=Partition.from_classes(cls[src]) if backward else None,
    )


def check_graph(graph: Batch, ctx: GraphContext, n_io: int, node_types: int, edge_dim: int,
                edge_types: int | None, node_dim: int = 1) -> None:
    """Raise SymmergeError if the batch does not fit a model built for these sizes."""
    if graph.x.shape[1] != node_dim:
        probes = node_dim - 1
        raise SymmergeError(
            f"the encoder takes node features of width {node_dim} (bias + {probes} probe "
            f"values), the batch has {graph.x.shape[1]}; build graphs with the autoencoder's "
            f"graph(), which adds the probe features"
        )
    io = ctx.nodes.rows[INPUT].numel() + ctx.nodes.rows[OUTPUT].numel()
    if io != n_io * ctx.num_graphs:
        raise SymmergeError(
            f"the encoder was built for networks with {n_io} input + output neurons; "
            f"the batch has {io} I/O nodes in {ctx.num_graphs} graphs"
        )
    if graph.edge_attr.shape[1] > edge_dim:
        raise SymmergeError(
            f"edge features have {graph.edge_attr.shape[1]} entries, the encoder takes {edge_dim}"
        )
    too_deep = int(graph.node_type.max()) >= node_types or (
        edge_types is not None and graph.edge_type.numel() > 0
        and int(graph.edge_type.max()) >= edge_types
    )
    if too_deep:
        raise SymmergeError(
            "the batch holds networks deeper than the encoder's positional tables; "
            "raise max_hidden_layers"
        )


class EdgeUpdate(nn.Module):
    """``e' = (Gamma e) * psi([Canon(x_src); Canon(x_dst)])`` (equivariant) or
    ``MLP([e; x_src; x_dst])`` (permutation)."""

    def __init__(self, mode: str, d: int, ablate: bool) -> None:
        super().__init__()
        self.equivariant = mode != "permutation"
        if self.equivariant:
            self.gamma = nn.Linear(d, d, bias=False)
            self.canon = Canon(mode, d, d, ablate)
            self.psi = MLP(2 * d, d, d)
        else:
            self.psi = MLP(3 * d, d, d)

    def forward(self, e: Tensor, x: Tensor, ctx: GraphContext) -> Tensor:
        if not self.equivariant:
            return self.psi.forward_gathered([(e, None), (x, ctx.src), (x, ctx.dst)])
        c = self.canon(x)  # once per node, then gathered per edge
        return self.gamma(e) * self.psi.forward_gathered([(c, ctx.src), (c, ctx.dst)])


class BackwardMessage(nn.Module):
    """Messages from target ``i`` to source ``j`` along reversed edges, read from the
    initial (projected, embedded) edge features ``e0``.

    ``sign``: ``f((G_e e0_ji) * (G_v x_i))`` (factor ``q_i^2 q_j = q_j``), I/O branch by
    the receiver ``j``. ``scale`` (where that product is not equivariant):
    ``(G x_j) * phi([Canon((G_e e0_ji) * (G_v x_i)); Canon(x_j)])``.
    ``permutation``: ``MLP([e0; x_i])``.
    """

    def __init__(
        self, mode: str, d: int, ablate: bool, num_io_mlps: int, mlp_on_io: bool = False
    ) -> None:
        super().__init__()
        self.mode = mode
        if mode == "permutation":
            self.mlp = MLP(2 * d, d, d)
            return
        self.lin_e = nn.Linear(d, d, bias=False)
        self.lin_x = nn.Linear(d, d, bias=False)
        if mode == "sign":
            self.f = ScaleEquivariant(mode, d, d, d, ablate=ablate, num_io_mlps=num_io_mlps,
                                      io_classes=(INPUT,), mlp_on_io=mlp_on_io)
        else:
            self.gamma = nn.Linear(d, d, bias=False)
            self.canon_u = Canon(mode, d, d, ablate)
            self.canon_x = Canon(mode, d, d, ablate)
            self.phi = MLP(2 * d, d, d)

    def forward(self, x: Tensor, e0: Tensor, ctx: GraphContext) -> Tensor:
        if self.mode == "permutation":
            return self.mlp.forward_gathered([(e0, None), (x, ctx.dst)])
        u = self.lin_e(e0) * self.lin_x(x)[ctx.dst]
        if self.mode == "sign":
            return self.f(u, ctx.bw)
        g = self.phi.forward_gathered([(self.canon_u(u), None), (self.canon_x(x), ctx.src)])
        return self.gamma(x)[ctx.src] * g


class ScaleGMNLayer(nn.Module):
    """One message-passing layer (METHOD.md 3.3; 3.6 when bidirectional)."""

    def __init__(self, config: EncoderConfig, mode: str, *, last: bool) -> None:
        super().__init__()
        d = config.d_hidden
        self.equivariant = mode != "permutation"
        k = 3 if config.bidirectional else 2
        kw = {"ablate": config.ablate, "num_io_mlps": config.num_io_mlps,
              "mlp_on_io": config.mlp_on_io}
        if self.equivariant:
            self.msg_e = nn.Linear(d, d, bias=False)
            self.msg_x = nn.Linear(d, d, bias=False)
            self.msg = ScaleEquivariant(mode, d, d, d, io_classes=(OUTPUT,), **kw)
            self.upd = ScaleEquivariant(mode, k * d, d, d, **kw)
        else:
            self.msg = MLP(2 * d, d, d)
            self.upd = MLP(k * d, d, d)
        self.backward_msg = (
            BackwardMessage(mode, d, config.ablate, config.num_io_mlps, config.mlp_on_io)
            if config.bidirectional else None
        )
        self.edge = EdgeUpdate(mode, d, config.ablate) if config.update_edges and not last else None
        self.skip = nn.Linear(d, d, bias=False) if config.skip else None

    def forward(
        self, x: Tensor, e: Tensor, e0: Tensor, ctx: GraphContext
    ) -> tuple[Tensor, Tensor]:
        if self.equivariant:
            m = self.msg(self.msg_e(e) * self.msg_x(x)[ctx.src], ctx.fw)
        else:
            m = self.msg.forward_gathered([(e, None), (x, ctx.src)])
        parts = [x, scatter(m, ctx.dst, 0, dim_size=ctx.num_nodes, reduce="sum")]
        if self.backward_msg is not None:
            mb = self.backward_msg(x, e0, ctx)
            parts.append(scatter(mb, ctx.src, 0, dim_size=ctx.num_nodes, reduce="sum"))
        v = torch.cat(parts, dim=-1)
        x_new = self.upd(v, ctx.nodes) if self.equivariant else self.upd(v)
        if self.edge is not None:
            e = self.edge(e, x, ctx)  # uses the old node features
        if self.skip is not None:
            x_new = x_new + self.skip(x)
        return x_new, e


class ScaleGMNEncoder(nn.Module):
    """Graph batch -> latent ``z [B, d_latent]``, invariant to the hidden-neuron group.

    Built for one I/O signature (``n_in`` inputs, ``n_out`` outputs) and edge
    dimension; hidden widths and depths (up to ``max_hidden_layers``) may vary
    within a batch.
    """

    def __init__(
        self,
        config: EncoderConfig,
        *,
        mode: str,
        n_in: int,
        n_out: int,
        edge_dim: int,
        max_hidden_layers: int,
    ) -> None:
        super().__init__()
        if mode not in ("sign", "scale", "permutation"):
            raise SymmergeError(f"ScaleGMNEncoder takes sign, scale or permutation, not {mode!r}")
        if config.d_latent is None:
            raise SymmergeError("ScaleGMNEncoder needs d_latent")
        d = config.d_hidden
        self.config, self.mode = config, mode
        self.equivariant = mode != "permutation"
        self.n_in, self.n_out, self.edge_dim = n_in, n_out, edge_dim
        self.latent_dim = config.d_latent
        self.node_dim = 1 + config.probe_points  # bias (or input value) + probe values
        self.node_init = nn.Linear(self.node_dim, d, bias=False)
        self.edge_init = nn.Linear(edge_dim, d, bias=False)
        self.num_node_types = num_node_types(n_in, n_out, max_hidden_layers)
        self.num_edge_types = num_edge_types(n_in, n_out, max_hidden_layers)
        self.node_pe = (
            nn.Parameter(torch.randn(self.num_node_types, d)) if config.node_pos_embed else None
        )
        self.edge_pe = (
            nn.Parameter(torch.randn(self.num_edge_types, d)) if config.edge_pos_embed else None
        )
        self.layers = nn.ModuleList(
            ScaleGMNLayer(config, mode, last=i == config.num_layers - 1)
            for i in range(config.num_layers)
        )
        if self.equivariant:
            self.readout_canon = Canon(mode, d, d, config.ablate)
            self.readout_phi = MLP(d, d, d)
            self.readout_mlp = MLP((1 + n_in + n_out) * d, config.d_latent, d)
        else:  # DeepSet over all nodes
            self.readout_local = MLP(d, d, d)
            self.readout_mlp = MLP(d, config.d_latent, d)

    def embed(self, graph: Batch) -> tuple[Tensor, Tensor]:
        """GraphInit (bias-free projections) and positional embeddings."""
        x = self.node_init(graph.x)
        ea = graph.edge_attr
        e = self.edge_init(F.pad(ea, (0, self.edge_dim - ea.shape[1])))
        if self.node_pe is not None:
            p = self.node_pe[graph.node_type]
            if self.equivariant:  # multiplicative on hidden nodes, additive on I/O nodes
                hidden = (graph.node_class == HIDDEN).unsqueeze(1)
                x = torch.where(hidden, x * p, x + p)
            else:
                x = x + p
        if self.edge_pe is not None:
            q = self.edge_pe[graph.edge_type]
            e = e * q if self.equivariant else e + q
        return x, e

    def readout(self, x: Tensor, graph: Batch, ctx: GraphContext) -> Tensor:
        B = ctx.num_graphs
        if not self.equivariant:
            h = scatter(self.readout_local(x), graph.batch, 0, dim_size=B, reduce="sum")
            return self.readout_mlp(h)
        hid = ctx.nodes.rows[HIDDEN]
        h = phi_of_canon(self.readout_phi, self.readout_canon, x[hid])
        h = scatter(h, graph.batch[hid], 0, dim_size=B, reduce="sum")
        io = ctx.nodes.select((INPUT, OUTPUT))
        slots = x.new_zeros(B, self.n_in + self.n_out, x.shape[1], dtype=h.dtype)
        slots = slots.index_put((graph.batch[io], graph.node_type[io]), x[io].to(h.dtype))
        return self.readout_mlp(torch.cat([h, slots.flatten(1)], dim=1))

    def forward(
        self, graph: Batch, *, return_features: bool = False
    ) -> Tensor | tuple[Tensor, EncoderFeatures]:
        """``z [B, d_latent]``; with ``return_features`` also the intermediate features."""
        ctx = graph_context(graph, backward=self.config.bidirectional)
        check_graph(graph, ctx, self.n_in + self.n_out, self.num_node_types, self.edge_dim,
                    self.num_edge_types, self.node_dim)
        x, e = self.embed(graph)
        e0 = e
        feats = EncoderFeatures([x], [e]) if return_features else None
        for layer in self.layers:
            x, e = layer(x, e, e0, ctx)
            x = F.dropout(x, self.config.dropout, self.training)
            if feats is not None:
                feats.nodes.append(x)
                feats.edges.append(e)
        z = self.readout(x, graph, ctx)
        return (z, feats) if feats is not None else z
