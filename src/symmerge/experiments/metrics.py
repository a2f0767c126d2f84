"""Scalar summaries of interpolation curves: loss barrier, area under it, endpoints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.limits import MAX_STEPS, check_range


def _as_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def alpha_grid(steps: int) -> Tensor:
    """``steps`` evenly spaced interpolation weights in [0, 1] (float64)."""
    check_range(steps, "steps", 2, MAX_STEPS)
    return torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device="cpu")


def excess_over_line(curves: np.ndarray, alphas: np.ndarray, *, higher_is_better: bool = False
                     ) -> np.ndarray:
    """``L(alpha) - ((1 - alpha) L(0) + alpha L(1))`` per row (sign flipped for accuracies)."""
    line = (1 - alphas) * curves[:, :1] + alphas * curves[:, -1:]
    excess = curves - line
    return -excess if higher_is_better else excess


def barriers(curves: Tensor | np.ndarray, alphas: Tensor | np.ndarray, *,
             higher_is_better: bool = False) -> np.ndarray:
    """Loss barrier per row ``[n]``: the maximum over alpha of the excess over the
    straight line between the endpoint values (not clipped at 0)."""
    c, a = _as_numpy(curves), _as_numpy(alphas)
    return excess_over_line(c, a, higher_is_better=higher_is_better).max(axis=1)


def barrier_areas(curves: Tensor | np.ndarray, alphas: Tensor | np.ndarray, *,
                  higher_is_better: bool = False) -> np.ndarray:
    """Area under the excess-over-the-line curve per row (trapezoidal rule)."""
    c, a = _as_numpy(curves), _as_numpy(alphas)
    e = excess_over_line(c, a, higher_is_better=higher_is_better)
    return ((e[:, 1:] + e[:, :-1]) * np.diff(a) / 2).sum(axis=1)


@dataclass(frozen=True)
class CurveSummary:
    """One metric's curves ``[pairs, steps]`` in numbers: per-pair barriers (mean, sample
    std, SEM, median) and areas above the line (mean, std), the barrier of the mean curve,
    the mean values at the start, end, middle and worst alpha, and the barrier relative to
    the reference method's (None until compared)."""

    pairs: int
    barrier_mean: float
    barrier_std: float
    barrier_sem: float
    barrier_median: float
    barrier_of_mean_curve: float
    auc_mean: float
    auc_std: float
    start_mean: float
    end_mean: float
    mid_mean: float
    worst_mean: float
    barrier_vs_naive: float | None = None

    def spread(self, band: str) -> float:
        """``barrier_std`` (``band="std"``) or ``barrier_sem`` (``"sem"``)."""
        return self.barrier_sem if band == "sem" else self.barrier_std


def summarize_curves(curves: Tensor | np.ndarray, alphas: Tensor | np.ndarray, *,
                     higher_is_better: bool = False) -> CurveSummary:
    """Mean / std / SEM of per-pair barriers and areas, endpoint values, and the
    barrier of the mean curve (``curves`` is ``[pairs, steps]``)."""
    c, a = _as_numpy(curves), _as_numpy(alphas)
    if c.ndim != 2 or c.shape[1] != a.shape[0] or c.shape[0] == 0:
        raise SymmergeError(f"curves must be [pairs, {a.shape[0]}], got {c.shape}")
    b = barriers(c, a, higher_is_better=higher_is_better)
    area = barrier_areas(c, a, higher_is_better=higher_is_better)
    n = c.shape[0]
    mean_curve = c.mean(axis=0, keepdims=True)

    def std(x: np.ndarray) -> float:  # sample std, as the plots' bands
        return float(x.std(ddof=1)) if n > 1 else 0.0

    return CurveSummary(
        pairs=n,
        barrier_mean=float(b.mean()),
        barrier_std=std(b),
        barrier_sem=std(b) / float(np.sqrt(n)),
        barrier_median=float(np.median(b)),
        barrier_of_mean_curve=float(
            barriers(mean_curve, a, higher_is_better=higher_is_better)[0]
        ),
        auc_mean=float(area.mean()),
        auc_std=std(area),
        start_mean=float(c[:, 0].mean()),
        end_mean=float(c[:, -1].mean()),
        mid_mean=float(c[:, c.shape[1] // 2].mean()),
        worst_mean=float((c.min(axis=1) if higher_is_better else c.max(axis=1)).mean()),
    )
