"""Per-hidden-layer views shared by the aligners: neuron-wise incoming and outgoing weights."""

from __future__ import annotations

import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec
from symmerge.symmetry.group import GroupElement


def as_batch(spec: WeightSpaceSpec, params: Tensor, name: str = "params") -> Tensor:
    """Validate ``params`` as a finite ``[B, P]`` batch (``[P]`` becomes ``[1, P]``)."""
    spec.check_params(params)
    if params.ndim == 1:
        params = params.unsqueeze(0)
    if params.ndim != 2:
        raise SymmergeError(f"{name} must be [P] or [B, P], got {tuple(params.shape)}")
    if not params.is_floating_point():
        raise SymmergeError(f"{name} must be a floating-point tensor, got {params.dtype}")
    return params


def incoming(spec: WeightSpaceSpec, params: Tensor, h: int) -> Tensor:
    """``[B, n_h, 1 + fan_in]``: bias first, then the flattened incoming weights (kernels)."""
    ws, bs = spec.unflatten(params)
    w = ws[h]
    return torch.cat([bs[h].unsqueeze(-1), w.reshape(*w.shape[:2], -1)], dim=-1)


def outgoing(spec: WeightSpaceSpec, params: Tensor, h: int) -> Tensor:
    """``[B, n_h, fan_out]``: the columns of weight layer ``h + 1`` (kernels flattened)."""
    w = spec.unflatten(params)[0][h + 1]
    return w.transpose(1, 2).reshape(w.shape[0], w.shape[2], -1)


def layer_element(
    spec: WeightSpaceSpec, h: int, perm: Tensor, mult: Tensor
) -> GroupElement:
    """The element acting on hidden layer ``h`` only (``perm``, ``mult`` are ``[B, n_h]``)."""
    ident = GroupElement.identity(
        spec, perm.shape[0], dtype=mult.dtype, device=perm.device
    )
    perms, mults = list(ident.perms), list(ident.mults)
    perms[h], mults[h] = perm, mult
    return GroupElement(tuple(perms), tuple(mults))


def select(mask: Tensor, a: GroupElement, b: GroupElement) -> GroupElement:
    """Per batch entry, ``a`` where ``mask [B]`` is true, else ``b`` (no phase shifts)."""
    m = mask.unsqueeze(-1)
    return GroupElement(
        tuple(torch.where(m, pa, pb) for pa, pb in zip(a.perms, b.perms, strict=True)),
        tuple(torch.where(m, qa, qb) for qa, qb in zip(a.mults, b.mults, strict=True)),
    )
