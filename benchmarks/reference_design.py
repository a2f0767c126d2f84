"""A throughput baseline organised like the published reference code (METHOD.md 2, 3, 4.3, 9.15).

It computes the *same function* as symmerge's sign-mode ScaleGMN autoencoder and render
loss, with the same parameters (it wraps our modules and reads their weights), but
organises the work as the reference code does:

* **data -> graph**: per network, a state dict; weights transposed to ``[in, out, 1]``;
  a dense ``[N, N, 1]`` edge tensor and an ``[N, 1]`` node tensor filled with Python
  loops over layers; the edges gathered from the dense tensor; one PyG ``Data`` per
  network; ``Batch.from_data_list``;
* **encoder**: every masked branch (the hidden ``ScaleInv`` branch *and* the I/O MLP
  branch) runs on every edge / node and the results are selected by mask
  (``torch.where``); ``rho(u) + rho(-u)`` runs two full MLP passes; the sender's linear
  map runs per edge after the gather (``x_j = W_v x[src]``); the edge update
  canonicalizes the gathered endpoint features per edge and applies ``psi`` to their
  per-edge concatenation; the readout canonicalizes every node and masks;
* **loss**: decoded and original networks rendered one at a time with an ``nn.Module``
  built per call (``torch.func.functional_call``); targets re-rendered every step.

Not reproduced: the reference's per-item ``torch.load`` from disk (the networks here are
already in memory) and its DataLoader worker processes. Masks select with ``torch.where``
where the reference multiplies by masks (slightly cheaper, so the baseline is, if
anything, flattered). Only the configuration of the ``paper-inr`` preset is supported
(``sign`` mode, forward direction, two I/O MLPs, no ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter, to_dense_batch

from symmerge.graph.convert import default_input_node_value
from symmerge.graph.template import HIDDEN, graph_template
from symmerge.models.autoencoder import Autoencoder
from symmerge.models.blocks import Canon, ScaleEquivariant
from symmerge.models.scalegmn import ScaleGMNEncoder, ScaleGMNLayer
from symmerge.specs import SirenSpec
from symmerge.specs.siren import coordinate_grid

__all__ = [
    "ReferenceDesignAutoencoder",
    "ReferenceDesignEncoder",
    "ReferenceRenderLoss",
    "reference_graph",
]


# --------------------------------------------------------------------------- data -> graph
def _dense_graph(
    weights: list[Tensor], biases: list[Tensor], input_value: float, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Node ``[N, 1]`` and dense edge ``[N, N, 1]`` features of one network
    (``weights[l]`` is ``[in, out, 1]``, ``biases[l]`` is ``[out, 1]``)."""
    num_nodes = weights[0].shape[0] + sum(w.shape[1] for w in weights)
    nodes = torch.zeros(num_nodes, 1, dtype=dtype)
    edges = torch.zeros(num_nodes, num_nodes, 1, dtype=dtype)
    row, col = 0, weights[0].shape[0]
    for w in weights:
        n_in, n_out, _ = w.shape
        edges[row : row + n_in, col : col + n_out] = w
        row += n_in
        col += n_out
    row = weights[0].shape[0]
    nodes[:row] = input_value
    for b in biases:
        nodes[row : row + b.shape[0]] = b
        row += b.shape[0]
    return nodes, edges


def reference_graph(
    spec: SirenSpec, params: Tensor, *, input_node_value: float | None = None
) -> Batch:
    """One PyG ``Data`` per network of ``params [B, P]``, built from a dense ``N x N``
    tensor, then ``Batch.from_data_list``.

    Static fields (``edge_index``, node and edge types, masks) are built once per
    architecture, as the reference dataset does in its constructor; they come from
    symmerge's template so that both implementations use the same embeddings.
    """
    value = default_input_node_value(spec) if input_node_value is None else input_node_value
    tpl = graph_template(spec)
    src, dst = tpl.edge_index
    mask_hidden = (tpl.node_class == HIDDEN).unsqueeze(-1)
    weight_keys = [k for k, _ in spec.param_shapes if k.endswith("weight")]
    bias_keys = [k for k, _ in spec.param_shapes if k.endswith("bias")]
    data_list = []
    for row in params:
        state = spec.to_state_dict(row)
        weights = [state[k].permute(1, 0).unsqueeze(-1) for k in weight_keys]
        biases = [state[k].unsqueeze(-1) for k in bias_keys]
        nodes, edges = _dense_graph(weights, biases, value, params.dtype)
        data_list.append(Data(
            x=nodes, edge_index=tpl.edge_index, edge_attr=edges[src, dst],
            node_type=tpl.node_type, edge_type=tpl.edge_type, node_class=tpl.node_class,
            mask_hidden=mask_hidden,
        ))
    return Batch.from_data_list(data_list)


# ----------------------------------------------------------------------------- encoder
def _symmetrize(canon: Canon, u: Tensor) -> Tensor:
    """``rho(u) + rho(-u)`` as two full MLP passes (the reference's ``InvariantLayer``)."""
    return canon.rho(u) + canon.rho(-u)


def _masked_equivariant(f: ScaleEquivariant, u: Tensor, hidden: Tensor) -> Tensor:
    """``(Gamma u) * g(u)`` with both branches of ``g`` computed on every row, then
    selected by ``hidden [rows, 1]``."""
    inv_hidden = f.phi(_symmetrize(f.canon, u))
    inv_io = f.phi_io[0](u)
    return f.gamma(u) * torch.where(hidden, inv_hidden, inv_io)


def _check_supported(encoder: ScaleGMNEncoder) -> None:
    """Raise ValueError unless ``encoder`` has the paper-inr configuration."""
    cfg = encoder.config
    problems = []
    if not isinstance(encoder, ScaleGMNEncoder):
        problems.append(f"encoder is {type(encoder).__name__}, not ScaleGMNEncoder")
    elif encoder.mode != "sign":
        problems.append(f"mode {encoder.mode!r} (only 'sign')")
    if cfg.ablate or cfg.bidirectional or cfg.num_io_mlps != 2:
        problems.append("ablate, bidirectional or num_io_mlps != 2")
    if problems:
        raise ValueError("the reference-design baseline supports the paper-inr configuration "
                         "only: " + "; ".join(problems))


class ReferenceDesignEncoder(nn.Module):
    """The reference's masked-everything ScaleGMN forward on our encoder's parameters
    (``encoder`` is held, not copied: both compute with the same weights)."""

    def __init__(self, encoder: ScaleGMNEncoder) -> None:
        super().__init__()
        _check_supported(encoder)
        self.enc = encoder

    def _layer(
        self, layer: ScaleGMNLayer, x: Tensor, e: Tensor, graph: Batch, edge_hidden: Tensor
    ) -> tuple[Tensor, Tensor]:
        src, dst = graph.edge_index
        node_hidden = graph.mask_hidden
        u = layer.msg_e(e) * layer.msg_x(x[src])  # sender's linear map per edge
        m = _masked_equivariant(layer.msg, u, edge_hidden)
        agg = scatter(m, dst, 0, dim_size=x.shape[0], reduce="sum")
        x_new = _masked_equivariant(layer.upd, torch.cat([x, agg], dim=-1), node_hidden)
        if layer.edge is not None:  # canonicalize both endpoints per edge, old x
            canon = layer.edge.canon
            pair = torch.cat([_symmetrize(canon, x[src]), _symmetrize(canon, x[dst])], dim=-1)
            e = layer.edge.gamma(e) * layer.edge.psi(pair)
        if layer.skip is not None:
            x_new = x_new + layer.skip(x)
        return x_new, e

    def _readout(self, x: Tensor, graph: Batch) -> Tensor:
        enc = self.enc
        hidden = graph.mask_hidden
        c = enc.readout_phi(_symmetrize(enc.readout_canon, x))  # every node, then masked
        pooled = scatter(torch.where(hidden, c, 0.0), graph.batch, 0,
                         dim_size=graph.num_graphs, reduce="sum")
        io = ~hidden.squeeze(1)
        io_nodes, _ = to_dense_batch(x[io], graph.batch[io])
        return enc.readout_mlp(torch.cat([pooled, io_nodes.flatten(1)], dim=1))

    def forward(self, graph: Batch) -> Tensor:
        """``z [B, d_latent]`` of a batch from :func:`reference_graph`."""
        enc = self.enc
        hidden = graph.mask_hidden
        x = enc.node_init(graph.x)
        if enc.node_pe is not None:
            p = enc.node_pe[graph.node_type]
            x = torch.where(hidden, x * p, x + p)
        e = enc.edge_init(graph.edge_attr)
        if enc.edge_pe is not None:
            e = e * enc.edge_pe[graph.edge_type]
        edge_hidden = hidden[graph.edge_index[1]]  # masks indexed by the receiver
        for layer in enc.layers:
            x, e = self._layer(layer, x, e, graph, edge_hidden)
            x = F.dropout(x, enc.config.dropout, self.training)
        return self._readout(x, graph)


class ReferenceDesignAutoencoder(nn.Module):
    """``decoder(encoder(graph))`` of the reference design, on ``model``'s parameters
    (including its per-tensor ``param_scale`` and latent norm, when the model has them)."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        if not isinstance(model.spec, SirenSpec):
            raise ValueError(f"the baseline is for SIREN zoos, got {model.spec.describe()}")
        if getattr(model, "probe_inputs", None) is not None:
            raise ValueError("the reference design has no probe features (probe_points: 0)")
        self.spec: SirenSpec = model.spec
        self.input_node_value = model.input_node_value
        self.encoder = ReferenceDesignEncoder(model.encoder)
        self.decoder = model.decoder
        # per-tensor scales of symmerge's Autoencoder (shared with ``model``), if it has them
        self.model_scale: Tensor | None = getattr(model, "param_scale", None)
        # the optional latent norm (an identity unless the preset turns it on), shared too
        self.latent_norm: nn.Module = getattr(model, "latent_norm", nn.Identity())

    def _scale(self, like: Tensor) -> Tensor | float:
        """The per-tensor parameter scales ``[P]`` in ``like``'s dtype (1 without them)."""
        return 1.0 if self.model_scale is None else self.model_scale.to(like.dtype)

    def graph(self, params: Tensor) -> Batch:
        """Built on the CPU, as the reference's data loader does, then moved."""
        graph = reference_graph(self.spec, params.cpu(), input_node_value=self.input_node_value)
        return graph.to(params.device)

    def encode(self, params: Tensor) -> Tensor:
        """``z [B, d_latent]`` of ``params [B, P]`` (graphs built network by network)."""
        return self.latent_norm(self.encoder(self.graph(params / self._scale(params))))

    def decode(self, z: Tensor) -> Tensor:
        """Flat parameters ``[B, P]`` of latents ``z``."""
        return self.decoder(z) * self._scale(z)

    def forward(self, params: Tensor) -> Tensor:
        """Reconstructed parameters ``[B, P]``."""
        return self.decode(self.encode(params))


# -------------------------------------------------------------------------------- loss
class ReferenceRenderLoss:
    """Render MSE with one ``nn.Module`` call per network, decoded and original alike."""

    def __init__(self, spec: SirenSpec, resolution: int = 28) -> None:
        self.spec = spec
        self.resolution = resolution
        self.slices = [
            (key, a, b, shape)
            for (key, shape), a, b in zip(spec.param_shapes, spec.offsets[:-1],
                                          spec.offsets[1:], strict=True)
        ]

    def render_one(self, module: nn.Module, flat: Tensor, grid: Tensor) -> Tensor:
        """The ``[R, R]`` image of one flat parameter vector."""
        state = {key: flat[a:b].reshape(shape) for key, a, b, shape in self.slices}
        out = functional_call(module, state, (grid,))
        return out.reshape(self.resolution, self.resolution)

    def __call__(self, decoded: Tensor, original: Tensor) -> Tensor:
        module = self.spec.build_module().to(decoded.device, decoded.dtype)  # fresh per call
        grid = coordinate_grid(self.resolution, dtype=decoded.dtype).to(decoded.device)
        preds = torch.stack([self.render_one(module, d, grid) for d in decoded])
        with torch.no_grad():
            targets = torch.stack([self.render_one(module, o, grid) for o in original])
        return F.mse_loss(preds, targets)
