"""Small CNNs of the Small CNN Zoo (Unterthiner et al. 2020) and their batched forward pass."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec, activation_fn
from symmerge.specs.mlp import uniform_
from symmerge.utils.seed import draw_device


class SmallCNN(nn.Module):
    """Convolutions (valid padding) + activation, global average pooling, dense logits."""

    def __init__(self, layout, activation: str, kernel_size: int, stride: int) -> None:
        super().__init__()
        convs = [
            nn.Conv2d(a, b, kernel_size, stride=stride, padding=0)
            for a, b in zip(layout[:-2], layout[1:-1], strict=True)
        ]
        self.seq = nn.ModuleList([*convs, nn.Linear(layout[-2], layout[-1])])
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        act = activation_fn(self.activation)
        for conv in self.seq[:-1]:
            x = act(conv(x))
        return self.seq[-1](x.mean(dim=(-2, -1)))


@dataclass(frozen=True)
class CNNSpec(WeightSpaceSpec):
    """``len(layout) - 2`` convolutions, GAP, one dense layer; ReLU or tanh.

    Default layout [1, 16, 16, 16, 10], 3x3 kernels, stride 2, no padding.
    Hidden "neurons" are channels; a conv weight is ``(c_out, c_in, k, k)``.
    """

    layout: tuple[int, ...] = (1, 16, 16, 16, 10)
    activation: str = "relu"
    kernel_size: int = 3
    stride: int = 2

    family = "cnn"

    @classmethod
    def allowed_activations(cls) -> tuple[str, ...]:
        return ("relu", "tanh")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.layout) < 3:
            raise SymmergeError(
                f"a CNN layout needs at least one conv layer, got {list(self.layout)}"
            )
        if self.kernel_size < 1 or self.stride < 1:
            raise SymmergeError("kernel_size and stride must be positive")

    def kernel_shape(self, layer: int) -> tuple[int, ...]:
        return (self.kernel_size, self.kernel_size) if layer < self.num_layers - 1 else ()

    @property
    def num_convs(self) -> int:
        return self.num_layers - 1

    def min_input_size(self) -> int:
        """Smallest square input that leaves at least 1x1 after every convolution."""
        size = 1
        for _ in range(self.num_convs):
            size = (size - 1) * self.stride + self.kernel_size
        return size

    # ----------------------------------------------------------------- forward
    def forward(self, params: Tensor, inputs: Tensor) -> Tensor:
        """Logits ``[B, N, n_L]`` of ``params [B, P]`` on images ``[N, C, H, W]`` (shared)
        or ``[B, N, C, H, W]`` (one batch per network), as grouped convolutions."""
        single = params.ndim == 1
        if single:
            params = params.unsqueeze(0)
        out = self._levels(params, inputs, all_levels=False)[-1]
        return out[0] if single else out

    def neuron_values(self, params: Tensor, inputs: Tensor) -> list[Tensor]:
        return self._levels(params, inputs, all_levels=True)

    def _levels(self, params: Tensor, inputs: Tensor, *, all_levels: bool) -> list[Tensor]:
        """Spatial means ``[B, N, C_l]`` of the images and of every conv layer's activations
        (only the last conv's unless ``all_levels``), then the logits."""
        ws, bs = self.unflatten(params)
        nets = params.shape[0]
        x = inputs.to(device=params.device, dtype=params.dtype)
        c0, size = self.layout[0], self.min_input_size()
        if x.ndim not in (4, 5) or x.shape[-3] != c0 or min(x.shape[-2:]) < size:
            raise SymmergeError(
                f"CNN inputs must be [N, {c0}, H, W] or [{nets}, N, {c0}, H, W] with H, W >= "
                f"{size}, got {tuple(x.shape)}"
            )
        act = activation_fn(self.activation)
        if x.ndim == 4:  # shared images: first conv needs no grouping
            n = x.shape[0]
            w, b = ws[0], bs[0]
            h = F.conv2d(x, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=self.stride)
        elif x.ndim == 5 and x.shape[0] == nets:
            n = x.shape[1]
            h = x.transpose(0, 1).reshape(n, -1, *x.shape[-2:])
            w, b = ws[0], bs[0]
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=self.stride,
                         groups=nets)
        else:
            raise SymmergeError(
                f"CNN inputs must be [N, C, H, W] or [{nets}, N, C, H, W], got {tuple(x.shape)}"
            )

        def pooled(maps: Tensor) -> Tensor:  # [n, nets * C, h, w] -> [nets, n, C]
            return maps.mean(dim=(-2, -1)).reshape(n, nets, -1).transpose(0, 1)

        levels = []
        if all_levels:
            means = x.mean(dim=(-2, -1))
            levels.append(means.expand(nets, *means.shape) if x.ndim == 4 else means)
        h = act(h)
        for w, b in zip(ws[1:-1], bs[1:-1], strict=True):
            if all_levels:
                levels.append(pooled(h))
            h = act(F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=self.stride,
                             groups=nets))
        levels.append(pooled(h))
        levels.append(torch.matmul(levels[-1], ws[-1].mT) + bs[-1].unsqueeze(-2))
        return levels

    def build_module(self) -> nn.Module:
        return SmallCNN(self.layout, self.activation, self.kernel_size, self.stride)

    def init_params(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        scale: Tensor | float = 1.0,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """PyTorch's default conv/linear initialization, weights times ``scale`` ([B] or
        scalar), on ``device`` (default: the generator's, else the CPU)."""
        ws, bs = [], []
        dst = draw_device(generator, device) if device is None else device
        scale_t = torch.as_tensor(scale, dtype=dtype, device=dst).reshape(-1)
        for layer in range(self.num_layers):
            fan_in = self.layout[layer] * math.prod(self.kernel_shape(layer))
            bound = 1.0 / math.sqrt(fan_in)
            w = uniform_((batch, *self.weight_shape(layer)), bound, generator, dtype, dst)
            w = w * scale_t.reshape(-1, *([1] * (w.ndim - 1)))
            ws.append(w)
            bs.append(uniform_((batch, *self.bias_shape(layer)), bound, generator, dtype, dst))
        return self.flatten(ws, bs)

    def probe_inputs(
        self,
        n: int = 16,
        *,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        size = max(self.min_input_size() + self.stride, 16)
        x = torch.randn(n, self.layout[0], size, size, generator=generator, dtype=dtype,
                        device=draw_device(generator, device))
        return x.to(device if device is not None else x.device)

    # ------------------------------------------------------- TensorFlow order
    def tf_shape(self, layer: int) -> tuple[int, ...]:
        """TF kernel shape: conv ``(kh, kw, c_in, c_out)``, dense ``(in, out)``."""
        out_c, in_c = self.layout[layer + 1], self.layout[layer]
        if layer < self.num_layers - 1:
            return (self.kernel_size, self.kernel_size, in_c, out_c)
        return (in_c, out_c)

    def from_tf_flat(self, flat: Tensor) -> Tensor:
        """Small-CNN-Zoo rows (TF flat order: kernel, bias per layer) to PyTorch flat order."""
        self.check_params(flat, finite=False)
        lead = flat.shape[:-1]
        ws, bs, offset = [], [], 0
        for layer in range(self.num_layers):
            shape = self.tf_shape(layer)
            size = math.prod(shape)
            k = flat[..., offset : offset + size].reshape(*lead, *shape)
            offset += size
            n_out = self.layout[layer + 1]
            bs.append(flat[..., offset : offset + n_out])
            offset += n_out
            nd = len(lead)
            if len(shape) == 4:  # (kh, kw, ci, co) -> (co, ci, kh, kw)
                k = k.permute(*range(nd), nd + 3, nd + 2, nd + 0, nd + 1)
            else:
                k = k.transpose(-1, -2)
            ws.append(k)
        return self.flatten(ws, bs)

    def to_tf_flat(self, params: Tensor) -> Tensor:
        """Inverse of :meth:`from_tf_flat`."""
        ws, bs = self.unflatten(params)
        nd = params.ndim - 1
        parts = []
        for w, b in zip(ws, bs, strict=True):
            if w.ndim - nd == 4:  # (co, ci, kh, kw) -> (kh, kw, ci, co)
                w = w.permute(*range(nd), nd + 2, nd + 3, nd + 1, nd + 0)
            else:
                w = w.transpose(-1, -2)
            parts += [w.reshape(*params.shape[:-1], -1), b]
        return torch.cat(parts, dim=-1)
