"""SIREN implicit neural representations (the DWSNets / ScaleGMN MNIST-INR architecture)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec, activation_fn
from symmerge.specs.mlp import DenseNet, dense_spec_levels, uniform_
from symmerge.utils.seed import draw_device

_SEQ_KEY = re.compile(r"^seq\.(\d+)\.(weight|bias)$")


def siren_layout(state: Mapping[str, Tensor]) -> tuple[int, ...]:
    """The layout ``(in, out_0, ..., out_{L-1})`` of a dense ``seq.{i}.weight`` /
    ``seq.{i}.bias`` state dict (as :meth:`SirenSpec.module` writes it); a
    :class:`SymmergeError` says what does not fit."""
    layers: dict[int, dict[str, tuple[int, ...]]] = {}
    for key, t in state.items():
        m = _SEQ_KEY.match(key)
        if m is None:
            raise SymmergeError(f"key {key!r} is not seq.{{i}}.weight or seq.{{i}}.bias")
        layers.setdefault(int(m.group(1)), {})[m.group(2)] = tuple(t.shape)
    if not layers or sorted(layers) != list(range(len(layers))):
        raise SymmergeError(f"state dict layers {sorted(layers)} are not seq.0 .. seq.L-1")
    layout: list[int] = []
    for i in range(len(layers)):
        w = layers[i].get("weight")
        if w is None or "bias" not in layers[i]:
            raise SymmergeError(f"seq.{i} needs both a weight and a bias")
        if len(w) != 2:
            raise SymmergeError(f"seq.{i}.weight has shape {w}: SIREN weights must be 2-D")
        if layout and layout[-1] != w[1]:
            raise SymmergeError(
                f"seq.{i}.weight has {w[1]} inputs, seq.{i - 1} has {layout[-1]} outputs"
            )
        layout.extend(w[::-1] if not layout else w[:1])
    return tuple(layout)


def coordinate_grid(
    resolution: int = 28, *, dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``[R*R, 2]`` points ``(x_c, y_r)``, row r outer and column c inner, in [-1, 1]."""
    axis = torch.linspace(-1.0, 1.0, resolution, dtype=dtype, device=device)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")  # ys[r, c] = y_r, xs[r, c] = x_c
    return torch.stack([xs, ys], dim=-1).reshape(-1, 2)


@dataclass(frozen=True)
class SirenSpec(WeightSpaceSpec):
    """``f(x) = W_L h + b_L + offset`` with ``h_{l+1} = sin(w0 (W_l h_l + b_l))``.

    Defaults match the MNIST-INR zoo: layout [2, 32, 32, 1], w0 = 30, offset +0.5,
    state-dict keys ``seq.{i}.weight`` / ``seq.{i}.bias``.
    """

    layout: tuple[int, ...] = (2, 32, 32, 1)
    activation: str = "sine"
    w0: float = 30.0
    output_offset: float = 0.5

    family = "siren"

    @classmethod
    def allowed_activations(cls) -> tuple[str, ...]:
        return ("sine",)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "w0", float(self.w0))
        object.__setattr__(self, "output_offset", float(self.output_offset))
        if not 0 < self.w0 < math.inf:
            raise SymmergeError(f"w0 must be positive and finite, got {self.w0}")
        if not math.isfinite(self.output_offset):
            raise SymmergeError(f"output_offset must be finite, got {self.output_offset}")

    def _act(self) -> Callable[[Tensor], Tensor]:
        return activation_fn("sine", self.w0)

    def forward(self, params: Tensor, inputs: Tensor) -> Tensor:
        """``params [B, P]`` (or ``[P]``) at coordinates ``[N, n_0]`` or ``[B, N, n_0]``."""
        single = params.ndim == 1
        if single:
            params = params.unsqueeze(0)
        out = self.neuron_values(params, inputs)[-1]
        return out[0] if single else out

    def neuron_values(self, params: Tensor, inputs: Tensor) -> list[Tensor]:
        levels = dense_spec_levels(self, params, inputs, self._act())
        levels[-1] = levels[-1] + self.output_offset
        return levels

    def render(self, params: Tensor, resolution: int = 28) -> Tensor:
        """Images ``[B, R, R]`` (``[B, R, R, C]`` if C > 1 outputs); ``img[r, c] = f(x_c, y_r)``."""
        grid = coordinate_grid(resolution, dtype=params.dtype, device=params.device)
        out = self.forward(params, grid)
        lead = out.shape[:-2]
        img = out.reshape(*lead, resolution, resolution, self.layout[-1])
        return img.squeeze(-1) if self.layout[-1] == 1 else img

    def build_module(self) -> nn.Module:
        return DenseNet(self.layout, "sine", self.w0, self.output_offset)

    def init_params(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Initialization of the published zoo (METHOD.md 1.1), on ``device`` (default:
        the generator's, else the CPU).

        Sine layers: weights U(+-sqrt(6 / fan_in) / w0), zero biases (the first
        layer included); the output layer keeps PyTorch's ``nn.Linear`` default.
        """
        ws, bs = [], []
        dst = draw_device(generator, device) if device is None else device
        for layer in range(self.num_layers):
            fan_in = self.layout[layer]
            wshape, bshape = (batch, *self.weight_shape(layer)), (batch, *self.bias_shape(layer))
            if layer < self.num_layers - 1:
                ws.append(uniform_(wshape, math.sqrt(6.0 / fan_in) / self.w0, generator, dtype,
                                   dst))
                bs.append(torch.zeros(bshape, dtype=dtype, device=dst))
            else:
                bound = 1.0 / math.sqrt(fan_in)
                ws.append(uniform_(wshape, bound, generator, dtype, dst))
                bs.append(uniform_(bshape, bound, generator, dtype, dst))
        return self.flatten(ws, bs)

    def probe_inputs(
        self,
        n: int = 256,
        *,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        u = torch.rand(n, self.layout[0], generator=generator, dtype=dtype,
                       device=draw_device(generator, device))
        return (u * 2 - 1).to(device if device is not None else u.device)
