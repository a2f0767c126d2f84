"""Corrected SIREN phase canonicalization (METHOD.md 1.3)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.specs.siren import SirenSpec
from symmerge.symmetry.group import GroupElement


def phase_element(spec: SirenSpec, params: Tensor) -> GroupElement:
    """The group element that canonicalizes every hidden sine neuron's phase and sign.

    With ``beta = w0 * b`` and ``k = round(beta / pi)``: shift by ``-k`` (negating
    the outgoing column if k is odd), then flip the neuron if ``beta - k pi < 0``,
    so that afterwards ``b`` lies in ``[0, pi / (2 w0)]``. The output layer is untouched.
    """
    if not isinstance(spec, SirenSpec):
        raise SymmergeError("phase canonicalization applies to SIREN networks only")
    _, bs = spec.unflatten(params)
    shifts, mults, perms = [], [], []
    wide = torch.promote_types(params.dtype, torch.float64)  # the precision apply() shifts in
    for b in bs[:-1]:
        beta = spec.w0 * b.to(wide)
        k = torch.round(beta / math.pi)
        rest = beta - k * math.pi
        mults.append(torch.where(rest < 0, -1.0, 1.0).to(params.dtype))
        shifts.append(-k.long())
        perms.append(torch.arange(b.shape[-1], device=b.device).expand_as(b).clone())
    return GroupElement(tuple(perms), tuple(mults), tuple(shifts))


def canonicalize_phase(spec: SirenSpec, params: Tensor) -> Tensor:
    """Function-preserving phase/sign canonicalization of ``params [B, P]`` (or ``[P]``)."""
    single = params.ndim == 1
    batch = params.unsqueeze(0) if single else params
    out = phase_element(spec, batch).apply(spec, batch)
    return out[0] if single else out
