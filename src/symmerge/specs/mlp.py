"""Fully connected networks (ReLU or tanh) and the batched dense forward pass."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec, activation_fn
from symmerge.utils.seed import draw_device


def dense_levels(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    inputs: Tensor,
    act: Callable[[Tensor], Tensor],
) -> list[Tensor]:
    """Every layer's values for B dense networks: ``inputs`` is ``[N, n_0]`` (shared) or
    ``[B, N, n_0]``; weights are ``[B, out, in]``.

    Returns ``[h_0, ..., h_L]``, ``h_l [B, N, n_l]``: the inputs, each hidden layer after
    its activation, and the (linear) outputs, on the weights' device and in their dtype
    (``inputs`` are moved there if they live elsewhere).
    """
    h = inputs.to(device=weights[0].device, dtype=weights[0].dtype)
    levels = [h.expand(weights[0].shape[0], *h.shape[-2:])]
    last = len(weights) - 1
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = torch.matmul(h, w.mT) + b.unsqueeze(-2)
        if layer < last:
            h = act(h)
        levels.append(h)
    return levels


def dense_spec_levels(
    spec: WeightSpaceSpec, params: Tensor, inputs: Tensor, act: Callable[[Tensor], Tensor]
) -> list[Tensor]:
    """:func:`dense_levels` of the networks ``params [B, P]`` of a dense ``spec``, with the
    inputs checked against it."""
    check_dense_inputs(spec, params.shape[0], inputs)
    ws, bs = spec.unflatten(params)
    return dense_levels(ws, bs, inputs, act)


class DenseNet(nn.Module):
    """``nn.Module`` twin of :func:`dense_levels`' forward pass; layers live in ``self.seq``."""

    def __init__(
        self, layout: Sequence[int], activation: str, w0: float = 1.0, output_offset: float = 0.0
    ) -> None:
        super().__init__()
        self.seq = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(layout[:-1], layout[1:], strict=True)
        )
        self.activation = activation
        self.w0 = w0
        self.output_offset = output_offset

    def forward(self, x: Tensor) -> Tensor:
        act = activation_fn(self.activation, self.w0)
        for i, lin in enumerate(self.seq):
            x = lin(x)
            if i < len(self.seq) - 1:
                x = act(x)
        return x + self.output_offset


def check_dense_inputs(spec: WeightSpaceSpec, batch: int, inputs: Tensor) -> None:
    """Raise SymmergeError unless ``inputs`` is ``[N, n_0]`` or ``[batch, N, n_0]``."""
    n0 = spec.layout[0]
    ok = inputs.ndim == 2 or (inputs.ndim == 3 and inputs.shape[0] in (batch, 1))
    if not (ok and inputs.shape[-1] == n0):
        raise SymmergeError(
            f"inputs must be [N, {n0}] or [{batch}, N, {n0}], got {tuple(inputs.shape)}"
        )


def uniform_(shape: tuple[int, ...], bound: float, generator: torch.Generator | None,
             dtype: torch.dtype, device: torch.device | str | None = None) -> Tensor:
    """``U(-bound, bound)`` of ``shape`` on ``device``, drawn on the generator's device."""
    u = torch.rand(shape, generator=generator, dtype=dtype, device=draw_device(generator, device))
    return ((u * 2 - 1) * bound).to(device if device is not None else u.device)


@dataclass(frozen=True)
class MLPSpec(WeightSpaceSpec):
    """A multilayer perceptron with ReLU or tanh hidden activations and a linear output."""

    layout: tuple[int, ...] = (2, 32, 32, 1)
    activation: str = "relu"

    family = "mlp"

    @classmethod
    def allowed_activations(cls) -> tuple[str, ...]:
        return ("relu", "tanh")

    def _act(self) -> Callable[[Tensor], Tensor]:
        return activation_fn(self.activation)

    def forward(self, params: Tensor, inputs: Tensor) -> Tensor:
        """``params [B, P]`` (or ``[P]``) on ``inputs [N, n_0]`` or ``[B, N, n_0]``."""
        single = params.ndim == 1
        if single:
            params = params.unsqueeze(0)
        out = self.neuron_values(params, inputs)[-1]
        return out[0] if single else out

    def neuron_values(self, params: Tensor, inputs: Tensor) -> list[Tensor]:
        return dense_spec_levels(self, params, inputs, self._act())

    def build_module(self) -> nn.Module:
        return DenseNet(self.layout, self.activation)

    def init_params(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """PyTorch's default ``nn.Linear`` initialization for ``batch`` networks, on
        ``device`` (default: the generator's, else the CPU)."""
        ws, bs = [], []
        for layer in range(self.num_layers):
            bound = 1.0 / math.sqrt(self.layout[layer])
            ws.append(uniform_((batch, *self.weight_shape(layer)), bound, generator, dtype,
                               device))
            bs.append(uniform_((batch, *self.bias_shape(layer)), bound, generator, dtype,
                               device))
        return self.flatten(ws, bs)

    def probe_inputs(
        self,
        n: int = 64,
        *,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        x = torch.randn(n, self.layout[0], generator=generator, dtype=dtype,
                        device=draw_device(generator, device))
        return x.to(device if device is not None else x.device)
