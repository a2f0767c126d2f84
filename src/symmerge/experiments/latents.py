"""Latent-space experiments: orbit collapse (METHOD.md 6.5) and latent maps (METHOD.md 7).

Maps are UMAP (``n_neighbors=10, min_dist=0.1, metric="cosine"``) and t-SNE
(``perplexity=10, init="pca", learning_rate="auto"``) as in the reference, but
always with ``random_state=seed``. Orbits are embedded jointly with their
background so both methods treat them alike (t-SNE has no ``transform``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
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
from symmerge.experiments.orbit_zoo import (
    generated_orbit_options,
    load_orbit_zoo,
    refuse_generation_options,
)
from symmerge.experiments.plots import plt, save_figure, scatter_map
from symmerge.experiments.report import ExperimentResult, ReportSection, markdown_table
from symmerge.symmetry import make_orbit
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
def _nan_mean(x: Tensor) -> float:
    return float(x.mean()) if x.numel() else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _collapse_stats(
    name: str, zo: Sequence[Tensor], zb: Tensor, zbg: Tensor
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray, str]]:
    """Distance statistics of one encoder's orbit latents ``zo`` (one ``[K_i, d]`` per
    orbit), base latents ``zb [m, d]`` and background latents ``zbg [n, d]``, and the
    histogram data: (within, reference distances, reference name), both divided by the
    reference mean (between orbits, else background pairs, else the mean latent norm)."""
    within = torch.cat([_upper(torch.cdist(t, t)) for t in zo])
    flat = torch.cat(list(zo))
    sizes = torch.tensor([t.shape[0] for t in zo], device=flat.device)
    owner = torch.arange(len(zo), device=flat.device).repeat_interleave(sizes)
    between = torch.cat([torch.cdist(t, flat[owner > i]).flatten() for i, t in enumerate(zo)])
    bg = _upper(torch.cdist(zbg, zbg))
    to_base = torch.cat([(t - zb[i]).norm(dim=-1) for i, t in enumerate(zo)])
    w_mean, b_mean, bg_mean = float(within.mean()), _nan_mean(between), _nan_mean(bg)
    norm = float(zb.norm(dim=-1).mean())
    stats = {
        "encoder": name,
        "within_mean": w_mean,
        "within_max": float(within.max()),
        "between_mean": b_mean,
        "ratio": _ratio(w_mean, b_mean),
        "background_mean": bg_mean,
        "within_vs_background": _ratio(w_mean, bg_mean),
        "max_distance_to_base": float(to_base.max()),
        "latent_norm_mean": norm,
        "within_vs_latent_norm": _ratio(w_mean, norm),
    }
    if between.numel():
        ref, ref_mean, ref_name = between, b_mean, "between-orbit distance"
    elif bg.numel():
        ref, ref_mean, ref_name = bg, bg_mean, "background distance"
    else:
        ref, ref_mean, ref_name = within[:0], norm, "latent norm"
    scale = ref_mean if ref_mean > 0 else 1.0
    return stats, ((within / scale).numpy(), (ref / scale).numpy(), ref_name)


def _distance_histograms(path: Path, hist: dict[str, tuple[np.ndarray, np.ndarray, str]]
                         ) -> Path:
    fig, axes = plt.subplots(1, len(hist), figsize=(4.8 * len(hist), 3.4), squeeze=False)
    for ax, (name, (w, ref, ref_name)) in zip(axes[0], hist.items(), strict=True):
        top = max(float(ref.max()) if ref.size else 0.0, float(w.max()), 1e-12)
        bins = np.linspace(0, top * 1.05, 50)
        if ref.size:
            ax.hist(ref, bins=bins, alpha=0.6, density=True,
                    label="between orbits" if ref_name.startswith("between") else
                    "background pairs")
        ax.hist(w, bins=bins, alpha=0.6, density=True, label="within an orbit")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"latent distance / mean {ref_name}")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def orbit_collapse(
    zoo: str | os.PathLike[str] | Zoo | None,
    out: str | os.PathLike[str],
    *,
    orbit_zoo: str | os.PathLike[str] | Zoo | None = None,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    networks: int | None = None,
    orbit_size: int | None = None,
    transform: str | None = None,
    background: int = 500,
    map_orbits: int = 3,
    maps: Sequence[str] = MAPS,
    split: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
) -> ExperimentResult:
    """Do orbits collapse in latent space? ScaleGMN (``run``) vs. permutation-only (``pna_run``).
    The encoders run on ``device`` (``auto``: a CUDA GPU when there is one).

    Generated orbits: for ``networks`` (10) networks of ``split`` (``test``) of ``zoo``, an
    exact orbit of ``orbit_size`` (64) ``transform`` (``PD``) elements is encoded. A
    published orbit (``orbit_zoo``, checked by :func:`load_orbit_zoo`): its orbits, one per
    image (all, or ``networks`` of them drawn with the seed), members in ``orbit_member``
    order; ``orbit_size`` and ``transform`` do not apply, and ``zoo`` (optional) only gives
    the background. Metrics per encoder: mean pairwise latent distance within an orbit,
    between members of different orbits, their ratio (0 = perfect collapse; about 1 = no
    better than unrelated networks; NaN for a single orbit), the within distance relative
    to ``background`` random networks of the split and to the mean latent norm, and the
    largest distance of an orbit member to its base network's (a published orbit: its
    first member's) latent. Maps: UMAP / t-SNE of the background (coloured by label) with
    the first ``map_orbits`` orbits overlaid as stars; without background networks there
    are no maps (a note says so).
    """
    if zoo is None and orbit_zoo is None:
        raise SymmergeError("orbit-collapse needs a zoo to generate orbits from (--zoo) or a "
                            "published orbit (--orbit-zoo)")
    maps = _check_maps(maps)
    z = open_zoo(zoo) if zoo is not None else None
    oz = None
    if orbit_zoo is not None:
        refuse_generation_options("orbit-collapse", orbit_size=orbit_size, transform=transform)
        if z is None and split is not None:
            raise SymmergeError("orbit-collapse: --split picks the background networks of "
                                "--zoo, and no --zoo was given")
        oz = load_orbit_zoo(orbit_zoo, spec=None if z is None else z.spec,
                            holder="the zoo" if z is None else f"zoo {z.path}")
        spec, holder = oz.spec, f"orbit zoo {oz.zoo.path}"
    else:
        assert z is not None
        spec, holder = z.spec, f"zoo {z.path}"
        transform, orbit_size = generated_orbit_options(transform, orbit_size, 64)
        networks = 10 if networks is None else networks
        if networks < 2:
            raise SymmergeError(f"orbit-collapse needs at least 2 networks, got {networks}")
    split = split or "test"
    aes = load_autoencoders(spec, run, pna_run, seed=seed, holder=holder,
                            device=resolve_device(device))
    encoders = _encoders(aes)
    gen = torch.Generator().manual_seed(seed)
    pool = (split_members(z, split, aes.split) if z is not None
            else torch.zeros(0, dtype=torch.long, device="cpu"))
    if oz is None:
        assert z is not None and networks is not None and transform is not None
        chosen = sample_indices(pool, networks, gen, "networks")
    else:
        picked = oz.select(networks, gen)
    bg_idx = (sample_indices(pool, min(background, pool.numel()), gen, "background networks")
              if pool.numel() else pool)
    out_dir = prepare_out(out)  # after the checks that can fail
    if oz is None:
        base = z.get_params(chosen).float()
        orbits = [make_orbit(spec, base[i], int(orbit_size), transform, generator=gen)[0]
                  for i in range(networks)]
        labels = z.labels[chosen]
        rows = chosen
        what = (f"{networks} {split_phrase(split)} networks, each with an exact {transform} "
                f"orbit of {orbit_size} members (no noise)")
    else:
        orbits = [oz.params(o) for o in picked]
        base = torch.stack([o[0] for o in orbits])
        labels = torch.tensor([o.label for o in picked], device="cpu")
        rows = torch.stack([o.rows[0] for o in picked])
        shown = "; ".join(o.describe() for o in picked[:5]) + ("; ..." if len(picked) > 5 else "")
        what = (f"{len(picked)} published orbit{'s' if len(picked) > 1 else ''} from "
                f"`{oz.zoo.path}`: {shown}; members in `orbit_member` order, every one "
                f"rendering within {oz.max_deviation:.2g} of its orbit's first member")
    m = len(orbits)
    bg_params = (z.get_params(bg_idx).float() if z is not None and bg_idx.numel()
                 else base[:0])
    bg_labels = (z.labels[bg_idx] if z is not None else labels[:0]).numpy()
    has_maps = bool(maps) and bg_idx.numel() > 0

    stats: dict[str, Any] = {}
    panels: dict[tuple[str, str], Any] = {}
    hist: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
    k = min(map_orbits, m)
    for key, (name, enc) in encoders.items():
        zo = [enc.encode(t).double() for t in orbits]
        zb = enc.encode(base).double()
        zbg = enc.encode(bg_params).double() if bg_params.shape[0] else zb[:0]
        stats[key], hist[name] = _collapse_stats(name, zo, zb, zbg)
        if has_maps:
            joint = torch.cat([zbg, *zo[:k]]).numpy()
            nb = zbg.shape[0]
            bounds = np.cumsum([nb] + [t.shape[0] for t in zo[:k]])
            for mp in maps:
                emb = embed_2d(joint, mp, seed)
                overlay = [emb[bounds[i]:bounds[i + 1]] for i in range(k)]
                panels[(name, mp)] = (emb[:nb], bg_labels, overlay, labels[:k].tolist())

    files = []
    names = [n for n, _ in encoders.values()]
    sizes = sorted({t.shape[0] for t in orbits})
    if has_maps:
        _map_grid(out_dir / "maps.png", names, maps, panels,
                  f"{transform or 'published'} orbits ({'/'.join(map(str, sizes))} members) "
                  f"over {bg_idx.numel()} {split} networks")
        files.append(out_dir / "maps.png")
    files.append(_distance_histograms(out_dir / "distances.png", hist))

    settings: dict[str, Any] = {
        "zoo": str(z.path) if z is not None else None,
        "run": str(aes.run) if aes.run else None,
        "pna_run": str(aes.pna_run) if aes.pna_run else None,
        "networks": m, "orbit_size": orbit_size, "transform": transform,
        "background": int(bg_idx.numel()), "map_orbits": k if has_maps else 0,
        "maps": maps if has_maps else [], "split": split if z is not None else None,
        "split_settings": aes.split, "seed": seed,
    }
    if oz is not None:
        settings.update({"orbit_zoo": str(oz.zoo.path),
                         "orbits": [o.summary() for o in picked],
                         "orbit_max_deviation": oz.max_deviation})
    metrics = {"experiment": "orbit-collapse", "settings": settings,
               "networks": rows.tolist(), "encoders": stats}
    rows_t = [{"enc": s["encoder"], **s} for s in stats.values()]
    table = markdown_table(rows_t, [
        ("enc", "encoder"), ("within_mean", "within orbit"), ("between_mean", "between orbits"),
        ("ratio", "ratio within / between"), ("within_vs_background", "within / random pairs"),
        ("within_vs_latent_norm", "within / latent norm"),
        ("max_distance_to_base", "max distance to base latent"),
    ])
    background_text = ""
    if oz is not None and z is not None:
        background_text = f" Background: {bg_idx.numel()} {split_phrase(split)} networks of " \
                          f"`{z.path}`."
    elif oz is not None:
        background_text = (" No background networks (no --zoo): no maps, and the spread within "
                           "an orbit is compared with the mean latent norm and other orbits "
                           "only.")
    text = (
        f"{what}, encoded by each autoencoder.{background_text} Distances are Euclidean "
        "in latent space, averaged over all pairs; a ratio of 0 means every orbit collapses to "
        "one point, about 1 means orbit members are as far apart as different networks."
    )
    if m == 1:
        text += " With a single orbit there are no between-orbit distances (ratio: -)."
    section = ReportSection(
        title=f"Orbit collapse ({transform or 'published orbit'})", text=text, table=table,
        images=[("latent distances", str(out_dir / "distances.png"))]
        + ([("orbits in latent maps", str(out_dir / "maps.png"))] if has_maps else []),
        notes=[f"Maps: {', '.join(maps)} fitted jointly on the background and the first {k} "
               f"orbits (stars), random_state={seed}."] if has_maps else [],
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
