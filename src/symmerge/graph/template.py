"""Static per-architecture graph templates: index arrays built once per spec and cached.

Node and type conventions (for a layout ``[n_0, ..., n_L]``):

* one node per neuron (per channel for CNNs), ordered layer by layer;
* forward edges between consecutive layers, complete bipartite, ordered by
  layer, then source, then target; the edge ``j -> i`` of weight layer ``l``
  carries ``W_l[i, j]`` (a kernel flattened row-major; dense weights in slot 0);
* node classes: ``INPUT`` (layer 0), ``HIDDEN``, ``OUTPUT`` (layer L);
* node types (positional embeddings): input neuron ``k`` has type ``k``, output
  neuron ``m`` type ``n_0 + m``, hidden layer ``h`` (neuron layer ``h + 1``)
  type ``n_0 + n_L + h``. I/O ids do not depend on the depth, so networks of
  different depths share them; for I/O nodes the type is also the node's slot
  in the fixed I/O order (inputs first, then outputs);
* edge types, assigned per stored edge: edges leaving input neuron ``k`` have
  type ``k``, edges entering output neuron ``m`` type ``n_0 + m``, the block of
  hidden -> hidden weight layer ``l`` (``1 <= l <= L - 2``) type
  ``n_0 + n_L + l - 1``. For ``L == 1`` (no hidden layer) input types win.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from symmerge.specs.base import WeightSpaceSpec

INPUT, HIDDEN, OUTPUT = 0, 1, 2


def num_node_types(n_in: int, n_out: int, num_hidden: int) -> int:
    return n_in + n_out + num_hidden


def num_edge_types(n_in: int, n_out: int, num_hidden: int) -> int:
    return n_in + n_out + max(num_hidden - 1, 0)


@dataclass(frozen=True, eq=False)
class GraphTemplate:
    """Index arrays of one architecture's graph; see the module docstring for conventions.

    ``edge_param [E, d_e]`` and ``node_param [N]`` index a parameter row padded
    with two extra entries: ``P`` holds 0 (edge padding) and ``P + 1`` the
    input-node constant.
    """

    layout: tuple[int, ...]
    num_params: int
    edge_dim: int
    edge_index: Tensor  # [2, E] long
    edge_param: Tensor  # [E, d_e] long
    node_param: Tensor  # [N] long
    node_type: Tensor  # [N] long
    node_class: Tensor  # [N] long
    node_layer: Tensor  # [N] long
    edge_type: Tensor  # [E] long
    edge_layer: Tensor  # [E] long (weight layer)

    @property
    def num_nodes(self) -> int:
        return sum(self.layout)

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def n_in(self) -> int:
        return self.layout[0]

    @property
    def n_out(self) -> int:
        return self.layout[-1]

    @property
    def num_hidden(self) -> int:
        return len(self.layout) - 2

    @property
    def num_node_types(self) -> int:
        return num_node_types(self.n_in, self.n_out, self.num_hidden)

    @property
    def num_edge_types(self) -> int:
        return num_edge_types(self.n_in, self.n_out, self.num_hidden)

    @property
    def node_offsets(self) -> tuple[int, ...]:
        """First node of every neuron layer (plus the end)."""
        offs = [0]
        for n in self.layout:
            offs.append(offs[-1] + n)
        return tuple(offs)

    @property
    def edge_offsets(self) -> tuple[int, ...]:
        """First edge of every weight layer (plus the end)."""
        offs = [0]
        for a, b in itertools.pairwise(self.layout):
            offs.append(offs[-1] + a * b)
        return tuple(offs)

    def in_degree_histogram(self) -> Tensor:
        """``hist[k]`` = number of nodes with in-degree ``k`` (for PNA scalers)."""
        deg = torch.bincount(self.edge_index[1], minlength=self.num_nodes)
        return torch.bincount(deg)

    def to(self, device: torch.device | str) -> GraphTemplate:
        kwargs = {
            f.name: (v.to(device) if isinstance(v := getattr(self, f.name), Tensor) else v)
            for f in fields(self)
        }
        return GraphTemplate(**kwargs)


def _kernel_box(spec: WeightSpaceSpec) -> tuple[int, int]:
    """Largest (kh, kw) over the conv layers; (1, 1) without convolutions."""
    kh = kw = 1
    for layer in range(spec.num_layers):
        k = spec.kernel_shape(layer)
        if len(k) == 2:
            kh, kw = max(kh, k[0]), max(kw, k[1])
        elif len(k) not in (0, 2):
            raise NotImplementedError(f"kernels of rank {len(k)} are not supported")
    return kh, kw


@functools.lru_cache(maxsize=64)
def graph_template(spec: WeightSpaceSpec) -> GraphTemplate:
    """The (cached, CPU) graph template of ``spec``."""
    with torch.device("cpu"):  # built once on the CPU; template_on caches it per device
        return _build_template(spec)


def _build_template(spec: WeightSpaceSpec) -> GraphTemplate:
    """The index arrays of :func:`graph_template` (which runs this on the CPU)."""
    layout, L = spec.layout, spec.num_layers
    n_in, n_out = layout[0], layout[-1]
    kh_max, kw_max = _kernel_box(spec)
    d_e = kh_max * kw_max
    P = spec.num_params
    node_off = [0]
    for n in layout:
        node_off.append(node_off[-1] + n)

    src, dst, eparam, etype, elayer = [], [], [], [], []
    for layer in range(L):
        a, b = layout[layer], layout[layer + 1]
        w_off = spec.offsets[2 * layer]
        kshape = spec.kernel_shape(layer)
        k = math.prod(kshape)
        j = torch.arange(a).view(a, 1).expand(a, b).reshape(-1)  # source-major
        i = torch.arange(b).view(1, b).expand(a, b).reshape(-1)
        src.append(node_off[layer] + j)
        dst.append(node_off[layer + 1] + i)
        base = w_off + (i * a + j) * k  # flat offset of W[i, j, 0, ...]
        idx = torch.full((a * b, d_e), P, dtype=torch.long)
        if kshape:  # centred in the (kh_max, kw_max) box, row-major
            kh, kw = kshape
            r0, c0 = (kh_max - kh) // 2, (kw_max - kw) // 2
            rr, cc = torch.meshgrid(torch.arange(kh), torch.arange(kw), indexing="ij")
            slots = ((rr + r0) * kw_max + (cc + c0)).reshape(-1)
            idx[:, slots] = base.view(-1, 1) + torch.arange(k).view(1, -1)
        else:
            idx[:, 0] = base
        eparam.append(idx)
        if layer == 0:
            t = j
        elif layer == L - 1:
            t = n_in + i
        else:
            t = torch.full_like(j, n_in + n_out + layer - 1)
        etype.append(t)
        elayer.append(torch.full_like(j, layer))

    node_param, node_type, node_class, node_layer = [], [], [], []
    for level, n in enumerate(layout):
        r = torch.arange(n)
        if level == 0:
            node_param.append(torch.full((n,), P + 1, dtype=torch.long))
            node_type.append(r)
            node_class.append(torch.full((n,), INPUT, dtype=torch.long))
        else:
            node_param.append(spec.offsets[2 * (level - 1) + 1] + r)
            if level == L:
                node_type.append(n_in + r)
                node_class.append(torch.full((n,), OUTPUT, dtype=torch.long))
            else:
                node_type.append(torch.full((n,), n_in + n_out + level - 1, dtype=torch.long))
                node_class.append(torch.full((n,), HIDDEN, dtype=torch.long))
        node_layer.append(torch.full((n,), level, dtype=torch.long))

    return GraphTemplate(
        layout=tuple(layout),
        num_params=P,
        edge_dim=d_e,
        edge_index=torch.stack([torch.cat(src), torch.cat(dst)]),
        edge_param=torch.cat(eparam),
        node_param=torch.cat(node_param),
        node_type=torch.cat(node_type),
        node_class=torch.cat(node_class),
        node_layer=torch.cat(node_layer),
        edge_type=torch.cat(etype),
        edge_layer=torch.cat(elayer),
    )


@functools.lru_cache(maxsize=64)
def _template_on(spec: WeightSpaceSpec, device: str) -> GraphTemplate:
    return graph_template(spec).to(device)


def template_on(spec: WeightSpaceSpec, device: torch.device | str) -> GraphTemplate:
    """The template of ``spec`` with its index tensors on ``device`` (cached per device)."""
    device = torch.device(device)
    if device.type == "cpu":
        return graph_template(spec)
    return _template_on(spec, str(device))
