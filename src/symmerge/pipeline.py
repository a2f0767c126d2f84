"""One-call pipeline: ``symmerge quickstart``.

Fits an INR zoo on the embedded MNIST digits, trains the ScaleGMN autoencoder
and the permutation-only baseline, trains two small CNN zoos, runs every
experiment at a reduced size and writes one report. Directory layout::

    OUT/zoo/{inrs,cnn-relu,cnn-tanh}.safetensors
    OUT/runs/{scalegmn,pna,cnn-relu,cnn-tanh}/  training runs
    OUT/experiments/<experiment>/            metrics.json, arrays, PNGs, report.md
    OUT/report.md, OUT/result.json           the combined report and the result object

A rerun reuses finished zoos and runs (delete them to start over).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from symmerge import __version__
from symmerge.errors import SymmergeError
from symmerge.limits import MAX_SEED, check_range
from symmerge.utils.io import atomic_path

if TYPE_CHECKING:
    from symmerge.experiments.results import (
        CNNInterpolationResult,
        ExperimentResult,
        LatentMapResult,
        OrbitCollapseResult,
        OrbitInterpolationResult,
        PairInterpolationResult,
    )
    from symmerge.training import TrainResult

T = TypeVar("T")


@dataclass(frozen=True)
class QuickstartSize:
    """How big each stage of the quickstart is."""

    images: int = 500
    stride: int = 10  # the embedded digits are sorted by class: a stride spans all ten
    per_image: int = 2
    inr_config: str = "quick"
    ae_epochs: int = 30
    pna_epochs: int = 10
    cnn_networks: int = 32
    cnn_ae_epochs: int = 150  # one step per epoch on a 32-network zoo
    cnn_config: str = "quick"
    orbit_runs: int = 4
    orbit_size: int = 48
    pairs: int = 64
    cnn_pairs: int = 8
    eval_images: int = 500  # held-out images per CNN interpolant
    collapse_networks: int = 5
    collapse_orbit: int = 32
    map_points: int = 500
    restarts: int = 4  # weight-matching restarts (0, the paper's setting, stalls often)
    ae_overrides: dict[str, Any] = field(default_factory=dict)


#: ``default`` is sized for a 10-minute budget on 2 CPU cores (its measured time:
#: BENCHMARKS.md, "Quickstart"); ``tiny`` is for tests.
SIZES: dict[str, QuickstartSize] = {
    "default": QuickstartSize(),
    "tiny": QuickstartSize(
        images=40, stride=100, per_image=2, ae_epochs=2, pna_epochs=1, cnn_networks=8,
        cnn_ae_epochs=2, orbit_runs=1,
        orbit_size=8, pairs=8, cnn_pairs=2, collapse_networks=2, collapse_orbit=4,
        map_points=60,
        ae_overrides={"encoder": {"d_hidden": 8, "num_layers": 1, "d_latent": 8},
                      "optim": {"batch_size": 16, "warmup_steps": 2}},
    ),
}


@dataclass(kw_only=True)
class QuickstartResult:
    """What the quickstart produced: its directory (zoos, runs), seed, size and version,
    the seconds of each stage, each autoencoder run's result (by run name: ``scalegmn``,
    ``pna``, ``cnn-relu``, ``cnn-tanh``), every experiment's typed result and the report
    (None until saved). :meth:`save` writes the experiments, ``report.md`` and
    ``result.json``."""

    out_dir: Path
    seed: int
    size: str
    version: str = __version__
    timings: dict[str, float] = field(default_factory=dict)
    training: dict[str, TrainResult]
    orbit_interpolation: OrbitInterpolationResult
    pair_interpolation: PairInterpolationResult
    cnn_interpolation: dict[str, CNNInterpolationResult]
    orbit_collapse: OrbitCollapseResult
    latent_map: LatentMapResult
    report: Path | None = None

    @property
    def experiments(self) -> dict[str, ExperimentResult]:
        """Every experiment's result, by its folder under ``experiments/``."""
        return {
            "orbit-interpolation": self.orbit_interpolation,
            "pair-interpolation": self.pair_interpolation,
            **{f"cnn-interpolation-{act}": r for act, r in self.cnn_interpolation.items()},
            "orbit-collapse": self.orbit_collapse,
            "latent-map": self.latent_map,
        }

    @property
    def metrics(self) -> dict[str, Any]:
        """The headline numbers: each run's metrics (``ae_<run>``), the primary barrier per
        method of each interpolation and the orbit-collapse statistics."""
        out: dict[str, Any] = {f"ae_{name.replace('-', '_')}": dict(r.metrics)
                               for name, r in self.training.items()}
        out["orbit_interpolation_barriers"] = self.orbit_interpolation.barriers()
        out["pair_interpolation_barriers"] = self.pair_interpolation.barriers()
        for act, r in self.cnn_interpolation.items():
            out[f"cnn_interpolation_{act}_barriers"] = r.barriers()
        out["orbit_collapse"] = {k: asdict(v) for k, v in self.orbit_collapse.encoders.items()}
        return out

    def to_json(self) -> dict[str, Any]:
        """``result.json``: the settings, timings, headline metrics and the report."""
        return {"out_dir": str(self.out_dir), "seed": self.seed, "version": self.version,
                "size": self.size, "timings": dict(self.timings), "metrics": self.metrics,
                "report": None if self.report is None else str(self.report)}

    def save(self, directory: str | os.PathLike[str] | None = None) -> Path:
        """Write every experiment (under ``experiments/``; those already saved there are
        not written again), ``report.md`` and ``result.json`` into ``directory``
        (default: ``out_dir``); returns ``result.json``'s path."""
        from symmerge.experiments import write_report
        from symmerge.experiments.findings import autoencoder_findings
        from symmerge.experiments.sections import quickstart_intro

        root = Path(directory if directory is not None else self.out_dir)
        for name, r in self.experiments.items():
            where = root / "experiments" / name
            if r.directory is None or r.directory.resolve() != where.resolve():
                r.save(where)
        s = SIZES[self.size]
        intro = quickstart_intro(
            version=self.version, seed=self.seed, size=self.size, images=s.images,
            per_image=s.per_image, stride=s.stride, cnn_networks=s.cnn_networks,
            root=self.out_dir, timings=self.timings,
            training={name: r.metrics for name, r in self.training.items()},
        )
        self.report = write_report(
            root / "report.md", list(self.experiments.values()), title="symmerge quickstart "
            "report", intro=intro, findings=autoencoder_findings(
                {name: r.metrics for name, r in self.training.items()}))
        path = root / "result.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True, default=str))
        return path


def quickstart(
    out: str | os.PathLike[str] = "quickstart-out",
    *,
    seed: int = 0,
    size: str = "default",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> QuickstartResult:
    """Run the whole chain on the embedded MNIST digits into ``out`` (zoos, runs, each
    experiment as it finishes, the report and ``result.json``); returns the result."""
    from symmerge.align import MatchOptions
    from symmerge.experiments import (
        cnn_interpolation,
        latent_map,
        orbit_collapse,
        orbit_interpolation,
        pair_interpolation,
    )
    from symmerge.experiments.results import prepare_directory
    from symmerge.training import train
    from symmerge.zoo.fit_inr import fit_inr_zoo
    from symmerge.zoo.train_cnn import train_cnn_zoo

    if size not in SIZES:
        raise SymmergeError(f"size must be one of {', '.join(SIZES)} (the quickstart's "
                            f"size); got {size!r}")
    s = SIZES[size]
    check_range(seed, "seed", 0, MAX_SEED)
    root = prepare_directory(out)
    zoo_dir, run_dir, exp_dir = root / "zoo", root / "runs", root / "experiments"
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def step(name: str, fn: Callable[[], T]) -> T:
        log(f"[quickstart] {name} ...")
        t0 = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"[quickstart] {name}: {timings[name]:.1f}s")
        return value

    def experiment(name: str, folder: str, fn: Callable[[], T]) -> T:
        """Run one experiment and save it (both timed as its stage)."""
        def run_and_save() -> T:
            result = fn()
            result.save(exp_dir / folder)  # type: ignore[attr-defined]
            return result
        return step(name, run_and_save)

    inrs = zoo_dir / "inrs.safetensors"
    if not inrs.is_file():
        step("fit INR zoo", lambda: fit_inr_zoo(
            "mnist-embedded", out=inrs, limit=s.images, stride=s.stride, per_image=s.per_image,
            seed=seed,
            config=s.inr_config, progress=progress))

    def train_once(zoo: Path, run: Path, epochs: int, label: str, encoder: dict[str, Any]
                   ) -> TrainResult:
        """Train the quick autoencoder into ``run`` unless it is finished; its result."""
        if not (run / "result.json").is_file():
            o = {**s.ae_overrides, "seed": seed,
                 "encoder": {**s.ae_overrides.get("encoder", {}), **encoder}}
            step(label, lambda: train(zoo, run, preset="quick", overrides=o, max_epochs=epochs,
                                      progress=progress))
        return _finished_run(run)

    training: dict[str, TrainResult] = {}
    sgmn, pna = run_dir / "scalegmn", run_dir / "pna"
    for run, epochs, enc in ((sgmn, s.ae_epochs, {}), (pna, s.pna_epochs, {"mode": "pna"})):
        training[run.name] = train_once(inrs, run, epochs, f"train autoencoder ({run.name})", enc)
    cnn_zoos = {}
    for act in ("relu", "tanh"):
        path = zoo_dir / f"cnn-{act}.safetensors"
        if not path.is_file():
            step(f"train CNN zoo ({act})", lambda path=path, act=act: train_cnn_zoo(
                "mnist-embedded", out=path, n=s.cnn_networks, activation=act, seed=seed,
                config=s.cnn_config, progress=progress))
        cnn_zoos[act] = path
    cnn_runs = {act: run_dir / f"cnn-{act}" for act in cnn_zoos}
    for act, path in cnn_zoos.items():
        training[cnn_runs[act].name] = train_once(
            path, cnn_runs[act], s.cnn_ae_epochs, f"train CNN autoencoder ({act})", {})

    # weight-matching restarts (0, the paper's setting, stalls often)
    matching = MatchOptions(restarts=s.restarts, seed=seed)
    orbit = experiment("orbit-interpolation (PD)", "orbit-interpolation",
                       lambda: orbit_interpolation(
                           inrs, run=sgmn, pna_run=pna, runs=s.orbit_runs,
                           orbit_size=s.orbit_size, transform="PD", seed=seed,
                           matching=matching))
    pair = experiment("pair-interpolation", "pair-interpolation", lambda: pair_interpolation(
        inrs, run=sgmn, pna_run=pna, pairs=s.pairs, split="heldout", seed=seed,
        matching=matching))  # images the autoencoders never saw
    cnn = {act: experiment(
        f"cnn-interpolation ({act})", f"cnn-interpolation-{act}",
        lambda path=path, act=act: cnn_interpolation(
            path, run=cnn_runs[act], pairs=s.cnn_pairs, split="all", top=None,
            eval_images=s.eval_images, seed=seed, matching=matching))
        for act, path in cnn_zoos.items()}
    collapse = experiment("orbit-collapse", "orbit-collapse", lambda: orbit_collapse(
        inrs, run=sgmn, pna_run=pna, networks=s.collapse_networks,
        orbit_size=s.collapse_orbit, background=s.map_points, seed=seed))
    lmap = experiment("latent-map", "latent-map", lambda: latent_map(
        inrs, run=sgmn, pna_run=pna, max_points=s.map_points, seed=seed))

    timings["total"] = round(time.perf_counter() - t_all, 2)
    result = QuickstartResult(
        out_dir=root, seed=seed, size=size, timings=timings, training=training,
        orbit_interpolation=orbit, pair_interpolation=pair, cnn_interpolation=cnn,
        orbit_collapse=collapse, latent_map=lmap,
    )
    result.save()
    return result


def _finished_run(run: Path) -> TrainResult:
    """The result in a finished run's ``result.json``; a damaged file is one clear error."""
    from symmerge.training import TrainResult

    try:
        return TrainResult.read(run)
    except SymmergeError as exc:
        raise SymmergeError(f"{exc}; delete {run} to train it again") from exc
