"""INR interpolation experiments: orbit pairs (the paper's main experiment, METHOD.md 6.1)
and pairs of INRs fitted to the same image from different seeds (the merging case)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.experiments.common import (
    EXACT_ENDPOINTS,
    INR_METHODS,
    MethodRuns,
    PathOptions,
    as_numpy,
    load_autoencoders,
    open_zoo,
    prepare_out,
    render_curves,
    resolve_methods,
    run_methods,
    sample_indices,
    save_curves,
    split_members,
    split_phrase,
)
from symmerge.experiments.images import ground_truth
from symmerge.experiments.metrics import alpha_grid, summarize_curves
from symmerge.experiments.plots import bar_figure, curves_figure
from symmerge.experiments.report import ExperimentResult, ReportSection, markdown_table
from symmerge.limits import MAX_ORBIT, MAX_PERTURBATION, check_range
from symmerge.specs import SirenSpec
from symmerge.symmetry import TRANSFORMS, make_orbit
from symmerge.utils.device import resolve_device
from symmerge.zoo import Zoo


@dataclass
class InterpolationResult(ExperimentResult):
    """An interpolation experiment: ``alphas [T]`` and ``curves[method][metric] [pairs, T]``
    next to the scalar ``metrics`` (``metrics["methods"][method][metric]`` summaries)."""

    alphas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def summary(self, method: str, metric: str | None = None) -> dict[str, float]:
        """The scalar summary of ``method`` on ``metric`` (default: the primary metric)."""
        metric = metric or self.metrics["primary_metric"]
        return self.metrics["methods"][method][metric]


# ------------------------------------------------------------ shared bits
def summarize(
    runs: MethodRuns, alphas: Tensor, pairs: int, *,
    higher_is_better: Mapping[str, bool] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per-method metric summaries, per-method timing)."""
    hib = dict(higher_is_better or {})
    curves, seconds = runs.curves, runs.seconds
    methods: dict[str, Any] = {}
    for m, per in curves.items():
        methods[m] = {k: summarize_curves(v, alphas, higher_is_better=hib.get(k, False))
                      for k, v in per.items()}
        methods[m]["exact_endpoints"] = m in EXACT_ENDPOINTS
        methods[m]["endpoint_distance"] = float(runs.distances[m].mean())
        if m in runs.template_distances:
            methods[m]["template_distance"] = float(runs.template_distances[m].mean())
    if "naive" in methods:
        for m, per in methods.items():
            for k in curves[m]:
                ref = methods["naive"][k]["barrier_mean"]
                per[k]["barrier_vs_naive"] = per[k]["barrier_mean"] / ref if ref else float("nan")
    timing = {m: {"seconds_total": s, "seconds_per_pair": s / pairs} for m, s in seconds.items()}
    return methods, timing


_BAND_NAMES = {"std": "std", "sem": "SEM"}


def results_table(methods: Mapping[str, Any], timing: Mapping[str, Any], metric: str,
                  label: str, *, band: str = "std", symbol: str = "L") -> str:
    """The per-method table of barrier (mean ± ``band``: std or sem), AUC, endpoint values
    ``symbol(0)``, ``symbol(1)``, ``symbol(0.5)`` and time per pair."""
    spread = f"barrier_{band}"
    rows = []
    for m, per in methods.items():
        s = per[metric]
        rows.append({
            "method": f"`{m}`",
            "barrier": f"{s['barrier_mean']:.4g} ± {s[spread]:.2g}",
            "vs_naive": s.get("barrier_vs_naive"),
            "mean_curve": s["barrier_of_mean_curve"],
            "auc": s["auc_mean"],
            "start": s["start_mean"],
            "end": s["end_mean"],
            "mid": s["mid_mean"],
            "ms": 1000.0 * timing[m]["seconds_per_pair"],
            "exact": per["exact_endpoints"],
            "dist": per["endpoint_distance"],
        })
    cols = [("method", "method"), ("barrier", f"barrier ({label}, mean ± {_BAND_NAMES[band]})"),
            ("vs_naive", "÷ naive"), ("mean_curve", "barrier of mean curve"),
            ("auc", "AUC"), ("start", f"{symbol}(0)"), ("end", f"{symbol}(1)"),
            ("mid", f"{symbol}(0.5)"),
            ("ms", "ms / pair"), ("exact", "exact endpoints"), ("dist", "endpoint distance")]
    return markdown_table(rows, cols)


def _notes(methods: Sequence[str], skipped: Mapping[str, str], assumed_source: str | None,
           template_distance: float | None = None, lift_strategy: str | None = None,
           band: str = "std") -> list[str]:
    notes = []
    lossy = [m for m in methods if m not in EXACT_ENDPOINTS]
    if lossy:
        notes.append(
            "Endpoints of " + ", ".join(f"`{m}`" for m in lossy) + " are autoencoder "
            "reconstructions, not the input networks (METHOD.md 9.16): their curves sit at the "
            "reconstruction error and their barriers measure flatness, not the quality of the "
            "endpoints; compare L(0) and L(1) with the exact methods."
        )
    if "ae-lift" in methods:
        dist = ""
        if template_distance is not None:
            dist = (
                f" Here the lifted networks sit at a mean RMS distance of {template_distance:.3g} "
                "from their templates, in units of each tensor's RMS over the zoo (0: the "
                "template lies on the orbit)."
            )
        how = (
            "by coordinate ascent from its sorted form" if lift_strategy == "descent"
            else "in one in-order pass, a function of its orbit alone"
        )
        notes.append(
            f"`ae-lift` keeps the exact endpoints (each network is matched to its decoded "
            f"template {how}). Its two endpoints "
            "land in the same frame only if that matching is stable under the perturbation, "
            "which needs a template near the networks' orbit in weight space; the "
            "function-space training loss does not ask for that: a large endpoint distance "
            "(compare `wm`) means the template did not pin down the alignment "
            "(`benchmarks/bench_lift_consistency.py` measures how near it must be)." + dist
        )
    for m, why in skipped.items():
        notes.append(f"`{m}` skipped: {why}.")
    if assumed_source:
        notes.append(
            f"The zoo's provenance names no data source; `{assumed_source}` was assumed "
            "(for INRs, the zoo's labels were checked against the images')."
        )
    notes.append(
        "Barrier: max over alpha of L(alpha) minus the straight line between L(0) and L(1) "
        f"(not clipped at 0), per pair, then mean ± {_BAND_NAMES[band]} over pairs (error bars "
        "of the barrier plot likewise); AUC: area under that excess "
        "curve; ms / pair: wall time of the method's alignment, canonicalization or "
        "encoding/decoding (evaluation excluded); endpoint distance: mean L2 distance between "
        "the two interpolated parameter vectors (after alignment)."
    )
    return notes


def _check_inr(zoo: Zoo, what: str) -> SirenSpec:
    if not isinstance(zoo.spec, SirenSpec):
        raise SymmergeError(
            f"{what} needs an INR (SIREN) zoo, but {zoo.path} holds {zoo.spec.describe()}"
        )
    return zoo.spec


def _finish(
    name: str, out: Path, title: str, text: str, alphas: Tensor, runs: MethodRuns, pairs: int,
    metrics: dict[str, Any], panels: Sequence[tuple[str, str, bool]],
    tables: Sequence[tuple[str, str]], methods: Sequence[str], skipped: Mapping[str, str],
    assumed: str | None, band: str = "std", higher_is_better: Mapping[str, bool] | None = None,
) -> InterpolationResult:
    """Summaries, files (curves, plots, metrics.json, report.md) and the result object."""
    primary, label = tables[0]
    summaries, timing = summarize(runs, alphas, pairs, higher_is_better=higher_is_better)
    curves = runs.curves
    metrics.update({"experiment": name, "primary_metric": primary, "methods": summaries,
                    "skipped": dict(skipped), "timing": timing})
    a = alphas.numpy()
    files = [save_curves(out / "curves.safetensors", alphas, curves, metrics["settings"])]
    files.append(curves_figure(
        out / "curves.png", a,
        [(ylabel, as_numpy(curves, key), logy) for key, ylabel, logy in panels],
        band=band, title=title,
    ))
    hib = (higher_is_better or {}).get(primary, False)
    files.append(bar_figure(
        out / "barriers.png",
        {m: s[primary]["barrier_mean"] for m, s in summaries.items()},
        {m: s[primary][f"barrier_{band}"] for m, s in summaries.items()},
        ylabel=f"{'accuracy' if hib else 'loss'} barrier ({label})", title=title,
    ))
    section = ReportSection(
        title=title, text=text,
        table="\n\n".join(
            results_table(summaries, timing, k, lab, band=band,
                          symbol="acc" if (higher_is_better or {}).get(k, False) else "L")
            for k, lab in tables
        ),
        images=[(f"{title}: curves", str(files[1])), (f"{title}: barriers", str(files[2]))],
        notes=_notes(methods, skipped, assumed,
                     summaries.get("ae-lift", {}).get("template_distance"),
                     metrics["settings"].get("ae_lift_strategy"), band),
    )
    result = InterpolationResult(
        name=name, out_dir=out, metrics=metrics, sections=[section], files=files, alphas=a,
        curves={m: {k: v.numpy() for k, v in per.items()} for m, per in curves.items()},
    )
    result.save()
    return result


# ------------------------------------------------------------ orbit pairs
def orbit_interpolation(
    zoo: str | os.PathLike[str] | Zoo,
    out: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    methods: Sequence[str] | None = None,
    runs: int = 10,
    orbit_size: int = 512,
    transform: str = "PD",
    perturbation: float = 0.005,
    steps: int = 40,
    split: str = "test",
    data: str | None = None,
    seed: int = 0,
    restarts: int = 0,
    max_iter: int = 100,
    chunk: int = 2048,
    device: str | torch.device | None = "auto",
) -> InterpolationResult:
    """The paper's orbit interpolation (METHOD.md 6.1) on an INR zoo, computed on
    ``device`` (``auto``: a CUDA GPU when there is one).

    ``runs`` networks are drawn (seeded) from ``split`` of the zoo under the
    run's own train/val/test split. For each, an orbit ``O`` of ``orbit_size``
    random ``transform`` (P, D or PD) elements and its copy ``Õ = O + noise``
    (std ``perturbation``) are built; pair ``i`` is ``(O_i, Õ_{i+1 mod K})``.
    Every method's path is rendered at ``steps`` alphas (one batched pass per
    ``chunk`` networks); the loss is the pixel MSE to the ground-truth image
    (the paper's metric, ``mse``) and to the base INR's own render
    (``render_mse``). Methods needing ``run`` / ``pna_run`` are skipped without them.
    Writes ``curves.safetensors``, ``curves.png``, ``barriers.png``,
    ``metrics.json`` and ``report.md`` into ``out``.
    """
    z = open_zoo(zoo)
    spec = _check_inr(z, "orbit-interpolation")
    if transform not in TRANSFORMS:
        raise SymmergeError(
            f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}"
        )
    check_range(orbit_size, "orbit_size", 2, MAX_ORBIT)
    check_range(perturbation, "perturbation", 0.0, MAX_PERTURBATION)
    alphas = alpha_grid(steps)
    dev = resolve_device(device)
    aes = load_autoencoders(spec, run, pna_run, restarts=restarts, max_iter=max_iter, seed=seed,
                            holder=f"zoo {z.path}", device=dev)
    todo, skipped = resolve_methods(methods, INR_METHODS, aes)
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same choices on every device
    chosen = sample_indices(split_members(z, split, aes.split), runs, gen, "networks")
    gt = ground_truth(z, chosen, data)
    out_dir = prepare_out(out)  # after the checks that can fail
    base = z.get_params(chosen).float().to(dev)
    images = gt.images.to(dev)
    fits = spec.render(base, images.shape[1])
    orbit_seeds = torch.randint(0, 2**62, (runs,), generator=gen, device=gen.device).tolist()
    opts = PathOptions(restarts=restarts, max_iter=max_iter, seed=seed)

    parts = []
    for r in range(runs):
        # two generators with one seed: the same group elements, the second adds noise
        clean, _ = make_orbit(spec, base[r], orbit_size, transform,
                              generator=torch.Generator().manual_seed(orbit_seeds[r]))
        noisy, _ = make_orbit(spec, base[r], orbit_size, transform, noise_std=perturbation,
                              generator=torch.Generator().manual_seed(orbit_seeds[r]))
        a, b = clean, noisy.roll(-1, dims=0)
        targets = {"mse": images[r].expand(orbit_size, *images.shape[1:]),
                   "render_mse": fits[r].expand(orbit_size, *fits.shape[1:])}
        fn = render_curves(spec, targets, chunk=chunk)
        parts.append(run_methods(todo, spec, a, b, alphas, fn, aes, opts))
    results = MethodRuns.concat(parts)
    pairs = runs * orbit_size
    settings = {
        "zoo": str(z.path), "run": str(aes.run) if aes.run else None,
        "pna_run": str(aes.pna_run) if aes.pna_run else None, "runs": runs,
        "orbit_size": orbit_size, "transform": transform, "perturbation": perturbation,
        "steps": steps, "split": split, "split_settings": aes.split, "seed": seed,
        "wm_restarts": restarts, "wm_max_iter": max_iter, "data_source": gt.source,
        "ae_lift_strategy": aes.lift_strategy,
        "data_source_assumed": gt.assumed,
    }
    metrics: dict[str, Any] = {
        "settings": settings, "networks": chosen.tolist(), "pairs": pairs,
        "labels": z.labels[chosen].tolist(), "image_index": z.image_index[chosen].tolist(),
        "encoder_modes": aes.encoder_modes,
        "base_fit_mse": float(((fits - images) ** 2).mean()),
    }
    title = f"Orbit interpolation ({transform}, perturbation {perturbation:g})"
    text = (
        f"{runs} {split_phrase(split)} INRs × {orbit_size} orbit pairs `(O_i, Õ_(i+1))` "
        f"= {pairs} pairs, {transform} transforms, noise std {perturbation:g}, {steps} alpha "
        f"steps. Loss `mse`: pixel MSE of the rendered interpolant to the ground-truth image "
        f"(`{gt.source}`), the paper's metric; `render_mse` (right panel): MSE to the base "
        f"INR's own render. The base INRs fit their images with MSE "
        f"{metrics['base_fit_mse']:.4g}. Mean ± std over pairs."
    )
    return _finish(
        "orbit-interpolation", out_dir, title, text, alphas, results, pairs, metrics,
        [("mse", "MSE to ground-truth image", False), ("render_mse", "MSE to base INR render",
                                                       False)],
        [("mse", "MSE to image"), ("render_mse", "MSE to base render")], todo, skipped,
        gt.source if gt.assumed else None,
    )


# ------------------------------------------------------------ seed pairs
def image_pairs(zoo: Zoo, pool: Tensor, count: int | None, generator: torch.Generator
                ) -> Tensor:
    """Disjoint pairs ``[n, 2]`` of networks in ``pool`` fitted to the same image
    (seeded choice: one random pair per image, then ``count`` random images)."""
    if zoo.image_index is None:
        raise SymmergeError(f"{zoo.path} has no image_index; pairs need INRs of the same image")
    pool = pool[torch.randperm(pool.numel(), generator=generator, device=generator.device)]
    by_image: dict[int, list[int]] = {}
    for i, img in zip(pool.tolist(), zoo.image_index[pool].tolist(), strict=True):
        by_image.setdefault(img, []).append(i)
    pairs = [sorted(v[:2]) for _, v in sorted(by_image.items()) if len(v) >= 2]
    if not pairs:
        raise SymmergeError(
            f"no two networks of the selected split of {zoo.path} share an image; build the zoo "
            "with --per-image 2 (or more), or use split 'all'"
        )
    t = torch.tensor(pairs, dtype=torch.long, device="cpu")  # indices into the zoo
    t = t[torch.randperm(t.shape[0], generator=generator, device=generator.device)]
    if count is not None:
        if count < 1:
            raise SymmergeError(f"need at least one pair, got {count}")
        if count > t.shape[0]:
            raise SymmergeError(f"asked for {count} pairs, only {t.shape[0]} images have two INRs")
        t = t[:count]
    return t


def pair_interpolation(
    zoo: str | os.PathLike[str] | Zoo,
    out: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    methods: Sequence[str] | None = None,
    pairs: int | None = None,
    steps: int = 40,
    split: str = "heldout",
    data: str | None = None,
    seed: int = 0,
    restarts: int = 0,
    max_iter: int = 100,
    chunk: int = 2048,
    device: str | torch.device | None = "auto",
) -> InterpolationResult:
    """Interpolation between INRs fitted to the same image from different seeds, computed
    on ``device`` (``auto``: a CUDA GPU when there is one).

    Pairs come from a zoo built with ``--per-image 2`` (or more): networks of
    ``split`` (default ``heldout``: val and test, never seen by the autoencoder)
    sharing an ``image_index``; at most
    ``pairs`` of them (all if None). With ``split="all"`` the report states how
    many endpoints the autoencoder was trained on. Loss: pixel MSE of the
    rendered interpolant to the ground-truth image. Outputs as
    :func:`orbit_interpolation`.
    """
    z = open_zoo(zoo)
    spec = _check_inr(z, "pair-interpolation")
    alphas = alpha_grid(steps)
    dev = resolve_device(device)
    aes = load_autoencoders(spec, run, pna_run, restarts=restarts, max_iter=max_iter, seed=seed,
                            holder=f"zoo {z.path}", device=dev)
    todo, skipped = resolve_methods(methods, INR_METHODS, aes)
    gen = torch.Generator().manual_seed(seed)
    chosen = image_pairs(z, split_members(z, split, aes.split), pairs, gen)
    n = chosen.shape[0]
    gt = ground_truth(z, chosen[:, 0], data)
    out_dir = prepare_out(out)  # after the checks that can fail
    params = z.get_params(chosen.reshape(-1)).float().reshape(n, 2, -1).to(dev)
    a, b = params[:, 0], params[:, 1]
    images = gt.images.to(dev)
    fit_a, fit_b = spec.render(a, images.shape[1]), spec.render(b, images.shape[1])
    opts = PathOptions(restarts=restarts, max_iter=max_iter, seed=seed)
    results = run_methods(
        todo, spec, a, b, alphas, render_curves(spec, {"mse": images}, chunk=chunk), aes, opts
    )
    train_idx = split_members(z, "train", aes.split)
    seen = int(torch.isin(chosen, train_idx).sum()) if aes.run or aes.pna_run else 0
    settings = {
        "zoo": str(z.path), "run": str(aes.run) if aes.run else None,
        "pna_run": str(aes.pna_run) if aes.pna_run else None, "pairs": n, "steps": steps,
        "split": split, "split_settings": aes.split, "seed": seed, "wm_restarts": restarts,
        "ae_lift_strategy": aes.lift_strategy,
        "wm_max_iter": max_iter, "data_source": gt.source, "data_source_assumed": gt.assumed,
    }
    metrics: dict[str, Any] = {
        "settings": settings, "pairs": n, "networks": chosen.tolist(),
        "image_index": z.image_index[chosen[:, 0]].tolist(),
        "encoder_modes": aes.encoder_modes,
        "endpoints_in_ae_training_split": seen,
        "endpoint_fit_mse": float(
            (((fit_a - images) ** 2).mean() + ((fit_b - images) ** 2).mean()) / 2
        ),
        "endpoint_param_distance": float((a - b).norm(dim=1).mean()),
    }
    title = "Pair interpolation (same image, different seeds)"
    text = (
        f"{n} pairs of {split_phrase(split)} INRs fitted to the same image from different seeds, "
        f"{steps} alpha steps. Loss: pixel MSE of the rendered interpolant to the ground-truth "
        f"image (`{gt.source}`); the endpoints fit it with MSE "
        f"{metrics['endpoint_fit_mse']:.4g}. Mean ± std over pairs."
    )
    if aes.run or aes.pna_run:
        text += (f" {seen} of the {2 * n} endpoints were in the autoencoder's training split.")
    return _finish(
        "pair-interpolation", out_dir, title, text, alphas, results, n, metrics,
        [("mse", "MSE to ground-truth image", False)], [("mse", "MSE to image")], todo,
        skipped, gt.source if gt.assumed else None,
    )
