"""Small CNNs of the Small CNN Zoo (Unterthiner et al. 2020) and their batched forward pass."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec, activation_fn
from symmerge.specs.mlp import uniform_
from symmerge.utils.seed import draw_device


class SmallCNN(nn.Module):
    """Convolutions + activation, global average pooling, dense layers (activation between
    them); every layer in ``self.seq``."""

    def __init__(self, spec: CNNSpec) -> None:
        super().__init__()
        layout = spec.layout
        convs = [
            nn.Conv2d(layout[i], layout[i + 1], k, stride=s, padding=p)
            for i, (k, s, p) in enumerate(zip(spec.kernel_sizes, spec.strides, spec.paddings,
                                              strict=True))
        ]
        dense = [nn.Linear(layout[i], layout[i + 1])
                 for i in range(spec.num_convs, spec.num_layers)]
        self.seq = nn.ModuleList([*convs, *dense])
        self.num_convs = spec.num_convs
        self.activation = spec.activation

    def forward(self, x: Tensor) -> Tensor:
        act = activation_fn(self.activation)
        for conv in self.seq[: self.num_convs]:
            x = act(conv(x))
        x = x.mean(dim=(-2, -1))
        dense = self.seq[self.num_convs :]
        for i, lin in enumerate(dense):
            x = lin(x)
            if i < len(dense) - 1:
                x = act(x)
        return x


def _per_conv(value: int | Sequence[int], name: str, convs: int, least: int) -> int | tuple:
    """A per-convolution option: one integer for all, or one per convolution (stored as one
    integer when they agree, so that equal specs compare and serialize alike)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) != convs:
            raise SymmergeError(f"{name} must be one integer or one per convolution ({convs}), "
                                f"got {list(values)}")
    else:
        values = (value,) * convs
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise SymmergeError(f"{name} must be integers, got {value!r}")
    values = tuple(int(v) for v in values)
    if any(v < least for v in values):
        raise SymmergeError(f"{name} must be {'positive' if least else 'non-negative'}, "
                            f"got {value!r}")
    return values[0] if len(set(values)) == 1 else values


@dataclass(frozen=True)
class CNNSpec(WeightSpaceSpec):
    """Convolutions, global average pooling, then ``dense_layers`` dense layers; ReLU or tanh
    after every layer but the last.

    The first ``len(layout) - 1 - dense_layers`` weight layers are square convolutions
    (``kernel_size``, ``stride`` and ``padding``: one integer for all, or one per
    convolution); their channels are the hidden "neurons" (a conv weight is
    ``(c_out, c_in, k, k)``), and so are the dense layers' hidden neurons. Default: the
    Small CNN Zoo's layout [1, 16, 16, 16, 10], 3x3 kernels, stride 2, no padding, one
    dense layer.
    """

    layout: tuple[int, ...] = (1, 16, 16, 16, 10)
    activation: str = "relu"
    kernel_size: int | tuple[int, ...] = 3
    stride: int | tuple[int, ...] = 2
    padding: int | tuple[int, ...] = 0
    dense_layers: int = 1

    family = "cnn"
    optional_fields = frozenset({"padding", "dense_layers"})

    @classmethod
    def allowed_activations(cls) -> tuple[str, ...]:
        return ("relu", "tanh")

    def __post_init__(self) -> None:
        super().__post_init__()
        dense = self.dense_layers
        if isinstance(dense, bool) or not isinstance(dense, numbers.Integral) or dense < 1:
            raise SymmergeError(f"dense_layers must be a positive integer, got {dense!r}")
        object.__setattr__(self, "dense_layers", int(dense))
        if len(self.layout) < self.dense_layers + 2:
            raise SymmergeError(
                f"a CNN layout needs at least one conv layer before its {self.dense_layers} "
                f"dense layer(s), got {list(self.layout)}"
            )
        for name, least in (("kernel_size", 1), ("stride", 1), ("padding", 0)):
            object.__setattr__(self, name,
                               _per_conv(getattr(self, name), name, self.num_convs, least))

    def kernel_shape(self, layer: int) -> tuple[int, ...]:
        if layer < self.num_convs:
            k = self.kernel_sizes[layer]
            return (k, k)
        return ()

    @property
    def num_convs(self) -> int:
        return self.num_layers - self.dense_layers

    def _each(self, value: int | tuple[int, ...]) -> tuple[int, ...]:
        return value if isinstance(value, tuple) else (value,) * self.num_convs

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        """The kernel size of each convolution."""
        return self._each(self.kernel_size)

    @property
    def strides(self) -> tuple[int, ...]:
        """The stride of each convolution."""
        return self._each(self.stride)

    @property
    def paddings(self) -> tuple[int, ...]:
        """The (zero) padding of each convolution."""
        return self._each(self.padding)

    def min_input_size(self) -> int:
        """Smallest square input that leaves at least 1x1 after every convolution."""
        size = 1
        for k, s, p in reversed(list(zip(self.kernel_sizes, self.strides, self.paddings,
                                         strict=True))):
            size = max((size - 1) * s + k - 2 * p, 1)
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
        (only the last conv's unless ``all_levels``), the dense hidden layers' activations
        (``all_levels`` only), then the logits."""
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
        strides, paddings = self.strides, self.paddings

        def conv(h: Tensor, layer: int, groups: int) -> Tensor:
            w, b = ws[layer], bs[layer]
            return F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=strides[layer],
                            padding=paddings[layer], groups=groups)

        if x.ndim == 4:  # shared images: first conv needs no grouping
            n = x.shape[0]
            h = conv(x, 0, 1)
        elif x.ndim == 5 and x.shape[0] == nets:
            n = x.shape[1]
            h = conv(x.transpose(0, 1).reshape(n, -1, *x.shape[-2:]), 0, nets)
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
        for layer in range(1, self.num_convs):
            if all_levels:
                levels.append(pooled(h))
            h = act(conv(h, layer, nets))
        levels.append(pooled(h))
        for layer in range(self.num_convs, self.num_layers):
            z = torch.matmul(levels[-1], ws[layer].mT) + bs[layer].unsqueeze(-2)
            if layer < self.num_layers - 1:
                z = act(z)
                if not all_levels:
                    levels[-1] = z
                    continue
            levels.append(z)
        return levels

    def build_module(self) -> nn.Module:
        return SmallCNN(self)

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
        size = max(self.min_input_size() + max(self.strides), 16)
        x = torch.randn(n, self.layout[0], size, size, generator=generator, dtype=dtype,
                        device=draw_device(generator, device))
        return x.to(device if device is not None else x.device)

    # ------------------------------------------------------- TensorFlow order
    def tf_shape(self, layer: int) -> tuple[int, ...]:
        """TF kernel shape: conv ``(kh, kw, c_in, c_out)``, dense ``(in, out)``."""
        out_c, in_c = self.layout[layer + 1], self.layout[layer]
        if layer < self.num_convs:
            return (*self.kernel_shape(layer), in_c, out_c)
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
