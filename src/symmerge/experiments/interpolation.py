"""INR interpolation experiments: orbit pairs (the paper's main experiment, METHOD.md 6.1)
and pairs of INRs fitted to the same image from different seeds (the merging case)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
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
    Autoencoders,
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
from symmerge.experiments.images import GroundTruth, ground_truth, named_data_source
from symmerge.experiments.metrics import alpha_grid, summarize_curves
from symmerge.experiments.orbit_zoo import (
    CHECK_RESOLUTION,
    OrbitZoo,
    generated_orbit_options,
    load_orbit_zoo,
    refuse_generation_options,
)
from symmerge.experiments.plots import bar_figure, curves_figure
from symmerge.experiments.report import ExperimentResult, ReportSection, markdown_table
from symmerge.limits import MAX_PERTURBATION, check_range
from symmerge.specs import SirenSpec
from symmerge.symmetry import make_orbit
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
    extra_notes: Sequence[str] = (),
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
        notes=[*extra_notes, *_notes(methods, skipped, assumed,
                                     summaries.get("ae-lift", {}).get("template_distance"),
                                     metrics["settings"].get("ae_lift_strategy"), band)],
    )
    result = InterpolationResult(
        name=name, out_dir=out, metrics=metrics, sections=[section], files=files, alphas=a,
        curves={m: {k: v.numpy() for k, v in per.items()} for m, per in curves.items()},
    )
    result.save()
    return result


# ------------------------------------------------------------ orbit pairs
@dataclass
class _Orbits:
    """The orbits of one orbit interpolation, per run: the network whose function the orbit
    computes (``base [runs, P]``, whose render is ``render_mse``'s target), its zoo row,
    label and image, the ground truth (None: unknown) and ``pairs(run, seed) -> (O, Õ)``
    (each ``[K, P]``)."""

    base: Tensor
    rows: Tensor  # the zoo rows of ``base``
    labels: Tensor
    image_index: Tensor
    gt: GroundTruth | None
    pairs: Callable[[int, int], tuple[Tensor, Tensor]]
    settings: dict[str, Any]
    what: str  # the report's first sentence
    render_of: str  # what render_mse measures against
    check: str = ""  # what was checked about the orbits (a sentence)


def _generated_orbits(
    z: Zoo, spec: SirenSpec, aes: Autoencoders, gen: torch.Generator, runs: int,
    orbit_size: int, transform: str, perturbation: float, split: str, data: str | None,
) -> _Orbits:
    chosen = sample_indices(split_members(z, split, aes.split), runs, gen, "networks")
    gt = ground_truth(z, chosen, data)
    base = z.get_params(chosen).float()

    def pairs(r: int, seed: int) -> tuple[Tensor, Tensor]:
        # two generators with one seed: the same group elements, the second adds noise
        clean, _ = make_orbit(spec, base[r], orbit_size, transform,
                              generator=torch.Generator().manual_seed(seed))
        noisy, _ = make_orbit(spec, base[r], orbit_size, transform, noise_std=perturbation,
                              generator=torch.Generator().manual_seed(seed))
        return clean, noisy

    assert z.image_index is not None  # ground_truth checked it
    return _Orbits(
        base, chosen, z.labels[chosen], z.image_index[chosen], gt, pairs,
        {"zoo": str(z.path), "orbit_size": orbit_size, "transform": transform, "split": split,
         "split_settings": aes.split},
        f"{runs} {split_phrase(split)} INRs × {orbit_size} orbit pairs `(O_i, Õ_(i+1))` "
        f"= {runs * orbit_size} pairs, {transform} transforms, noise std {perturbation:g}",
        "the base INR's own render",
    )


def _published_orbits(
    oz: OrbitZoo, runs: int | None, gen: torch.Generator, perturbation: float,
    data: str | None, seed: int,
) -> _Orbits:
    orbits = oz.select(runs, gen)
    first = torch.stack([o.rows[0] for o in orbits])
    source = named_data_source(oz.zoo, data)
    gt = ground_truth(oz.zoo, first, source) if source else None

    def pairs(r: int, orbit_seed: int) -> tuple[Tensor, Tensor]:
        clean = oz.params(orbits[r])
        g = torch.Generator().manual_seed(orbit_seed)
        noise = torch.randn(clean.shape, generator=g, device=g.device).to(clean.device)
        return clean, clean + perturbation * noise

    shown = "; ".join(o.describe() for o in orbits[:5]) + ("; ..." if len(orbits) > 5 else "")
    total = sum(len(o) for o in orbits)
    return _Orbits(
        oz.zoo.get_params(first).float(), first, oz.zoo.labels[first],
        torch.tensor([o.image_index for o in orbits], device="cpu"), gt, pairs,
        {"orbit_zoo": str(oz.zoo.path), "orbits": [o.summary() for o in orbits],
         "orbit_max_deviation": oz.max_deviation},
        f"{len(orbits)} published orbit{'s' if len(orbits) > 1 else ''} from "
        f"`{oz.zoo.path}`: {shown}. Pair i is `(O_i, Õ_((i+1) mod K))`: `O` the K members in "
        f"`orbit_member` order, `Õ = O + noise` (std {perturbation:g} on every weight, drawn "
        f"from seed {seed}); {total} pairs",
        "the render of the orbit's first member",
        f"Every member renders within {oz.max_deviation:.2g} of its orbit's first member.",
    )


def orbit_interpolation(
    zoo: str | os.PathLike[str] | Zoo | None,
    out: str | os.PathLike[str],
    *,
    orbit_zoo: str | os.PathLike[str] | Zoo | None = None,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    methods: Sequence[str] | None = None,
    runs: int | None = None,
    orbit_size: int | None = None,
    transform: str | None = None,
    perturbation: float = 0.005,
    steps: int = 40,
    split: str | None = None,
    data: str | None = None,
    seed: int = 0,
    restarts: int = 0,
    max_iter: int = 100,
    chunk: int = 2048,
    device: str | torch.device | None = "auto",
) -> InterpolationResult:
    """The paper's orbit interpolation (METHOD.md 6.1) on an INR zoo, computed on
    ``device`` (``auto``: a CUDA GPU when there is one).

    Generated orbits (``zoo``): ``runs`` (10) networks are drawn (seeded) from ``split``
    (``test``) of the zoo under the run's own train/val/test split. For each, an orbit
    ``O`` of ``orbit_size`` (512) random ``transform`` (P, D or ``PD``) elements and its
    copy ``Õ = O + noise`` (std ``perturbation``) are built; pair ``i`` is
    ``(O_i, Õ_{i+1 mod K})``.

    A published orbit (``orbit_zoo`` instead of ``zoo``: the paper's orbit dataset imported
    with ``symmerge zoo import dwsnets``, checked by :func:`load_orbit_zoo`): each image's
    orbit is one run (all, or ``runs`` of them drawn with the seed), its members ``O`` in
    ``orbit_member`` order, ``Õ = O + noise`` drawn from the seed; ``orbit_size``,
    ``transform`` and ``split`` do not apply.

    Every method's path is rendered at ``steps`` alphas (one batched pass per ``chunk``
    networks). Losses: ``mse``, the pixel MSE to the ground-truth image (the paper's
    metric), and ``render_mse``, to the render of the network the orbit was made from
    (a published orbit: its first member). A published orbit's image comes from ``data``
    (``mnist:DIR``: the MNIST IDX files) or the image source its zoo names; with neither
    there is no ``mse``: ``render_mse`` is the loss (one fixed target per orbit, as the
    digit is; pairs' own clean members would give every ``L(0)`` zero by construction), and
    ``metrics["loss_target"]`` and the report say so. Methods needing ``run`` /
    ``pna_run`` are skipped without them. Writes ``curves.safetensors``, ``curves.png``,
    ``barriers.png``, ``metrics.json`` and ``report.md`` into ``out``.
    """
    check_range(perturbation, "perturbation", 0.0, MAX_PERTURBATION)
    alphas = alpha_grid(steps)
    if (zoo is None) == (orbit_zoo is None):
        raise SymmergeError(
            "orbit-interpolation takes either a zoo to generate orbits from (--zoo) or a "
            "published orbit (--orbit-zoo), " + ("not both" if zoo is not None else "got neither")
        )
    oz = None
    if orbit_zoo is not None:
        refuse_generation_options("orbit-interpolation", orbit_size=orbit_size,
                                  transform=transform, split=split)
        oz = load_orbit_zoo(orbit_zoo)
        spec, holder = oz.spec, f"orbit zoo {oz.zoo.path}"
    else:
        z = open_zoo(zoo)  # type: ignore[arg-type]
        spec, holder = _check_inr(z, "orbit-interpolation"), f"zoo {z.path}"
        transform, orbit_size = generated_orbit_options(transform, orbit_size, 512)
    dev = resolve_device(device)
    aes = load_autoencoders(spec, run, pna_run, restarts=restarts, max_iter=max_iter, seed=seed,
                            holder=holder, device=dev)
    todo, skipped = resolve_methods(methods, INR_METHODS, aes)
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same choices on every device
    if oz is None:
        orbits = _generated_orbits(z, spec, aes, gen, 10 if runs is None else runs,
                                   orbit_size, transform, perturbation,
                                   split or "test", data)
    else:
        orbits = _published_orbits(oz, runs, gen, perturbation, data, seed)
    out_dir = prepare_out(out)  # after the checks that can fail
    gt, n_runs = orbits.gt, orbits.base.shape[0]
    images = gt.images.to(dev) if gt is not None else None
    fits = spec.render(orbits.base.to(dev),
                       CHECK_RESOLUTION if images is None else images.shape[1])
    orbit_seeds = torch.randint(0, 2**62, (n_runs,), generator=gen, device=gen.device).tolist()
    opts = PathOptions(restarts=restarts, max_iter=max_iter, seed=seed)

    parts = []
    for r in range(n_runs):
        clean, noisy = (t.to(dev) for t in orbits.pairs(r, orbit_seeds[r]))  # seeded on the CPU
        k = clean.shape[0]
        targets = {"render_mse": fits[r].expand(k, *fits.shape[1:])}
        if images is not None:
            targets = {"mse": images[r].expand(k, *images.shape[1:]), **targets}
        fn = render_curves(spec, targets, chunk=chunk)
        parts.append(run_methods(todo, spec, clean, noisy.roll(-1, dims=0), alphas, fn, aes,
                                 opts))
    results = MethodRuns.concat(parts)
    pairs = int(results.distances[todo[0]].numel())
    settings = {
        **orbits.settings, "run": str(aes.run) if aes.run else None,
        "pna_run": str(aes.pna_run) if aes.pna_run else None, "runs": n_runs,
        "perturbation": perturbation, "steps": steps, "seed": seed,
        "wm_restarts": restarts, "wm_max_iter": max_iter,
        "data_source": gt.source if gt else None, "ae_lift_strategy": aes.lift_strategy,
        "data_source_assumed": gt.assumed if gt else False,
    }
    metrics: dict[str, Any] = {
        "settings": settings, "networks": orbits.rows.tolist(), "pairs": pairs,
        "labels": orbits.labels.tolist(), "image_index": orbits.image_index.tolist(),
        "encoder_modes": aes.encoder_modes,
    }
    if images is not None and gt is not None:
        metrics["base_fit_mse"] = float(((fits - images) ** 2).mean())
        metrics["loss_target"] = {"metric": "mse", "target": "image",
                                  "description": f"ground-truth image from `{gt.source}`"}
        loss = (
            f"Loss `mse`: pixel MSE of the rendered interpolant to the ground-truth image "
            f"(`{gt.source}`), the paper's metric; `render_mse` (right panel): MSE to "
            f"{orbits.render_of}, which fits its image with MSE {metrics['base_fit_mse']:.4g}."
        )
        panels = [("mse", "MSE to ground-truth image", False),
                  ("render_mse", "MSE to base INR render", False)]
        tables = [("mse", "MSE to image"), ("render_mse", "MSE to base render")]
        notes: list[str] = []
    else:
        metrics["loss_target"] = {"metric": "render_mse", "target": "orbit-render",
                                  "description": f"{orbits.render_of} (no ground-truth image)"}
        loss = (
            f"Loss `render_mse`: pixel MSE of the rendered interpolant to {orbits.render_of}, "
            "**not** to the ground-truth digit, which no image source provides here."
        )
        panels = [("render_mse", "MSE to the orbit's render", False)]
        tables = [("render_mse", "MSE to orbit render")]
        notes = [
            "No ground-truth image: neither --data nor the orbit zoo's provenance names an "
            "image source, so every loss is measured against the render of each orbit's first "
            "member instead of the digit (the paper's metric). Pass `--data mnist:DIR` (the "
            "MNIST IDX files) to measure against the digit."
        ]
    label = "published orbit" if oz is not None else str(transform)
    title = f"Orbit interpolation ({label}, perturbation {perturbation:g})"
    text = " ".join(filter(None, [f"{orbits.what}; {steps} alpha steps.", loss, orbits.check,
                                  "Mean ± std over pairs."]))
    return _finish(
        "orbit-interpolation", out_dir, title, text, alphas, results, pairs, metrics, panels,
        tables, todo, skipped, gt.source if gt is not None and gt.assumed else None,
        extra_notes=notes,
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
