"""Network parameters ``[B, P]`` <-> PyTorch Geometric batches, by index gathers on a template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch

from symmerge.errors import SymmergeError
from symmerge.graph.template import GraphTemplate, template_on
from symmerge.specs.base import WeightSpaceSpec
from symmerge.symmetry.group import GroupElement

#: Per-node and per-edge fields of a graph batch (besides ``edge_index``).
NODE_FIELDS = ("x", "node_type", "node_class", "node_layer")
EDGE_FIELDS = ("edge_attr", "edge_type", "edge_layer")


def default_input_node_value(spec: WeightSpaceSpec) -> float:
    """Feature of input nodes: 1.0 for INRs (SIREN), 0.0 otherwise (METHOD.md 2.2)."""
    return 1.0 if spec.family == "siren" else 0.0


def _finish(
    fields: dict[str, Tensor], graph_of_node: Tensor, ptr: Tensor, nodes: Tensor, edges: Tensor
) -> Batch:
    """A Batch with PyG's collation metadata. ``graph_of_node`` (the ``batch`` vector) and
    ``ptr`` live on the fields' device; ``nodes``/``edges`` are per-graph counts [B] on
    the CPU, where PyG keeps its slice and increment bookkeeping (its own collate does too)."""
    zero = torch.zeros(1, dtype=torch.long, device="cpu")
    node_ptr = torch.cat([zero, nodes.cumsum(0)])
    edge_ptr = torch.cat([zero, edges.cumsum(0)])
    b = nodes.numel()
    batch = Batch(**fields, batch=graph_of_node, ptr=ptr)
    no_inc = torch.zeros(b, dtype=torch.long, device="cpu")
    batch._slice_dict = (
        {k: node_ptr for k in NODE_FIELDS} | {k: edge_ptr for k in EDGE_FIELDS}
        | {"edge_index": edge_ptr}
    )
    batch._inc_dict = {k: no_inc for k in NODE_FIELDS + EDGE_FIELDS} | {
        "edge_index": node_ptr[:-1]
    }
    batch._num_graphs = b
    return batch


def params_to_graph(
    spec: WeightSpaceSpec, params: Tensor, *, input_node_value: float | None = None
) -> Batch:
    """Graphs of ``params [B, P]`` (or ``[P]``) as one PyG ``Batch``.

    Fields: ``x [B*N, 1]`` (biases; input nodes ``input_node_value``, default
    :func:`default_input_node_value`), ``edge_attr [B*E, d_e]`` (weights),
    ``edge_index [2, B*E]``, ``batch``, ``ptr``, ``node_type``, ``node_class``
    (0 input, 1 hidden, 2 output), ``node_layer``, ``edge_type``, ``edge_layer``.
    Gradients flow back to ``params``.
    """
    if params.ndim == 1:
        params = params.unsqueeze(0)
    spec.check_params(params, finite=False)
    if params.ndim != 2:
        raise SymmergeError(f"expected parameters [B, P], got {tuple(params.shape)}")
    if input_node_value is None:
        input_node_value = default_input_node_value(spec)
    tpl = template_on(spec, params.device)
    B, N, E = params.shape[0], tpl.num_nodes, tpl.num_edges
    ext = torch.cat(
        [params, params.new_zeros(B, 1), params.new_full((B, 1), float(input_node_value))], dim=1
    )
    offsets = torch.arange(B, device=params.device) * N
    fields = {
        "x": ext[:, tpl.node_param].reshape(B * N, 1),
        "edge_attr": ext[:, tpl.edge_param].reshape(B * E, tpl.edge_dim),
        "edge_index": (tpl.edge_index.unsqueeze(1) + offsets.view(1, B, 1)).reshape(2, B * E),
        "node_type": tpl.node_type.repeat(B),
        "node_class": tpl.node_class.repeat(B),
        "node_layer": tpl.node_layer.repeat(B),
        "edge_type": tpl.edge_type.repeat(B),
        "edge_layer": tpl.edge_layer.repeat(B),
    }
    dev = params.device
    counts = torch.full((B,), N, dtype=torch.long, device="cpu")
    return _finish(fields, torch.arange(B, device=dev).repeat_interleave(N),
                   torch.arange(B + 1, device=dev) * N, counts, torch.full_like(counts, E))


def probe_node_features(spec: WeightSpaceSpec, params: Tensor, inputs: Tensor) -> Tensor:
    """Probe features ``[B*N, K]`` in the node order of :func:`params_to_graph`: node
    ``j``'s value at each of the ``K`` probe ``inputs`` (:meth:`WeightSpaceSpec.neuron_values`).

    Input nodes get the inputs (CNNs: their channel means), hidden nodes their
    activations, output nodes the outputs. Hidden rows transform like the neurons'
    biases under the symmetry group (Neural Graphs' probe features, made sign- and
    scale-equivariant by taking the activations themselves).
    """
    if params.ndim == 1:
        params = params.unsqueeze(0)
    levels = spec.neuron_values(params, inputs)  # [B, K, n_l] per level, in node order
    return torch.cat(levels, dim=2).mT.reshape(-1, levels[0].shape[1])


def graphs_from_groups(
    groups: Sequence[tuple[WeightSpaceSpec, Tensor]], *, input_node_value: float | None = None
) -> Batch:
    """One Batch from several ``(spec, params [B_g, P_g])`` groups, graphs in group order.

    Architectures may differ in family, width and depth; edge features are
    zero-padded at the end to the largest edge dimension. Each group's input
    nodes get ``input_node_value`` or its spec's default.
    """
    if not groups:
        raise SymmergeError("graphs_from_groups needs at least one (spec, params) group")
    parts = [params_to_graph(s, p, input_node_value=input_node_value) for s, p in groups]
    d_e = max(g.edge_attr.shape[1] for g in parts)
    node_counts, edge_counts, fields = [], [], {}
    graph_of_node, ptr = [], [parts[0].ptr[:1]]
    shift = graphs = 0
    for g in parts:
        n_nodes = g.x.shape[0]
        node_counts.append(g._slice_dict["x"].diff())
        edge_counts.append(g._slice_dict["edge_index"].diff())
        g_fields = {k: g[k] for k in NODE_FIELDS + EDGE_FIELDS}
        g_fields["edge_attr"] = F.pad(g.edge_attr, (0, d_e - g.edge_attr.shape[1]))
        g_fields["edge_index"] = g.edge_index + shift
        graph_of_node.append(g.batch + graphs)
        ptr.append(g.ptr[1:] + shift)
        shift += n_nodes
        graphs += g.num_graphs
        for k, v in g_fields.items():
            fields.setdefault(k, []).append(v)
    cat = {k: torch.cat(v, dim=-1 if k == "edge_index" else 0) for k, v in fields.items()}
    return _finish(cat, torch.cat(graph_of_node), torch.cat(ptr), torch.cat(node_counts),
                   torch.cat(edge_counts))


def graph_to_params(spec: WeightSpaceSpec, graph: Batch) -> Tensor:
    """Inverse of :func:`params_to_graph` for a batch of ``spec`` graphs: ``[B, P]``.

    Reads weights from ``edge_attr`` and biases from ``x[:, 0]`` (input nodes are
    ignored); the batch must hold graphs of ``spec`` only.
    """
    tpl = template_on(spec, graph.x.device)
    N, E, P = tpl.num_nodes, tpl.num_edges, tpl.num_params
    if graph.x.shape[0] % N or graph.edge_attr.shape[0] != graph.x.shape[0] // N * E:
        raise SymmergeError(f"graph batch does not consist of {spec.describe()} graphs")
    B = graph.x.shape[0] // N
    edges = graph.edge_attr.reshape(B, E, -1)[..., : tpl.edge_dim]
    nodes = graph.x[:, 0].reshape(B, N)
    out = edges.new_empty(B, P)
    used = tpl.edge_param < P
    out[:, tpl.edge_param[used]] = edges[:, used]
    biased = tpl.node_param < P
    out[:, tpl.node_param[biased]] = nodes[:, biased]
    return out


@dataclass(frozen=True)
class GraphAction:
    """A group element acting on graphs of one spec, per batch row ``b``.

    New node ``n`` is ``node_mult[b, n]`` times old node ``node_perm[b, n]``;
    new edge ``e`` is ``edge_mult[b, e]`` times old edge ``edge_perm[b, e]``
    (``q_i / q_j`` for the edge ``j -> i``). Applies to equivariant features too.
    """

    node_perm: Tensor  # [B, N]
    node_mult: Tensor  # [B, N]
    edge_perm: Tensor  # [B, E]
    edge_mult: Tensor  # [B, E]

    def nodes(self, feats: Tensor) -> Tensor:
        """Act on node features ``[B, N, ...]`` (graph batch reshaped per network)."""
        idx = self.node_perm.reshape(*self.node_perm.shape, *([1] * (feats.ndim - 2)))
        mult = self.node_mult.reshape(idx.shape).to(feats.dtype)
        return feats.gather(1, idx.expand_as(feats)) * mult

    def edges(self, feats: Tensor) -> Tensor:
        """Act on edge features ``[B, E, ...]``."""
        idx = self.edge_perm.reshape(*self.edge_perm.shape, *([1] * (feats.ndim - 2)))
        mult = self.edge_mult.reshape(idx.shape).to(feats.dtype)
        return feats.gather(1, idx.expand_as(feats)) * mult


def graph_action(spec: WeightSpaceSpec, element: GroupElement) -> GraphAction:
    """How ``element`` (permutations and multipliers, no phase shifts) acts on graphs, on
    the element's device."""
    if element.shifts is not None and any(bool(s.any()) for s in element.shifts):
        raise SymmergeError("phase shifts do not act linearly on graph features")
    dev = element.perms[0].device if element.perms else torch.device("cpu")
    tpl: GraphTemplate = template_on(spec, dev)
    B = element.batch_size
    dtype = element.mults[0].dtype if element.mults else torch.float32
    node_perm = torch.arange(tpl.num_nodes, device=dev).repeat(B, 1)
    node_mult = torch.ones(B, tpl.num_nodes, dtype=dtype, device=dev)
    offs = tpl.node_offsets
    for h, (perm, mult) in enumerate(zip(element.perms, element.mults, strict=True)):
        a, b = offs[h + 1], offs[h + 2]
        node_perm[:, a:b] = a + perm.to(dev)
        node_mult[:, a:b] = mult.to(dev)
    src, dst = tpl.edge_index
    layer = tpl.edge_layer
    node_off = torch.tensor(offs, device=dev)
    edge_off = torch.tensor(tpl.edge_offsets, device=dev)
    n_next = torch.tensor(tpl.layout[1:], device=dev)[layer]
    old_src, old_dst = node_perm[:, src], node_perm[:, dst]
    edge_perm = edge_off[layer] + (old_src - node_off[layer]) * n_next + (
        old_dst - node_off[layer + 1]
    )
    edge_mult = node_mult[:, dst] / node_mult[:, src]
    return GraphAction(node_perm, node_mult, edge_perm, edge_mult)
