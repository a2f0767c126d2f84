"""Experiments: interpolation (orbit pairs, seed pairs, CNN pairs), orbit collapse,
latent maps, and the shared report writer. The orbit experiments take generated orbits
or a published one (an imported orbit zoo, :func:`load_orbit_zoo`).

Each experiment is a function ``experiment(zoo, out, *, run=None, pna_run=None, ...)``
that writes ``metrics.json``, PNG plots and ``report.md`` into ``out`` and returns an
:class:`ExperimentResult`; :func:`write_report` composes several into one report.
"""

from symmerge.experiments.cnn import cnn_interpolation, held_out_images
from symmerge.experiments.common import CNN_METHODS, INR_METHODS, METHODS
from symmerge.experiments.interpolation import (
    InterpolationResult,
    orbit_interpolation,
    pair_interpolation,
)
from symmerge.experiments.latents import MAPS, embed_2d, latent_map, orbit_collapse
from symmerge.experiments.metrics import barrier_areas, barriers, summarize_curves
from symmerge.experiments.orbit_zoo import OrbitZoo, PublishedOrbit, load_orbit_zoo
from symmerge.experiments.report import (
    ExperimentResult,
    ReportSection,
    markdown_table,
    write_json,
    write_report,
)

__all__ = [
    "CNN_METHODS",
    "INR_METHODS",
    "MAPS",
    "METHODS",
    "ExperimentResult",
    "InterpolationResult",
    "OrbitZoo",
    "PublishedOrbit",
    "ReportSection",
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
