"""Orbit datasets: many random symmetry transforms of one network."""

from __future__ import annotations

import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec
from symmerge.symmetry.group import GroupElement, sample_group_elements
from symmerge.utils.seed import draw_device

#: Transform types: P permutations, D the diagonal part (signs or positive scales), PD both.
TRANSFORMS = ("P", "D", "PD")


def make_orbit(
    spec: WeightSpaceSpec,
    params: Tensor,
    size: int,
    transform: str = "PD",
    *,
    noise_std: float = 0.0,
    phase: bool = False,
    scale_range: tuple[float, float] = (0.1, 10.0),
    generator: torch.Generator | None = None,
) -> tuple[Tensor, GroupElement]:
    """``size`` transformed copies ``[size, P]`` of one network ``params [P]``.

    With ``noise_std > 0`` every parameter of every copy gets independent
    Gaussian noise after the transform (the copies then only approximately
    compute the original function). Returns the copies and the group elements, on
    ``params``' device (drawn on the generator's: a seeded CPU generator gives the same
    orbit on every device).
    """
    if transform not in TRANSFORMS:
        raise SymmergeError(
            f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}"
        )
    if size <= 0:
        raise SymmergeError(f"orbit size must be positive, got {size}")
    if params.ndim != 1:
        raise SymmergeError(f"make_orbit takes one network [P], got {tuple(params.shape)}")
    g = sample_group_elements(
        spec, size, permute="P" in transform, diagonal="D" in transform, phase=phase,
        scale_range=scale_range, generator=generator, dtype=params.dtype, device=params.device,
    )
    members = g.apply(spec, params.unsqueeze(0).expand(size, -1))
    if noise_std > 0:
        noise = torch.randn(members.shape, generator=generator, dtype=members.dtype,
                            device=draw_device(generator, members.device))
        members = members + noise_std * noise.to(members.device)
    return members, g
