"""Typed results of the experiments.

An experiment computes and returns one of these; it writes nothing. ``result.save(DIR)``
writes ``metrics.json`` (:meth:`ExperimentResult.to_json`), the arrays file (curves or
latent distances and maps), the PNG plots (:meth:`ExperimentResult.figures`, matplotlib
``Figure`` objects) and ``report.md`` (:meth:`ExperimentResult.sections`, prose from
:mod:`symmerge.experiments.sections`), each atomically; :func:`write_report` composes
several results into one report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch

from symmerge import __version__
from symmerge.align.matching import MatchOptions
from symmerge.errors import SymmergeError
from symmerge.experiments.metrics import CurveSummary
from symmerge.experiments.report import ReportSection, write_json, write_report
from symmerge.utils.io import save_safetensors

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from symmerge.experiments.evidence import Finding


_R = TypeVar("_R", bound="ExperimentResult")


# ------------------------------------------------------------ shared parts
@dataclass(frozen=True)
class RunInfo:
    """An autoencoder run an experiment used: the parameter that took it (``role``:
    ``run`` or ``pna_run``), its directory, training preset, encoder mode and seed."""

    role: str
    path: str
    preset: str
    encoder_mode: str
    seed: int


@dataclass(frozen=True)
class SplitSettings:
    """How a zoo is split into train / val / test (:meth:`symmerge.zoo.Zoo.splits`): the
    autoencoder run's own settings, so that held-out networks are the ones it never saw."""

    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    by_image: bool = True

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> SplitSettings:
        """From a run's ``split`` configuration (a mapping)."""
        return cls(int(config["seed"]), tuple(float(f) for f in config["fractions"]),  # type: ignore[arg-type]
                   bool(config.get("by_image", True)))


@dataclass(frozen=True)
class OrbitSummary:
    """One published orbit: its image (``image_index``; test or training split, if known),
    label, number of members, the first member's number and the members' zoo rows."""

    image_index: int
    is_test: bool | None
    label: int
    members: int
    first_member: int
    rows: tuple[int, ...]

    def describe(self) -> str:
        """E.g. ``test image 3665 (label 6, 512 members)``."""
        split = {True: "test ", False: "training ", None: ""}[self.is_test]
        return f"{split}image {self.image_index} (label {self.label}, {self.members} members)"


@dataclass(frozen=True)
class NetworkSelection:
    """Where an experiment's networks came from: the zoo ``split`` (under the autoencoder
    run's split settings), the networks of that split it could draw from (``pool``) and
    how many it used (``used``: endpoints, orbit bases, background), how many of those
    the autoencoder trained on (``in_training_split``; None: no autoencoder run), and the
    failed networks (:mod:`symmerge.zoo.quality`: diverged or at chance) of the split
    left out (``failed_excluded``, by ``failed_rule``)."""

    split: str
    pool: int
    used: int
    in_training_split: int | None
    failed_excluded: int = 0
    failed_rule: str = ""


def _json(value: Any) -> Any:
    """Plain JSON data of ``value`` (dataclasses, tuples, paths, arrays)."""
    if hasattr(value, "__dataclass_fields__"):
        return _json(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True, kw_only=True)
class ExperimentSettings:
    """What every experiment was run with: the seed, the autoencoder runs (paths), the
    split its networks were drawn from and the split settings."""

    seed: int
    run: str | None = None
    pna_run: str | None = None
    split: str | None = None
    split_settings: SplitSettings = SplitSettings()

    def to_json(self) -> dict[str, Any]:
        return _json(self)


def prepare_directory(directory: str | os.PathLike[str]) -> Path:
    """``directory``, created if missing; refused if it is a file or cannot be made."""
    p = Path(directory)
    if p.exists() and not p.is_dir():
        raise SymmergeError(f"output {p} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SymmergeError(f"cannot create output directory {p}: {exc}") from exc
    return p


@dataclass(kw_only=True)
class ExperimentResult:
    """An experiment's result: its ``settings``, the runs it used, its wall time
    (``seconds``), the symmerge version, and ``directory``: where :meth:`save` last wrote
    it (None: not saved)."""

    #: the experiment's name (its CLI command)
    experiment: ClassVar[str] = ""
    #: the file of arrays :meth:`save` writes (None: none)
    arrays_file: ClassVar[str | None] = None
    #: the whole result, written last by :meth:`save`, read back by :meth:`load`
    record_file: ClassVar[str] = "record.safetensors"

    settings: ExperimentSettings
    runs: tuple[RunInfo, ...] = ()
    seconds: float = 0.0
    version: str = __version__
    #: where the networks came from (None: a published orbit, no zoo split)
    selection: NetworkSelection | None = None
    directory: Path | None = field(default=None, compare=False, repr=False)

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def metrics_path(self) -> Path | None:
        return None if self.directory is None else self.directory / "metrics.json"

    @property
    def report_path(self) -> Path | None:
        return None if self.directory is None else self.directory / "report.md"

    def to_json(self) -> dict[str, Any]:
        """Everything in numbers (``metrics.json``); deterministic for a fixed seed except
        ``seconds`` and the methods' ``timing``."""
        out = {"experiment": self.experiment, "symmerge_version": self.version,
               "settings": self.settings.to_json(), "seconds": self.seconds,
               "runs": _json(self.runs),
               "encoder_modes": {r.role: r.encoder_mode for r in self.runs}}
        if self.selection is not None:
            out["selection"] = _json(self.selection)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of :attr:`arrays_file` (curves, distances, embeddings)."""
        return {}

    def figures(self) -> dict[str, Figure]:
        """The plots, by file name."""
        return {}

    def sections(self, directory: str | os.PathLike[str] | None = None) -> list[ReportSection]:
        """The report's sections; images link into ``directory`` (default: where the
        result was saved; none if it was not)."""
        return []

    def findings(self) -> list[Finding]:
        """The plain-words summary lines of the report's top (which method wins, what
        cannot be judged at this size): :mod:`symmerge.experiments.findings`."""
        return []

    def _images(self, directory: str | os.PathLike[str] | None) -> Path | None:
        where = directory if directory is not None else self.directory
        return None if where is None else Path(where)

    @classmethod
    def load(cls: type[_R], directory: str | os.PathLike[str]) -> _R:
        """The result :meth:`save` wrote into ``directory`` (its :attr:`record_file`; the
        class asked for or a subclass), with ``directory`` set. A missing, damaged or
        mismatched record is a :class:`SymmergeError` (:class:`RecordError`)."""
        from symmerge.utils.records import load_record

        d = Path(directory)
        result = load_record(cls, d / cls.record_file)
        result.directory = d
        return result

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the arrays file, the plots, ``report.md``, ``metrics.json`` and (last) the
        whole result (:attr:`record_file`, for :meth:`load`) into ``directory`` (created if
        missing), each atomically; returns the files."""
        d = prepare_directory(directory)
        files = []
        arrays = self.arrays()
        if self.arrays_file is not None and arrays:
            meta = {"settings": json.dumps(self.settings.to_json(), sort_keys=True)}
            files.append(save_safetensors(
                d / self.arrays_file,
                {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}, meta))
        from symmerge.experiments.plots import save_figure

        files += [save_figure(fig, d / name) for name, fig in self.figures().items()]
        files.append(write_report(d / "report.md", self.sections(d), title=None,
                                  findings=self.findings()))
        files.append(write_json(d / "metrics.json", self.to_json()))
        from symmerge.utils.records import save_record

        files.append(save_record(self, d / self.record_file, exclude=("directory",)))
        self.directory = d
        return files


# ------------------------------------------------------------ interpolation
@dataclass(frozen=True)
class MethodSummary:
    """One method of an interpolation experiment: per metric the :class:`CurveSummary`,
    whether its endpoints are the input networks (``exact_endpoints``), the mean parameter
    distance between its paths' endpoints, the mean distance of its lifted networks to
    their templates (methods that lift, else None) and the seconds spent building its
    paths (alignment, canonicalization, encoding; evaluation excluded)."""

    metrics: dict[str, CurveSummary]
    exact_endpoints: bool
    endpoint_distance: float
    seconds_total: float
    seconds_per_pair: float
    template_distance: float | None = None

    def __getitem__(self, metric: str) -> CurveSummary:
        return self.metrics[metric]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: {n: v for n, v in asdict(s).items()
                if not (n == "barrier_vs_naive" and v is None)}
            for k, s in self.metrics.items()
        }
        out.update(exact_endpoints=self.exact_endpoints, endpoint_distance=self.endpoint_distance)
        if self.template_distance is not None:
            out["template_distance"] = self.template_distance
        return out


@dataclass(frozen=True, kw_only=True)
class InterpolationSettings(ExperimentSettings):
    """Common settings of the interpolation experiments: alpha ``steps``, the weight
    matching (``matching``) and ``ae-lift``'s matching strategy (None: no run)."""

    steps: int
    matching: MatchOptions = MatchOptions()
    ae_lift_strategy: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "wm_restarts": self.matching.restarts,
                "wm_max_iter": self.matching.max_iter}


@dataclass(frozen=True, kw_only=True)
class OrbitInterpolationSettings(InterpolationSettings):
    """Orbit interpolation: generated orbits (``zoo``, ``orbit_size``, ``transform``,
    ``split``) or a published one (``orbit_zoo``, its ``orbits`` and their largest render
    deviation); ``runs`` orbits, noise std ``perturbation``, the image source (None: no
    ground truth) and whether it was assumed."""

    zoo: str | None = None
    orbit_zoo: str | None = None
    orbits: tuple[OrbitSummary, ...] = ()
    orbit_max_deviation: float | None = None
    orbit_size: int | None = None
    transform: str | None = None
    runs: int
    perturbation: float
    data_source: str | None = None
    data_source_assumed: bool = False


@dataclass(frozen=True, kw_only=True)
class PairInterpolationSettings(InterpolationSettings):
    """Pair interpolation: the zoo, the number of pairs and the image source."""

    zoo: str
    pairs: int
    data_source: str
    data_source_assumed: bool = False


@dataclass(frozen=True, kw_only=True)
class CNNInterpolationSettings(InterpolationSettings):
    """CNN interpolation: the zoo, pairs, the ``top`` filter, the evaluation images
    (source, whether assumed, how they are held out, how many), the methods whose paths
    were repaired and the number of training-split images they measured activations on."""

    zoo: str
    pairs: int
    top: int | None
    images: str
    images_assumed: bool
    held_out: str
    eval_images: int
    repaired: tuple[str, ...] = ()
    repair_images: int = 0


@dataclass(frozen=True)
class LossTarget:
    """What an orbit interpolation's loss measures against: ``metric`` (``mse`` or
    ``render_mse``) and ``target`` (``image`` or ``orbit-render``)."""

    metric: str
    target: str


@dataclass(kw_only=True)
class InterpolationResult(ExperimentResult):
    """An interpolation experiment: ``alphas [T]``, ``curves[method][metric] [pairs, T]``,
    per method its :class:`MethodSummary`, the methods skipped (with the reason), the
    primary metric, the number of pairs and the networks (zoo rows) they came from."""

    arrays_file: ClassVar[str | None] = "curves.safetensors"
    #: the spread of the error bars and bands: ``std`` or ``sem``
    band: ClassVar[str] = "std"

    settings: InterpolationSettings
    alphas: np.ndarray
    curves: dict[str, dict[str, np.ndarray]]
    methods: dict[str, MethodSummary]
    skipped: dict[str, str]
    primary_metric: str
    pairs: int
    networks: np.ndarray
    #: metrics where higher is better (accuracy): barriers are dips below the line
    higher_is_better: frozenset[str] = frozenset()

    def summary(self, method: str, metric: str | None = None) -> CurveSummary:
        """The :class:`CurveSummary` of ``method`` on ``metric`` (default: the primary)."""
        return self.methods[method][metric or self.primary_metric]

    def barriers(self, metric: str | None = None) -> dict[str, float]:
        """Mean barrier per method on ``metric`` (default: the primary)."""
        return {m: s[metric or self.primary_metric].barrier_mean
                for m, s in self.methods.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(), "primary_metric": self.primary_metric, "pairs": self.pairs,
            "networks": self.networks.tolist(), "skipped": dict(self.skipped),
            "methods": {m: s.to_json() for m, s in self.methods.items()},
            "timing": {m: {"seconds_total": s.seconds_total,
                           "seconds_per_pair": s.seconds_per_pair}
                       for m, s in self.methods.items()},
        }

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"alphas": self.alphas.astype(np.float64)}
        for m, per in self.curves.items():
            for k, v in per.items():
                out[f"{m}/{k}"] = v.astype(np.float64)
        return out

    def figures(self) -> dict[str, Figure]:
        from symmerge.experiments import plots, sections
        from symmerge.experiments.evidence import MIN_PAIRS, Count

        title = sections.title(self)
        panels = [(label, {m: per[k] for m, per in self.curves.items()}, False)
                  for k, label in sections.panel_labels(self)]
        primary = self.primary_metric
        recon = [m for m, s in self.methods.items() if not s.exact_endpoints]
        count = Count(self.pairs, "pairs", MIN_PAIRS)
        caveat = "" if count.judged else f"too few pairs to judge (at least {MIN_PAIRS})"
        return {
            "curves.png": plots.curves_figure(self.alphas, panels, band=self.band, title=title,
                                              n=self.pairs, reconstructed=recon,
                                              caveat=caveat),
            "barriers.png": plots.bar_figure(
                {m: s[primary].barrier_mean for m, s in self.methods.items()},
                {m: s[primary].spread(self.band) for m, s in self.methods.items()},
                ylabel=sections.barrier_axis(self), title=title, band=self.band, n=self.pairs,
                reconstructed=recon, caveat=caveat),
        }

    def sections(self, directory: str | os.PathLike[str] | None = None) -> list[ReportSection]:
        from symmerge.experiments import sections

        return [sections.interpolation_section(self, self._images(directory))]

    def findings(self) -> list[Finding]:
        from symmerge.experiments.findings import interpolation_findings

        return interpolation_findings(self)


@dataclass(kw_only=True)
class OrbitInterpolationResult(InterpolationResult):
    """Orbit interpolation: also each orbit's label and image, how well the orbits' base
    networks fit their images (None: no ground truth), what the loss measures and each
    pair's orbit (the pairs of one orbit are not independent: the summary compares
    methods over orbits)."""

    experiment: ClassVar[str] = "orbit-interpolation"

    settings: OrbitInterpolationSettings
    labels: np.ndarray
    image_index: np.ndarray
    base_fit_mse: float | None
    loss_target: LossTarget
    #: each pair's orbit (an index into ``labels``); empty in records written before it
    #: was kept (then the orbits are taken as equal consecutive blocks of pairs)
    pair_orbits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def to_json(self) -> dict[str, Any]:
        from symmerge.experiments.sections import loss_target_description

        out = {**super().to_json(), "labels": self.labels.tolist(),
               "image_index": self.image_index.tolist(),
               "loss_target": {**asdict(self.loss_target),
                               "description": loss_target_description(self)}}
        if self.base_fit_mse is not None:
            out["base_fit_mse"] = self.base_fit_mse
        return out


@dataclass(kw_only=True)
class PairInterpolationResult(InterpolationResult):
    """Pair interpolation: also each pair's image, how many endpoints the autoencoder
    trained on, how well the endpoints fit their images and how far apart they are."""

    experiment: ClassVar[str] = "pair-interpolation"

    settings: PairInterpolationSettings
    image_index: np.ndarray
    endpoints_in_ae_training_split: int
    endpoint_fit_mse: float
    endpoint_param_distance: float

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "image_index": self.image_index.tolist(),
                "endpoints_in_ae_training_split": self.endpoints_in_ae_training_split,
                "endpoint_fit_mse": self.endpoint_fit_mse,
                "endpoint_param_distance": self.endpoint_param_distance}


@dataclass(kw_only=True)
class CNNInterpolationResult(InterpolationResult):
    """CNN interpolation: also the CNNs' activation and the zoo metric the ``top``
    networks were chosen by (None: none)."""

    experiment: ClassVar[str] = "cnn-interpolation"
    band: ClassVar[str] = "sem"

    settings: CNNInterpolationSettings
    activation: str
    selection_metric: str | None

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "activation": self.activation,
                "selection_metric": self.selection_metric}


# ------------------------------------------------------------ latent experiments
@dataclass(frozen=True)
class MapPanel:
    """One 2-D map: the background points ``[n, 2]`` and labels, and the orbits overlaid
    (each ``[K_i, 2]``) with their labels."""

    points: np.ndarray
    labels: np.ndarray
    overlay: tuple[np.ndarray, ...] = ()
    overlay_labels: tuple[int, ...] = ()


@dataclass(frozen=True)
class CollapseStats:
    """One encoder's latent distances: within an orbit (mean, max), between orbits, their
    ``ratio`` (0: every orbit one point; about 1: no better than unrelated networks; NaN
    for a single orbit), the background pairs' mean and the within mean relative to it
    and to the mean latent norm, and the largest distance of a member to its base."""

    encoder: str
    within_mean: float
    within_max: float
    between_mean: float
    ratio: float
    background_mean: float
    within_vs_background: float
    max_distance_to_base: float
    latent_norm_mean: float
    within_vs_latent_norm: float


@dataclass(frozen=True)
class DistanceHistogram:
    """Within-orbit latent distances and the reference distances (between orbits, else
    background pairs, else none), both divided by the reference mean, and each orbit's
    mean within-orbit distance likewise (``per_orbit``, in orbit order)."""

    within: np.ndarray
    reference: np.ndarray
    reference_name: str
    per_orbit: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True, kw_only=True)
class OrbitCollapseSettings(ExperimentSettings):
    """Orbit collapse: generated orbits (``zoo``, ``networks``, ``orbit_size``,
    ``transform``) or published ones (``orbit_zoo``, ``orbits``), the background networks,
    the maps made and the notes on them (t-SNE in place of UMAP without umap-learn)."""

    zoo: str | None = None
    orbit_zoo: str | None = None
    orbits: tuple[OrbitSummary, ...] = ()
    orbit_max_deviation: float | None = None
    networks: int
    orbit_size: int | None = None
    transform: str | None = None
    background: int
    map_orbits: int
    maps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(kw_only=True)
class OrbitCollapseResult(ExperimentResult):
    """Orbit collapse: per encoder (by role: ``run``, ``pna_run``) its
    :class:`CollapseStats`, its distance histogram and its maps (by map name)."""

    experiment: ClassVar[str] = "orbit-collapse"
    arrays_file: ClassVar[str | None] = "distances.safetensors"

    settings: OrbitCollapseSettings
    networks: np.ndarray
    orbit_sizes: tuple[int, ...]
    encoders: dict[str, CollapseStats]
    distances: dict[str, DistanceHistogram]
    maps: dict[str, dict[str, MapPanel]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "networks": self.networks.tolist(),
                "encoders": {k: asdict(s) for k, s in self.encoders.items()}}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"networks": self.networks}
        for role, h in self.distances.items():
            out[f"{role}/within"] = h.within
            out[f"{role}/reference"] = h.reference
        out.update(_map_arrays(self.maps))
        return out

    def figures(self) -> dict[str, Figure]:
        from symmerge.experiments import plots, sections

        figs = {}
        if any(self.maps.values()):
            figs["maps.png"] = plots.map_grid(
                {self.encoders[r].encoder: per for r, per in self.maps.items()},
                sections.collapse_map_title(self),
                within={self.encoders[r].encoder: self.distances[r] for r in self.maps})
        figs["distances.png"] = plots.distance_histograms(
            {self.encoders[r].encoder: h for r, h in self.distances.items()})
        return figs

    def sections(self, directory: str | os.PathLike[str] | None = None) -> list[ReportSection]:
        from symmerge.experiments import sections

        return [sections.collapse_section(self, self._images(directory))]

    def findings(self) -> list[Finding]:
        from symmerge.experiments.findings import collapse_findings

        return collapse_findings(self)


def _map_arrays(maps: Mapping[str, Mapping[str, MapPanel]]) -> dict[str, np.ndarray]:
    out = {}
    for role, per in maps.items():
        for name, panel in per.items():
            out[f"{role}/{name}/points"] = panel.points
            out[f"{role}/{name}/labels"] = panel.labels
            for i, o in enumerate(panel.overlay):
                out[f"{role}/{name}/orbit{i}"] = o
    return out


@dataclass(frozen=True)
class LatentMapStats:
    """One encoder's latents of a zoo split: cross-validated 5-NN label accuracy and the
    labels' silhouette score (both NaN without two labels), and the latent size."""

    encoder: str
    knn_accuracy: float
    silhouette: float
    latent_dim: int


@dataclass(frozen=True, kw_only=True)
class LatentMapSettings(ExperimentSettings):
    """Latent map: the zoo, the number of networks mapped, the maps made and the notes on
    them (t-SNE in place of UMAP without umap-learn)."""

    zoo: str
    points: int
    maps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(kw_only=True)
class LatentMapResult(ExperimentResult):
    """Latent maps: the networks (zoo rows) and their labels; per encoder (by role) its
    :class:`LatentMapStats`, the latents ``[n, d]`` and the maps (by map name)."""

    experiment: ClassVar[str] = "latent-map"
    arrays_file: ClassVar[str | None] = "latents.safetensors"

    settings: LatentMapSettings
    networks: np.ndarray
    labels: np.ndarray
    encoders: dict[str, LatentMapStats]
    latents: dict[str, np.ndarray]
    maps: dict[str, dict[str, MapPanel]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "networks": self.networks.tolist(),
                "encoders": {k: asdict(s) for k, s in self.encoders.items()}}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"networks": self.networks, "labels": self.labels}
        out.update({f"{role}/latents": z for role, z in self.latents.items()})
        out.update(_map_arrays(self.maps))
        return out

    def figures(self) -> dict[str, Figure]:
        from symmerge.experiments import plots, sections

        if not any(self.maps.values()):
            return {}
        return {"latent_map.png": plots.map_grid(
            {self.encoders[r].encoder: per for r, per in self.maps.items()},
            sections.latent_map_title(self))}

    def sections(self, directory: str | os.PathLike[str] | None = None) -> list[ReportSection]:
        from symmerge.experiments import sections

        return [sections.latent_map_section(self, self._images(directory))]

    def findings(self) -> list[Finding]:
        from symmerge.experiments.findings import latent_map_findings

        return latent_map_findings(self)

