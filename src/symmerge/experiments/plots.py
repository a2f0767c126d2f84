"""Plots of experiment results: functions that build a :class:`matplotlib.figure.Figure`
directly (no pyplot, no global state, the backend untouched), and :func:`save_figure`,
which writes one as PNG atomically. In a notebook a returned figure shows itself."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from symmerge.experiments.evidence import BAND_NAMES
from symmerge.utils.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from symmerge.experiments.results import DistanceHistogram, MapPanel

#: colour of a name no method has
OTHER_COLOR = "#333333"
#: line styles and markers cycled over the curves of one panel, so that curves lying on
#: top of each other (``ae``, ``ae-latent`` and ``pna-ae`` often do) stay visible
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")
#: the note under a curves figure
OVERLAP_NOTE = "line styles and markers differ per method, so overlapping curves stay visible"
#: the legend entry of a reconstruction-endpoint bar
RECONSTRUCTED_NOTE = ("hatched: endpoints are reconstructions; the barrier measures flatness "
                      "between decoded networks, not a win")


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
    reconstructed: Collection[str] = (),
) -> None:
    """Mean curve per method with a +-std (or +-SEM) band on ``ax``; each method its own
    line style and markers (:data:`LINESTYLES`, :data:`MARKERS`, markers staggered), the
    methods in ``reconstructed`` (reconstruction endpoints) labelled so."""
    every = max(1, len(alphas) // 6)
    for i, (name, c) in enumerate(curves.items()):
        color = method_color(name)
        mean = c.mean(axis=0)
        spread = _band(c, band)
        label = f"{name} (reconstructed endpoints)" if name in reconstructed else name
        ax.plot(alphas, mean, label=label, color=color, lw=1.6,
                ls=LINESTYLES[i % len(LINESTYLES)], marker=MARKERS[i % len(MARKERS)], ms=4,
                markevery=(i % every, every))
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


def spread_phrase(band: str, n: int | None, unit: str = "pairs") -> str:
    """E.g. ``mean ± SEM over 8 pairs`` (``mean ± std`` without ``n``)."""
    return f"mean ± {BAND_NAMES[band]}" + ("" if n is None else f" over {n} {unit}")


def curves_figure(
    alphas: np.ndarray,
    panels: Sequence[tuple[str, Mapping[str, np.ndarray], bool]],
    *,
    band: str = "std",
    title: str = "",
    n: int | None = None,
    unit: str = "pairs",
    reconstructed: Collection[str] = (),
    caveat: str = "",
) -> Figure:
    """One panel per ``(ylabel, {method: curves [n, T]}, logy)``, side by side; the title
    says mean ± std or SEM over ``n`` ``unit`` (and ``caveat``, e.g. that n is too small
    to judge), a footnote that line styles differ (:data:`OVERLAP_NOTE`)."""
    fig = Figure(figsize=(5.2 * len(panels), 3.9))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (ylabel, curves, logy) in zip(axes[0], panels, strict=True):
        plot_curves(ax, alphas, curves, band=band, ylabel=ylabel, logy=logy,
                    reconstructed=reconstructed)
    spread = spread_phrase(band, n, unit) + (f"; {caveat}" if caveat else "")
    fig.suptitle(f"{title} ({spread})" if title else spread, fontsize=10)
    fig.text(0.5, -0.01, OVERLAP_NOTE, ha="center", va="top", fontsize=7, color="#555555")
    return fig


def bar_figure(
    values: Mapping[str, float], errors: Mapping[str, float], *, ylabel: str, title: str = "",
    band: str = "std", n: int | None = None, unit: str = "pairs",
    reconstructed: Collection[str] = (), caveat: str = "",
) -> Figure:
    """A bar per method with error bars (± ``band`` over ``n`` ``unit``, in the y label);
    the bars of ``reconstructed`` methods (reconstruction endpoints) are hatched, pale
    and labelled, with a legend entry saying their barrier is no win
    (:data:`RECONSTRUCTED_NOTE`); ``caveat`` (e.g. too few pairs) joins the title."""
    from matplotlib.patches import Patch

    names = list(values)
    fig = Figure(figsize=(1.6 + 0.9 * len(names), 3.8))
    ax = fig.subplots()
    bars = ax.bar(names, [values[m] for m in names], yerr=[errors.get(m, 0.0) for m in names],
                  color=[method_color(m) for m in names], capsize=3, edgecolor="black",
                  linewidth=0.4)
    top = max([abs(v) for v in values.values() if np.isfinite(v)] or [1.0]) or 1.0
    for bar, m in zip(bars, names, strict=True):
        if m in reconstructed:
            bar.set_hatch("///")
            bar.set_alpha(0.45)
            ax.text(bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0.0) + 0.03 * top,
                    "recon.", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_ylabel(f"{ylabel}\n({spread_phrase(band, n, unit)})", fontsize=9)
    ax.tick_params(axis="x", rotation=30)
    ax.axhline(0, color="black", lw=0.6)
    if reconstructed:
        ax.legend(handles=[Patch(facecolor="white", edgecolor="black", hatch="///",
                                 label=RECONSTRUCTED_NOTE)], fontsize=6, loc="best")
    full = " — ".join(filter(None, [title, caveat]))
    if full:
        ax.set_title(full, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return fig


def scatter_map(ax: Axes, panel: MapPanel, *, title: str = "",
                within: Sequence[float] | None = None) -> None:
    """A 2-D embedding coloured by label (tab10), with orbits overlaid as stars; with
    ``within`` (each overlaid orbit's latent spread: mean within-orbit latent distance
    over the reference mean, :func:`within_panel`) the legend gives it, as the map's
    spread need not."""
    cmap = colormaps["tab10"]
    points, labels = panel.points, panel.labels
    colors = cmap(np.mod(labels, 10)) if labels.size else "#999999"
    ax.scatter(points[:, 0], points[:, 1], c=colors, s=6,
               alpha=0.35 if panel.overlay else 0.8, lw=0)
    handles = []
    if labels.size and labels.min() >= 0:
        for lab in np.unique(labels)[:10]:
            handles.append(ax.scatter([], [], color=cmap(int(lab) % 10), s=12, label=str(lab)))
    for i, orbit in enumerate(panel.overlay):
        lab = (f" (label {int(panel.overlay_labels[i])})" if i < len(panel.overlay_labels)
               else "")
        if within is not None and i < len(within):
            lab += f", latent spread {within[i]:.2g}"
        handles.append(ax.scatter(orbit[:, 0], orbit[:, 1], marker="*", s=80,
                                  color=orbit_color(i), edgecolors="black", linewidths=0.6,
                                  label=f"orbit {i}{lab}"))
    if handles:  # below the map: the map stays visible
        ax.legend(handles=handles, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.02),
                  ncol=4 if within is None else 3, markerscale=1.0, frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def orbit_color(i: int) -> tuple[float, ...]:
    """The colour of overlaid orbit ``i`` (its stars and its within-distance mark)."""
    return colormaps["Dark2"](i % 8)


#: how each map is named in panel titles (and how it places overlaid orbits)
MAP_TITLES = {"umap": "UMAP", "tsne": "t-SNE"}
OVERLAY_HOW = {"umap": "fit on background, orbits via transform",
               "tsne": "joint fit: star spread is not latent spread"}


def within_panel(ax: Axes, h: DistanceHistogram, shown: int, *, title: str = "") -> None:
    """Each orbit's mean within-orbit latent distance over the mean reference distance
    (log scale; 1: as far apart as the reference pairs), the ``shown`` orbits of the maps
    in their star colours: a collapsed orbit sits orders of magnitude below 1 whatever
    the map beside it shows."""
    values = np.maximum(np.asarray(h.per_orbit, dtype=np.float64), 1e-12)
    if values.size == 0 or not np.isfinite(values).any():  # e.g. a record without them
        ax.text(0.5, 0.5, "no within-orbit distances recorded", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        ax.set_axis_off()
        return
    x = np.arange(values.size)
    colors = [orbit_color(i) if i < shown else (0.6, 0.6, 0.6, 1.0) for i in x]
    ax.scatter(x, values, c=colors, marker="*", s=90, edgecolors="black", linewidths=0.6,
               zorder=3)
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label=f"1 = mean {h.reference_name}")
    ax.set_yscale("log")
    lo = min(float(np.nanmin(values)), 1.0)
    ax.set_ylim(lo / 10, 10)
    ax.set_xticks(x, [str(i) for i in x], fontsize=7)
    ax.set_xlabel(f"orbit ({values.size} orbits; coloured: on the maps)", fontsize=8)
    ax.set_ylabel(f"latent spread: mean within-orbit distance\n÷ mean {h.reference_name} "
                  "(log)", fontsize=8)
    ax.legend(fontsize=6, loc="upper left")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)


def map_grid(panels: Mapping[str, Mapping[str, MapPanel]], title: str,
             within: Mapping[str, DistanceHistogram] | None = None) -> Figure:
    """A row per encoder (``{encoder: {map name: panel}}``), a column per map; with
    ``within`` (``{encoder: distances}``, orbit collapse) a last column gives each
    orbit's within-orbit latent distance (:func:`within_panel`) and the legends the
    overlaid orbits' own."""
    rows = list(panels)
    maps = list(next(iter(panels.values())))
    cols = len(maps) + (1 if within else 0)
    fig = Figure(figsize=(4.6 * cols, 5.0 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, row in enumerate(rows):
        h = within.get(row) if within else None
        for c, m in enumerate(maps):
            name = MAP_TITLES.get(m, m)
            how = f"\n({OVERLAY_HOW[m]})" if h is not None and m in OVERLAY_HOW else ""
            scatter_map(axes[r][c], panels[row][m], title=f"{row}: {name}{how}",
                        within=None if h is None else h.per_orbit)
        if h is not None:
            shown = len(next(iter(panels[row].values())).overlay)
            within_panel(axes[r][-1], h, shown, title=f"{row}:\nlatent spread of each orbit")
    fig.suptitle(title, fontsize=10)
    return fig


def distance_histograms(hists: Mapping[str, DistanceHistogram]) -> Figure:
    """Per encoder: within-orbit latent distances against the reference distances (the
    legend gives how many pairs each histogram holds)."""
    fig = Figure(figsize=(4.8 * len(hists), 3.4))
    axes = fig.subplots(1, len(hists), squeeze=False)
    for ax, (name, h) in zip(axes[0], hists.items(), strict=True):
        w, ref = h.within, h.reference
        top = max(float(ref.max()) if ref.size else 0.0, float(w.max()), 1e-12)
        bins = np.linspace(0, top * 1.05, 50)
        if ref.size:
            kind = ("between orbits" if h.reference_name.startswith("between") else
                    "background pairs")
            ax.hist(ref, bins=bins, alpha=0.6, density=True, label=f"{kind} (n = {ref.size})")
        ax.hist(w, bins=bins, alpha=0.6, density=True,
                label=f"within an orbit (n = {w.size} pairs)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"latent distance / mean {h.reference_name}")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    return fig
