"""Specs and random networks shared by the symmetry and alignment tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from symmerge.specs import CNNSpec, MLPSpec, SirenSpec, WeightSpaceSpec
from symmerge.symmetry import tolerance

#: Every family with 2 to 5 weight layers, odd and ReLU activations.
SPECS: list[WeightSpaceSpec] = [
    SirenSpec(layout=(2, 8, 1)),
    SirenSpec(layout=(2, 16, 16, 1)),
    SirenSpec(layout=(2, 8, 8, 8, 3), w0=10.0, output_offset=0.0),
    MLPSpec(layout=(3, 8, 2), activation="relu"),
    MLPSpec(layout=(2, 8, 8, 1), activation="tanh"),
    MLPSpec(layout=(4, 8, 6, 8, 2), activation="relu"),
    MLPSpec(layout=(2, 6, 7, 5, 1), activation="tanh"),
    CNNSpec(layout=(1, 4, 10), activation="relu"),
    CNNSpec(layout=(3, 4, 5, 6), activation="tanh", stride=1),
    CNNSpec(layout=(1, 4, 4, 4, 10), activation="relu"),
    CNNSpec(layout=(2, 3, 4, 5, 4), activation="tanh", kernel_size=2),
    # per-layer kernels, strides and padding, several dense layers after the pooling
    CNNSpec(layout=(2, 4, 5, 6, 3), activation="tanh", kernel_size=(3, 1), stride=(2, 1),
            padding=(1, 0), dense_layers=2),
    CNNSpec(layout=(1, 3, 4, 5, 6, 2), activation="relu", kernel_size=(5, 3, 1), stride=1,
            padding=(2, 1, 0), dense_layers=2),
]
SIRENS = [s for s in SPECS if isinstance(s, SirenSpec)]
SIGN_SPECS = [s for s in SPECS if s.symmetry == "sign"]
SCALE_SPECS = [s for s in SPECS if s.symmetry == "scale"]


def spec_id(spec: WeightSpaceSpec) -> str:
    return f"{spec.family}-{spec.activation}-{'x'.join(map(str, spec.layout))}"


def random_params(
    spec: WeightSpaceSpec,
    batch: int,
    *,
    dtype: torch.dtype,
    generator: torch.Generator,
    bias_phase: float = math.pi,
) -> Tensor:
    """The spec's initialization; SIREN hidden biases are drawn so that ``w0 * b`` is
    uniform in ``[-bias_phase, bias_phase]`` (the zoo init has zero biases)."""
    params = spec.init_params(batch, generator=generator, dtype=dtype)
    if isinstance(spec, SirenSpec):
        _, bs = spec.unflatten(params)
        for b in bs[:-1]:
            u = torch.rand(b.shape, generator=generator, dtype=dtype) * 2 - 1
            b.copy_(u * bias_phase / spec.w0)
    return params


def relative_diff(actual: Tensor, expected: Tensor) -> float:
    """``max |actual - expected| / max |expected|`` over the whole tensor."""
    scale = expected.abs().max().clamp_min(torch.finfo(expected.dtype).tiny)
    return float((actual - expected).abs().max() / scale)


def assert_params_close(actual: Tensor, expected: Tensor, factor: float = 1.0) -> None:
    """Parameters equal up to ``factor`` times the library tolerance of their dtype."""
    assert actual.shape == expected.shape
    tol = factor * tolerance(expected.dtype)
    err = relative_diff(actual, expected)
    assert err <= tol, f"parameters differ: relative {err:.3e} > {tol:.1e}"
