"""One-call pipeline: ``symmerge quickstart``.

Fits an INR zoo on the embedded MNIST digits, trains the ScaleGMN autoencoder
and the permutation-only baseline, trains two small CNN zoos, runs every
experiment at a reduced size and writes one report. Directory layout::

    OUT/zoo/{inrs,cnn-relu,cnn-tanh}.safetensors
    OUT/runs/{scalegmn,pna}/                 training runs
    OUT/experiments/<experiment>/            metrics.json, PNGs, report.md
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
from typing import Any, TypeVar

from symmerge import __version__
from symmerge.errors import SymmergeError
from symmerge.limits import MAX_SEED, check_range
from symmerge.utils.io import atomic_path, error_summary, read_text

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


#: ``default`` fits the 10-minute budget on 2 CPU cores; ``tiny`` is for tests.
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


@dataclass
class QuickstartResult:
    """What the quickstart produced; saved as ``OUT/result.json``."""

    out_dir: str
    seed: int
    version: str
    size: str
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    report: str = ""

    def save(self) -> Path:
        path = Path(self.out_dir) / "result.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True, default=str))
        return path


def _barrier_table(metrics: dict[str, Any]) -> dict[str, float]:
    """Primary-metric barrier per method of an interpolation experiment."""
    primary = metrics.get("primary_metric")
    return {m: s[primary]["barrier_mean"] for m, s in metrics.get("methods", {}).items()
            if primary in s}


def quickstart(
    out: str | os.PathLike[str] = "quickstart-out",
    *,
    seed: int = 0,
    size: str = "default",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> QuickstartResult:
    """Run the whole chain on the embedded MNIST digits; returns the result object."""
    from symmerge.experiments import (
        cnn_interpolation,
        latent_map,
        orbit_collapse,
        orbit_interpolation,
        pair_interpolation,
        write_report,
    )
    from symmerge.experiments.common import prepare_out
    from symmerge.training import train
    from symmerge.zoo.fit_inr import fit_inr_zoo
    from symmerge.zoo.train_cnn import train_cnn_zoo

    if size not in SIZES:
        raise SymmergeError(f"unknown quickstart size {size!r}; choose {', '.join(SIZES)}")
    s = SIZES[size]
    check_range(seed, "seed", 0, MAX_SEED)
    root = prepare_out(out)
    zoo_dir, run_dir, exp_dir = root / "zoo", root / "runs", root / "experiments"
    result = QuickstartResult(str(root), seed, __version__, size)
    t_all = time.perf_counter()

    def step(name: str, fn: Callable[[], T]) -> T:
        log(f"[quickstart] {name} ...")
        t0 = time.perf_counter()
        value = fn()
        result.timings[name] = round(time.perf_counter() - t0, 2)
        log(f"[quickstart] {name}: {result.timings[name]:.1f}s")
        return value

    inrs = zoo_dir / "inrs.safetensors"
    if not inrs.is_file():
        step("fit INR zoo", lambda: fit_inr_zoo(
            "mnist-embedded", out=inrs, limit=s.images, stride=s.stride, per_image=s.per_image,
            seed=seed,
            config=s.inr_config, progress=progress))
    def train_once(zoo: Path, run: Path, epochs: int, label: str, encoder: dict[str, Any]
                   ) -> dict[str, Any]:
        """Train the quick autoencoder into ``run`` unless it is finished; its metrics."""
        if not (run / "result.json").is_file():
            o = {**s.ae_overrides, "seed": seed,
                 "encoder": {**s.ae_overrides.get("encoder", {}), **encoder}}
            step(label, lambda: train(zoo, run, preset="quick", overrides=o, max_epochs=epochs,
                                      progress=progress))
        return _run_metrics(run)

    sgmn, pna = run_dir / "scalegmn", run_dir / "pna"
    for run, epochs, enc in ((sgmn, s.ae_epochs, {}), (pna, s.pna_epochs, {"mode": "pna"})):
        result.metrics[f"ae_{run.name}"] = train_once(
            inrs, run, epochs, f"train autoencoder ({run.name})", enc)
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
        result.metrics[f"ae_cnn_{act}"] = train_once(
            path, cnn_runs[act], s.cnn_ae_epochs, f"train CNN autoencoder ({act})", {})

    results = []
    orbit = step("orbit-interpolation (PD)", lambda: orbit_interpolation(
        inrs, exp_dir / "orbit-interpolation", run=sgmn, pna_run=pna, runs=s.orbit_runs,
        orbit_size=s.orbit_size, transform="PD", seed=seed, restarts=s.restarts))
    results.append(orbit)
    result.metrics["orbit_interpolation_barriers"] = _barrier_table(orbit.metrics)
    pair = step("pair-interpolation", lambda: pair_interpolation(
        inrs, exp_dir / "pair-interpolation", run=sgmn, pna_run=pna, pairs=s.pairs,
        split="heldout", seed=seed, restarts=s.restarts))  # images the autoencoders never saw
    results.append(pair)
    result.metrics["pair_interpolation_barriers"] = _barrier_table(pair.metrics)
    for act, path in cnn_zoos.items():
        cnn = step(f"cnn-interpolation ({act})", lambda path=path, act=act: cnn_interpolation(
            path, exp_dir / f"cnn-interpolation-{act}", run=cnn_runs[act], pairs=s.cnn_pairs,
            split="all", top=None, eval_images=s.eval_images, seed=seed, restarts=s.restarts))
        results.append(cnn)
        result.metrics[f"cnn_interpolation_{act}_barriers"] = _barrier_table(cnn.metrics)
    collapse = step("orbit-collapse", lambda: orbit_collapse(
        inrs, exp_dir / "orbit-collapse", run=sgmn, pna_run=pna,
        networks=s.collapse_networks, orbit_size=s.collapse_orbit, background=s.map_points,
        seed=seed))
    results.append(collapse)
    result.metrics["orbit_collapse"] = collapse.metrics.get("encoders", collapse.metrics)
    lmap = step("latent-map", lambda: latent_map(
        inrs, exp_dir / "latent-map", run=sgmn, pna_run=pna, max_points=s.map_points,
        seed=seed))
    results.append(lmap)

    result.timings["total"] = round(time.perf_counter() - t_all, 2)
    timing_lines = "\n".join(f"| {k} | {v:.1f} |" for k, v in result.timings.items())
    intro = (
        f"symmerge {__version__} quickstart, seed {seed}, size `{size}`: an INR zoo of "
        f"{s.images * s.per_image} SIRENs fitted to {s.images} embedded MNIST digits (every "
        f"{s.stride}th) "
        f"({s.per_image} per digit), a ScaleGMN autoencoder and a permutation-only (PNA) "
        f"baseline trained on it, and {s.cnn_networks} ReLU + {s.cnn_networks} tanh CNNs with "
        "a ScaleGMN autoencoder each.\n\n"
        f"Rerun: `symmerge quickstart --out {root} --seed {seed}`\n\n"
        "| stage | seconds |\n|---|---|\n" + timing_lines + "\n\n" + _ae_table(result.metrics)
    )
    report = write_report(root / "report.md", results, title="symmerge quickstart report",
                          intro=intro)
    result.report = str(report)
    result.save()
    return result


def _run_metrics(run: Path) -> dict[str, Any]:
    """The metrics in a finished run's ``result.json``; a damaged file is one clear error."""
    path = run / "result.json"
    try:
        metrics = json.loads(read_text(path, "run result"))["metrics"]
        if not isinstance(metrics, dict):
            raise TypeError(f"metrics is a {type(metrics).__name__}")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SymmergeError(f"cannot read run result {path}: {error_summary(exc)}; delete "
                            f"{run} to train it again") from exc
    return metrics


def _ae_table(metrics: dict[str, Any]) -> str:
    """Markdown: each INR autoencoder's test render MSE against the mean-image baseline,
    and each CNN autoencoder's decoded-vs-original test accuracy."""
    from symmerge.experiments.report import markdown_table

    inr = []
    for name, label in (("ae_scalegmn", "ScaleGMN"), ("ae_pna", "PNA (permutation-only)")):
        m = metrics.get(name, {})
        if "test_render_mse" in m and m.get("test_mean_image_mse"):
            inr.append({"ae": label, "mse": f"{m['test_render_mse']:.4g}",
                        "mean": f"{m['test_mean_image_mse']:.4g}",
                        "ratio": f"{m['test_render_mse'] / m['test_mean_image_mse']:.3f}"})
    cnn = []
    for act in ("relu", "tanh"):
        m = metrics.get(f"ae_cnn_{act}", {})
        if "test_acc_decoded" in m:
            cnn.append({"ae": f"ScaleGMN, {act} CNNs", "orig": f"{m['test_acc_original']:.3f}",
                        "dec": f"{m['test_acc_decoded']:.3f}",
                        "tau": f"{m['test_acc_kendall_tau']:.3f}"})
    parts = []
    if inr:
        parts.append(
            "Autoencoder reconstructions of the test-split INRs (render MSE to the INRs' own "
            "renders; the baseline predicts the training split's mean image):\n\n"
            + markdown_table(inr, [("ae", "autoencoder"), ("mse", "test render MSE"),
                                   ("mean", "mean-image MSE"), ("ratio", "ratio")]) + "\n"
        )
    if cnn:
        parts.append(
            "CNN autoencoders (test-split networks, held-out images):\n\n"
            + markdown_table(cnn, [("ae", "autoencoder"), ("orig", "accuracy, original"),
                                   ("dec", "accuracy, decoded"), ("tau", "Kendall tau")]) + "\n"
        )
    return "\n".join(parts)
