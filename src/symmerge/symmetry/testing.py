"""e3nn-style checking helpers: function preservation and invariance, with dtype tolerances."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from symmerge.specs.base import WeightSpaceSpec
from symmerge.symmetry.group import GroupElement

#: Relative tolerances per dtype used across the test suite.
TOLERANCES = {torch.float32: 1e-5, torch.float64: 1e-10}


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCES.get(dtype, 1e-3)


def _relative(a: Tensor, b: Tensor) -> float:
    scale = torch.maximum(a.abs().max(), b.abs().max()).clamp_min(torch.finfo(a.dtype).tiny)
    return float((a - b).abs().max() / scale)


def function_error(
    spec: WeightSpaceSpec, params_a: Tensor, params_b: Tensor, inputs: Tensor | None = None
) -> float:
    """Max relative difference of the outputs of two (batches of) networks on ``inputs``."""
    if inputs is None:  # seeded on the CPU, moved to the parameters' device
        inputs = spec.probe_inputs(dtype=params_a.dtype, device=params_a.device,
                                   generator=torch.Generator(device="cpu").manual_seed(0))
    with torch.no_grad():
        return _relative(spec.forward(params_a, inputs), spec.forward(params_b, inputs))


def assert_function_preserved(
    spec: WeightSpaceSpec,
    params_a: Tensor,
    params_b: Tensor,
    inputs: Tensor | None = None,
    rtol: float | None = None,
) -> float:
    """Raise AssertionError unless both parameter batches compute the same functions."""
    rtol = tolerance(params_a.dtype) if rtol is None else rtol
    err = function_error(spec, params_a, params_b, inputs)
    if not err <= rtol:
        raise AssertionError(f"function changed: relative error {err:.3e} > {rtol:.1e}")
    return err


def invariance_error(
    fn: Callable[[Tensor], Tensor], spec: WeightSpaceSpec, params: Tensor, element: GroupElement
) -> float:
    """Relative change of ``fn(params)`` when the params are transformed by ``element``."""
    with torch.no_grad():
        return _relative(fn(params), fn(element.apply(spec, params)))
