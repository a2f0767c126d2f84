"""Latent-space experiments: orbit collapse (METHOD.md 6.5) and latent maps (METHOD.md 7).

Maps are UMAP (``n_neighbors=10, min_dist=0.1, metric="cosine"``) and t-SNE
(``perplexity=10, init="pca", learning_rate="auto"``) as in the reference, but
always with ``random_state=seed``. Orbits are embedded jointly with their
background so both methods treat them alike (t-SNE has no ``transform``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from symmerge.canon import AECanonicalizer
from symmerge.errors import SymmergeError
from symmerge.experiments.common import (
    Autoencoders,
    load_autoencoders,
    open_zoo,
    prepare_out,
    sample_indices,
    split_members,
    split_phrase,
)
from symmerge.experiments.plots import plt, save_figure, scatter_map
from symmerge.experiments.report import ExperimentResult, ReportSection, markdown_table
from symmerge.limits import MAX_ORBIT, check_range
from symmerge.symmetry import TRANSFORMS, make_orbit
from symmerge.utils.device import resolve_device
from symmerge.zoo import Zoo

MAPS = ("umap", "tsne")


def embed_2d(x: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """A seeded 2-D UMAP or t-SNE embedding of ``x [n, d]``."""
    if x.shape[0] < 5:
        raise SymmergeError(f"a {method} map needs at least 5 points, got {x.shape[0]}")
    if method == "umap":
        import warnings

        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # n_jobs=1 with random_state; spectral init notes
            reducer = umap.UMAP(n_neighbors=min(10, x.shape[0] - 1), min_dist=0.1,
                                n_components=2, metric="cosine", random_state=seed, n_jobs=1)
            return np.asarray(reducer.fit_transform(x), dtype=np.float64)
    if method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(n_components=2, perplexity=min(10.0, (x.shape[0] - 1) / 3), init="pca",
                    learning_rate="auto", random_state=seed)
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)
    raise SymmergeError(f"unknown map {method!r}; choose one of {', '.join(MAPS)}")


def _check_maps(maps: Sequence[str]) -> list[str]:
    bad = [m for m in maps if m not in MAPS]
    if bad:
        raise SymmergeError(f"unknown map(s) {bad}; choose from {', '.join(MAPS)}")
    return list(dict.fromkeys(maps))


def _encoders(aes: Autoencoders) -> dict[str, tuple[str, AECanonicalizer]]:
    """``{key: (display name, model)}`` for the runs given."""
    out = {}
    if aes.ae is not None:
        mode = aes.encoder_modes.get("run", "?")
        name = f"ScaleGMN ({mode})" if mode in ("sign", "scale") else f"{mode} encoder"
        out["run"] = (name, aes.ae)
    if aes.pna is not None:
        out["pna_run"] = (f"permutation-only ({aes.encoder_modes.get('pna_run', '?')})", aes.pna)
    if not out:
        raise SymmergeError("this experiment needs an autoencoder: pass --run and/or --pna-run")
    return out


def _upper(d: Tensor) -> Tensor:
    i, j = torch.triu_indices(d.shape[-1], d.shape[-1], 1, device=d.device)
    return d[..., i, j]


def _map_grid(
    path: os.PathLike[str] | str, rows: Sequence[str], maps: Sequence[str],
    panels: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, list[np.ndarray], list[int]]],
    title: str,
) -> None:
    fig, axes = plt.subplots(len(rows), len(maps), figsize=(4.6 * len(maps), 4.2 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, m in enumerate(maps):
            pts, labels, overlay, overlay_labels = panels[(row, m)]
            scatter_map(axes[r][c], pts, labels, overlay=overlay, overlay_labels=overlay_labels,
                        title=f"{row}: {m.upper() if m == 'umap' else 't-SNE'}",
                        background_alpha=0.35 if overlay else 0.8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


# ------------------------------------------------------------ orbit collapse
def orbit_collapse(
    zoo: str | os.PathLike[str] | Zoo,
    out: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    networks: int = 10,
    orbit_size: int = 64,
    transform: str = "PD",
    background: int = 500,
    map_orbits: int = 3,
    maps: Sequence[str] = MAPS,
    split: str = "test",
    seed: int = 0,
    device: str | torch.device | None = "auto",
) -> ExperimentResult:
    """Do orbits collapse in latent space? ScaleGMN (``run``) vs. permutation-only (``pna_run``).
    The encoders run on ``device`` (``auto``: a CUDA GPU when there is one).

    For ``networks`` networks of ``split``, an exact orbit of ``orbit_size``
    ``transform`` elements is encoded. Metrics per encoder: mean pairwise latent
    distance within an orbit, between members of different orbits, their ratio
    (0 = perfect collapse; about 1 = no better than unrelated networks), the
    within distance relative to ``background`` random networks of the split, and
    the largest distance of an orbit member to its base network's latent. Maps:
    UMAP / t-SNE of the background (coloured by label) with the first
    ``map_orbits`` orbits overlaid as stars.
    """
    z = open_zoo(zoo)
    spec = z.spec
    if transform not in TRANSFORMS:
        raise SymmergeError(
            f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}"
        )
    check_range(orbit_size, "orbit_size", 2, MAX_ORBIT)
    if networks < 2:
        raise SymmergeError(f"orbit-collapse needs at least 2 networks, got {networks}")
    maps = _check_maps(maps)
    aes = load_autoencoders(spec, run, pna_run, seed=seed, holder=f"zoo {z.path}",
                            device=resolve_device(device))
    encoders = _encoders(aes)
    gen = torch.Generator().manual_seed(seed)
    pool = split_members(z, split, aes.split)
    chosen = sample_indices(pool, networks, gen, "networks")
    bg_idx = sample_indices(pool, min(background, pool.numel()), gen, "background networks")
    out_dir = prepare_out(out)  # after the checks that can fail
    base = z.get_params(chosen).float()
    orbits = torch.stack([
        make_orbit(spec, base[i], orbit_size, transform, generator=gen)[0] for i in range(networks)
    ])  # [m, K, P]
    bg_params = z.get_params(bg_idx).float()
    labels = z.labels[chosen]
    bg_labels = z.labels[bg_idx].numpy()

    stats: dict[str, Any] = {}
    panels: dict[tuple[str, str], Any] = {}
    hist: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    k = min(map_orbits, networks)
    for key, (name, enc) in encoders.items():
        zo = enc.encode(orbits.reshape(-1, spec.num_params)).double()
        zo = zo.reshape(networks, orbit_size, -1)
        zb = enc.encode(base).double()
        zbg = enc.encode(bg_params).double()
        within = _upper(torch.cdist(zo, zo))  # [m, K(K-1)/2]
        flat = zo.reshape(networks * orbit_size, -1)
        d_all = torch.cdist(flat, flat)
        owner = torch.arange(networks, device=flat.device).repeat_interleave(orbit_size)
        between = d_all[owner[:, None] != owner[None, :]]
        bg = (_upper(torch.cdist(zbg, zbg)) if zbg.shape[0] > 1
              else torch.zeros(1, dtype=zbg.dtype, device=zbg.device))
        to_base = (zo - zb[:, None]).norm(dim=-1)
        b_mean = float(between.mean())
        stats[key] = {
            "encoder": name,
            "within_mean": float(within.mean()),
            "within_max": float(within.max()),
            "between_mean": b_mean,
            "ratio": float(within.mean()) / b_mean if b_mean > 0 else float("nan"),
            "background_mean": float(bg.mean()),
            "within_vs_background": float(within.mean() / bg.mean()) if bg.mean() > 0
            else float("nan"),
            "max_distance_to_base": float(to_base.max()),
            "latent_norm_mean": float(zb.norm(dim=-1).mean()),
        }
        hist[name] = ((within / b_mean).flatten().numpy(), (between / b_mean).numpy())
        joint = torch.cat([zbg, zo[:k].reshape(k * orbit_size, -1)]).numpy()
        for m in maps:
            emb = embed_2d(joint, m, seed)
            nb = zbg.shape[0]
            overlay = [emb[nb + i * orbit_size: nb + (i + 1) * orbit_size] for i in range(k)]
            panels[(name, m)] = (emb[:nb], bg_labels, overlay, labels[:k].tolist())

    files = []
    names = [n for n, _ in encoders.values()]
    if maps:
        _map_grid(out_dir / "maps.png", names, maps, panels,
                  f"{transform} orbits ({orbit_size} members) over {bg_idx.numel()} {split} "
                  "networks")
        files.append(out_dir / "maps.png")
    fig, axes = plt.subplots(1, len(hist), figsize=(4.8 * len(hist), 3.4), squeeze=False)
    for ax, (name, (w, b)) in zip(axes[0], hist.items(), strict=True):
        bins = np.linspace(0, max(float(b.max()), float(w.max()), 1e-12) * 1.05, 50)
        ax.hist(b, bins=bins, alpha=0.6, density=True, label="between orbits")
        ax.hist(w, bins=bins, alpha=0.6, density=True, label="within an orbit")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("latent distance / mean between-orbit distance")
        ax.legend(fontsize=8)
    files.append(save_figure(fig, out_dir / "distances.png"))

    metrics = {
        "experiment": "orbit-collapse",
        "settings": {"zoo": str(z.path), "run": str(aes.run) if aes.run else None,
                     "pna_run": str(aes.pna_run) if aes.pna_run else None,
                     "networks": networks, "orbit_size": orbit_size, "transform": transform,
                     "background": int(bg_idx.numel()), "map_orbits": k, "maps": maps,
                     "split": split, "split_settings": aes.split, "seed": seed},
        "networks": chosen.tolist(),
        "encoders": stats,
    }
    rows = [{"enc": s["encoder"], **s} for s in stats.values()]
    table = markdown_table(rows, [
        ("enc", "encoder"), ("within_mean", "within orbit"), ("between_mean", "between orbits"),
        ("ratio", "ratio within / between"), ("within_vs_background", "within / random pairs"),
        ("max_distance_to_base", "max distance to base latent"),
    ])
    text = (
        f"{networks} {split_phrase(split)} networks, each with an exact {transform} orbit of "
        f"{orbit_size} members (no noise), encoded by each autoencoder. Distances are Euclidean "
        "in latent space, averaged over all pairs; a ratio of 0 means every orbit collapses to "
        "one point, about 1 means orbit members are as far apart as different networks."
    )
    section = ReportSection(
        title=f"Orbit collapse ({transform})", text=text, table=table,
        images=[("latent distances", str(out_dir / "distances.png"))]
        + ([("orbits in latent maps", str(out_dir / "maps.png"))] if maps else []),
        notes=[f"Maps: {', '.join(maps)} fitted jointly on the background and the first {k} "
               f"orbits (stars), random_state={seed}."] if maps else [],
    )
    result = ExperimentResult("orbit-collapse", out_dir, metrics, [section], files)
    result.save()
    return result


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
    out: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    split: str = "test",
    max_points: int = 2000,
    maps: Sequence[str] = MAPS,
    seed: int = 0,
    device: str | torch.device | None = "auto",
) -> ExperimentResult:
    """UMAP and t-SNE maps of the latents of a zoo split, coloured by label (encoded on
    ``device``; ``auto``: a CUDA GPU when there is one).

    Up to ``max_points`` networks of ``split`` (seeded choice). Metrics per
    encoder: 5-fold cross-validated 5-NN label accuracy and the silhouette score
    of the labels in latent space (both NaN without at least two labels).
    """
    z = open_zoo(zoo)
    maps = _check_maps(maps)
    aes = load_autoencoders(z.spec, run, pna_run, seed=seed, holder=f"zoo {z.path}",
                            device=resolve_device(device))
    encoders = _encoders(aes)
    gen = torch.Generator().manual_seed(seed)
    pool = split_members(z, split, aes.split)
    idx = torch.sort(sample_indices(pool, min(max_points, pool.numel()), gen, "networks")).values
    out_dir = prepare_out(out)  # after the checks that can fail
    params = z.get_params(idx).float()
    labels = z.labels[idx].numpy()
    labelled = labels >= 0
    stats: dict[str, Any] = {}
    panels = {}
    for key, (name, enc) in encoders.items():
        x = enc.encode(params).double().numpy()
        knn, sil = float("nan"), float("nan")
        if labelled.all() and np.unique(labels).size >= 2:
            from sklearn.metrics import silhouette_score

            knn = _knn_accuracy(x, labels, seed)
            sil = float(silhouette_score(x, labels))
        stats[key] = {"encoder": name, "knn_accuracy": knn, "silhouette": sil,
                      "latent_dim": int(x.shape[1])}
        for m in maps:
            panels[(name, m)] = (embed_2d(x, m, seed), labels, [], [])
    names = [n for n, _ in encoders.values()]
    files = []
    if maps:
        _map_grid(out_dir / "latent_map.png", names, maps, panels,
                  f"{idx.numel()} {split} networks, coloured by label")
        files.append(out_dir / "latent_map.png")
    metrics = {
        "experiment": "latent-map",
        "settings": {"zoo": str(z.path), "run": str(aes.run) if aes.run else None,
                     "pna_run": str(aes.pna_run) if aes.pna_run else None, "split": split,
                     "split_settings": aes.split, "points": int(idx.numel()), "maps": maps,
                     "seed": seed},
        "encoders": stats,
    }
    rows = [{"enc": s["encoder"], **s} for s in stats.values()]
    table = markdown_table(rows, [("enc", "encoder"), ("knn_accuracy", "5-NN label accuracy"),
                                  ("silhouette", "silhouette (labels)"),
                                  ("latent_dim", "latent dim")])
    section = ReportSection(
        title="Latent map", table=table,
        text=(f"Latents of {idx.numel()} {split_phrase(split)} networks of `{z.path.name}`, "
              f"mapped to 2-D with {', '.join(maps) or 'no maps'} (random_state={seed}) and "
              "coloured by label."),
        images=[("latent map", str(out_dir / "latent_map.png"))] if maps else [],
    )
    result = ExperimentResult("latent-map", out_dir, metrics, [section], files)
    result.save()
    return result
