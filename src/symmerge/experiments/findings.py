"""The plain-words summary of each result (:class:`~symmerge.experiments.evidence.Finding`
lines at the top of a report): which method wins where, by the primary metric, relative
to the reference method and to each other, and what cannot be judged at this size.
Computed from the results' numbers; nothing here is a fixed claim."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from symmerge.experiments.evidence import (
    MIN_NETWORKS,
    MIN_ORBITS,
    MIN_PAIRS,
    MIN_POINTS,
    TOO_SMALL,
    Count,
    Finding,
    fmt,
)
from symmerge.experiments.metrics import barriers
from symmerge.experiments.sections import plural, table_labels, title

if TYPE_CHECKING:
    from symmerge.experiments.results import (
        InterpolationResult,
        LatentMapResult,
        NetworkSelection,
        OrbitCollapseResult,
    )

#: the two-sided level of the paired comparisons: a difference counts as real when it
#: lies outside the 95% t interval around 0 (2.26 SEMs for 10 pairs, 3.18 for 4 orbits)
LEVEL = 0.95


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and SEM of ``a - b`` over pairs (the same pairs for both: a paired
    comparison); the SEM is NaN for a single pair."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    sem = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return float(d.mean()), sem


def clear_difference(mean: float, sem: float, n: int) -> bool:
    """Whether a paired difference over ``n`` independent units is outside the
    :data:`LEVEL` t interval around 0 (``n - 1`` degrees of freedom)."""
    from scipy.stats import t

    if n < 2 or not math.isfinite(sem):
        return False
    return abs(mean) > float(t.ppf(0.5 + LEVEL / 2, n - 1)) * sem


def unit_means(values: np.ndarray, units: np.ndarray | None) -> np.ndarray:
    """``values`` (one per pair) averaged within each unit (``units``: each pair's unit,
    e.g. its orbit); unchanged without units."""
    if units is None:
        return np.asarray(values, dtype=np.float64)
    ids, inverse = np.unique(units, return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(values, dtype=np.float64),
                       minlength=ids.size)
    return sums / np.bincount(inverse, minlength=ids.size)


def pair_units(r: InterpolationResult) -> np.ndarray | None:
    """Each pair's orbit for an orbit interpolation (the pairs of one orbit share its base
    network, so they are not independent: its statistics are over orbits); None for
    experiments whose pairs are the units."""
    orbits = getattr(r, "pair_orbits", None)
    if orbits is None:
        return None
    if len(orbits) == r.pairs:
        return np.asarray(orbits)
    runs = getattr(r.settings, "runs", None)  # records written before pair_orbits
    if runs and r.pairs % runs == 0:
        return np.repeat(np.arange(runs), r.pairs // runs)
    return None


def selection_warning(sel: NetworkSelection | None) -> str:
    """A sentence for the summary when networks the autoencoder trained on were used,
    or failed networks were left out; else ``""``."""
    if sel is None:
        return ""
    out = []
    if sel.in_training_split:
        out.append(f"{sel.in_training_split} of the {sel.used} networks used were in the "
                   "autoencoder's training split: what the autoencoder does on them is "
                   "not a held-out result")
    if sel.failed_excluded:
        out.append(f"{plural(sel.failed_excluded, 'failed network')} (diverged or at chance) "
                   "left out")
    return (" " + "; ".join(out) + ".") if out else ""


def _where(sel: NetworkSelection | None) -> str:
    return "" if sel is None else f"; split: {sel.split}"


# ------------------------------------------------------------ interpolation
def interpolation_findings(r: InterpolationResult) -> list[Finding]:
    """One finding: the ranking of the methods that keep their endpoints by mean barrier
    of the primary metric (relative to the reference method), whether the best is
    clearly below the next and below the reference (paired over the same pairs), and
    what the reconstruction-endpoint methods' barriers are (not wins)."""
    from symmerge.methods import reference_method

    metric = r.primary_metric
    label = table_labels(r)[0][1]
    hib = metric in r.higher_is_better
    units = pair_units(r)
    # per independent unit (pair, or orbit: the mean over its pairs), paired by unit
    per_pair = {m: unit_means(barriers(r.curves[m][metric], r.alphas, higher_is_better=hib),
                              units) for m in r.methods}
    n = (Count(r.pairs, "pairs", MIN_PAIRS) if units is None else
         Count(int(np.unique(units).size), "orbits", MIN_ORBITS))
    n_units = n.n
    mean = {m: s[metric].barrier_mean for m, s in r.methods.items()}
    exact = sorted((m for m, s in r.methods.items() if s.exact_endpoints), key=mean.__getitem__)
    recon = [m for m, s in r.methods.items() if not s.exact_endpoints]
    ref = reference_method()
    ref_b = mean.get(ref)
    relative = ref_b is not None and ref_b > 0

    def value(m: str) -> str:
        return f"`{m}` {fmt(mean[m] / ref_b, 2)}×" if relative else f"`{m}` {fmt(mean[m])}"  # type: ignore[operator]

    ranking = (f"mean barrier ({label}){f' relative to `{ref}`' if relative else ''}: "
               + ", ".join(value(m) for m in exact)) if exact else ""
    of = (f", {plural(r.pairs, 'pair')}; compared over the orbits' mean barriers, since "
          "the pairs of one orbit share its network" if units is not None else "")
    head = f"**{title(r)}** ({n}{of}{_where(r.selection)})"
    if not n.judged:
        text = (f"{head}: {TOO_SMALL} (a mean barrier needs at least {n.minimum} "
                f"{n.unit}). "
                f"Observed, not a finding: {ranking or 'no method keeps its endpoints'}.")
        return [Finding(text + selection_warning(r.selection),
                        (f"{title(r)}: barriers over {n}",))]
    parts = []
    if exact:
        best = exact[0]
        verdict = f"lowest barrier: `{best}`"
        if len(exact) > 1:
            second = exact[1]
            d, sem = paired_difference(per_pair[best], per_pair[second])
            verdict += (f", clearly below `{second}` (paired difference {fmt(d)} ± {fmt(sem, 2)}"
                        " SEM)" if clear_difference(d, sem, n_units) else
                        f", within noise of `{second}` (paired difference {fmt(d)} ± "
                        f"{fmt(sem, 2)} SEM)")
        if ref in per_pair and best != ref:
            d, sem = paired_difference(per_pair[best], per_pair[ref])
            verdict += (f"; it beats `{ref}`" if clear_difference(d, sem, n_units) and d < 0 else
                        f"; not clearly better than `{ref}`")
        elif best == ref:
            verdict += f": no alignment lowers the barrier below `{ref}`'s"
        parts.append(f"{verdict}. Ranking by {ranking}.")
    if recon:
        origin = exact[0] if exact else None
        ends = []
        for m in recon:
            s = r.methods[m][metric]
            at = f"{fmt((s.start_mean + s.end_mean) / 2)}"
            if origin is not None:
                o = r.methods[origin][metric]
                at += f" vs {fmt((o.start_mean + o.end_mean) / 2)} for the originals"
            ends.append(f"`{m}` barrier {fmt(mean[m])} (endpoint {label} {at})")
        parts.append("Reconstruction endpoints, barriers measure the flatness between decoded "
                     "networks, not a win: " + "; ".join(ends) + ".")
    return [Finding(f"{head}: " + " ".join(parts) + selection_warning(r.selection))]


# ------------------------------------------------------------ latent experiments
def collapse_findings(r: OrbitCollapseResult) -> list[Finding]:
    """One finding: which encoder maps orbits closest to single points (the within /
    between orbit distance ratio), over how many orbits."""
    orbits = Count(len(r.orbit_sizes), "orbits", MIN_ORBITS)
    members = "/".join(str(k) for k in sorted(set(r.orbit_sizes)))
    head = (f"**Orbit collapse ({r.settings.transform or 'published orbit'})** ({orbits} × "
            f"{members} members{_where(r.selection)})")
    encs = sorted(r.encoders.values(),
                  key=lambda e: e.ratio if math.isfinite(e.ratio) else math.inf)
    values = ", ".join(f"{e.encoder} {fmt(e.ratio)}" for e in encs)
    what = "within / between-orbit latent distance ratio (0: each orbit one point; about 1: no "
    what += "closer than unrelated networks)"
    if not orbits.judged:
        return [Finding(f"{head}: {TOO_SMALL} (a distance ratio needs at least {MIN_ORBITS} "
                        f"orbits). Observed, not a finding: {what}: {values}."
                        + selection_warning(r.selection),
                        (f"orbit collapse: ratio over {orbits}",))]
    if len(encs) == 1:
        return [Finding(f"{head}: {what}: {values}." + selection_warning(r.selection))]
    return [Finding(f"{head}: {encs[0].encoder} collapses orbits most; {what}: {values}."
                    + selection_warning(r.selection))]


def latent_map_findings(r: LatentMapResult) -> list[Finding]:
    """One finding: which encoder's latents separate the labels best (5-NN accuracy
    against chance), over how many networks."""
    points = Count(r.settings.points, "networks", MIN_POINTS)
    head = f"**Latent map** ({points}{_where(r.selection)})"
    labels = np.unique(r.labels[r.labels >= 0])
    encs = sorted(r.encoders.values(),
                  key=lambda e: -e.knn_accuracy if math.isfinite(e.knn_accuracy) else math.inf)
    if labels.size < 2 or not any(math.isfinite(e.knn_accuracy) for e in encs):
        return [Finding(f"{head}: no labels to separate; the maps show the latents only."
                        + selection_warning(r.selection))]
    values = ", ".join(f"{e.encoder} {fmt(e.knn_accuracy)}" for e in encs)
    what = f"5-NN label accuracy (chance {fmt(1.0 / labels.size, 2)}): {values}"
    if not points.judged:
        return [Finding(f"{head}: {TOO_SMALL} (5-NN accuracy needs at least {MIN_POINTS} "
                        f"networks). Observed, not a finding: {what}."
                        + selection_warning(r.selection),
                        (f"latent map: 5-NN accuracy over {points}",))]
    best = f"{encs[0].encoder} separates labels best; " if len(encs) > 1 else ""
    return [Finding(f"{head}: {best}{what}." + selection_warning(r.selection))]


# ------------------------------------------------------------ autoencoders
def _n_networks(m: Mapping[str, Any], unit: str) -> Count | None:
    n = m.get("test_networks")
    return None if n is None else Count(int(n), unit, MIN_NETWORKS)


INR_RUNS = (("scalegmn", "ScaleGMN"), ("pna", "PNA (permutation-only)"))
CNN_RUNS = ("relu", "tanh")


def autoencoder_findings(training: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """Findings on the quickstart's autoencoders (``training``: each run's metrics by run
    name): the INR autoencoders' test render MSE against the mean image, the CNN
    autoencoders' decoded accuracy and Kendall tau, each with its n of test networks."""
    out = []
    inr = []
    small: list[str] = []
    for name, label in INR_RUNS:
        m = training.get(name, {})
        if "test_render_mse" in m and m.get("test_mean_image_mse"):
            n = _n_networks(m, "test INRs")
            ratio = m["test_render_mse"] / m["test_mean_image_mse"]
            inr.append(f"{label} {fmt(ratio)}" + (f" ({n})" if n else " (n not recorded)"))
            if n is not None and not n.judged:
                small.append(f"{label} autoencoder's render ratio over {n}")
    if inr:
        out.append(Finding(
            "**INR autoencoders**: test render MSE ÷ mean-image MSE (below 1: better than "
            "predicting the mean image; lower is better): " + ", ".join(inr)
            + (f": {TOO_SMALL} (at least {MIN_NETWORKS} test INRs needed)." if small else "."),
            tuple(small)))
    for act in CNN_RUNS:
        m = training.get(f"cnn-{act}", {})
        if "test_acc_decoded" not in m:
            continue
        n = _n_networks(m, "test networks")
        over = f"over {n}" if n else "(n not recorded)"
        text = (f"**CNN autoencoder ({act})** {over}: decoded accuracy "
                f"{fmt(m['test_acc_decoded'])} vs {fmt(m['test_acc_original'])} for the "
                f"originals, Kendall tau {fmt(m.get('test_acc_kendall_tau', float('nan')))}")
        if n is not None and not n.judged:
            out.append(Finding(f"{text}: {TOO_SMALL} (at least {MIN_NETWORKS} test networks "
                               "needed).",
                               (f"{act} CNN autoencoder: Kendall tau and accuracies over {n}",)))
        else:
            out.append(Finding(text + "."))
    return out


def findings_of(results: Sequence[object]) -> list[Finding]:
    """The findings of every result that has them (bare report sections have none)."""
    out: list[Finding] = []
    for r in results:
        fn = getattr(r, "findings", None)
        if callable(fn):
            out.extend(fn())
    return out
