"""Experiments: interpolation (orbit pairs, seed pairs, CNN pairs), orbit collapse and
latent maps. The orbit experiments take generated orbits or a published one (an imported
orbit zoo, :func:`load_orbit_zoo`).

Each experiment is a function ``experiment(zoo, *, run=None, pna_run=None, ...)`` that
takes a zoo file or a :class:`~symmerge.zoo.Zoo` (and run directories or models trained
in memory, :func:`symmerge.models.as_run`), computes, writes nothing and returns a
typed result (:mod:`symmerge.experiments.results`): its settings, per-method or
per-encoder metrics as typed fields, curves or latents as arrays, the runs it used, its
wall time, seed and version. ``result.save(DIR)`` writes ``metrics.json``, the arrays
file, PNG plots and ``report.md``; ``result.figures()`` gives the plots as matplotlib
figures; :func:`write_report` composes several results into one report.
"""

from symmerge.experiments.cnn import cnn_interpolation, held_out_images
from symmerge.experiments.interpolation import orbit_interpolation, pair_interpolation
from symmerge.experiments.latents import MAPS, embed_2d, latent_map, orbit_collapse
from symmerge.experiments.metrics import (
    CurveSummary,
    barrier_areas,
    barriers,
    summarize_curves,
)
from symmerge.experiments.orbit_zoo import OrbitZoo, PublishedOrbit, load_orbit_zoo
from symmerge.experiments.report import ReportSection, markdown_table, write_json, write_report
from symmerge.experiments.results import (
    CNNInterpolationResult,
    CollapseStats,
    ExperimentResult,
    InterpolationResult,
    LatentMapResult,
    LatentMapStats,
    MethodSummary,
    OrbitCollapseResult,
    OrbitInterpolationResult,
    PairInterpolationResult,
    RunInfo,
)

__all__ = [
    "MAPS",
    "CNNInterpolationResult",
    "CollapseStats",
    "CurveSummary",
    "ExperimentResult",
    "InterpolationResult",
    "LatentMapResult",
    "LatentMapStats",
    "MethodSummary",
    "OrbitCollapseResult",
    "OrbitInterpolationResult",
    "OrbitZoo",
    "PairInterpolationResult",
    "PublishedOrbit",
    "ReportSection",
    "RunInfo",
    "barrier_areas",
    "barriers",
    "cnn_interpolation",
    "embed_2d",
    "held_out_images",
    "latent_map",
    "load_orbit_zoo",
    "markdown_table",
    "orbit_collapse",
    "orbit_interpolation",
    "pair_interpolation",
    "summarize_curves",
    "write_json",
    "write_report",
]
