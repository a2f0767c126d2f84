"""Latent-space experiments: orbit collapse (METHOD.md 6.5) and latent maps (METHOD.md 7).

Maps are UMAP (``n_neighbors=10, min_dist=0.1, metric="cosine"``) and t-SNE
(``perplexity=10, init="pca", learning_rate="auto"``) as in the reference, but
always with ``random_state=seed``. Orbit-collapse maps fit UMAP on the background
networks and place the orbits with its ``transform`` (a collapsed orbit lands on one
spot); t-SNE has no ``transform``, so there the orbits are embedded jointly with the
background and the figure gives each orbit's within-orbit latent distance beside the
map (:func:`symmerge.experiments.plots.within_panel`). UMAP needs
the optional umap-learn (``pip install 'symmerge[umap]'``); without it the experiments
make t-SNE maps instead and their results say so (:data:`NO_UMAP`).
"""

from __future__ import annotations

import os
import time
import types
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from symmerge.canon import AECanonicalizer
from symmerge.errors import SymmergeError
from symmerge.experiments.common import (
    Autoencoders,
    check_seed,
    load_autoencoders,
    network_selection,
    open_zoo,
    progress_bar,
    sample_indices,
    usable_members,
)
from symmerge.experiments.orbit_zoo import (
    generated_orbit_options,
    load_orbit_zoo,
    refuse_generation_options,
)
from symmerge.experiments.results import (
    CollapseStats,
    DistanceHistogram,
    LatentMapResult,
    LatentMapSettings,
    LatentMapStats,
    MapPanel,
    OrbitCollapseResult,
    OrbitCollapseSettings,
)
from symmerge.experiments.sections import encoder_name
from symmerge.models.runs import RunLike
from symmerge.symmetry import make_orbit
from symmerge.utils.device import resolve_device
from symmerge.utils.seed import random_state_kept
from symmerge.zoo import Zoo

MAPS = ("umap", "tsne")
#: the note of a result whose UMAP maps were made with t-SNE (umap-learn missing)
NO_UMAP = ("umap-learn not installed; t-SNE used instead of UMAP (pip install "
           "'symmerge[umap]' for UMAP maps)")


def _umap() -> types.ModuleType | None:
    """The ``umap`` module of umap-learn, imported on first use (slow, so never at import
    time; its import draws from Python's global random state, which is put back); None if
    it is not installed."""
    try:
        with random_state_kept():
            import umap
    except ImportError:
        return None
    return umap


def _umap_reducer(n: int, seed: int) -> Any:
    """A seeded UMAP of ``n`` points (the reference's settings)."""
    umap = _umap()
    if umap is None:
        raise SymmergeError("method 'umap' needs umap-learn, which is not installed: "
                            "pip install 'symmerge[umap]', or use method 'tsne'",
                            params=("method",))
    return umap.UMAP(n_neighbors=min(10, n - 1), min_dist=0.1, n_components=2,
                     metric="cosine", random_state=seed, n_jobs=1)


def embed_2d(x: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """A seeded 2-D UMAP or t-SNE embedding of ``x [n, d]``; ``umap`` needs umap-learn."""
    if x.shape[0] < 5:
        raise SymmergeError(f"a {method} map needs at least 5 points, got {x.shape[0]}")
    if method == "umap":
        reducer = _umap_reducer(x.shape[0], seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # n_jobs=1 with random_state; spectral init notes
            return np.asarray(reducer.fit_transform(x), dtype=np.float64)
    if method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(n_components=2, perplexity=min(10.0, (x.shape[0] - 1) / 3), init="pca",
                    learning_rate="auto", random_state=seed)
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)
    raise SymmergeError(f"unknown map {method!r}; choose one of {', '.join(MAPS)}")


def embed_with_overlay(background: np.ndarray, overlay: Sequence[np.ndarray], method: str,
                       seed: int = 0) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """2-D maps of ``background [n, d]`` and of each ``overlay`` group ``[K_i, d]`` (the
    orbits). UMAP is fitted on the background alone and places the groups with its
    ``transform``, so a group of (nearly) equal latents lands on one spot; t-SNE has no
    ``transform`` and is fitted on everything jointly (as is UMAP on fewer than 5
    background points)."""
    sizes = [o.shape[0] for o in overlay]
    if method == "umap" and background.shape[0] >= 5:
        reducer = _umap_reducer(background.shape[0], seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bg = np.asarray(reducer.fit_transform(background), dtype=np.float64)
            placed = tuple(np.asarray(reducer.transform(o), dtype=np.float64) for o in overlay)
        return bg, placed
    emb = embed_2d(np.concatenate([background, *overlay]), method, seed)
    bounds = np.cumsum([background.shape[0], *sizes])
    return emb[:bounds[0]], tuple(emb[bounds[i]:bounds[i + 1]] for i in range(len(sizes)))


def _check_maps(maps: Sequence[str]) -> tuple[list[str], tuple[str, ...]]:
    """The maps to make, in order and once each, and the notes on them: UMAP becomes
    t-SNE when umap-learn is not installed (:data:`NO_UMAP`)."""
    bad = [m for m in maps if m not in MAPS]
    if bad:
        raise SymmergeError(f"unknown map(s) {bad}; choose from {', '.join(MAPS)}")
    if "umap" in maps and _umap() is None:
        return list(dict.fromkeys("tsne" if m == "umap" else m for m in maps)), (NO_UMAP,)
    return list(dict.fromkeys(maps)), ()


def _encoders(aes: Autoencoders) -> dict[str, tuple[str, AECanonicalizer]]:
    """``{role: (display name, encoder)}`` for the runs given."""
    if not aes.models:
        raise SymmergeError("this experiment needs an autoencoder: pass run and/or pna_run",
                            params=("run", "pna_run"))
    return {role: (encoder_name(info), aes.encoder(role)) for role, info in aes.runs.items()}


def _upper(d: Tensor) -> Tensor:
    i, j = torch.triu_indices(d.shape[-1], d.shape[-1], 1, device=d.device)
    return d[..., i, j]


# ------------------------------------------------------------ orbit collapse
def _nan_mean(x: Tensor) -> float:
    return float(x.mean()) if x.numel() else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _collapse_stats(
    name: str, zo: Sequence[Tensor], zb: Tensor, zbg: Tensor
) -> tuple[CollapseStats, DistanceHistogram]:
    """Distance statistics of one encoder's orbit latents ``zo`` (one ``[K_i, d]`` per
    orbit), base latents ``zb [m, d]`` and background latents ``zbg [n, d]``, and the
    histogram data: (within, reference distances, reference name), both divided by the
    reference mean (between orbits, else background pairs, else the mean latent norm)."""
    per_orbit = [_upper(torch.cdist(t, t)) for t in zo]
    within = torch.cat(per_orbit)
    flat = torch.cat(list(zo))
    sizes = torch.tensor([t.shape[0] for t in zo], device=flat.device)
    owner = torch.arange(len(zo), device=flat.device).repeat_interleave(sizes)
    between = torch.cat([torch.cdist(t, flat[owner > i]).flatten() for i, t in enumerate(zo)])
    bg = _upper(torch.cdist(zbg, zbg))
    to_base = torch.cat([(t - zb[i]).norm(dim=-1) for i, t in enumerate(zo)])
    w_mean, b_mean, bg_mean = float(within.mean()), _nan_mean(between), _nan_mean(bg)
    norm = float(zb.norm(dim=-1).mean())
    stats = CollapseStats(
        encoder=name,
        within_mean=w_mean,
        within_max=float(within.max()),
        between_mean=b_mean,
        ratio=_ratio(w_mean, b_mean),
        background_mean=bg_mean,
        within_vs_background=_ratio(w_mean, bg_mean),
        max_distance_to_base=float(to_base.max()),
        latent_norm_mean=norm,
        within_vs_latent_norm=_ratio(w_mean, norm),
    )
    if between.numel():
        ref, ref_mean, ref_name = between, b_mean, "between-orbit distance"
    elif bg.numel():
        ref, ref_mean, ref_name = bg, bg_mean, "background distance"
    else:
        ref, ref_mean, ref_name = within[:0], norm, "latent norm"
    scale = ref_mean if ref_mean > 0 else 1.0
    return stats, DistanceHistogram((within / scale).numpy(), (ref / scale).numpy(), ref_name,
                                    np.array([float(d.mean()) / scale for d in per_orbit]))


def orbit_collapse(
    zoo: str | os.PathLike[str] | Zoo | None = None,
    *,
    orbit_zoo: str | os.PathLike[str] | Zoo | None = None,
    run: RunLike | None = None,
    pna_run: RunLike | None = None,
    networks: int | None = None,
    orbit_size: int | None = None,
    transform: str | None = None,
    background: int = 500,
    map_orbits: int = 3,
    maps: Sequence[str] = MAPS,
    split: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> OrbitCollapseResult:
    """Do orbits collapse in latent space? ScaleGMN (``run``) vs. permutation-only (``pna_run``).
    The encoders run on ``device`` (``auto``: a CUDA GPU when there is one). Writes nothing.

    Generated orbits: for ``networks`` (10) networks of ``split`` (``test``) of ``zoo`` (a
    file or a :class:`~symmerge.zoo.Zoo`), an exact orbit of ``orbit_size`` (64)
    ``transform`` (``PD``) elements is encoded. A published orbit (``orbit_zoo``, checked
    by :func:`load_orbit_zoo`): its orbits, one per image (all, or ``networks`` of them
    drawn with the seed), members in ``orbit_member`` order; ``orbit_size`` and
    ``transform`` do not apply, and ``zoo`` (optional) only gives the background. Metrics
    per encoder (:class:`~symmerge.experiments.results.CollapseStats`): mean pairwise
    latent distance within an orbit, between members of different orbits, their ratio (0
    = perfect collapse; about 1 = no better than unrelated networks; NaN for a single
    orbit), the within distance relative to ``background`` random networks of the split
    and to the mean latent norm, and the largest distance of an orbit member to its base
    network's (a published orbit: its first member's) latent. Maps: UMAP / t-SNE of the
    background (coloured by label) with the first ``map_orbits`` orbits overlaid as stars;
    without background networks there are no maps (the report says so). Without
    umap-learn a UMAP map is made with t-SNE, and ``settings.notes`` says so. Failed
    networks (:mod:`symmerge.zoo.quality`) are never drawn (``result.selection``).
    ``progress``: a bar on stderr over encoders x (encoding, maps).
    """
    t0 = time.perf_counter()
    check_seed(seed)
    if zoo is None and orbit_zoo is None:
        raise SymmergeError("orbit-collapse needs zoo (orbits generated from its networks) or "
                            "orbit_zoo (a published orbit)", params=("zoo", "orbit_zoo"))
    maps, notes = _check_maps(maps)
    z = open_zoo(zoo) if zoo is not None else None
    oz = None
    if orbit_zoo is not None:
        refuse_generation_options("orbit-collapse", orbit_size=orbit_size, transform=transform)
        if z is None and split is not None:
            raise SymmergeError("orbit-collapse: split picks the background networks of zoo, "
                                "and none was given", params=("split", "zoo"))
        oz = load_orbit_zoo(orbit_zoo, spec=None if z is None else z.spec,
                            holder="the zoo" if z is None else f"zoo {z.name}")
        spec, holder = oz.spec, f"orbit zoo {oz.zoo.name}"
    else:
        assert z is not None
        spec, holder = z.spec, f"zoo {z.name}"
        transform, orbit_size = generated_orbit_options(transform, orbit_size, 64)
        networks = 10 if networks is None else networks
        if networks < 2:
            raise SymmergeError(f"networks must be at least 2 for orbit-collapse, got {networks}")
    split = split or "test"
    aes = load_autoencoders(spec, run, pna_run, holder=holder, device=resolve_device(device))
    encoders = _encoders(aes)
    gen = torch.Generator().manual_seed(seed)
    pool, excluded = (usable_members(z, split, aes.split) if z is not None
                      else (torch.zeros(0, dtype=torch.long, device="cpu"), 0))
    if oz is None:
        assert z is not None and networks is not None and transform is not None
        chosen = sample_indices(pool, networks, gen, "networks")
    else:
        picked = oz.select(networks, gen)
    bg_idx = (sample_indices(pool, min(background, pool.numel()), gen, "background networks")
              if pool.numel() else pool)
    if oz is None:
        base = z.get_params(chosen).float()
        orbits = [make_orbit(spec, base[i], int(orbit_size), transform, generator=gen)[0]
                  for i in range(networks)]
        labels = z.labels[chosen]
        rows = chosen
        described: dict = {"orbit_size": orbit_size, "transform": transform}
    else:
        orbits = [oz.params(o) for o in picked]
        base = torch.stack([o[0] for o in orbits])
        labels = torch.tensor([o.label for o in picked], device="cpu")
        rows = torch.stack([o.rows[0] for o in picked])
        described = {"orbit_zoo": oz.zoo.name, "orbits": tuple(o.summary() for o in picked),
                     "orbit_max_deviation": oz.max_deviation}
    m = len(orbits)
    bg_params = (z.get_params(bg_idx).float() if z is not None and bg_idx.numel()
                 else base[:0])
    bg_labels = (z.labels[bg_idx] if z is not None else labels[:0]).numpy()
    has_maps = bool(maps) and bg_idx.numel() > 0

    stats: dict[str, CollapseStats] = {}
    hists: dict[str, DistanceHistogram] = {}
    panels: dict[str, dict[str, MapPanel]] = {}
    k = min(map_orbits, m)
    steps = len(encoders) * (1 + (len(maps) if has_maps else 0))
    with progress_bar(steps, "orbit-collapse", progress) as bar:
        for role, (name, enc) in encoders.items():
            bar.set_postfix_str(f"{name}: encoding", refresh=False)
            zo = [enc.encode(t).double() for t in orbits]
            zb = enc.encode(base).double()
            zbg = enc.encode(bg_params).double() if bg_params.shape[0] else zb[:0]
            stats[role], hists[role] = _collapse_stats(name, zo, zb, zbg)
            bar.update(1)
            if has_maps:
                panels[role] = {}
                for mp in maps:
                    bar.set_postfix_str(f"{name}: {mp}", refresh=False)
                    bg2d, overlay = embed_with_overlay(
                        zbg.numpy(), [t.numpy() for t in zo[:k]], mp, seed)
                    panels[role][mp] = MapPanel(bg2d, bg_labels, overlay,
                                                tuple(labels[:k].tolist()))
                    bar.update(1)
    settings = OrbitCollapseSettings(
        zoo=z.name if z is not None else None, run=aes.path("run"),
        pna_run=aes.path("pna_run"), networks=m, background=int(bg_idx.numel()),
        map_orbits=k if has_maps else 0, maps=tuple(maps) if has_maps else (),
        notes=notes if has_maps else (), split=split if z is not None else None,
        split_settings=aes.split, seed=seed, **described,
    )
    return OrbitCollapseResult(
        settings=settings, runs=tuple(aes.runs.values()), networks=rows.numpy(),
        orbit_sizes=tuple(t.shape[0] for t in orbits), encoders=stats, distances=hists,
        maps=panels, seconds=time.perf_counter() - t0,
        selection=None if z is None else network_selection(
            z, aes, split, pool, excluded, torch.cat([rows if oz is None else rows[:0], bg_idx])),
    )


# ------------------------------------------------------------ latent map
def _knn_accuracy(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(y)
    folds = int(min(5, counts[counts > 0].min()))
    if folds < 2 or (counts > 0).sum() < 2:
        return float("nan")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    knn = KNeighborsClassifier(n_neighbors=min(5, len(y) - len(y) // folds - 1))
    return float(cross_val_score(knn, x, y, cv=cv).mean())


def latent_map(
    zoo: str | os.PathLike[str] | Zoo,
    *,
    run: RunLike | None = None,
    pna_run: RunLike | None = None,
    split: str = "test",
    max_points: int = 2000,
    maps: Sequence[str] = MAPS,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> LatentMapResult:
    """UMAP and t-SNE maps (``maps``) of the latents of a zoo split (a file or a
    :class:`~symmerge.zoo.Zoo`), coloured by label (encoded on ``device``; ``auto``: a
    CUDA GPU when there is one). Writes nothing. Without umap-learn a UMAP map is made
    with t-SNE, and ``settings.notes`` (and the report) says so.

    Up to ``max_points`` networks of ``split`` (seeded choice). Metrics per
    encoder (:class:`~symmerge.experiments.results.LatentMapStats`): 5-fold
    cross-validated 5-NN label accuracy and the silhouette score of the labels in latent
    space (both NaN without at least two labels). Failed networks
    (:mod:`symmerge.zoo.quality`) are left out (``result.selection``). ``progress``: a
    bar on stderr over encoders x (encoding, maps).
    """
    t0 = time.perf_counter()
    check_seed(seed)
    z = open_zoo(zoo)
    maps, notes = _check_maps(maps)
    aes = load_autoencoders(z.spec, run, pna_run, holder=f"zoo {z.name}",
                            device=resolve_device(device))
    encoders = _encoders(aes)
    gen = torch.Generator().manual_seed(seed)
    pool, excluded = usable_members(z, split, aes.split)
    idx = torch.sort(sample_indices(pool, min(max_points, pool.numel()), gen, "networks")).values
    params = z.get_params(idx).float()
    labels = z.labels[idx].numpy()
    labelled = labels >= 0
    stats: dict[str, LatentMapStats] = {}
    latents: dict[str, np.ndarray] = {}
    panels: dict[str, dict[str, MapPanel]] = {}
    with progress_bar(len(encoders) * (1 + len(maps)), "latent-map", progress) as bar:
        for role, (name, enc) in encoders.items():
            bar.set_postfix_str(f"{name}: encoding", refresh=False)
            x = enc.encode(params).double().numpy()
            knn, sil = float("nan"), float("nan")
            if labelled.all() and np.unique(labels).size >= 2:
                from sklearn.metrics import silhouette_score

                knn = _knn_accuracy(x, labels, seed)
                sil = float(silhouette_score(x, labels))
            stats[role] = LatentMapStats(name, knn, sil, int(x.shape[1]))
            latents[role] = x
            bar.update(1)
            if maps:
                panels[role] = {}
                for m in maps:
                    bar.set_postfix_str(f"{name}: {m}", refresh=False)
                    panels[role][m] = MapPanel(embed_2d(x, m, seed), labels)
                    bar.update(1)
    settings = LatentMapSettings(
        zoo=z.name, run=aes.path("run"), pna_run=aes.path("pna_run"), split=split,
        split_settings=aes.split, points=int(idx.numel()), maps=tuple(maps), notes=notes,
        seed=seed,
    )
    return LatentMapResult(
        settings=settings, runs=tuple(aes.runs.values()), networks=idx.numpy(), labels=labels,
        encoders=stats, latents=latents, maps=panels, seconds=time.perf_counter() - t0,
        selection=network_selection(z, aes, split, pool, excluded, idx),
    )
