"""How good networks are on their evaluation data (:class:`~symmerge.evaluation.EvalData`):
accuracy and mean cross-entropy of classifiers (CNNs, MLPs) on held-out labelled images,
MSE and PSNR of an INR's render against its image. Computed in batches on the networks'
device through the specs' batched forward passes; nothing is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.evaluation.data import EvalData
from symmerge.specs import WeightSpaceSpec
from symmerge.zoo.fit_inr import psnr_from_mse

#: the metrics of each kind of network, in the order they are shown
METRICS = {"classifier": ("accuracy", "cross_entropy"), "inr": ("psnr", "mse")}


@dataclass(frozen=True)
class Quality:
    """One network's quality: ``kind`` (``classifier`` or ``inr``), ``metrics`` (classifier:
    ``accuracy`` in [0, 1] and mean ``cross_entropy`` in nats; INR: ``psnr`` in dB, peak 1,
    and pixel ``mse``), the number of ``examples`` (images; an INR's pixel values) and the
    ``data`` they were computed on, in words."""

    kind: str
    metrics: Mapping[str, float]
    examples: int
    data: str

    def line(self) -> str:
        """The metrics in one line: ``accuracy 0.8420, cross_entropy 0.5123``."""
        return ", ".join(f"{name} {_number(value)}" for name, value in self.metrics.items())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "metrics": dict(self.metrics), "examples": self.examples,
                "data": self.data}


def _number(value: float) -> str:
    """Four decimals, or four significant digits for values below 0.1 or of 10^4 and more."""
    return f"{value:.4f}" if value == 0 or 0.1 <= abs(value) < 1e4 else f"{value:.4g}"


def classifier_metrics(
    spec: WeightSpaceSpec, params: Tensor, inputs: Tensor, labels: Tensor, *,
    net_chunk: int = 64, image_chunk: int = 1000,
) -> dict[str, Tensor]:
    """Accuracy and mean cross-entropy ``[B]`` (float64, on ``params``' device) of the
    classifiers ``params [B, P]`` on ``inputs [N, ...]`` (as ``spec.forward`` takes them)
    with integer ``labels [N]``; ``net_chunk`` networks times ``image_chunk`` inputs at a
    time (the inputs are moved to the networks' device once)."""
    dev, m = params.device, labels.shape[0]
    if m == 0:
        raise SymmergeError("need at least one evaluation image")
    correct = torch.zeros(params.shape[0], dtype=torch.float64, device=dev)
    ce = torch.zeros(params.shape[0], dtype=torch.float64, device=dev)
    xs, ys = inputs.to(dev).split(image_chunk), labels.to(dev).split(image_chunk)
    for lo in range(0, params.shape[0], net_chunk):
        nets = params[lo:lo + net_chunk]
        for x, y in zip(xs, ys, strict=True):
            logits = spec.forward(nets, x.to(nets.dtype))  # [b, n, classes]
            yy = y.expand(logits.shape[0], -1)
            correct[lo:lo + nets.shape[0]] += (logits.argmax(-1) == yy).sum(-1).double()
            loss = F.cross_entropy(logits.transpose(1, 2), yy, reduction="none")
            ce[lo:lo + nets.shape[0]] += loss.sum(-1).double()
    return {"accuracy": correct / m, "cross_entropy": ce / m}


def image_metrics(spec: WeightSpaceSpec, params: Tensor, target: Tensor, *,
                  chunk: int = 4096) -> dict[str, Tensor]:
    """PSNR (dB, images in [0, 1]) and pixel MSE ``[B]`` (float64, on ``params``' device)
    of the INRs ``params [B, P]`` rendered at the resolution of ``target [R, R]``
    (``[R, R, C]`` for C outputs), ``chunk`` networks at a time."""
    render = getattr(spec, "render", None)
    if render is None:
        raise SymmergeError(f"{spec.describe()} does not render images")
    tgt = target.to(params.device)
    mse = torch.empty(params.shape[0], dtype=torch.float64, device=params.device)
    for lo in range(0, params.shape[0], chunk):
        img = render(params[lo:lo + chunk], tgt.shape[0])
        dims = tuple(range(1, img.ndim))
        mse[lo:lo + img.shape[0]] = ((img - tgt.to(img.dtype)) ** 2).mean(dims).double()
    return {"psnr": psnr_from_mse(mse), "mse": mse}


def evaluate_batch(params: Tensor, spec: WeightSpaceSpec, data: EvalData) -> list[Quality]:
    """The :class:`Quality` of each network of ``params [B, P]`` on ``data``, computed on
    ``params``' device."""
    spec.check_params(params)
    if params.ndim != 2:
        raise SymmergeError(f"params must be [B, P], got {tuple(params.shape)}")
    if data.kind == "classifier":
        assert data.labels is not None  # EvalData holds labels for classifiers
        values = classifier_metrics(spec, params, data.inputs, data.labels)
    else:
        values = image_metrics(spec, params, data.inputs)
    table = {k: values[k].cpu().tolist() for k in METRICS[data.kind]}
    return [Quality(data.kind, {k: float(v[b]) for k, v in table.items()}, data.examples,
                    data.description) for b in range(params.shape[0])]


def evaluate(params: Tensor, spec: WeightSpaceSpec, data: EvalData) -> Quality:
    """The :class:`Quality` of one network ``params [P]`` on ``data`` (from
    :func:`~symmerge.evaluation.evaluation_data`), computed on ``params``' device."""
    if params.ndim != 1:
        raise SymmergeError(f"params must be one network [P], got {tuple(params.shape)}")
    return evaluate_batch(params.unsqueeze(0), spec, data)[0]


@dataclass(frozen=True)
class MergeQuality:
    """The quality of a merge's inputs (``inputs``: name and :class:`Quality`, in order)
    and of the merged network, all on one evaluation ``data``."""

    data: EvalData
    inputs: tuple[tuple[str, Quality], ...]
    merged: Quality

    def table(self, merged_name: str = "merged") -> str:
        """A small text table: one row per input, then the merged network."""
        names = METRICS[self.merged.kind]
        rows = [(name, q) for name, q in self.inputs] + [(merged_name, self.merged)]
        width = max(len("network"), *(len(name) for name, _ in rows))
        cols = [max(len(n), 10) for n in names]
        head = "  ".join(["network".ljust(width), *(n.rjust(c) for n, c in
                                                    zip(names, cols, strict=True))])
        lines = [f"quality on {self.data.description}:", head]
        for name, q in rows:
            cells = [_number(q.metrics[n]).rjust(c) for n, c in zip(names, cols, strict=True)]
            lines.append("  ".join([name.ljust(width), *cells]))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """What a merged network's file stores (its ``quality`` metadata entry): the
        evaluation data (:class:`~symmerge.evaluation.DataSettings`, so that
        :func:`~symmerge.evaluation.evaluation_data` finds it again), its description,
        and each network's metrics."""
        return {"kind": self.merged.kind, "data": self.data.settings.to_dict(),
                "description": self.data.description, "examples": self.merged.examples,
                "inputs": [{"network": name, **q.metrics} for name, q in self.inputs],
                "merged": dict(self.merged.metrics)}


def merge_quality(inputs: Sequence[tuple[str, Tensor]], merged: Tensor,
                  spec: WeightSpaceSpec, data: EvalData) -> MergeQuality:
    """The quality of a merge's ``inputs`` (name and ``params [P]`` each) and of the
    ``merged`` network ``[P]`` on ``data``, evaluated in one batch on ``merged``'s device."""
    if not inputs:
        raise SymmergeError("no input networks given")
    params = torch.stack([p.to(merged) for _, p in inputs] + [merged])
    quality = evaluate_batch(params, spec, data)
    return MergeQuality(data, tuple((name, q) for (name, _), q in
                                    zip(inputs, quality[:-1], strict=True)), quality[-1])
