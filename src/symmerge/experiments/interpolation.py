"""INR interpolation experiments: orbit pairs (the paper's main experiment, METHOD.md 6.1)
and pairs of INRs fitted to the same image from different seeds (the merging case)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from symmerge.align.matching import MatchOptions
from symmerge.errors import SymmergeError
from symmerge.experiments.common import (
    Autoencoders,
    MethodRuns,
    check_seed,
    lift_strategy,
    load_autoencoders,
    network_selection,
    open_zoo,
    progress_bar,
    render_curves,
    resolve_methods,
    run_methods,
    sample_indices,
    usable_members,
)
from symmerge.experiments.metrics import alpha_grid, summarize_curves
from symmerge.experiments.orbit_zoo import (
    CHECK_RESOLUTION,
    OrbitZoo,
    generated_orbit_options,
    load_orbit_zoo,
    refuse_generation_options,
)
from symmerge.experiments.results import (
    LossTarget,
    MethodSummary,
    NetworkSelection,
    OrbitInterpolationResult,
    OrbitInterpolationSettings,
    PairInterpolationResult,
    PairInterpolationSettings,
)
from symmerge.limits import MAX_PERTURBATION, check_range
from symmerge.methods import get_method, reference_method
from symmerge.models.runs import RunLike
from symmerge.specs import SirenSpec
from symmerge.symmetry import make_orbit
from symmerge.utils.device import resolve_device
from symmerge.zoo import Zoo
from symmerge.zoo.images import GroundTruth, ground_truth, named_data_source


# ------------------------------------------------------------ shared bits
def summarize(runs: MethodRuns, alphas: Tensor, pairs: int, *,
              higher_is_better: Collection[str] = ()) -> dict[str, MethodSummary]:
    """Per method: its curves' summaries, each compared with the reference method's
    barrier (where it ran), and its timing."""
    curves = runs.curves
    per = {m: {k: summarize_curves(v, alphas, higher_is_better=k in higher_is_better)
               for k, v in c.items()} for m, c in curves.items()}
    ref = reference_method()
    if ref in per:
        base = {k: s.barrier_mean for k, s in per[ref].items()}
        per = {m: {k: replace(s, barrier_vs_naive=s.barrier_mean / base[k] if base[k]
                              else float("nan"))
                   for k, s in c.items()} for m, c in per.items()}
    return {
        m: MethodSummary(
            per[m], get_method(m).exact, float(runs.distances[m].mean()), runs.seconds[m],
            runs.seconds[m] / pairs,
            float(runs.template_distances[m].mean()) if m in runs.template_distances else None,
        )
        for m in curves
    }


def _check_inr(zoo: Zoo, what: str) -> SirenSpec:
    if not isinstance(zoo.spec, SirenSpec):
        raise SymmergeError(
            f"{what} needs an INR (SIREN) zoo, but {zoo.name} holds {zoo.spec.describe()}"
        )
    return zoo.spec


# ------------------------------------------------------------ orbit pairs
@dataclass
class _Orbits:
    """The orbits of one orbit interpolation, per run: the network whose function the orbit
    computes (``base [runs, P]``, whose render is ``render_mse``'s target), its zoo row,
    label and image, the ground truth (None: unknown), ``pairs(run, seed) -> (O, Õ)``
    (each ``[K, P]``) and the settings that describe them."""

    base: Tensor
    rows: Tensor  # the zoo rows of ``base``
    labels: Tensor
    image_index: Tensor
    gt: GroundTruth | None
    pairs: Callable[[int, int], tuple[Tensor, Tensor]]
    settings: dict[str, Any]
    selection: NetworkSelection | None = None


def _generated_orbits(
    z: Zoo, spec: SirenSpec, aes: Autoencoders, gen: torch.Generator, runs: int,
    orbit_size: int, transform: str, perturbation: float, split: str, data: str | None,
) -> _Orbits:
    pool, excluded = usable_members(z, split, aes.split)
    chosen = sample_indices(pool, runs, gen, "networks")
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
        {"zoo": z.name, "orbit_size": orbit_size, "transform": transform, "split": split},
        network_selection(z, aes, split, pool, excluded, chosen),
    )


def _published_orbits(
    oz: OrbitZoo, runs: int | None, gen: torch.Generator, perturbation: float,
    data: str | None,
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

    return _Orbits(
        oz.zoo.get_params(first).float(), first, oz.zoo.labels[first],
        torch.tensor([o.image_index for o in orbits], device="cpu"), gt, pairs,
        {"orbit_zoo": oz.zoo.name, "orbits": tuple(o.summary() for o in orbits),
         "orbit_max_deviation": oz.max_deviation},
    )


def orbit_interpolation(
    zoo: str | os.PathLike[str] | Zoo | None = None,
    *,
    orbit_zoo: str | os.PathLike[str] | Zoo | None = None,
    run: RunLike | None = None,
    pna_run: RunLike | None = None,
    methods: Sequence[str] | None = None,
    runs: int | None = None,
    orbit_size: int | None = None,
    transform: str | None = None,
    perturbation: float = 0.005,
    steps: int = 40,
    split: str | None = None,
    data: str | None = None,
    seed: int = 0,
    matching: MatchOptions | None = None,
    chunk: int = 2048,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> OrbitInterpolationResult:
    """The paper's orbit interpolation (METHOD.md 6.1) on an INR zoo (a file or a
    :class:`~symmerge.zoo.Zoo`), computed on ``device`` (``auto``: a CUDA GPU when there
    is one). Writes nothing: ``result.save(DIR)`` does.

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

    Every method's path (``methods``: names from :mod:`symmerge.methods`; default: those
    the registry runs on INRs) is rendered at ``steps`` alphas (one batched pass per
    ``chunk`` networks). Losses: ``mse``, the pixel MSE to the ground-truth image (the
    paper's metric), and ``render_mse``, to the render of the network the orbit was made
    from (a published orbit: its first member). A published orbit's image comes from
    ``data`` (``mnist:DIR``: the MNIST IDX files) or the image source its zoo names; with
    neither there is no ``mse``: ``render_mse`` is the loss (one fixed target per orbit, as
    the digit is; pairs' own clean members would give every ``L(0)`` zero by
    construction), and ``result.loss_target`` and the report say so. Methods needing
    ``run`` / ``pna_run`` are skipped without them. ``matching`` sets the weight matching
    (default: ``MatchOptions(seed=seed)``). ``progress``: a bar on stderr over orbits x
    methods.

    Failed networks of the zoo (:mod:`symmerge.zoo.quality`) are never drawn;
    ``result.selection`` records the split, its n, how many failed networks were left out
    and how many drawn networks the autoencoder trained on (the report states them).
    """
    t0 = time.perf_counter()
    check_seed(seed)
    check_range(perturbation, "perturbation", 0.0, MAX_PERTURBATION)
    matching = MatchOptions(seed=seed) if matching is None else matching
    alphas = alpha_grid(steps)
    if (zoo is None) == (orbit_zoo is None):
        raise SymmergeError(
            "orbit-interpolation takes either zoo (orbits generated from its networks) or "
            "orbit_zoo (a published orbit), " + ("not both" if zoo is not None else "got neither"),
            params=("zoo", "orbit_zoo"),
        )
    oz = None
    if orbit_zoo is not None:
        refuse_generation_options("orbit-interpolation", orbit_size=orbit_size,
                                  transform=transform, split=split)
        oz = load_orbit_zoo(orbit_zoo)
        spec, holder = oz.spec, f"orbit zoo {oz.zoo.name}"
    else:
        z = open_zoo(zoo)  # type: ignore[arg-type]
        spec, holder = _check_inr(z, "orbit-interpolation"), f"zoo {z.name}"
        transform, orbit_size = generated_orbit_options(transform, orbit_size, 512)
    dev = resolve_device(device)
    aes = load_autoencoders(spec, run, pna_run, holder=holder, device=dev)
    todo, skipped = resolve_methods(methods, spec, aes)
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same choices on every device
    if oz is None:
        orbits = _generated_orbits(z, spec, aes, gen, 10 if runs is None else runs,
                                   orbit_size, transform, perturbation,
                                   split or "test", data)
    else:
        orbits = _published_orbits(oz, runs, gen, perturbation, data)
    gt, n_runs = orbits.gt, orbits.base.shape[0]
    images = gt.images.to(dev) if gt is not None else None
    fits = spec.render(orbits.base.to(dev),
                       CHECK_RESOLUTION if images is None else images.shape[1])
    orbit_seeds = torch.randint(0, 2**62, (n_runs,), generator=gen, device=gen.device).tolist()
    frames = aes.frames(todo, matching)

    parts, sizes = [], []
    with progress_bar(n_runs * len(frames), "orbit-interpolation", progress) as bar:
        for r in range(n_runs):
            clean, noisy = (t.to(dev) for t in orbits.pairs(r, orbit_seeds[r]))  # on the CPU
            k = clean.shape[0]
            targets = {"render_mse": fits[r].expand(k, *fits.shape[1:])}
            if images is not None:
                targets = {"mse": images[r].expand(k, *images.shape[1:]), **targets}
            fn = render_curves(spec, targets, chunk=chunk)
            parts.append(run_methods(frames, clean, noisy.roll(-1, dims=0), alphas, fn, bar))
            sizes.append(k)
    results = MethodRuns.concat(parts)
    pairs = int(results.distances[todo[0]].numel())
    settings = OrbitInterpolationSettings(
        **orbits.settings, run=aes.path("run"), pna_run=aes.path("pna_run"),
        split_settings=aes.split, runs=n_runs, perturbation=perturbation, steps=steps,
        seed=seed, matching=matching, ae_lift_strategy=lift_strategy(frames),
        data_source=gt.source if gt else None, data_source_assumed=gt.assumed if gt else False,
    )
    if images is not None:
        base_fit: float | None = float(((fits - images) ** 2).mean())
        target = LossTarget("mse", "image")
    else:
        base_fit, target = None, LossTarget("render_mse", "orbit-render")
    return OrbitInterpolationResult(
        settings=settings, runs=tuple(aes.runs.values()), alphas=alphas.numpy(),
        curves=_numpy(results), methods=summarize(results, alphas, pairs), skipped=skipped,
        primary_metric=target.metric, pairs=pairs, networks=orbits.rows.numpy(),
        labels=orbits.labels.numpy(), image_index=orbits.image_index.numpy(),
        pair_orbits=np.repeat(np.arange(n_runs), sizes),  # metadata: NumPy, on the CPU
        base_fit_mse=base_fit, loss_target=target, selection=orbits.selection,
        seconds=time.perf_counter() - t0,
    )


def _numpy(runs: MethodRuns) -> dict[str, dict[str, Any]]:
    return {m: {k: v.numpy() for k, v in per.items()} for m, per in runs.curves.items()}


# ------------------------------------------------------------ seed pairs
def image_pairs(zoo: Zoo, pool: Tensor, count: int | None, generator: torch.Generator
                ) -> Tensor:
    """Disjoint pairs ``[n, 2]`` of networks in ``pool`` fitted to the same image
    (seeded choice: one random pair per image, then ``count`` random images)."""
    if zoo.image_index is None:
        raise SymmergeError(f"{zoo.name} has no image_index; pairs need INRs of the same image")
    pool = pool[torch.randperm(pool.numel(), generator=generator, device=generator.device)]
    by_image: dict[int, list[int]] = {}
    for i, img in zip(pool.tolist(), zoo.image_index[pool].tolist(), strict=True):
        by_image.setdefault(img, []).append(i)
    pairs = [sorted(v[:2]) for _, v in sorted(by_image.items()) if len(v) >= 2]
    if not pairs:
        raise SymmergeError(
            f"no two networks of the selected split of {zoo.name} share an image; pairs need "
            "a zoo with two or more INRs per image (fitted with per_image >= 2), or the split "
            "'all'"
        )
    t = torch.tensor(pairs, dtype=torch.long, device="cpu")  # indices into the zoo
    t = t[torch.randperm(t.shape[0], generator=generator, device=generator.device)]
    if count is not None:
        if count < 1:
            raise SymmergeError(f"pairs must be at least 1, got {count}")
        if count > t.shape[0]:
            raise SymmergeError(f"asked for {count} pairs, only {t.shape[0]} images have two INRs")
        t = t[:count]
    return t


def pair_interpolation(
    zoo: str | os.PathLike[str] | Zoo,
    *,
    run: RunLike | None = None,
    pna_run: RunLike | None = None,
    methods: Sequence[str] | None = None,
    pairs: int | None = None,
    steps: int = 40,
    split: str = "heldout",
    data: str | None = None,
    seed: int = 0,
    matching: MatchOptions | None = None,
    chunk: int = 2048,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> PairInterpolationResult:
    """Interpolation between INRs fitted to the same image from different seeds, computed
    on ``device`` (``auto``: a CUDA GPU when there is one). Writes nothing.

    Pairs come from a zoo (a file or a :class:`~symmerge.zoo.Zoo`) with two or more INRs
    per image: networks of ``split`` (default ``heldout``: val and test, never seen by the
    autoencoder) sharing an ``image_index``; at most ``pairs`` of them (all if None). With
    ``split="all"`` the report states how many endpoints the autoencoder was trained on.
    Loss: pixel MSE of the rendered interpolant to the ground-truth image. Methods,
    ``matching``, ``progress`` (over methods) and the failed networks left out as
    :func:`orbit_interpolation`.
    """
    t0 = time.perf_counter()
    check_seed(seed)
    matching = MatchOptions(seed=seed) if matching is None else matching
    z = open_zoo(zoo)
    spec = _check_inr(z, "pair-interpolation")
    alphas = alpha_grid(steps)
    dev = resolve_device(device)
    aes = load_autoencoders(spec, run, pna_run, holder=f"zoo {z.name}", device=dev)
    todo, skipped = resolve_methods(methods, spec, aes)
    gen = torch.Generator().manual_seed(seed)
    pool, excluded = usable_members(z, split, aes.split)
    chosen = image_pairs(z, pool, pairs, gen)
    n = chosen.shape[0]
    gt = ground_truth(z, chosen[:, 0], data)
    params = z.get_params(chosen.reshape(-1)).float().reshape(n, 2, -1).to(dev)
    a, b = params[:, 0], params[:, 1]
    images = gt.images.to(dev)
    fit_a, fit_b = spec.render(a, images.shape[1]), spec.render(b, images.shape[1])
    frames = aes.frames(todo, matching)
    with progress_bar(len(frames), "pair-interpolation", progress) as bar:
        results = run_methods(frames, a, b, alphas,
                              render_curves(spec, {"mse": images}, chunk=chunk), bar)
    selection = network_selection(z, aes, split, pool, excluded, chosen)
    settings = PairInterpolationSettings(
        zoo=z.name, run=aes.path("run"), pna_run=aes.path("pna_run"), pairs=n, steps=steps,
        split=split, split_settings=aes.split, seed=seed, matching=matching,
        ae_lift_strategy=lift_strategy(frames), data_source=gt.source,
        data_source_assumed=gt.assumed,
    )
    assert z.image_index is not None  # image_pairs checked it
    return PairInterpolationResult(
        settings=settings, runs=tuple(aes.runs.values()), alphas=alphas.numpy(),
        curves=_numpy(results), methods=summarize(results, alphas, n), skipped=skipped,
        primary_metric="mse", pairs=n, networks=chosen.numpy(),
        image_index=z.image_index[chosen[:, 0]].numpy(),
        endpoints_in_ae_training_split=selection.in_training_split or 0, selection=selection,
        endpoint_fit_mse=float(
            (((fit_a - images) ** 2).mean() + ((fit_b - images) ** 2).mean()) / 2
        ),
        endpoint_param_distance=float((a - b).norm(dim=1).mean()),
        seconds=time.perf_counter() - t0,
    )
