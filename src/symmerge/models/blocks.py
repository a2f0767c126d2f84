"""Building blocks of ScaleGMN: MLP block, Canon, node-class partitions, ScaleEq layers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symmerge.graph.template import HIDDEN, INPUT, OUTPUT

#: ``u / max(|u|, SCALE_EPS)``: exact scale invariance for every |u| above it.
SCALE_EPS = 1e-12


class MLP(nn.Module):
    """``Linear(d_in, d) -> LayerNorm(d) -> SiLU -> Linear(d, d_out)``."""

    def __init__(self, d_in: int, d_out: int, d_hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(d_in, d_hidden)
        self.norm = nn.LayerNorm(d_hidden)
        self.lin2 = nn.Linear(d_hidden, d_out)

    def _act(self, h: Tensor) -> Tensor:
        return F.silu(self.norm(h))

    def _tail(self, h: Tensor) -> Tensor:
        return self.lin2(self._act(h))

    def forward(self, u: Tensor) -> Tensor:
        return self._tail(self.lin1(u))

    def symmetrized_hidden(self, u: Tensor) -> Tensor:
        """``a(u) + a(-u)`` with ``a = SiLU∘LayerNorm∘lin1``: the part of
        :meth:`forward_symmetrized` before the (linear) last layer."""
        y = u @ self.lin1.weight.T
        b = self.lin1.bias
        return self._act(b + y) + self._act(b - y)

    def forward_symmetrized(self, u: Tensor) -> Tensor:
        """``forward(u) + forward(-u)``: one first and one last matrix product, since
        ``lin2`` is linear."""
        return F.linear(self.symmetrized_hidden(u), self.lin2.weight, 2 * self.lin2.bias)

    def forward_gathered(self, parts: Sequence[tuple[Tensor, Tensor | None]]) -> Tensor:
        """``forward(cat([t[idx] for t, idx in parts], -1))`` with the first linear map
        applied before the gather (per node instead of per edge)."""
        widths = [t.shape[-1] for t, _ in parts]
        h = self.lin1.bias
        for w, (t, idx) in zip(self.lin1.weight.split(widths, dim=1), parts, strict=True):
            y = t @ w.T
            h = h + (y if idx is None else y[idx])
        return self._tail(h)


class Canon(nn.Module):
    """The symmetry-removing map, per row.

    ``sign``: ``rho(u) + rho(-u)``; ``scale``: ``u / |u|``; ``ablate``: ``rho(u)``;
    ``permutation``: identity.
    """

    def __init__(self, mode: str, dim: int, d_hidden: int, ablate: bool = False) -> None:
        super().__init__()
        self.mode, self.ablate = mode, ablate
        needs_rho = mode != "permutation" and (ablate or mode == "sign")
        self.rho = MLP(dim, dim, d_hidden) if needs_rho else None

    def forward(self, u: Tensor) -> Tensor:
        if self.mode == "permutation":
            return u
        if self.ablate:
            return self.rho(u)
        if self.mode == "sign":
            return self.rho.forward_symmetrized(u)
        return u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(SCALE_EPS)


def phi_of_canon(phi: MLP, canon: Canon, u: Tensor) -> Tensor:
    """``phi(canon(u))``. In ``sign`` mode the last linear map of ``rho`` and the first of
    ``phi`` are applied as one precomputed product (exact up to rounding)."""
    rho = canon.rho
    if canon.mode != "sign" or canon.ablate or rho is None:
        return phi(canon(u))
    weight = phi.lin1.weight @ rho.lin2.weight
    bias = phi.lin1.bias + phi.lin1.weight @ (2 * rho.lin2.bias)
    return phi._tail(F.linear(rho.symmetrized_hidden(u), weight, bias))


@dataclass(frozen=True)
class Partition:
    """Row indices of a node- or edge-level tensor, split by the class of the node it
    belongs to (an edge belongs to its receiver)."""

    num_rows: int
    rows: dict[int, Tensor]  # INPUT / HIDDEN / OUTPUT -> row indices

    @staticmethod
    def from_classes(classes: Tensor) -> Partition:
        rows = {c: torch.nonzero(classes == c).squeeze(1) for c in (INPUT, HIDDEN, OUTPUT)}
        return Partition(classes.numel(), rows)

    def select(self, classes: Iterable[int]) -> Tensor:
        parts = [self.rows[c] for c in classes]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def io_groups(num_io_mlps: int, io_classes: Iterable[int]) -> list[tuple[int, ...]]:
    """Node classes served by each I/O MLP, restricted to the classes that occur."""
    present = [c for c in (INPUT, OUTPUT) if c in set(io_classes)]
    if not present:
        return []
    return [tuple(present)] if num_io_mlps == 2 else [(c,) for c in present]


def by_class(
    u: Tensor,
    part: Partition,
    d_out: int,
    branches: Sequence[tuple[tuple[int, ...], Callable[[Tensor], Tensor]]],
) -> Tensor:
    """Apply each branch only to the rows of its classes (gather, compute, scatter back);
    rows of other classes are 0."""
    results = []
    for classes, fn in branches:
        idx = part.select(classes)
        results.append((idx, fn(u[idx])))
    dtype = results[0][1].dtype if results else u.dtype  # autocast may lower it
    out = u.new_zeros(part.num_rows, d_out, dtype=dtype)
    for idx, val in results:
        out.index_copy_(0, idx, val.to(dtype))
    return out


class ScaleEquivariant(nn.Module):
    """``f(u) = (Gamma u) * g(u)``; ``g = phi(Canon(u))`` on hidden rows (invariant) and a
    plain MLP on I/O rows (one shared, or one per class with ``num_io_mlps=3``). With
    ``mlp_on_io`` the I/O rows get that plain MLP alone, without the ``Gamma u`` factor."""

    def __init__(
        self,
        mode: str,
        d_in: int,
        d_out: int,
        d_hidden: int,
        *,
        ablate: bool = False,
        num_io_mlps: int = 2,
        io_classes: Iterable[int] = (INPUT, OUTPUT),
        mlp_on_io: bool = False,
    ) -> None:
        super().__init__()
        self.d_out, self.mlp_on_io = d_out, mlp_on_io
        self.gamma = nn.Linear(d_in, d_out, bias=False)
        self.canon = Canon(mode, d_in, d_hidden, ablate)
        self.phi = MLP(d_in, d_out, d_hidden)
        self.groups = io_groups(num_io_mlps, io_classes)
        self.phi_io = nn.ModuleList(MLP(d_in, d_out, d_hidden) for _ in self.groups)

    def invariant(self, u: Tensor, part: Partition) -> Tensor:
        branches = [((HIDDEN,), lambda v: phi_of_canon(self.phi, self.canon, v))]
        branches += list(zip(self.groups, self.phi_io, strict=True))
        return by_class(u, part, self.d_out, branches)

    def forward(self, u: Tensor, part: Partition) -> Tensor:
        if not self.mlp_on_io:
            return self.gamma(u) * self.invariant(u, part)
        branches = [((HIDDEN,), lambda v: self.gamma(v) * phi_of_canon(self.phi, self.canon, v))]
        branches += list(zip(self.groups, self.phi_io, strict=True))
        return by_class(u, part, self.d_out, branches)
