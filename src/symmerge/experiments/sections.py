"""The prose of the reports: titles, axis labels, section texts, tables and notes of every
experiment (from its typed result), and the quickstart's introduction. Nothing here
computes; :mod:`symmerge.experiments.results` calls these when a result is saved."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symmerge.experiments.evidence import (
    BAND_NAMES,
    MIN_NETWORKS,
    MIN_ORBITS,
    MIN_PAIRS,
    MIN_POINTS,
    TOO_SMALL,
    Count,
)
from symmerge.experiments.report import ReportSection, markdown_table

if TYPE_CHECKING:
    from symmerge.experiments.results import (
        CNNInterpolationResult,
        ExperimentResult,
        InterpolationResult,
        LatentMapResult,
        MethodSummary,
        NetworkSelection,
        OrbitCollapseResult,
        OrbitInterpolationResult,
        OrbitSummary,
        PairInterpolationResult,
        RunInfo,
    )



def split_phrase(split: str | None) -> str:
    """``"test"`` -> ``"test-split"``; how report texts name a split."""
    return {"all": "zoo", "heldout": "held-out (val + test)"}.get(str(split), f"{split}-split")


def encoder_name(run: RunInfo) -> str:
    """How reports name the encoder of an autoencoder run, e.g. ``ScaleGMN (sign)``."""
    if run.role == "pna_run":
        return f"permutation-only ({run.encoder_mode})"
    mode = run.encoder_mode
    return f"ScaleGMN ({mode})" if mode in ("sign", "scale") else f"{mode} encoder"


def setup_note(result: ExperimentResult) -> str:
    """Which setup produced the numbers: version, seed and each autoencoder run."""
    runs = "; ".join(
        f"`{r.role}` {r.path} (preset {r.preset}, {r.encoder_mode} encoder, seed {r.seed})"
        for r in result.runs
    )
    return (f"symmerge {result.version}, seed {result.seed}; "
            + (f"autoencoder runs: {runs}." if runs else "no autoencoder run."))


def plural(n: int, noun: str) -> str:
    """``1 failed network``, ``2 failed networks``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def selection_text(sel: NetworkSelection | None, what: str = "networks") -> str:
    """Where an experiment's networks came from, for its section: the split and its n,
    failed networks left out, and whether the autoencoder trained on any of them (""
    without a zoo split: a published orbit)."""
    if sel is None:
        return ""
    text = f"Networks: {sel.used} of the {sel.pool} usable {split_phrase(sel.split)} networks"
    text += (f" ({plural(sel.failed_excluded, 'failed network')} of the split left out: "
             f"{sel.failed_rule})" if sel.failed_excluded else " (none of the split failed)")
    if sel.in_training_split is None:
        return text + "; no autoencoder run, so none is held out from one."
    if sel.in_training_split == 0:
        return text + "; none in the autoencoder's training split (held-out networks only)."
    return (text + f". **{sel.in_training_split} of the {sel.used} {what} were in the "
            "autoencoder's training split**: what the autoencoder does on them is not a "
            "held-out result (the split `test` avoids that).")


def caveat_text(count: Count, what: str) -> str:
    """A bold line for a statistic below its minimum n (``""`` when it is judged)."""
    caveat = count.caveat(what)
    return f"**{caveat[0].upper()}{caveat[1:]}.**" if caveat else ""


def _images(directory: str | os.PathLike[str] | None, items: Sequence[tuple[str, str]]
            ) -> list[tuple[str, str]]:
    return [] if directory is None else [(c, str(Path(directory) / f)) for c, f in items]


def _orbits_shown(orbits: Sequence[OrbitSummary]) -> str:
    return "; ".join(o.describe() for o in orbits[:5]) + ("; ..." if len(orbits) > 5 else "")


# ------------------------------------------------------------ interpolation
def title(r: InterpolationResult) -> str:
    """The title of an interpolation experiment's section and plots."""
    from symmerge.experiments.results import CNNInterpolationResult, OrbitInterpolationResult

    if isinstance(r, OrbitInterpolationResult):
        s = r.settings
        label = "published orbit" if s.orbit_zoo is not None else str(s.transform)
        return f"Orbit interpolation ({label}, perturbation {s.perturbation:g})"
    if isinstance(r, CNNInterpolationResult):
        return f"CNN interpolation ({r.activation})"
    return "Pair interpolation (same image, different seeds)"


def _render_of(r: OrbitInterpolationResult) -> str:
    return ("the render of the orbit's first member" if r.settings.orbit_zoo is not None
            else "the base INR's own render")


_PANELS = {"mse": "MSE to ground-truth image", "cross_entropy": "cross-entropy",
           "accuracy": "accuracy"}
_TABLES = {"mse": "MSE to image", "cross_entropy": "cross-entropy", "accuracy": "accuracy"}


def _metrics(r: InterpolationResult) -> list[str]:
    """The metrics of ``r``, the primary first."""
    names = list(next(iter(r.curves.values())))
    return [r.primary_metric, *(k for k in names if k != r.primary_metric)]


def panel_labels(r: InterpolationResult) -> list[tuple[str, str]]:
    """``(metric, y-axis label)`` of each curves panel."""
    render = ("MSE to base INR render" if r.primary_metric == "mse"
              else "MSE to the orbit's render")
    return [(k, _PANELS.get(k, render)) for k in _metrics(r)]


def table_labels(r: InterpolationResult) -> list[tuple[str, str]]:
    """``(metric, label)`` of each results table."""
    render = "MSE to base render" if r.primary_metric == "mse" else "MSE to orbit render"
    return [(k, _TABLES.get(k, render)) for k in _metrics(r)]


def barrier_axis(r: InterpolationResult) -> str:
    """The y-axis label of the barrier bars (the primary metric)."""
    kind = "accuracy" if r.primary_metric in r.higher_is_better else "loss"
    return f"{kind} barrier ({table_labels(r)[0][1]})"


def loss_target_description(r: OrbitInterpolationResult) -> str:
    """What an orbit interpolation's loss is measured against."""
    if r.loss_target.target == "image":
        return f"ground-truth image from `{r.settings.data_source}`"
    return f"{_render_of(r)} (no ground-truth image)"


def results_table(methods: Mapping[str, MethodSummary], metric: str, label: str, *,
                  band: str = "std", symbol: str = "L") -> str:
    """The per-method table of barrier (mean ± ``band``: std or sem, over its n pairs),
    AUC, endpoint values ``symbol(0)``, ``symbol(1)``, ``symbol(0.5)`` and time per pair;
    a method whose endpoints are reconstructions is marked."""
    from symmerge.methods import reference_method

    rows = []
    for m, per in methods.items():
        s = per[metric]
        rows.append({
            "method": f"`{m}`" + ("" if per.exact_endpoints else " (reconstructed endpoints)"),
            "barrier": f"{s.barrier_mean:.4g} ± {s.spread(band):.2g}",
            "vs_reference": s.barrier_vs_naive,
            "mean_curve": s.barrier_of_mean_curve,
            "auc": s.auc_mean,
            "start": s.start_mean,
            "end": s.end_mean,
            "mid": s.mid_mean,
            "ms": 1000.0 * per.seconds_per_pair,
            "exact": per.exact_endpoints,
            "dist": per.endpoint_distance,
        })
    n = next(iter(methods.values()))[metric].pairs
    cols = [("method", "method"),
            ("barrier", f"barrier ({label}, mean ± {BAND_NAMES[band]}, n = {n} pairs)"),
            ("vs_reference", f"÷ {reference_method()}"),
            ("mean_curve", "barrier of mean curve"),
            ("auc", "AUC"), ("start", f"{symbol}(0)"), ("end", f"{symbol}(1)"),
            ("mid", f"{symbol}(0.5)"),
            ("ms", "ms / pair"), ("exact", "exact endpoints"), ("dist", "endpoint distance")]
    return markdown_table(rows, cols)


def _lift_note(name: str, distance: float, strategy: str | None) -> str:
    how = ("by coordinate ascent from its sorted form" if strategy == "descent"
           else "in one in-order pass, a function of its orbit alone")
    return (
        f"`{name}` keeps the exact endpoints (each network is matched to its decoded "
        f"template {how}). Its two endpoints "
        "land in the same frame only if that matching is stable under the perturbation, "
        "which needs a template near the networks' orbit in weight space; the "
        "function-space training loss does not ask for that: a large endpoint distance "
        "(compare the weight-matching methods) means the template did not pin down the "
        "alignment (`benchmarks/bench_lift_consistency.py` measures how near it must be). "
        f"Here the lifted networks sit at a mean RMS distance of {distance:.3g} from their "
        "templates, in units of each tensor's RMS over the zoo (0: the template lies on "
        "the orbit)."
    )


def interpolation_notes(r: InterpolationResult, assumed_source: str | None) -> list[str]:
    """The notes under an interpolation experiment's tables."""
    notes = []
    lossy = [m for m, s in r.methods.items() if not s.exact_endpoints]
    if lossy:
        notes.append(
            "Endpoints of " + ", ".join(f"`{m}`" for m in lossy) + " are autoencoder "
            "reconstructions, not the input networks (METHOD.md 9.16): their curves sit at the "
            "reconstruction error and their barriers measure flatness, not the quality of the "
            "endpoints; compare L(0) and L(1) with the exact methods."
        )
    notes += [_lift_note(m, s.template_distance, r.settings.ae_lift_strategy)
              for m, s in r.methods.items() if s.template_distance is not None]
    notes += [f"`{m}` skipped: {why}." for m, why in r.skipped.items()]
    if assumed_source:
        notes.append(
            f"The zoo's provenance names no data source; `{assumed_source}` was assumed "
            "(for INRs, the zoo's labels were checked against the images')."
        )
    band = BAND_NAMES[r.band]
    notes.append(
        "Barrier: max over alpha of L(alpha) minus the straight line between L(0) and L(1) "
        f"(not clipped at 0), per pair, then mean ± {band} over pairs (error bars "
        "of the barrier plot likewise); AUC: area under that excess "
        "curve; ms / pair: wall time of the method's alignment, canonicalization or "
        "encoding/decoding (evaluation excluded); endpoint distance: mean L2 distance between "
        "the two interpolated parameter vectors (after alignment)."
    )
    notes.append(setup_note(r))
    return notes


def _orbit_text(r: OrbitInterpolationResult) -> tuple[str, list[str], str | None]:
    s = r.settings
    if s.orbit_zoo is not None:
        many = len(s.orbits) > 1
        what = (
            f"{len(s.orbits)} published orbit{'s' if many else ''} from `{s.orbit_zoo}`: "
            f"{_orbits_shown(s.orbits)}. Pair i is `(O_i, Õ_((i+1) mod K))`: `O` the K members "
            f"in `orbit_member` order, `Õ = O + noise` (std {s.perturbation:g} on every weight, "
            f"drawn from seed {s.seed}); {r.pairs} pairs"
        )
        check = (f"Every member renders within {s.orbit_max_deviation:.2g} of its orbit's "
                 "first member.")
    else:
        what = (
            f"{plural(s.runs, 'INR')} × {s.orbit_size} orbit pairs "
            f"`(O_i, Õ_(i+1))` = {r.pairs} pairs, {s.transform} transforms, noise std "
            f"{s.perturbation:g}"
        )
        check = ""
    notes = []
    if r.loss_target.target == "image":
        loss = (
            f"Loss `mse`: pixel MSE of the rendered interpolant to the ground-truth image "
            f"(`{s.data_source}`), the paper's metric; `render_mse` (right panel): MSE to "
            f"{_render_of(r)}, which fits its image with MSE {r.base_fit_mse:.4g}."
        )
    else:
        loss = (
            f"Loss `render_mse`: pixel MSE of the rendered interpolant to {_render_of(r)}, "
            "**not** to the ground-truth digit, which no image source provides here."
        )
        notes.append(
            "No ground-truth image: neither `data` nor the orbit zoo's provenance names an "
            "image source, so every loss is measured against the render of each orbit's first "
            "member instead of the digit (the paper's metric). Pass the MNIST IDX files "
            "(`--data mnist:DIR`; `data=\"mnist:DIR\"` in Python) to measure against the digit."
        )
    text = " ".join(filter(None, [f"{what}; {s.steps} alpha steps.", loss, check,
                                  f"Mean ± std over the {r.pairs} pairs (from {s.runs} "
                                  f"orbit{'s' if s.runs != 1 else ''}).",
                                  selection_text(r.selection)]))
    return text, notes, s.data_source if s.data_source_assumed else None


def _pair_text(r: PairInterpolationResult) -> tuple[str, list[str], str | None]:
    s = r.settings
    text = (
        f"{s.pairs} pairs of {split_phrase(s.split)} INRs fitted to the same image from "
        f"different seeds, {s.steps} alpha steps. Loss: pixel MSE of the rendered interpolant "
        f"to the ground-truth image (`{s.data_source}`); the endpoints fit it with MSE "
        f"{r.endpoint_fit_mse:.4g}. Mean ± std over the {r.pairs} pairs. "
        + selection_text(r.selection, "endpoints")
    )
    return text.strip(), [], s.data_source if s.data_source_assumed else None


def _cnn_text(r: CNNInterpolationResult) -> tuple[str, list[str], str | None]:
    s = r.settings
    chosen_from = split_phrase(s.split) + (
        f", top {s.top} by {r.selection_metric}" if r.selection_metric and s.top else "")
    text = (
        f"{s.pairs} disjoint pairs of independently trained {r.activation} CNNs "
        f"({chosen_from}), {s.steps} alpha steps, evaluated on {s.eval_images} held-out "
        f"images of `{s.images}` ({s.held_out}). Cross-entropy barrier (first table) and "
        "accuracy barrier (second table: max over alpha of the straight line minus the "
        f"accuracy). Mean ± SEM over the {r.pairs} pairs (tables and plots). "
        + selection_text(r.selection)
    )
    if s.repaired:
        text += (
            " " + ", ".join(f"`{m}`" for m in s.repaired) + " repaired every interpolant "
            "(REPAIR, Jordan et al. 2023): each hidden channel's pre-activation mean and std "
            f"over {s.repair_images} training-split images were reset to the "
            "(1 - alpha, alpha) mix of the two endpoints' by rescaling and shifting its "
            "incoming weights and bias (convolutions and hidden dense layers)."
        )
    return text, [], s.images if s.images_assumed else None


def interpolation_section(r: InterpolationResult, directory: str | os.PathLike[str] | None
                          ) -> ReportSection:
    """The report section of an interpolation experiment (images in ``directory``)."""
    from symmerge.experiments.results import CNNInterpolationResult, OrbitInterpolationResult

    if isinstance(r, OrbitInterpolationResult):
        text, notes, assumed = _orbit_text(r)
    elif isinstance(r, CNNInterpolationResult):
        text, notes, assumed = _cnn_text(r)
    else:
        text, notes, assumed = _pair_text(r)  # type: ignore[arg-type]
    head = title(r)
    caveat = caveat_text(Count(r.pairs, "pairs", MIN_PAIRS),
                         "each mean barrier, its ratio to the reference method and the "
                         "ranking of the methods")
    text = "\n\n".join(filter(None, [text.strip(), caveat]))
    table = "\n\n".join(
        results_table(r.methods, k, label, band=r.band,
                      symbol="acc" if k in r.higher_is_better else "L")
        for k, label in table_labels(r)
    )
    return ReportSection(
        title=head, text=text, table=table,
        images=_images(directory, [(f"{head}: curves", "curves.png"),
                                   (f"{head}: barriers", "barriers.png")]),
        notes=[*notes, *interpolation_notes(r, assumed)],
    )


# ------------------------------------------------------------ latent experiments
def collapse_map_title(r: OrbitCollapseResult) -> str:
    s = r.settings
    sizes = "/".join(map(str, sorted(set(r.orbit_sizes))))
    return (f"{len(r.orbit_sizes)} {s.transform or 'published'} orbits ({sizes} members) over "
            f"{s.background} background networks (split {s.split})")


def collapse_section(r: OrbitCollapseResult, directory: str | os.PathLike[str] | None
                     ) -> ReportSection:
    """The report section of an orbit-collapse experiment."""
    s = r.settings
    if s.orbit_zoo is not None:
        many = len(s.orbits) > 1
        what = (f"{len(s.orbits)} published orbit{'s' if many else ''} from `{s.orbit_zoo}`: "
                f"{_orbits_shown(s.orbits)}; members in `orbit_member` order, every one "
                f"rendering within {s.orbit_max_deviation:.2g} of its orbit's first member")
    else:
        what = (f"{s.networks} {split_phrase(s.split)} networks, each with an exact "
                f"{s.transform} orbit of {s.orbit_size} members (no noise)")
    background = ""
    if s.orbit_zoo is not None and s.zoo is not None:
        background = f" Background: {s.background} {split_phrase(s.split)} networks of `{s.zoo}`."
    elif s.orbit_zoo is not None:
        background = (" No background networks (no zoo given): no maps, and the spread within "
                      "an orbit is compared with the mean latent norm and other orbits only.")
    sizes = list(r.orbit_sizes)
    within = sum(k * (k - 1) // 2 for k in sizes)
    between = (sum(sizes) ** 2 - sum(k * k for k in sizes)) // 2
    text = (
        f"{what}, encoded by each autoencoder.{background} Distances are Euclidean "
        "in latent space, averaged over all pairs: within an orbit over "
        f"{within} member pairs of {len(sizes)} orbits, between orbits over {between} pairs, "
        f"random pairs over the {s.background * (s.background - 1) // 2} pairs of "
        f"{s.background} background networks. A ratio of 0 means every orbit collapses to "
        "one point, about 1 means orbit members are as far apart as different networks."
    )
    if s.networks == 1:
        text += " With a single orbit there are no between-orbit distances (ratio: -)."
    text = "\n\n".join(filter(None, [text, selection_text(r.selection), caveat_text(
        Count(len(sizes), "orbits", MIN_ORBITS), "each within / between-orbit ratio")]))
    table = markdown_table([{"enc": e.encoder, **vars(e)} for e in r.encoders.values()], [
        ("enc", "encoder"), ("within_mean", f"within orbit (n = {within} pairs)"),
        ("between_mean", f"between orbits (n = {between} pairs)"),
        ("ratio", "ratio within / between"), ("within_vs_background", "within / random pairs"),
        ("within_vs_latent_norm", "within / latent norm"),
        ("max_distance_to_base", "max distance to base latent"),
    ])
    has_maps = any(r.maps.values())
    notes = ([*(_MAP_FIT[m].format(k=s.map_orbits, seed=s.seed) for m in s.maps),
              *_map_notes(s.notes)] if has_maps else [])
    return ReportSection(
        title=f"Orbit collapse ({s.transform or 'published orbit'})", text=text, table=table,
        images=_images(directory, [("latent distances", "distances.png")]
                       + ([("orbits in latent maps", "maps.png")] if has_maps else [])),
        notes=[*notes, setup_note(r)],
    )


#: how each map of an orbit-collapse experiment places the orbits
_MAP_FIT = {
    "umap": ("UMAP map: fitted on the background networks alone (random_state={seed}); the "
             "members of the first {k} orbits (stars) are placed with the fitted map's "
             "`transform`, so a collapsed orbit lands on one spot (below 5 background "
             "networks UMAP is fitted on everything jointly instead)."),
    "tsne": ("t-SNE map: fitted jointly on the background and the first {k} orbits (stars), "
             "random_state={seed}; t-SNE has no `transform` and spreads any tight group "
             "into a cloud, so the spread of the stars there says nothing about the latent "
             "spread: the panel beside it gives each orbit's within-orbit latent distance."),
}


def _map_notes(notes: Sequence[str]) -> list[str]:
    """A latent experiment's notes on its maps, as report sentences."""
    return [n if n.endswith(".") else f"{n}." for n in notes]


def latent_map_title(r: LatentMapResult) -> str:
    return f"{r.settings.points} networks (split {r.settings.split}), coloured by label"


def latent_map_section(r: LatentMapResult, directory: str | os.PathLike[str] | None
                       ) -> ReportSection:
    """The report section of a latent-map experiment."""
    s = r.settings
    n = f"n = {s.points} networks"
    table = markdown_table([{"enc": e.encoder, **vars(e)} for e in r.encoders.values()],
                           [("enc", "encoder"), ("knn_accuracy", f"5-NN label accuracy ({n})"),
                            ("silhouette", f"silhouette (labels, {n})"),
                            ("latent_dim", "latent dim")])
    text = (f"Latents of {s.points} {split_phrase(s.split)} networks of `{Path(s.zoo).name}`, "
            f"mapped to 2-D with {', '.join(s.maps) or 'no maps'} (random_state={s.seed}) "
            "and coloured by label.")
    return ReportSection(
        title="Latent map", table=table,
        text="\n\n".join(filter(None, [text, selection_text(r.selection), caveat_text(
            Count(s.points, "networks", MIN_POINTS), "each 5-NN accuracy and silhouette")])),
        images=_images(directory, [("latent map", "latent_map.png")] if any(r.maps.values())
                       else []),
        notes=[*_map_notes(s.notes), setup_note(r)],
    )


# ------------------------------------------------------------ quickstart
def quickstart_intro(*, version: str, seed: int, size: str, images: int, per_image: int,
                     stride: int, cnn_networks: int, root: str | os.PathLike[str],
                     timings: Mapping[str, float],
                     training: Mapping[str, Mapping[str, Any]]) -> str:
    """The quickstart report's introduction: what was built, the rerun command, the
    stage timings and the autoencoders' quality."""
    timing_lines = "\n".join(f"| {k} | {v:.1f} |" for k, v in timings.items())
    return (
        f"symmerge {version} quickstart, seed {seed}, size `{size}`: an INR zoo of "
        f"{images * per_image} SIRENs fitted to {images} embedded MNIST digits "
        + (f"(every {stride}th) " if stride > 1 else "")
        + f"({per_image} per digit), a ScaleGMN autoencoder and a permutation-only "
        f"(PNA) baseline trained on it, and {cnn_networks} ReLU + {cnn_networks} tanh CNNs "
        "with a ScaleGMN autoencoder each.\n\n"
        f"Rerun: `symmerge quickstart --out {root} --seed {seed}"
        + (f" --size {size}" if size != "default" else "") + "`\n\n"
        "| stage | seconds |\n|---|---|\n" + timing_lines + "\n\n"
        + autoencoder_table(training)
    )


def _three(value: float) -> str:
    """Three decimals; NaN (a Kendall tau of fewer than two networks) as ``-``."""
    return "-" if math.isnan(value) else f"{value:.3f}"


def _test_networks(m: Mapping[str, Any]) -> int | None:
    n = m.get("test_networks")
    return None if n is None else int(n)


def _small_runs(rows: Sequence[Mapping[str, Any]], what: str) -> str:
    """A bold line naming the runs whose test metrics rest on too few networks."""
    small = [f"{r['name']} ({r['n']})" for r in rows
             if isinstance(r["n"], int) and not Count(r["n"], "networks", MIN_NETWORKS).judged]
    if not small:
        return ""
    return (f"\n**{what} over too few test networks: {TOO_SMALL} (at least {MIN_NETWORKS} "
            f"needed): {', '.join(small)}.**\n")


def autoencoder_table(training: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: each INR autoencoder's test render MSE against the mean-image baseline,
    and each CNN autoencoder's decoded-vs-original test accuracy and Kendall tau, each
    over its n of test networks (``training``: each quickstart run's metrics, by run
    name; ``test_networks``, when recorded, is the n); below :data:`MIN_NETWORKS` the
    table says those numbers cannot be judged."""
    from symmerge.experiments.findings import CNN_RUNS, INR_RUNS

    inr = []
    for name, label in INR_RUNS:
        m = training.get(name, {})
        if "test_render_mse" in m and m.get("test_mean_image_mse"):
            inr.append({"name": label, "mse": f"{m['test_render_mse']:.4g}",
                        "mean": f"{m['test_mean_image_mse']:.4g}",
                        "ratio": f"{m['test_render_mse'] / m['test_mean_image_mse']:.3f}",
                        "n": _test_networks(m)})
    cnn = []
    for act in CNN_RUNS:
        m = training.get(f"cnn-{act}", {})
        if "test_acc_decoded" in m:
            cnn.append({"name": f"ScaleGMN, {act} CNNs",
                        "orig": f"{m['test_acc_original']:.3f}",
                        "dec": f"{m['test_acc_decoded']:.3f}",
                        "tau": _three(m["test_acc_kendall_tau"]),
                        "n": _test_networks(m)})
    parts = []
    if inr:
        parts.append(
            "Autoencoder reconstructions of the test-split INRs (render MSE to the INRs' own "
            "renders, mean over the test INRs; the baseline predicts the training split's "
            "mean image):\n\n"
            + markdown_table(inr, [("name", "autoencoder"), ("n", "test INRs"),
                                   ("mse", "test render MSE"), ("mean", "mean-image MSE"),
                                   ("ratio", "ratio")]) + "\n"
            + _small_runs(inr, "Render errors")
        )
    if cnn:
        parts.append(
            "CNN autoencoders (test-split networks, held-out images; accuracies are means "
            "over the test networks, Kendall tau ranks them):\n\n"
            + markdown_table(cnn, [("name", "autoencoder"), ("n", "test networks"),
                                   ("orig", "accuracy, original"),
                                   ("dec", "accuracy, decoded"), ("tau", "Kendall tau")])
            + "\n"
            + _small_runs(cnn, "Accuracies and Kendall tau")
        )
    return "\n".join(parts)
