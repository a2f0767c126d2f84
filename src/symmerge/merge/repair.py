"""REPAIR for merged networks (Jordan et al. 2023, "REPAIR: REnormalizing Permuted
Activations for Interpolation Repair"; METHOD.md 8.7).

Averaging aligned networks shrinks the spread of their hidden pre-activations (the
"variance collapse" of interpolated networks). REPAIR measures, on a batch of data, the
mean and standard deviation of every hidden neuron's pre-activation (dense layers) or
channel's (convolutions: over the images and the spatial positions) in each endpoint,
and rescales the merged network's neuron affinely so that its statistics equal their
interpolation::

    mu_t = sum_k w_k mu_k        sigma_t = sum_k w_k sigma_k   (w = (1 - alpha, alpha))
    z'   = (z - mu_m) * s + mu_t,   s = sigma_t / sigma_m

where ``mu_m``, ``sigma_m`` are the merged neuron's statistics (population std). Layer by
layer, in order: each layer is measured on the already repaired earlier layers. The
correction is folded into that layer's weights and bias (``W' = W * s``,
``b' = (b - mu_m) * s + mu_t``), so the result is a plain network of the same spec. The
output layer is left as it is.

The endpoints must already be aligned to each other (weight matching, a canonical form):
neuron ``i`` of every endpoint must be neuron ``i`` of the merged network.

Dead neurons: a merged neuron whose std is at most ``eps`` times its target's (a
rescaling by more than ``1 / eps``; constant on the data, e.g. behind dead ReLUs) is not
rescaled (``s = 1``); only its mean is moved to the target. A target std of 0 with a
live merged neuron gives ``s = 0`` (a constant neuron at the target mean).

Families: MLPs (ReLU, tanh), SIRENs (sine) and CNNs (ReLU, tanh; their hidden dense
layers after the pooling too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.limits import REPAIR_IMAGES
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec, WeightSpaceSpec
from symmerge.specs.base import activation_fn
from symmerge.utils.seed import sample_rows

if TYPE_CHECKING:
    from symmerge.evaluation import DataSettings

__all__ = ["REPAIR_EPS", "REPAIR_IMAGES", "LayerStats", "preactivation_stats", "repair",
           "repair_inputs", "repair_to"]
#: default of ``eps`` (dead-neuron rule): no rescaling by more than ``1 / eps``
REPAIR_EPS = 1e-5


@dataclass(frozen=True)
class LayerStats:
    """Per hidden layer ``h``: the mean and std ``[..., n_h]`` of its neurons'
    pre-activations over a batch of data (CNNs: over images and positions)."""

    mean: tuple[Tensor, ...]
    std: tuple[Tensor, ...]

    def mix(self, weights: Tensor) -> LayerStats:
        """``sum_k weights[k] * self[k]`` of stats with a leading endpoint dim ``K``
        (``weights [K]``): the targets of a weighted merge."""
        w = weights.to(self.mean[0])

        def combine(t: Tensor) -> Tensor:
            return (w.reshape(-1, *([1] * (t.ndim - 1))) * t).sum(0)

        return LayerStats(tuple(map(combine, self.mean)), tuple(map(combine, self.std)))

    @staticmethod
    def lerp(a: LayerStats, b: LayerStats, alphas: Tensor) -> LayerStats:
        """Targets ``[n, T, n_h]`` along paths: ``(1 - alpha) a + alpha b`` of ``a``, ``b``
        ``[n, n_h]`` at ``alphas [T]``."""
        al = alphas.to(a.mean[0]).reshape(1, -1, 1)

        def mixed(x: Tensor, y: Tensor) -> Tensor:
            return (1 - al) * x.unsqueeze(1) + al * y.unsqueeze(1)

        return LayerStats(tuple(map(mixed, a.mean, b.mean)), tuple(map(mixed, a.std, b.std)))

    @staticmethod
    def cat(parts: Sequence[LayerStats]) -> LayerStats:
        """Concatenate along the leading (network) dim."""
        return LayerStats(tuple(torch.cat(ms) for ms in zip(*(p.mean for p in parts),
                                                              strict=True)),
                          tuple(torch.cat(ss) for ss in zip(*(p.std for p in parts),
                                                            strict=True)))


def _check(spec: WeightSpaceSpec, inputs: Tensor) -> None:
    """Refuse families and inputs a repair cannot use."""
    if not isinstance(spec, CNNSpec | MLPSpec | SirenSpec):
        raise SymmergeError(f"repair supports MLPs, SIRENs and CNNs, not {spec.describe()}")
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise SymmergeError("inputs must be a floating-point tensor")
    n0 = spec.layout[0]
    if isinstance(spec, CNNSpec):
        size = spec.min_input_size()
        ok = inputs.ndim == 4 and inputs.shape[1] == n0 and min(inputs.shape[-2:]) >= size
        want = f"[N, {n0}, H, W] with H, W >= {size}"
    else:
        ok = inputs.ndim == 2 and inputs.shape[1] == n0
        want = f"[N, {n0}]"
    if not ok:
        raise SymmergeError(f"inputs must be {want} for {spec.describe()}, "
                            f"got {tuple(inputs.shape)}")
    if inputs.shape[0] < 2:
        raise SymmergeError(f"inputs must hold at least 2 samples, got {inputs.shape[0]}")
    if not bool(torch.isfinite(inputs).all()):
        raise SymmergeError("inputs contain NaN or infinite values")


def _walk(
    spec: WeightSpaceSpec, params: Tensor, inputs: Tensor, targets: LayerStats | None,
    eps: float,
) -> tuple[Tensor, LayerStats]:
    """One pass over the hidden layers of ``params [M, P]`` on shared ``inputs``: each
    layer's pre-activation statistics ``[M, n_h]`` (measured before its correction), and
    the parameters with every layer corrected to ``targets`` (unchanged when None)."""
    ws, bs = (list(t) for t in spec.unflatten(params))
    m = params.shape[0]
    convs = spec.num_convs if isinstance(spec, CNNSpec) else 0
    act = activation_fn(spec.activation, getattr(spec, "w0", 1.0))
    h = inputs.to(device=params.device, dtype=params.dtype)
    means, stds = [], []
    for layer in range(spec.num_hidden):
        w, b = ws[layer], bs[layer]
        if layer < convs:  # grouped layout [N, M * C, H, W]; the shared images need no grouping
            assert isinstance(spec, CNNSpec)
            z = F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1),
                         stride=spec.strides[layer], padding=spec.paddings[layer],
                         groups=1 if layer == 0 else m)
            var, mean = torch.var_mean(z.reshape(z.shape[0], m, w.shape[1], -1),
                                       dim=(0, 3), correction=0)
            shape: tuple[int, ...] = (1, -1, 1, 1)
        else:  # [M, N, n] (the CNNs' dense layers after the pooling too)
            if layer == convs and convs:  # global average pooling: [N, M * C, H, W] -> [M, N, C]
                h = h.mean(dim=(-2, -1)).reshape(h.shape[0], m, -1).transpose(0, 1)
            z = torch.matmul(h, w.mT) + b.unsqueeze(-2)
            var, mean = torch.var_mean(z, dim=-2, correction=0)
            shape = (m, 1, -1)
        std = var.sqrt()
        means.append(mean)
        stds.append(std)
        if targets is not None:
            mu_t, sd_t = targets.mean[layer].to(mean), targets.std[layer].to(std)
            live = std > eps * sd_t
            s = torch.where(live, sd_t / torch.where(live, std, torch.ones_like(std)),
                            torch.ones_like(std))
            ws[layer] = w * s.reshape(*s.shape, *([1] * (w.ndim - 2)))
            bs[layer] = (b - mean) * s + mu_t
            z = (z - mean.reshape(shape)) * s.reshape(shape) + mu_t.reshape(shape)
        h = act(z)
    out = spec.flatten(ws, bs) if targets is not None else params
    return out, LayerStats(tuple(means), tuple(stds))


def _flat(spec: WeightSpaceSpec, params: Tensor, name: str) -> Tensor:
    spec.check_params(params)
    if not params.is_floating_point():
        raise SymmergeError(f"{name} must be a floating-point tensor, got {params.dtype}")
    return params.reshape(-1, spec.num_params)


def preactivation_stats(
    spec: WeightSpaceSpec, params: Tensor, inputs: Tensor, *, batch_size: int = 16
) -> LayerStats:
    """Mean and std (population) of every hidden neuron's pre-activation ``[..., n_h]``
    for networks ``params [..., P]`` on ``inputs`` (MLPs, SIRENs: ``[N, n_0]``; CNNs:
    images ``[N, C, H, W]``, over images and positions), ``batch_size`` networks at a
    time, on the parameters' device and in their dtype."""
    _check(spec, inputs)
    flat = _flat(spec, params, "params")
    parts = [_walk(spec, chunk, inputs, None, 0.0)[1] for chunk in flat.split(batch_size)]
    stats = LayerStats.cat(parts)
    lead = params.shape[:-1]
    return LayerStats(tuple(t.reshape(*lead, -1) for t in stats.mean),
                      tuple(t.reshape(*lead, -1) for t in stats.std))


def repair_to(
    spec: WeightSpaceSpec,
    params: Tensor,
    targets: LayerStats,
    inputs: Tensor,
    *,
    eps: float = REPAIR_EPS,
    batch_size: int = 16,
) -> Tensor:
    """Networks ``params [..., P]`` with each hidden neuron's pre-activation rescaled to
    the ``targets`` ``[..., n_h]`` on ``inputs`` (layer by layer, folded into the weights;
    the module docstring gives the rule), ``batch_size`` networks at a time."""
    _check(spec, inputs)
    if not eps >= 0:
        raise SymmergeError(f"eps must be non-negative, got {eps}")
    flat = _flat(spec, params, "params")
    lead = params.shape[:-1]
    sizes = spec.hidden_sizes
    if len(targets.mean) != len(sizes) or len(targets.std) != len(sizes) or any(
        tuple(t.shape) != (*lead, n) for ts in (targets.mean, targets.std)
        for t, n in zip(ts, sizes, strict=True)
    ):
        raise SymmergeError(
            "targets must hold a mean and a std per hidden layer, shaped "
            f"{[(*lead, n) for n in sizes]}, got {[tuple(t.shape) for t in targets.mean]}"
        )
    tmean = [t.reshape(-1, t.shape[-1]) for t in targets.mean]
    tstd = [t.reshape(-1, t.shape[-1]) for t in targets.std]
    out = []
    for lo in range(0, flat.shape[0], batch_size):
        hi = lo + batch_size
        part = LayerStats(tuple(t[lo:hi] for t in tmean), tuple(t[lo:hi] for t in tstd))
        out.append(_walk(spec, flat[lo:hi], inputs, part, eps)[0])
    return torch.cat(out).reshape(params.shape)


def repair(
    spec: WeightSpaceSpec,
    merged: Tensor,
    endpoints: Tensor | Sequence[Tensor],
    inputs: Tensor,
    *,
    alpha: float | None = None,
    weights: Sequence[float] | Tensor | None = None,
    eps: float = REPAIR_EPS,
    batch_size: int = 16,
) -> Tensor:
    """REPAIR: ``merged [P]`` (or ``[B, P]``) with its hidden pre-activation statistics on
    ``inputs`` reset to the interpolation of its ``endpoints``' (``(a, b)`` or ``[K, P]``,
    or ``[K, B, P]`` for B merges), already aligned to each other.

    Targets: ``(1 - alpha, alpha)`` of two endpoints, or the ``weights`` (normalized), or
    the plain mean. After :func:`symmerge.merge.merge`:
    ``repair(spec, res.params, res.aligned, x, weights=res.weights)``. Returns the repaired
    parameters (same shape, device and dtype as ``merged``).
    """
    from symmerge.merge.core import merge_weights

    ends = torch.stack(list(endpoints)) if not isinstance(endpoints, Tensor) else endpoints
    spec.check_params(merged)
    spec.check_params(ends)
    if ends.ndim != merged.ndim + 1 or ends.shape[1:] != merged.shape:
        raise SymmergeError(f"endpoints must be [K, *{tuple(merged.shape)}] for merged "
                            f"{tuple(merged.shape)}, got {tuple(ends.shape)}")
    if isinstance(weights, Tensor):
        weights = weights.tolist()
    w = merge_weights(ends.shape[0], alpha=alpha, weights=weights).to(merged.device)
    stats = preactivation_stats(spec, ends.to(merged), inputs, batch_size=batch_size)
    return repair_to(spec, merged, stats.mix(w), inputs, eps=eps, batch_size=batch_size)


def repair_inputs(
    spec: WeightSpaceSpec,
    settings: DataSettings,
    *,
    count: int = REPAIR_IMAGES,
    seed: int = 0,
) -> tuple[Tensor, str]:
    """Inputs for repairing a merge of ``spec`` networks (MLPs, CNNs), and what they are:
    ``count`` of the training images (:func:`symmerge.evaluation.training_data`) of the
    evaluation data ``settings`` (a merge's: its inputs' zoo's, or an image source),
    drawn with ``seed`` (:func:`sample_rows`); never the held-out evaluation images."""
    from symmerge.evaluation.data import training_data

    if not isinstance(spec, CNNSpec | MLPSpec):
        raise SymmergeError(f"repair supports MLPs and CNNs, whose inputs are images; "
                            f"{spec.describe()} is neither")
    data = training_data(settings, spec)
    x = sample_rows(data.inputs, count, seed)
    _check(spec, x)
    return x, f"{x.shape[0]} of the {data.inputs.shape[0]} training images of {settings.source}"
