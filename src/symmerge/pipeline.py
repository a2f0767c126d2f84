"""One-call pipeline: ``symmerge quickstart``.

Fits an INR zoo on the embedded MNIST digits, trains the ScaleGMN autoencoder
and the permutation-only baseline, trains two CNN zoos and their autoencoders, runs
every experiment and writes one report, at one of the :data:`SIZES`. Directory layout::

    OUT/zoo/{inrs,cnn-relu,cnn-tanh}.safetensors
    OUT/runs/{scalegmn,pna,cnn-relu,cnn-tanh}/  training runs
    OUT/experiments/<experiment>/            metrics.json, arrays, PNGs, report.md
    OUT/report.md, OUT/result.json           the combined report and the result object
    OUT/quickstart.json                      the seed, size and each finished stage's seconds

A rerun resumes: finished zoos, runs and experiments are reused (delete them to start
over), an interrupted zoo or run continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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



@dataclass(frozen=True)
class QuickstartSize:
    """How big each stage of the quickstart is.

    The autoencoder runs (``scalegmn``, ``pna``, ``cnn-relu``, ``cnn-tanh``) train the
    ``presets`` preset (default ``quick``) for ``ae_epochs`` / ``pna_epochs`` /
    ``cnn_ae_epochs`` epochs, with ``ae_overrides`` and then their ``run_overrides``
    (by run name; a run's ``optim.max_epochs`` there replaces its epochs) on top. The CNN
    runs split their zoo ``cnn_split`` (train / val / test fractions): the CNN
    interpolation draws its ``cnn_pairs`` pairs from their test split only.
    ``map_points`` None: the orbit-collapse background and the latent map take the whole
    test split. ``stage_seconds``: each stage's expected seconds (for the ETA)."""

    images: int = 500
    stride: int = 10  # the embedded digits are sorted by class: a stride spans all ten
    per_image: int = 2
    inr_config: str = "quick"
    ae_epochs: int = 30
    pna_epochs: int = 10
    cnn_networks: int = 64
    cnn_ae_epochs: int = 150  # one step per epoch on 32 training networks
    cnn_config: str = "quick"
    cnn_split: tuple[float, float, float] = (0.5, 0.1, 0.4)  # 26 test CNNs for 8 pairs
    orbit_runs: int = 4
    orbit_size: int = 48
    pairs: int = 64
    cnn_pairs: int = 8
    eval_images: int = 500  # held-out images per CNN interpolant
    collapse_networks: int = 5
    collapse_orbit: int = 32
    map_points: int | None = 500
    restarts: int = 4  # weight-matching restarts (0, the paper's setting, stalls often)
    ae_overrides: dict[str, Any] = field(default_factory=dict)
    run_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    presets: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def epochs(self, run: str) -> int:
        """How many epochs the autoencoder run ``run`` trains (``optim.max_epochs`` of its
        overrides, the run's own over the shared ``ae_overrides``, else the size's)."""
        from symmerge.models.train_config import merge_overrides

        override = merge_overrides(self.ae_overrides, self.run_overrides.get(run, {})).get(
            "optim", {}).get("max_epochs")
        if override is not None:
            return int(override)
        return {"scalegmn": self.ae_epochs, "pna": self.pna_epochs}.get(run, self.cnn_ae_epochs)

    def overrides(self, run: str, seed: int) -> dict[str, Any]:
        """The configuration overrides of the autoencoder run ``run``."""
        from symmerge.models.train_config import merge_overrides

        own: dict[str, Any] = {"seed": seed}
        if run == "pna":
            own["encoder"] = {"mode": "pna"}
        if run.startswith("cnn-"):
            own["split"] = {"fractions": list(self.cnn_split)}
        out = copy.deepcopy(merge_overrides(merge_overrides(self.ae_overrides, own),
                                   self.run_overrides.get(run, {})))
        out.get("optim", {}).pop("max_epochs", None)  # given as max_epochs
        return out


#: Stage names, in order (the keys of ``stage_seconds`` and of the result's ``timings``).
STAGES = (
    "fit INR zoo", "train autoencoder (scalegmn)", "train autoencoder (pna)",
    "train CNN zoo (relu)", "train CNN zoo (tanh)", "train CNN autoencoder (relu)",
    "train CNN autoencoder (tanh)", "orbit-interpolation (PD)", "pair-interpolation",
    "cnn-interpolation (relu)", "cnn-interpolation (tanh)", "orbit-collapse", "latent-map",
)

#: ``default`` is sized for a 10-minute budget on 2 CPU cores (its measured time:
#: BENCHMARKS.md, "Quickstart"); ``full`` uses all 5,000 embedded digits and 1,000 CNNs
#: per activation, sized for 90 minutes (BENCHMARKS.md, "Full-size quickstart");
#: ``tiny`` is for tests. The stage estimates come from timed runs on 2 cores.
SIZES: dict[str, QuickstartSize] = {
    "default": QuickstartSize(stage_seconds=dict(zip(STAGES, (
        31, 58, 33, 9, 9, 90, 120, 7, 3, 6, 12, 28, 6), strict=True))),
    # The zoo stages' arguments are fixed: prebuilt zoos of these calls are reused.
    "full": QuickstartSize(
        images=5000, stride=1, per_image=2, cnn_networks=1000,
        cnn_split=(0.75, 0.1, 0.15),  # 150 test CNNs for 64 pairs (failed ones excluded)
        # tuned: see BENCHMARKS.md "Full-size quickstart" (every autoencoder: a code as wide
        # as the readout's hidden layer, d_hidden 32; the INR runs take batches of 64)
        ae_epochs=30, pna_epochs=6, cnn_ae_epochs=30,
        ae_overrides={"encoder": {"d_hidden": 32, "d_latent": 64}, "decoder_widths": [4, 8]},
        # and a learning rate that decays over the run (a half cosine): test render ratio
        # 0.195 instead of 0.229 with the constant rate (PNA: 0.336 instead of 0.452)
        run_overrides={"scalegmn": {"optim": {"batch_size": 64, "schedule": "cosine"}},
                       "pna": {"optim": {"batch_size": 64, "schedule": "cosine"}}},
        orbit_runs=16, orbit_size=64, pairs=256, cnn_pairs=64, eval_images=1000,
        collapse_networks=16, collapse_orbit=64, map_points=None,
        # measured in one call, 2 cores, OMP_NUM_THREADS=1 (BENCHMARKS.md "Full-size
        # quickstart"); for the epochs and autoencoders above (update them together)
        stage_seconds=dict(zip(STAGES, (
            560, 2120, 450, 320, 360, 210, 230, 80, 20, 165, 175, 100, 30), strict=True)),
    ),
    "tiny": QuickstartSize(
        images=40, stride=100, per_image=2, ae_epochs=2, pna_epochs=1, cnn_networks=16,
        cnn_ae_epochs=2, orbit_runs=1,
        orbit_size=8, pairs=8, cnn_pairs=2, collapse_networks=2, collapse_orbit=4,
        map_points=60,
        ae_overrides={"encoder": {"d_hidden": 8, "num_layers": 1, "d_latent": 8},
                      "optim": {"batch_size": 16, "warmup_steps": 2}},
        stage_seconds=dict(zip(STAGES, (
            25, 5, 2, 4, 4, 2, 2, 5, 5, 5, 4, 20, 2), strict=True)),
    ),
}


@dataclass(kw_only=True)
class QuickstartResult:
    """What the quickstart produced: its directory (zoos, runs), seed, size and version,
    the seconds of each stage (as it ran, in this call or an earlier one) and their
    ``total``, each autoencoder run's result (by run name: ``scalegmn``, ``pna``,
    ``cnn-relu``, ``cnn-tanh``), every experiment's typed result and the report (None
    until saved). :meth:`save` writes the experiments, ``report.md`` and
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
        from symmerge.experiments.report import write_json
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
        # strict JSON (a NaN, e.g. a Kendall tau over fewer than 2 networks, is null)
        return write_json(root / "result.json", self.to_json())


def quickstart(
    out: str | os.PathLike[str] = "quickstart-out",
    *,
    seed: int = 0,
    size: str = "default",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> QuickstartResult:
    """Run the whole chain on the embedded MNIST digits into ``out`` (zoos, runs, each
    experiment as it finishes, the report and ``result.json``); returns the result.

    ``log`` gets a line as each stage starts (its number, the time so far and an ETA)
    and ends. A rerun into the same ``out`` resumes: finished stages are reused (zoos,
    training runs, saved experiments), a zoo resumes from its finished chunks and a
    training run from its last epoch. ``out`` records the seed and size it was made with
    (``quickstart.json``, with each stage's seconds): another seed or size is an error.
    """
    from symmerge.align import MatchOptions
    from symmerge.experiments import (
        CNNInterpolationResult,
        LatentMapResult,
        OrbitCollapseResult,
        OrbitInterpolationResult,
        PairInterpolationResult,
        cnn_interpolation,
        latent_map,
        orbit_collapse,
        orbit_interpolation,
        pair_interpolation,
    )
    from symmerge.experiments.results import prepare_directory
    from symmerge.training import train
    from symmerge.training.rundir import last_checkpoint
    from symmerge.zoo.fit_inr import fit_inr_zoo
    from symmerge.zoo.train_cnn import train_cnn_zoo

    if size not in SIZES:
        raise SymmergeError(f"size must be one of {', '.join(SIZES)} (the quickstart's "
                            f"size); got {size!r}")
    s = SIZES[size]
    check_range(seed, "seed", 0, MAX_SEED)
    root = prepare_directory(out)
    zoo_dir, run_dir, exp_dir = root / "zoo", root / "runs", root / "experiments"
    ledger = _Ledger.open(root, seed, size, s)
    inrs = zoo_dir / "inrs.safetensors"
    cnn_zoos = {act: zoo_dir / f"cnn-{act}.safetensors" for act in ("relu", "tanh")}
    _check_zoo(inrs, {"limit": s.images, "stride": s.stride, "per_image": s.per_image,
                      "seed": seed}, _inr_config(s.inr_config))
    for act, path in cnn_zoos.items():
        _check_zoo(path, {"n": s.cnn_networks, "seed": seed}, _cnn_config(s.cnn_config),
                   activation=act)
    sgmn, pna = run_dir / "scalegmn", run_dir / "pna"
    cnn_runs = {act: run_dir / f"cnn-{act}" for act in cnn_zoos}
    for run in (sgmn, pna, *cnn_runs.values()):  # before anything is written
        _check_run(run, seed)
    ledger.save()
    matching = MatchOptions(restarts=s.restarts, seed=seed)
    experiments: dict[str, ExperimentResult] = {}

    def zoo_stage(label: str, path: Path, build: Callable[[], object]) -> _Stage:
        shards = path.with_name(path.name + ".shards")
        return _Stage(label, path.is_file, build,
                      lambda: "resumes from its finished chunks" if shards.is_dir() else "")

    def train_stage(label: str, zoo: Path, run: Path, zoo_stage: str) -> _Stage:
        def fit() -> object:
            return train(zoo, run, preset=s.presets.get(run.name, "quick"),
                         overrides=s.overrides(run.name, seed),
                         max_epochs=s.epochs(run.name), progress=progress)
        return _Stage(label, (run / "result.json").is_file, fit,
                      lambda: ("resumes from its last epoch"
                               if last_checkpoint(run).is_file() else ""), (zoo_stage,))

    def experiment_stage(label: str, folder: str, kind: type[ExperimentResult],
                         compute: Callable[[], ExperimentResult], needs: tuple[str, ...],
                         ) -> _Stage:
        where = exp_dir / folder

        def done() -> bool:
            if folder not in experiments:
                found = _saved_experiment(kind, where, seed, log)
                if found is not None:
                    experiments[folder] = found
            return folder in experiments

        def run_and_save() -> object:
            result = compute()
            result.save(where)
            experiments[folder] = result
            return result
        return _Stage(label, done, run_and_save, needs=needs)

    inr_runs = ("fit INR zoo", "train autoencoder (scalegmn)", "train autoencoder (pna)")
    stages = [
        zoo_stage("fit INR zoo", inrs, lambda: fit_inr_zoo(
            "mnist-embedded", out=inrs, limit=s.images, stride=s.stride,
            per_image=s.per_image, seed=seed, config=s.inr_config, progress=progress)),
        train_stage("train autoencoder (scalegmn)", inrs, sgmn, "fit INR zoo"),
        train_stage("train autoencoder (pna)", inrs, pna, "fit INR zoo"),
        *(zoo_stage(f"train CNN zoo ({act})", path, lambda path=path, act=act: train_cnn_zoo(
            "mnist-embedded", out=path, n=s.cnn_networks, activation=act, seed=seed,
            config=s.cnn_config, progress=progress)) for act, path in cnn_zoos.items()),
        *(train_stage(f"train CNN autoencoder ({act})", path, cnn_runs[act],
                      f"train CNN zoo ({act})") for act, path in cnn_zoos.items()),
        experiment_stage(
            "orbit-interpolation (PD)", "orbit-interpolation", OrbitInterpolationResult,
            lambda: orbit_interpolation(
                inrs, run=sgmn, pna_run=pna, runs=s.orbit_runs, orbit_size=s.orbit_size,
                transform="PD", seed=seed, matching=matching, progress=progress), inr_runs),
        experiment_stage(  # images the autoencoders never saw
            "pair-interpolation", "pair-interpolation", PairInterpolationResult,
            lambda: pair_interpolation(inrs, run=sgmn, pna_run=pna, pairs=s.pairs,
                                       split="heldout", seed=seed, matching=matching,
                                       progress=progress), inr_runs),
        *(experiment_stage(  # networks the CNN autoencoder never saw
            f"cnn-interpolation ({act})", f"cnn-interpolation-{act}", CNNInterpolationResult,
            lambda path=path, act=act: cnn_interpolation(
                path, run=cnn_runs[act], pairs=s.cnn_pairs, split="test", top=None,
                eval_images=s.eval_images, seed=seed, matching=matching, progress=progress),
            (f"train CNN zoo ({act})", f"train CNN autoencoder ({act})"))
          for act, path in cnn_zoos.items()),
        experiment_stage(
            "orbit-collapse", "orbit-collapse", OrbitCollapseResult,
            lambda: orbit_collapse(inrs, run=sgmn, pna_run=pna, networks=s.collapse_networks,
                                   orbit_size=s.collapse_orbit,
                                   background=_test_split_size(inrs, sgmn, s.map_points),
                                   seed=seed, progress=progress), inr_runs),
        experiment_stage(
            "latent-map", "latent-map", LatentMapResult,
            lambda: latent_map(inrs, run=sgmn, pna_run=pna,
                               max_points=_test_split_size(inrs, sgmn, s.map_points),
                               seed=seed, progress=progress), inr_runs),
    ]
    assert [st.label for st in stages] == list(STAGES)
    _run_stages(stages, s.stage_seconds, ledger, log)

    training = {run.name: _finished_run(run) for run in (sgmn, pna, *cnn_runs.values())}
    result = QuickstartResult(
        out_dir=root, seed=seed, size=size, timings=ledger.timings(), training=training,
        orbit_interpolation=experiments["orbit-interpolation"],  # type: ignore[arg-type]
        pair_interpolation=experiments["pair-interpolation"],  # type: ignore[arg-type]
        cnn_interpolation={act: experiments[f"cnn-interpolation-{act}"]  # type: ignore[misc]
                           for act in cnn_zoos},
        orbit_collapse=experiments["orbit-collapse"],  # type: ignore[arg-type]
        latent_map=experiments["latent-map"],  # type: ignore[arg-type]
    )
    result.timings["total"] = round(sum(result.timings.values()), 2)
    result.save()
    return result


# ------------------------------------------------------------------ stages
@dataclass(frozen=True)
class _Stage:
    """One stage: its label, whether its output is there, the work, and a note on what a
    rerun of an interrupted stage picks up (empty: nothing)."""

    label: str
    done: Callable[[], bool]
    run: Callable[[], object]
    resumes: Callable[[], str] = lambda: ""
    #: the labels of the stages whose outputs this one reads: when one of them runs in a
    #: call, this one runs too (a finished training run is then only read back)
    needs: tuple[str, ...] = ()


def _clock(seconds: float) -> str:
    """``1:02:03`` / ``2:03``."""
    m, sec = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _run_stages(stages: list[_Stage], estimates: dict[str, float], ledger: _Ledger,
                log: Callable[[str], None], clock: Callable[[], float] = time.perf_counter
                ) -> None:
    """Run the stages that are not done (when this call starts) and those that need
    one of them (:attr:`_Stage.needs`), in order, recording
    each one's seconds; log a line as each starts (index, time so far, ETA of the rest)
    and ends. The ETA is the size's estimates of the stages left to run, scaled by how
    this call's finished stages compared with theirs."""
    n, t_start = len(stages), clock()
    todo = [not st.done() for st in stages]
    position = {st.label: i for i, st in enumerate(stages)}
    for i, st in enumerate(stages):  # stages in order: what they need comes first
        todo[i] = todo[i] or any(todo[position[label]] for label in st.needs)
    spent = expected = 0.0
    for i, st in enumerate(stages, 1):
        head = f"[{i}/{n}] {st.label}"
        if not todo[i - 1]:
            log(f"{head}: done earlier, reused")
            continue
        left = [x.label for x, t in zip(stages[i - 1:], todo[i - 1:], strict=True) if t]
        scale = spent / expected if expected > 0 else 1.0
        eta = scale * sum(estimates.get(label, 0.0) for label in left)
        note = st.resumes()
        log(f"{head}{f' ({note})' if note else ''} ... elapsed "
            f"{_clock(clock() - t_start)}, ETA {_clock(eta)}")
        t0 = clock()
        st.run()
        seconds = clock() - t0
        ledger.finish(st.label, seconds)
        spent += seconds
        expected += estimates.get(st.label, seconds)
        log(f"{head}: {_clock(seconds)}")


@dataclass
class _Ledger:
    """``OUT/quickstart.json``: the seed, size and size settings an output directory was
    made with, and the seconds each finished stage took; written by :meth:`save`."""

    path: Path
    data: dict[str, Any]

    FILE: ClassVar[str] = "quickstart.json"

    @classmethod
    def open(cls, root: Path, seed: int, size: str, settings: QuickstartSize) -> _Ledger:
        """The directory's ledger (a new one if it has none; nothing is written);
        another seed or size than the ledger's is an error."""
        from symmerge.utils.io import read_text

        path = root / cls.FILE
        made = {"seed": seed, "size": size, "settings": json.loads(json.dumps(asdict(settings)))}
        made["settings"].pop("stage_seconds")  # the ETA's estimates change no result
        if not path.is_file():
            return cls(path, {**made, "stages": {}})
        try:
            data = json.loads(read_text(path, "quickstart ledger"))
            old = {k: data[k] for k in made}
            if not isinstance(data.get("stages"), dict):
                raise TypeError("no stages")
        except (ValueError, KeyError, TypeError) as exc:
            raise SymmergeError(f"cannot read {path} ({type(exc).__name__}: {exc}); delete "
                                f"it to adopt the directory's finished stages") from exc
        diff = [k for k in ("seed", "size") if old[k] != made[k]] + [
            f"{k}: {old['settings'].get(k)!r} -> {v!r}" for k, v in made["settings"].items()
            if old["settings"].get(k) != v and old["size"] == made["size"]]
        if diff:
            raise SymmergeError(
                f"{root} holds a quickstart of seed {old['seed']}, size {old['size']!r}; "
                f"this one is seed {seed}, size {size!r} (differs in: {', '.join(diff)}). "
                "Choose another --out, or delete it to start over")
        return cls(path, data)

    def finish(self, label: str, seconds: float) -> None:
        """Record that stage ``label`` took ``seconds``."""
        self.data["stages"][label] = round(seconds, 2)
        self.save()

    def timings(self) -> dict[str, float]:
        """Each finished stage's seconds, in the stages' order."""
        stages = self.data["stages"]
        return {k: stages[k] for k in STAGES if k in stages}

    def save(self) -> None:
        """Write the ledger (atomically)."""
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({**self.data, "version": __version__}, indent=2))


def _inr_config(name: str) -> dict[str, Any]:
    from symmerge.zoo.fit_inr import inr_config

    return {k: v for k, v in inr_config(name).to_dict().items() if k != "micro_batch"}


def _cnn_config(name: str) -> dict[str, Any]:
    from symmerge.zoo.train_cnn import cnn_config

    return cnn_config(name).to_dict()


def _check_zoo(path: Path, expected: dict[str, Any], config: dict[str, Any],
               activation: str | None = None) -> None:
    """A zoo already at ``path`` must not come from another call than this quickstart's
    (what its provenance records of the call); else one clear error. A missing zoo, and
    what a zoo does not record, pass."""
    from symmerge.zoo import Zoo

    if not path.is_file():
        return
    zoo = Zoo(path)
    made = {k: zoo.provenance[k] for k in (*expected, "config") if k in zoo.provenance}
    want = {**expected, "config": config}
    if activation is not None:
        made["activation"] = getattr(zoo.spec, "activation", None)
        want["activation"] = activation
    diff = [f"{k} {made[k]!r} (wanted {want[k]!r})" for k in made
            if json.dumps(made[k], sort_keys=True) != json.dumps(want[k], sort_keys=True)]
    if diff:
        raise SymmergeError(f"zoo {path} was built with other settings: {', '.join(diff)}; "
                            "delete it, or choose another --out")


def _check_run(run: Path, seed: int) -> None:
    """A training run already in ``run`` must have this quickstart's seed, and a finished
    one a readable result; else one clear error."""
    from symmerge.models.train_config import load_config

    if (run / "result.json").is_file():
        _finished_run(run)
    if (run / "config.yaml").is_file() and (found := load_config(run / "config.yaml").seed) != seed:
        raise SymmergeError(f"run {run} was trained with seed {found}, this quickstart's "
                            f"seed is {seed}; delete it, or choose another --out")


def _saved_experiment(kind: type[ExperimentResult], where: Path, seed: int,
                      log: Callable[[str], None]) -> ExperimentResult | None:
    """The experiment saved in ``where`` by an earlier run of this seed and this symmerge
    version, or None (none saved, or a record of another version or one this version
    cannot read: it is computed again)."""
    if not (where / kind.record_file).is_file():
        return None
    try:
        result = kind.load(where)
    except SymmergeError as exc:
        log(f"{where} is computed again: {exc}")
        return None
    if result.version != __version__:
        log(f"{where} is computed again: it was saved by symmerge {result.version}")
        return None
    return result if result.seed == seed else None


def _test_split_size(zoo: Path, run: Path, points: int | None) -> int:
    """``points``, or for None the size of the test split of ``zoo`` under ``run``."""
    if points is not None:
        return points
    from symmerge.models.train_config import load_config
    from symmerge.zoo import Zoo

    split = load_config(run / "config.yaml").split
    return len(Zoo(zoo).split("test", seed=split.seed, fractions=split.fractions,
                              by_image=split.by_image))


def _finished_run(run: Path) -> TrainResult:
    """The result in a finished run's ``result.json``; a damaged file is one clear error."""
    from symmerge.training import TrainResult

    try:
        return TrainResult.read(run)
    except SymmergeError as exc:
        raise SymmergeError(f"{exc}; delete {run} to train it again") from exc
