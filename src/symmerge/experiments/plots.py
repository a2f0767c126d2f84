"""Matplotlib figures (Agg backend, written atomically as PNG)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from symmerge.utils.io import atomic_path  # noqa: E402

#: A fixed colour per method, so figures of different experiments agree.
METHOD_COLORS = {
    "naive": "#7f7f7f",
    "wm": "#1f77b4",
    "wm-perm": "#17becf",
    "sort": "#2ca02c",
    "ae": "#d62728",
    "ae-latent": "#ff7f0e",
    "ae-lift": "#9467bd",
    "pna-ae": "#8c564b",
    "pna-ae-latent": "#e377c2",
}


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _band(curves: np.ndarray, band: str) -> np.ndarray:
    if curves.shape[0] < 2:
        return np.zeros(curves.shape[1])
    std = curves.std(axis=0, ddof=1)
    return std / np.sqrt(curves.shape[0]) if band == "sem" else std


def plot_curves(
    ax: plt.Axes,
    alphas: np.ndarray,
    curves: Mapping[str, np.ndarray],
    *,
    band: str = "std",
    ylabel: str = "loss",
    title: str = "",
    logy: bool = False,
) -> None:
    """Mean curve per method with a +-std (or +-SEM) band on ``ax``."""
    for name, c in curves.items():
        color = METHOD_COLORS.get(name)
        mean = c.mean(axis=0)
        spread = _band(c, band)
        ax.plot(alphas, mean, label=name, color=color, lw=1.6)
        lo = mean - spread
        if logy:
            lo = np.maximum(lo, mean * 0.1)
        ax.fill_between(alphas, lo, mean + spread, color=color, alpha=0.18, lw=0)
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def curves_figure(
    path: str | os.PathLike[str],
    alphas: np.ndarray,
    panels: Sequence[tuple[str, Mapping[str, np.ndarray], bool]],
    *,
    band: str = "std",
    title: str = "",
) -> Path:
    """One panel per ``(ylabel, {method: curves [n, T]}, logy)``, side by side."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.9), squeeze=False)
    for ax, (ylabel, curves, logy) in zip(axes[0], panels, strict=True):
        plot_curves(ax, alphas, curves, band=band, ylabel=ylabel, logy=logy)
    band_name = "std" if band == "std" else "SEM"
    fig.suptitle(f"{title} (mean ± {band_name})" if title else f"mean ± {band_name}", fontsize=10)
    return save_figure(fig, path)


def bar_figure(
    path: str | os.PathLike[str], values: Mapping[str, float], errors: Mapping[str, float],
    *, ylabel: str, title: str = "",
) -> Path:
    """A bar per method (with error bars)."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(names), 3.4))
    ax.bar(names, [values[n] for n in names], yerr=[errors.get(n, 0.0) for n in names],
           color=[METHOD_COLORS.get(n, "#333333") for n in names], capsize=3)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    ax.axhline(0, color="black", lw=0.6)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def scatter_map(
    ax: plt.Axes,
    points: np.ndarray,
    labels: np.ndarray,
    *,
    overlay: Sequence[np.ndarray] = (),
    overlay_labels: Sequence[int] = (),
    title: str = "",
    background_alpha: float = 0.8,
) -> None:
    """A 2-D embedding coloured by label (tab10), with optional orbits overlaid as stars."""
    cmap = plt.get_cmap("tab10")
    colors = cmap(np.mod(labels, 10)) if labels.size else "#999999"
    ax.scatter(points[:, 0], points[:, 1], c=colors, s=6, alpha=background_alpha, lw=0)
    handles = []
    if labels.size and labels.min() >= 0:
        for lab in np.unique(labels)[:10]:
            handles.append(ax.scatter([], [], color=cmap(int(lab) % 10), s=12, label=str(lab)))
    marks = plt.get_cmap("Dark2")
    for i, orbit in enumerate(overlay):
        lab = f" (label {int(overlay_labels[i])})" if i < len(overlay_labels) else ""
        handles.append(ax.scatter(orbit[:, 0], orbit[:, 1], marker="*", s=80,
                                  color=marks(i % 8), edgecolors="black", linewidths=0.6,
                                  label=f"orbit {i}{lab}"))
    if handles:
        ax.legend(handles=handles, fontsize=6, loc="best", ncol=2, markerscale=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
