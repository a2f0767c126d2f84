"""Machinery shared by the experiments: autoencoder runs, network selection, the methods'
frames and paths, and batched evaluation."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from symmerge.align.matching import MatchOptions
from symmerge.canon import AECanonicalizer
from symmerge.errors import SymmergeError
from symmerge.evaluation.quality import classifier_metrics
from symmerge.experiments.results import NetworkSelection, RunInfo, SplitSettings
from symmerge.limits import MAX_SEED, check_range
from symmerge.methods import (
    RESOURCES,
    Frame,
    MethodInputs,
    default_methods,
    get_method,
    missing_resource,
)
from symmerge.models.runs import RunLike, as_run, describe_run
from symmerge.specs import WeightSpaceSpec
from symmerge.utils.device import module_device
from symmerge.zoo import Zoo, as_zoo, failed_networks
from symmerge.zoo.quality import rule_text

#: ``heldout`` = val + test: the networks the autoencoder never trained on.
SPLITS = ("train", "val", "test", "heldout", "all")


# ---------------------------------------------------------------- runs
@dataclass
class Autoencoders:
    """The loaded autoencoder runs an experiment uses (by role: ``run``, the ScaleGMN
    autoencoder; ``pna_run``, the permutation-only one; either may be missing), what they
    are (:class:`RunInfo`) and the device their work runs on."""

    spec: WeightSpaceSpec
    models: dict[str, nn.Module] = field(default_factory=dict)
    runs: dict[str, RunInfo] = field(default_factory=dict)
    split: SplitSettings = SplitSettings()
    batch_size: int = 1024
    device: torch.device | None = None

    def path(self, role: str) -> str | None:
        """The directory of the run in ``role`` (None: not given)."""
        return self.runs[role].path if role in self.runs else None

    def encoder(self, role: str) -> AECanonicalizer:
        """The autoencoder of ``role`` on the experiments' device."""
        return AECanonicalizer(self.spec, self.models[role], batch_size=self.batch_size,
                               device=self.device)

    def frames(self, methods: Sequence[str], matching: MatchOptions,
               data: Tensor | None = None) -> dict[str, Frame]:
        """Each method's frame (:mod:`symmerge.methods`), built from these runs (and
        ``data``, the networks' inputs, for the methods that measure activations)."""
        inputs = MethodInputs(self.spec, self.models, matching=matching,
                              batch_size=self.batch_size, device=self.device, data=data)
        return {m: get_method(m).build(inputs) for m in methods}


def load_autoencoders(
    spec: WeightSpaceSpec,
    run: RunLike | None = None,
    pna_run: RunLike | None = None,
    *,
    batch_size: int = 1024,
    holder: str = "the zoo",
    device: str | torch.device | None = None,
) -> Autoencoders:
    """The ScaleGMN run and the permutation-only run (directories, loaded, or models
    trained in memory: :func:`symmerge.models.runs.as_run`) on ``device`` (default: where
    they are; a directory's on the CPU); both must fit ``spec`` (the networks of
    ``holder``) and hold finite weights. A model trained in memory that is elsewhere is
    copied there: the caller's model stays where it is.

    The network split (for choosing held-out networks) is the one the ScaleGMN
    run was trained with (else the PNA run's, else seed 0 / 80-10-10).
    """
    out = Autoencoders(spec, batch_size=batch_size,
                       device=None if device is None else torch.device(device))
    for role, given in (("run", run), ("pna_run", pna_run)):
        if given is None:
            continue
        model, _, cfg = as_run(given, spec, what=role, holder=holder)
        if out.device is not None and module_device(model) != out.device:
            in_memory = not isinstance(given, str | os.PathLike)
            model = (copy.deepcopy(model) if in_memory else model).to(out.device)
        out.models[role] = model
        out.runs[role] = RunInfo(role, describe_run(given), cfg.preset, cfg.encoder.mode,
                                 cfg.seed)
        if role == "run" or run is None:
            out.split = SplitSettings.of(cfg.split.model_dump())
    return out


def lift_strategy(frames: Mapping[str, Frame]) -> str | None:
    """The matching strategy of the frames that lift networks onto templates (None: no
    such frame)."""
    from symmerge.canon import AELiftCanonicalizer

    return next((f.canonicalizer.strategy for f in frames.values()
                 if isinstance(f.canonicalizer, AELiftCanonicalizer)), None)


def resolve_methods(
    requested: Sequence[str] | None, spec: WeightSpaceSpec, aes: Autoencoders
) -> tuple[list[str], dict[str, str]]:
    """(methods to run, {skipped method: reason}).

    ``requested`` None: the registry's default methods for the networks' family.
    Unknown names raise, and so do methods asked for by name whose autoencoder run was
    not given; of the default methods, those are skipped (with the reason).
    """
    names = list(default_methods(spec.family) if requested is None else requested)
    if not names:
        raise SymmergeError("no methods selected")
    run, skipped = [], {}
    for m in dict.fromkeys(names):
        entry = get_method(m, "interpolate")
        entry.check_family(spec)
        why = missing_resource(entry, aes.models)
        if why is None:
            run.append(m)
        else:
            skipped[m] = why
    if requested is not None and skipped:
        raise SymmergeError("; ".join(f"method {m!r} {why}" for m, why in skipped.items()),
                            params=RESOURCES)
    if not run:
        raise SymmergeError(f"none of the methods {names} can run: {'; '.join(skipped.values())}",
                            params=RESOURCES)
    return run, skipped


# ---------------------------------------------------------- selection
def check_seed(seed: int) -> int:
    """``seed`` if it is a valid seed (:data:`symmerge.limits.MAX_SEED`), else one error."""
    return check_range(seed, "seed", 0, MAX_SEED)


def open_zoo(zoo: str | os.PathLike[str] | Zoo) -> Zoo:
    """The zoo, refused (naming its file) if any of its parameters is NaN or Inf."""
    return as_zoo(zoo).check_finite()


def split_members(zoo: Zoo, split: str, settings: SplitSettings) -> Tensor:
    """Indices of ``split`` (train | val | test | heldout | all) under the run's split
    settings; ``heldout`` is val and test together."""
    if split not in SPLITS:
        raise SymmergeError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if split == "all":
        return torch.arange(len(zoo), device="cpu")  # indices into the zoo's CPU tensors
    parts = zoo.splits(seed=settings.seed, fractions=settings.fractions,
                       by_image=settings.by_image)
    if split == "heldout":
        return torch.sort(torch.cat([parts["val"], parts["test"]])).values
    return parts[split]


def usable_members(zoo: Zoo, split: str, settings: SplitSettings) -> tuple[Tensor, int]:
    """(indices of ``split`` without the zoo's failed networks, how many failed networks
    were left out): :func:`symmerge.zoo.quality.failed_networks`, the stored mark or the
    rule (the parameters are not read again: :func:`open_zoo` checked them)."""
    pool = split_members(zoo, split, settings)
    keep = ~failed_networks(zoo, check_params=False).mask[pool]
    return pool[keep], int((~keep).sum())


def network_selection(zoo: Zoo, aes: Autoencoders, split: str, pool: Tensor, excluded: int,
                      used: Tensor) -> NetworkSelection:
    """What an experiment records of its networks: ``used`` (zoo rows, any shape; each
    network counted once) drawn from ``pool`` of ``split`` with ``excluded`` failed
    networks left out, and how many of them are in the training split of the
    autoencoder (None without one)."""
    used = torch.unique(used.reshape(-1))
    seen = None
    if aes.models:
        seen = int(torch.isin(used, split_members(zoo, "train", aes.split)).sum())
    return NetworkSelection(split, int(pool.numel()), int(used.numel()), seen, excluded,
                            rule_text())


def sample_indices(pool: Tensor, count: int, generator: torch.Generator, what: str) -> Tensor:
    """``count`` distinct members of ``pool``, in a seeded random order."""
    if count < 1:
        raise SymmergeError(f"need at least one {what}, got {count}")
    if pool.numel() < count:
        raise SymmergeError(
            f"asked for {count} {what}, but the split only holds {pool.numel()}; ask for fewer "
            "or use another split"
        )
    order = torch.randperm(pool.numel(), generator=generator, device=generator.device)
    return pool[order.to(pool.device)[:count]]


# ---------------------------------------------------------- methods
CurveFn = Callable[[Tensor], dict[str, Tensor]]


@dataclass
class MethodRuns:
    """Per method: curves ``{metric: [n, T]}``, seconds spent building the paths
    (alignment, canonicalization, encoding/decoding; evaluation excluded) and the
    parameter distance ``[n]`` between each path's two endpoints; ``template_distances``:
    per method that lifts onto templates, the lifted endpoints' distance to them."""

    curves: dict[str, dict[str, Tensor]]
    seconds: dict[str, float]
    distances: dict[str, Tensor]
    template_distances: dict[str, Tensor] = field(default_factory=dict)

    @staticmethod
    def concat(parts: Sequence[MethodRuns]) -> MethodRuns:
        seconds: dict[str, float] = {}
        for p in parts:
            for m, s in p.seconds.items():
                seconds[m] = seconds.get(m, 0.0) + s
        return MethodRuns(
            concat_curves([p.curves for p in parts]), seconds,
            {m: torch.cat([p.distances[m] for p in parts]) for m in parts[0].distances},
            {m: torch.cat([p.template_distances[m] for p in parts])
             for m in parts[0].template_distances},
        )


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar on stderr over an experiment's ``total`` steps (methods x chunks,
    encoders x maps), as the zoo builders show; silent when not ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)


def run_methods(
    frames: Mapping[str, Frame], a: Tensor, b: Tensor, alphas: Tensor, curve_fn: CurveFn,
    bar: Any = None,
) -> MethodRuns:
    """Build every method's paths between ``a`` and ``b`` in its frame and evaluate them
    (on their device; the curves and distances come back on the CPU); ``bar`` (a
    :func:`progress_bar`) advances by one per method."""
    out = MethodRuns({}, {}, {})
    for m, frame in frames.items():
        if bar is not None:
            bar.set_postfix_str(m, refresh=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            extras: dict[str, Tensor] = {}
            paths = frame.paths(a, b, alphas, extras)
        out.seconds[m] = time.perf_counter() - t0
        with torch.no_grad():
            out.curves[m] = curve_fn(paths)
        out.distances[m] = (paths[:, -1] - paths[:, 0]).double().norm(dim=-1).cpu()
        if "template_distance" in extras:
            out.template_distances[m] = extras["template_distance"].cpu()
        if bar is not None:
            bar.update(1)
    return out


# ---------------------------------------------------------- evaluation
def render_curves(
    spec: WeightSpaceSpec, targets: Mapping[str, Tensor], *, chunk: int = 4096
) -> CurveFn:
    """``paths [n, T, P]`` -> ``{name: [n, T]}`` pixel MSE of each rendered
    interpolant to ``targets[name] [n, R, R(, C)]`` (one target per pair), computed on
    the paths' device, returned on the CPU."""
    first = next(iter(targets.values()))
    resolution = first.shape[1]

    def fn(paths: Tensor) -> dict[str, Tensor]:
        n, t, p = paths.shape
        dev = paths.device
        flat = paths.reshape(n * t, p)
        pair = torch.arange(n, device=dev).repeat_interleave(t)
        on_dev = {k: tgt.to(dev) for k, tgt in targets.items()}
        out = {k: torch.empty(n * t, dtype=torch.float64, device=dev) for k in targets}
        for lo in range(0, n * t, chunk):
            hi = min(lo + chunk, n * t)
            img = spec.render(flat[lo:hi], resolution)  # type: ignore[attr-defined]
            dims = tuple(range(1, img.ndim))
            for k, tgt in on_dev.items():
                out[k][lo:hi] = ((img - tgt[pair[lo:hi]].to(img.dtype)) ** 2).mean(dims).double()
        return {k: v.reshape(n, t).cpu() for k, v in out.items()}

    return fn


def classifier_curves(
    spec: WeightSpaceSpec, images: Tensor, labels: Tensor, *, net_chunk: int = 64,
    image_chunk: int = 1000,
) -> CurveFn:
    """``paths [n, T, P]`` -> accuracy and mean cross-entropy ``[n, T]`` on ``images``,
    computed on the paths' device (the images are moved there once), returned on the CPU."""

    def fn(paths: Tensor) -> dict[str, Tensor]:
        n, t, p = paths.shape
        out = classifier_metrics(spec, paths.reshape(n * t, p), images, labels,
                                 net_chunk=net_chunk, image_chunk=image_chunk)
        return {k: v.reshape(n, t).cpu() for k, v in out.items()}

    return fn


# ---------------------------------------------------------- output
def concat_curves(parts: Sequence[dict[str, dict[str, Tensor]]]) -> dict[str, dict[str, Tensor]]:
    """Concatenate per-chunk curve dicts along the pair axis."""
    out: dict[str, dict[str, Tensor]] = {}
    for part in parts:
        for m, per in part.items():
            for k, v in per.items():
                out.setdefault(m, {}).setdefault(k, []).append(v)  # type: ignore[arg-type]
    return {m: {k: torch.cat(v) for k, v in per.items()} for m, per in out.items()}  # type: ignore[arg-type]
