"""Plots of experiment results: functions that build a :class:`matplotlib.figure.Figure`
directly (no pyplot, no global state, the backend untouched), and :func:`save_figure`,
which writes one as PNG atomically. In a notebook a returned figure shows itself."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from symmerge.utils.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from symmerge.experiments.results import DistanceHistogram, MapPanel

#: colour of a name no method has
OTHER_COLOR = "#333333"


def method_color(name: str) -> str:
    """The fixed colour of a method (:mod:`symmerge.methods`), so that figures of
    different experiments agree."""
    from symmerge.methods import method_names
    from symmerge.methods.base import get_method

    return get_method(name).color if name in method_names() else OTHER_COLOR


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``fig`` as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


def _band(curves: np.ndarray, band: str) -> np.ndarray:
    if curves.shape[0] < 2:
        return np.zeros(curves.shape[1])
    std = curves.std(axis=0, ddof=1)
    return std / np.sqrt(curves.shape[0]) if band == "sem" else std


def plot_curves(
    ax: Axes,
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
        color = method_color(name)
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
    alphas: np.ndarray,
    panels: Sequence[tuple[str, Mapping[str, np.ndarray], bool]],
    *,
    band: str = "std",
    title: str = "",
) -> Figure:
    """One panel per ``(ylabel, {method: curves [n, T]}, logy)``, side by side."""
    fig = Figure(figsize=(5.2 * len(panels), 3.9))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (ylabel, curves, logy) in zip(axes[0], panels, strict=True):
        plot_curves(ax, alphas, curves, band=band, ylabel=ylabel, logy=logy)
    band_name = "std" if band == "std" else "SEM"
    fig.suptitle(f"{title} (mean ± {band_name})" if title else f"mean ± {band_name}", fontsize=10)
    return fig


def bar_figure(
    values: Mapping[str, float], errors: Mapping[str, float], *, ylabel: str, title: str = "",
) -> Figure:
    """A bar per method (with error bars)."""
    names = list(values)
    fig = Figure(figsize=(1.0 + 0.8 * len(names), 3.4))
    ax = fig.subplots()
    ax.bar(names, [values[n] for n in names], yerr=[errors.get(n, 0.0) for n in names],
           color=[method_color(n) for n in names], capsize=3)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    ax.axhline(0, color="black", lw=0.6)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def scatter_map(ax: Axes, panel: MapPanel, *, title: str = "") -> None:
    """A 2-D embedding coloured by label (tab10), with orbits overlaid as stars."""
    cmap = colormaps["tab10"]
    points, labels = panel.points, panel.labels
    colors = cmap(np.mod(labels, 10)) if labels.size else "#999999"
    ax.scatter(points[:, 0], points[:, 1], c=colors, s=6,
               alpha=0.35 if panel.overlay else 0.8, lw=0)
    handles = []
    if labels.size and labels.min() >= 0:
        for lab in np.unique(labels)[:10]:
            handles.append(ax.scatter([], [], color=cmap(int(lab) % 10), s=12, label=str(lab)))
    marks = colormaps["Dark2"]
    for i, orbit in enumerate(panel.overlay):
        lab = (f" (label {int(panel.overlay_labels[i])})" if i < len(panel.overlay_labels)
               else "")
        handles.append(ax.scatter(orbit[:, 0], orbit[:, 1], marker="*", s=80,
                                  color=marks(i % 8), edgecolors="black", linewidths=0.6,
                                  label=f"orbit {i}{lab}"))
    if handles:
        ax.legend(handles=handles, fontsize=6, loc="best", ncol=2, markerscale=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def map_grid(panels: Mapping[str, Mapping[str, MapPanel]], title: str) -> Figure:
    """A row per encoder (``{encoder: {map name: panel}}``), a column per map."""
    rows = list(panels)
    maps = list(next(iter(panels.values())))
    fig = Figure(figsize=(4.6 * len(maps), 4.2 * len(rows)))
    axes = fig.subplots(len(rows), len(maps), squeeze=False)
    for r, row in enumerate(rows):
        for c, m in enumerate(maps):
            name = "UMAP" if m == "umap" else "t-SNE"
            scatter_map(axes[r][c], panels[row][m], title=f"{row}: {name}")
    fig.suptitle(title, fontsize=10)
    return fig


def distance_histograms(hists: Mapping[str, DistanceHistogram]) -> Figure:
    """Per encoder: within-orbit latent distances against the reference distances."""
    fig = Figure(figsize=(4.8 * len(hists), 3.4))
    axes = fig.subplots(1, len(hists), squeeze=False)
    for ax, (name, h) in zip(axes[0], hists.items(), strict=True):
        w, ref = h.within, h.reference
        top = max(float(ref.max()) if ref.size else 0.0, float(w.max()), 1e-12)
        bins = np.linspace(0, top * 1.05, 50)
        if ref.size:
            ax.hist(ref, bins=bins, alpha=0.6, density=True,
                    label="between orbits" if h.reference_name.startswith("between") else
                    "background pairs")
        ax.hist(w, bins=bins, alpha=0.6, density=True, label="within an orbit")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"latent distance / mean {h.reference_name}")
        ax.legend(fontsize=8)
    return fig
