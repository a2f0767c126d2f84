"""Machinery shared by the experiments: autoencoder runs, network selection,
interpolation paths per method, batched evaluation and tidy curve files."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symmerge.align import check_matching_options
from symmerge.canon import AECanonicalizer, AELiftCanonicalizer, SortCanonicalizer, load_run
from symmerge.errors import SymmergeError
from symmerge.specs import WeightSpaceSpec
from symmerge.utils.io import save_safetensors
from symmerge.zoo import Zoo, load_zoo

#: Every interpolation method. ``pna-*`` use the permutation-only encoder's run.
METHODS = ("naive", "wm", "wm-perm", "sort", "ae", "ae-latent", "ae-lift", "pna-ae",
           "pna-ae-latent")
INR_METHODS = ("naive", "wm", "sort", "ae", "ae-latent", "ae-lift", "pna-ae")
CNN_METHODS = ("naive", "wm", "wm-perm", "sort", "ae", "ae-latent", "ae-lift", "pna-ae")
#: Methods whose interpolation endpoints are the input networks themselves
#: (or exact transforms of them); the others start and end at decoded networks.
EXACT_ENDPOINTS = frozenset({"naive", "wm", "wm-perm", "sort", "ae-lift"})
_NEEDS = {"ae": "run", "ae-latent": "run", "ae-lift": "run", "pna-ae": "pna_run",
          "pna-ae-latent": "pna_run"}
DEFAULT_SPLIT = {"seed": 0, "fractions": (0.8, 0.1, 0.1), "by_image": True}
#: ``heldout`` = val + test: the networks the autoencoder never trained on.
SPLITS = ("train", "val", "test", "heldout", "all")


# ---------------------------------------------------------------- runs
@dataclass
class Autoencoders:
    """The loaded runs an experiment uses (either may be missing)."""

    spec: WeightSpaceSpec
    ae: AECanonicalizer | None = None
    ae_lift: AELiftCanonicalizer | None = None
    pna: AECanonicalizer | None = None
    run: Path | None = None
    pna_run: Path | None = None
    split: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SPLIT))
    encoder_modes: dict[str, str] = field(default_factory=dict)

    @property
    def lift_strategy(self) -> str | None:
        """The ``ae-lift`` matching strategy, if a ScaleGMN run is loaded."""
        return self.ae_lift.strategy if self.ae_lift is not None else None

    def has(self, method: str) -> bool:
        need = _NEEDS.get(method)
        return need is None or (self.ae if need == "run" else self.pna) is not None


def load_autoencoders(
    spec: WeightSpaceSpec,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    *,
    restarts: int = 0,
    max_iter: int = 100,
    seed: int = 0,
    batch_size: int = 1024,
    lift_strategy: str = "forward",
    holder: str = "the zoo",
    device: str | torch.device | None = None,
) -> Autoencoders:
    """Load the ScaleGMN run and the permutation-only run onto ``device`` (default: the
    CPU); both must fit ``spec`` (the networks of ``holder``) and hold finite weights
    (:func:`symmerge.canon.load_run`).

    The network split (for choosing held-out networks) is the one the ScaleGMN
    run was trained with (else the PNA run's, else seed 0 / 80-10-10).
    """
    check_matching_options(restarts, max_iter, seed)
    out = Autoencoders(spec)
    for which, path in (("run", run), ("pna_run", pna_run)):
        if path is None:
            continue
        model, _, cfg = load_run(path, spec, what=which, holder=holder)
        out.encoder_modes[which] = cfg.encoder.mode
        if which == "run":
            out.ae = AECanonicalizer(spec, model, batch_size=batch_size, device=device)
            out.ae_lift = AELiftCanonicalizer(spec, model, restarts=restarts, max_iter=max_iter,
                                              seed=seed, strategy=lift_strategy,
                                              batch_size=batch_size, device=device)
            out.run = Path(path)
            out.split = cfg.split.model_dump()
        else:
            out.pna = AECanonicalizer(spec, model, batch_size=batch_size, device=device)
            out.pna_run = Path(path)
            if run is None:
                out.split = cfg.split.model_dump()
    return out


def resolve_methods(
    requested: Sequence[str] | None, default: Sequence[str], aes: Autoencoders
) -> tuple[list[str], dict[str, str]]:
    """(methods to run, {skipped method: reason}).

    Unknown names raise, and so do methods asked for by name whose autoencoder run was
    not given; of the ``default`` methods, those are skipped (with the reason).
    """
    names = list(default if requested is None else requested)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise SymmergeError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if not names:
        raise SymmergeError("no methods selected")
    run, skipped = [], {}
    for m in dict.fromkeys(names):
        if aes.has(m):
            run.append(m)
        else:
            flag = "--run" if _NEEDS[m] == "run" else "--pna-run"
            skipped[m] = f"needs an autoencoder run ({flag}), none given"
    if requested is not None and skipped:
        raise SymmergeError("; ".join(f"method {m!r} {why}" for m, why in skipped.items()))
    if not run:
        raise SymmergeError(f"none of the methods {names} can run: {'; '.join(skipped.values())}")
    return run, skipped


# ---------------------------------------------------------- selection
def open_zoo(zoo: str | os.PathLike[str] | Zoo) -> Zoo:
    """The zoo, refused (naming its file) if any of its parameters is NaN or Inf."""
    return (zoo if isinstance(zoo, Zoo) else load_zoo(zoo)).check_finite()


def split_members(zoo: Zoo, split: str, split_cfg: Mapping[str, Any]) -> Tensor:
    """Indices of ``split`` (train | val | test | heldout | all) under the run's split
    settings; ``heldout`` is val and test together."""
    if split not in SPLITS:
        raise SymmergeError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return torch.arange(len(zoo), device="cpu")  # indices into the zoo's CPU tensors
    parts = zoo.splits(seed=int(split_cfg["seed"]), fractions=tuple(split_cfg["fractions"]),
                       by_image=bool(split_cfg.get("by_image", True)))
    if split == "heldout":
        return torch.sort(torch.cat([parts["val"], parts["test"]])).values
    return parts[split]


def split_phrase(split: str) -> str:
    """``"test"`` -> ``"test-split"``; how report texts name a split."""
    return {"all": "zoo", "heldout": "held-out (val + test)"}.get(split, f"{split}-split")


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
def lerp(a: Tensor, b: Tensor, alphas: Tensor) -> Tensor:
    """Paths ``[n, T, ...]`` from ``a``, ``b`` ``[n, ...]``: ``(1 - alpha) a + alpha b``."""
    al = alphas.to(a).reshape(1, -1, *([1] * (a.ndim - 1)))
    return (1 - al) * a.unsqueeze(1) + al * b.unsqueeze(1)


@dataclass
class PathOptions:
    """Weight-matching settings of the ``wm`` baselines."""

    restarts: int = 0
    max_iter: int = 100
    seed: int = 0


def template_distance(model: nn.Module, lifted: Tensor, templates: Tensor) -> Tensor:
    """``[B]`` RMS distance between lifted networks and their decoded templates, each
    entry in units of its tensor's zoo RMS (the autoencoder's ``param_scale``)."""
    scale = model.param_scale.to(lifted)
    return ((lifted - templates.to(lifted.dtype)) / scale).square().mean(-1).sqrt().double()


def method_paths(
    method: str, spec: WeightSpaceSpec, a: Tensor, b: Tensor, alphas: Tensor,
    aes: Autoencoders, opts: PathOptions, extras: dict[str, Tensor] | None = None,
) -> Tensor:
    """Interpolation paths ``[n, T, P]`` between ``a`` and ``b`` (``[n, P]``) for ``method``.

    For ``ae-lift``, ``extras["template_distance"]`` receives :func:`template_distance`
    of the ``2n`` endpoints (``a`` then ``b``)."""
    n = a.shape[0]
    both = torch.cat([a, b])
    if method == "naive":
        return lerp(a, b, alphas)
    if method in ("wm", "wm-perm"):
        from symmerge.align import weight_matching

        res = weight_matching(spec, a, b, mode="perm" if method == "wm-perm" else "auto",
                              restarts=opts.restarts, max_iter=opts.max_iter, seed=opts.seed)
        return lerp(a, res.aligned.to(a.dtype), alphas)
    if method == "sort":
        c = SortCanonicalizer(spec)(both)
        return lerp(c[:n], c[n:], alphas)
    ae = aes.pna if method.startswith("pna-") else aes.ae
    if ae is None:  # resolve_methods filters these out
        raise SymmergeError(f"method {method!r} needs an autoencoder run")
    base = method.removeprefix("pna-")
    if method == "ae-lift":
        assert aes.ae_lift is not None
        c, templates = aes.ae_lift.lift(both)
        if extras is not None:
            extras["template_distance"] = template_distance(aes.ae_lift.model, c, templates)
        return lerp(c[:n], c[n:], alphas)
    if base == "ae":
        c = ae(both)
        return lerp(c[:n], c[n:], alphas)
    if base == "ae-latent":
        z = ae.encode(both)
        zt = lerp(z[:n], z[n:], alphas)
        return ae.decode(zt.reshape(n * alphas.numel(), -1)).reshape(n, alphas.numel(), -1)
    raise SymmergeError(f"unknown method {method!r}")  # pragma: no cover


CurveFn = Callable[[Tensor], dict[str, Tensor]]


@dataclass
class MethodRuns:
    """Per method: curves ``{metric: [n, T]}``, seconds spent building the paths
    (alignment, canonicalization, encoding/decoding; evaluation excluded) and the
    parameter distance ``[n]`` between each path's two endpoints; ``template_distances``:
    per method that lifts onto templates, :func:`template_distance` of its endpoints."""

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


def run_methods(
    methods: Sequence[str], spec: WeightSpaceSpec, a: Tensor, b: Tensor, alphas: Tensor,
    curve_fn: CurveFn, aes: Autoencoders, opts: PathOptions,
) -> MethodRuns:
    """Build every method's paths between ``a`` and ``b`` and evaluate them (on their
    device; the curves and distances come back on the CPU)."""
    out = MethodRuns({}, {}, {})
    for m in methods:
        t0 = time.perf_counter()
        with torch.no_grad():
            extras: dict[str, Tensor] = {}
            paths = method_paths(m, spec, a, b, alphas, aes, opts, extras)
        out.seconds[m] = time.perf_counter() - t0
        with torch.no_grad():
            out.curves[m] = curve_fn(paths)
        out.distances[m] = (paths[:, -1] - paths[:, 0]).double().norm(dim=-1).cpu()
        if "template_distance" in extras:
            out.template_distances[m] = extras["template_distance"].cpu()
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
        dev = paths.device
        flat = paths.reshape(n * t, p)
        correct = torch.zeros(n * t, dtype=torch.float64, device=dev)
        ce = torch.zeros(n * t, dtype=torch.float64, device=dev)
        xs, ys = images.to(dev).split(image_chunk), labels.to(dev).split(image_chunk)
        for lo in range(0, n * t, net_chunk):
            nets = flat[lo:lo + net_chunk]
            for x, y in zip(xs, ys, strict=True):
                logits = spec.forward(nets, x.to(nets.dtype))  # [b, m, classes]
                yy = y.expand(logits.shape[0], -1)
                correct[lo:lo + nets.shape[0]] += (logits.argmax(-1) == yy).sum(-1).double()
                loss = F.cross_entropy(logits.transpose(1, 2), yy, reduction="none")
                ce[lo:lo + nets.shape[0]] += loss.sum(-1).double()
        m = labels.shape[0]
        return {"accuracy": (correct / m).reshape(n, t).cpu(),
                "cross_entropy": (ce / m).reshape(n, t).cpu()}

    return fn


# ---------------------------------------------------------- output
def save_curves(
    path: str | os.PathLike[str], alphas: Tensor, curves: Mapping[str, Mapping[str, Tensor]],
    metadata: Mapping[str, Any],
) -> Path:
    """Tidy arrays: ``alphas`` and ``{method}/{metric}`` ``[pairs, T]`` (float64) in one
    safetensors file; the experiment settings in its metadata."""
    import json

    tensors = {"alphas": alphas.double().contiguous()}
    for m, per in curves.items():
        for k, v in per.items():
            tensors[f"{m}/{k}"] = v.double().contiguous()
    save_safetensors(path, tensors,
                     {"settings": json.dumps(dict(metadata), default=str, sort_keys=True)})
    return Path(path)


def concat_curves(parts: Sequence[dict[str, dict[str, Tensor]]]) -> dict[str, dict[str, Tensor]]:
    """Concatenate per-chunk curve dicts along the pair axis."""
    out: dict[str, dict[str, Tensor]] = {}
    for part in parts:
        for m, per in part.items():
            for k, v in per.items():
                out.setdefault(m, {}).setdefault(k, []).append(v)  # type: ignore[arg-type]
    return {m: {k: torch.cat(v) for k, v in per.items()} for m, per in out.items()}  # type: ignore[arg-type]


def as_numpy(curves: Mapping[str, Mapping[str, Tensor]], metric: str) -> dict[str, np.ndarray]:
    return {m: per[metric].numpy() for m, per in curves.items()}


def prepare_out(out: str | os.PathLike[str]) -> Path:
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise SymmergeError(f"output {p} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SymmergeError(f"cannot create output directory {p}: {exc}") from exc
    return p
