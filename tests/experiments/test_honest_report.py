"""Reports that tell the truth at any size: every statistic states its n and, below its
minimum, says it cannot be judged; experiments draw held-out networks by default and
say where their networks came from; failed networks are left out; a summary at the top
names what wins and what is too small; plots mark reconstruction endpoints and keep
overlapping curves apart; progress bars."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from symmerge import SymmergeError
from symmerge.experiments import (
    cnn_interpolation,
    latent_map,
    orbit_collapse,
    orbit_interpolation,
    pair_interpolation,
    write_report,
)
from symmerge.experiments.evidence import (
    MIN_ORBITS,
    MIN_PAIRS,
    MIN_POINTS,
    TOO_SMALL,
    Count,
    Finding,
)
from symmerge.experiments.findings import (
    clear_difference,
    pair_units,
    paired_difference,
    unit_means,
)
from symmerge.zoo import Zoo, load_zoo

#: the stored split of the INR copies: images 0-9 train, 10-12 val, 13-15 test (2 INRs each)
INR_SPLIT = torch.tensor([0] * 20 + [1] * 6 + [2] * 6)
#: the stored split of the CNN copies: 0-9 train, 10-11 val, 12-15 test
CNN_SPLIT = torch.tensor([0] * 10 + [1] * 2 + [2] * 4)


def _copy(path, split=None, **metrics) -> Zoo:
    """An in-memory copy of a zoo file with a stored split and extra metrics: the split
    the experiments see is known here, whatever the run's split settings."""
    z = load_zoo(path)
    kept = {m: z.metric(m) for m in z.metric_names}
    return Zoo.from_tensors(z.params, z.spec, z.labels, image_index=z.image_index,
                            metrics={**kept, **metrics}, provenance=z.provenance, split=split)


@pytest.fixture(scope="module")
def inrs(assets) -> Zoo:
    return _copy(assets.inr_zoo, INR_SPLIT)


def _rows(split: torch.Tensor, *codes: int) -> set[int]:
    return set(torch.nonzero(torch.isin(split, torch.tensor(codes))).flatten().tolist())


def _summary(text: str) -> str:
    """The Summary section of a report (it must be the first section)."""
    first = next(line for line in text.splitlines() if line.startswith("## "))
    assert first == "## Summary", text[:300]
    start = text.index("## Summary")
    end = text.find("\n## ", start + 5)
    return text[start:end if end > 0 else None]


# ------------------------------------------------------------ n everywhere
def test_counts_and_their_caveat():
    assert Count(8, "pairs", MIN_PAIRS).caveat("mean barrier") == (
        f"mean barrier over 8 pairs: {TOO_SMALL} (at least {MIN_PAIRS} needed)")
    assert Count(MIN_PAIRS, "pairs", MIN_PAIRS).caveat("mean barrier") == ""
    assert str(Count(1, "networks", 10)) == "1 network"
    mean, sem = paired_difference(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0]))
    assert mean == pytest.approx(2.0) and sem == pytest.approx(1.0 / np.sqrt(3))


def test_interpolation_reports_state_n_and_judge_only_above_the_minimum(assets, tmp_path):
    kw = {"run": assets.run, "split": "all", "steps": 4, "methods": ["naive", "wm", "ae"]}
    small = pair_interpolation(assets.inr_zoo, pairs=MIN_PAIRS - 6, **kw)
    big = pair_interpolation(assets.inr_zoo, pairs=MIN_PAIRS + 2, **kw)
    small.save(tmp_path / "small")
    big.save(tmp_path / "big")
    s, b = small.report_path.read_text(), big.report_path.read_text()
    for text, n in ((s, small.pairs), (b, big.pairs)):
        assert f"n = {n} pairs" in text  # in the table header of the barriers
        assert f"Mean ± std over the {n} pairs" in text
        assert f"({n} pairs; split: all)" in _summary(text)
    assert TOO_SMALL in s and f"barriers over {small.pairs} pairs" in _summary(s)
    assert "**Too small to judge at this size**" in _summary(s)
    assert TOO_SMALL not in b and "Too small to judge" not in b
    # the plots say mean ± std over how many pairs, and when that is too few
    figs = small.figures()
    assert f"mean ± std over {small.pairs} pairs; too few pairs" in \
        figs["curves.png"]._suptitle.get_text()
    bars = figs["barriers.png"].axes[0]
    assert f"mean ± std over {small.pairs} pairs" in bars.get_ylabel()
    assert "too few pairs" in bars.get_title()
    assert "too few" not in big.figures()["barriers.png"].axes[0].get_title()


def test_paired_differences_are_judged_by_a_t_interval_over_independent_units():
    # t quantiles (97.5%): 4.30 for 3 units, 2.26 for 10: the same mean and SEM can be
    # clear with many units and not with few
    assert not clear_difference(-1.0, 0.3, 3) and clear_difference(-1.0, 0.3, 10)
    assert clear_difference(1.0, 0.2, 3) and not clear_difference(1.0, float("nan"), 10)
    assert not clear_difference(5.0, 0.1, 1)
    units = np.array([0, 0, 0, 1, 1, 2])
    np.testing.assert_allclose(unit_means(np.array([1.0, 2, 3, 10, 20, 7]), units),
                               [2.0, 15.0, 7.0])
    np.testing.assert_array_equal(unit_means(np.array([1.0, 2]), None), [1.0, 2.0])


def test_orbit_interpolation_compares_methods_over_orbits_not_pairs(inrs, assets, tmp_path):
    """The pairs of one orbit share its network: the summary's n is the orbits, and a
    run with many pairs from too few orbits cannot be judged."""
    kw = {"run": assets.run, "orbit_size": 6, "steps": 3, "methods": ["naive", "wm"],
          "split": "all"}
    few = orbit_interpolation(inrs, runs=MIN_ORBITS - 1, **kw)
    assert few.pairs >= MIN_PAIRS  # enough pairs, too few orbits
    np.testing.assert_array_equal(pair_units(few), np.repeat(np.arange(MIN_ORBITS - 1), 6))
    few.save(tmp_path / "few")
    summary = _summary(few.report_path.read_text())
    assert f"({MIN_ORBITS - 1} orbits, {few.pairs} pairs; compared over the orbits' mean" \
        in summary
    assert TOO_SMALL in summary and f"at least {MIN_ORBITS} orbits" in summary
    enough = orbit_interpolation(inrs, runs=MIN_ORBITS, **kw)
    enough.save(tmp_path / "enough")
    summary = _summary(enough.report_path.read_text())
    assert TOO_SMALL not in summary and "lowest barrier" in summary
    # a record without pair_orbits (older versions): equal consecutive blocks
    old = type(enough)(**{**enough.__dict__, "pair_orbits": np.zeros(0, dtype=np.int64)})
    np.testing.assert_array_equal(pair_units(old), pair_units(enough))


def test_latent_reports_state_n(inrs, assets, tmp_path):
    lm = latent_map(inrs, run=assets.run, maps=[])
    lm.save(tmp_path / "l")
    text = lm.report_path.read_text()
    assert lm.settings.points < MIN_POINTS
    assert f"5-NN label accuracy (n = {lm.settings.points} networks)" in text
    assert f"over {lm.settings.points} networks: {TOO_SMALL}" in text
    oc = orbit_collapse(inrs, run=assets.run, networks=MIN_ORBITS - 1, orbit_size=4,
                        background=6, maps=[])
    oc.save(tmp_path / "c")
    text = oc.report_path.read_text()
    assert "within orbit (n = 12 pairs)" in text and "between orbits (n = 16 pairs)" in text
    assert f"over {MIN_ORBITS - 1} orbits: {TOO_SMALL}" in text
    assert f"orbit collapse: ratio over {MIN_ORBITS - 1} orbits" in _summary(text)
    enough = orbit_collapse(inrs, run=assets.run, pna_run=assets.pna_run, networks=MIN_ORBITS,
                            orbit_size=4, background=6, maps=[])
    enough.save(tmp_path / "c3")
    text = enough.report_path.read_text()
    assert TOO_SMALL not in text
    best = min(enough.encoders.values(), key=lambda e: e.ratio).encoder
    assert f"{best} collapses orbits most" in _summary(text)
    hist = enough.figures()["distances.png"].axes[0].get_legend().get_texts()
    assert any("n = 18 pairs" in t.get_text() for t in hist)  # 3 orbits x 6 member pairs


# ------------------------------------------------------------ held-out networks only
def test_experiments_draw_held_out_networks_by_default_and_say_so(inrs, assets, tmp_path):
    """The zoo's stored split is known here: every default draws outside its train part,
    and the report says that none of the networks was in the training split."""
    train, test = _rows(INR_SPLIT, 0), _rows(INR_SPLIT, 2)
    orbit = orbit_interpolation(inrs, run=assets.run, runs=3, orbit_size=3, steps=3,
                                methods=["naive", "ae"])
    assert set(orbit.networks.tolist()) <= test
    pair = pair_interpolation(inrs, run=assets.run, steps=3, methods=["naive", "ae"])
    assert set(pair.networks.flatten().tolist()) <= _rows(INR_SPLIT, 1, 2)
    collapse = orbit_collapse(inrs, run=assets.run, networks=2, orbit_size=3, background=6,
                              maps=[])
    assert set(collapse.networks.tolist()) <= test
    lmap = latent_map(inrs, run=assets.run, maps=[])
    assert set(lmap.networks.tolist()) == test
    for r in (orbit, pair, collapse, lmap):
        assert r.selection.in_training_split == 0 and not train & set(r.networks.flatten()
                                                                         .tolist())
        r.save(tmp_path / r.experiment)
        text = r.report_path.read_text()
        assert "none in the autoencoder's training split (held-out networks only)" in text
        assert f"usable {'held-out (val + test)' if r is pair else 'test-split'} networks" \
            in text


def test_networks_from_the_training_split_are_flagged(inrs, assets, tmp_path):
    r = orbit_interpolation(inrs, run=assets.run, runs=2, orbit_size=3, steps=3, split="train",
                            methods=["naive", "ae"])
    assert r.selection.in_training_split == 2 == r.selection.used
    r.save(tmp_path)
    text = r.report_path.read_text()
    assert "**2 of the 2 networks were in the autoencoder's training split**" in text
    assert "2 of the 2 networks used were in the autoencoder's training split" in _summary(text)
    # too few to judge, one encoder: the summary still says where the networks came from
    for small in (orbit_collapse(inrs, run=assets.run, networks=2, orbit_size=3, background=6,
                                 maps=[], split="train"),
                  latent_map(inrs, run=assets.run, maps=[], split="train")):
        small.save(tmp_path / small.experiment)
        summary = _summary(small.report_path.read_text())
        assert TOO_SMALL in summary
        assert "networks used were in the autoencoder's training split" in summary
    cnn = cnn_interpolation(_copy(assets.cnn_zoo, CNN_SPLIT), run=assets.cnn_run, pairs=3,
                            steps=3, top=None, split="all", eval_images=50,
                            methods=["naive", "ae"])
    seen = len(set(cnn.networks.flatten().tolist()) & _rows(CNN_SPLIT, 0))
    assert cnn.selection.in_training_split == seen
    cnn.save(tmp_path / "cnn")
    if seen:
        assert f"**{seen} of the 6 networks were in the autoencoder's training split**" in \
            cnn.report_path.read_text()


def test_cnn_pairs_come_from_the_test_split_by_default(assets):
    z = _copy(assets.cnn_zoo, CNN_SPLIT)
    r = cnn_interpolation(z, run=assets.cnn_run, pairs=2, steps=3, top=None, eval_images=50,
                          methods=["naive", "ae"])
    assert set(r.networks.flatten().tolist()) == _rows(CNN_SPLIT, 2)
    assert r.selection.split == "test" and r.selection.in_training_split == 0


# ------------------------------------------------------------ failed networks
def test_failed_networks_are_left_out_and_counted(assets, tmp_path):
    """A zoo with a stored ``failed`` mark on 10 of 16 networks: 3 pairs must be exactly
    the other 6; one without the mark: networks at chance are derived as failed."""
    failed = torch.zeros(16)
    failed[:10] = 1.0
    z = _copy(assets.cnn_zoo, failed=failed)
    r = cnn_interpolation(z, pairs=3, steps=3, top=None, split="all", eval_images=50,
                          methods=["naive", "wm"])
    assert sorted(r.networks.flatten().tolist()) == list(range(10, 16))
    assert r.selection.failed_excluded == 10 and r.selection.pool == 6
    r.save(tmp_path / "stored")
    assert "10 failed networks of the split left out" in r.report_path.read_text()
    assert "10 failed networks (diverged or at chance) left out" in \
        _summary(r.report_path.read_text())
    with pytest.raises(SymmergeError, match="only 6 networks are eligible \\(10 failed"):
        cnn_interpolation(z, pairs=4, steps=3, top=None, split="all", eval_images=50,
                          methods=["naive"])
    acc = load_zoo(assets.cnn_zoo).metric("test_accuracy").clone()
    acc[[1, 4]] = torch.tensor([0.098, 0.078])  # as the quickstart's ReLU zoo had
    derived = _copy(assets.cnn_zoo, test_accuracy=acc)
    r = cnn_interpolation(derived, pairs=7, steps=3, top=None, split="all", eval_images=50,
                          methods=["naive"])
    assert not {1, 4} & set(r.networks.flatten().tolist())
    assert r.selection.failed_excluded == 2
    # the INR experiments apply the same mark
    inr_failed = torch.zeros(32)
    inr_failed[::2] = 1.0
    lm = latent_map(_copy(assets.inr_zoo, failed=inr_failed), run=assets.run, split="all",
                    maps=[])
    assert set(lm.networks.tolist()) == set(range(1, 32, 2))


# ------------------------------------------------------------ summary
def test_summary_at_the_top_names_the_lowest_barrier(assets, tmp_path):
    r = pair_interpolation(assets.inr_zoo, run=assets.run, pairs=MIN_PAIRS + 2, steps=4,
                           split="all", methods=["naive", "wm", "sort", "ae"])
    r.save(tmp_path / "p")
    summary = _summary(r.report_path.read_text())
    exact = {m: s["mse"].barrier_mean for m, s in r.methods.items() if s.exact_endpoints}
    best = min(exact, key=exact.get)
    assert f"lowest barrier: `{best}`" in summary
    ratio = exact["wm"] / exact["naive"]
    assert f"`wm` {ratio:.2g}×" in summary
    # ae's endpoints are reconstructions: named as such, never the winner
    assert "`ae` barrier" in summary and "not a win" in summary
    assert best != "ae"
    # a combined report: the summary first, then the intro; extra findings go first
    lm = latent_map(assets.inr_zoo, run=assets.run, split="all", maps=[])
    text = write_report(tmp_path / "report.md", [r, lm], intro="INTRO",
                        findings=[Finding("extra line", ("tiny thing",))]).read_text()
    assert text.index("## Summary") < text.index("INTRO") < text.index("## Pair")
    summary = _summary(text)
    assert summary.index("extra line") < summary.index("**Pair interpolation")
    assert "**Latent map**" in summary and "tiny thing" in summary


# ------------------------------------------------------------ plots
def test_reconstruction_bars_are_marked_and_curves_stay_apart(assets):
    r = pair_interpolation(assets.inr_zoo, run=assets.run, pna_run=assets.pna_run, pairs=4,
                           steps=4, split="all",
                           methods=["naive", "wm", "ae", "ae-latent", "pna-ae"])
    figs = r.figures()
    ax = figs["barriers.png"].axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    hatches = dict(zip(names, (p.get_hatch() for p in ax.patches[:len(names)]), strict=True))
    assert hatches["ae"] == hatches["pna-ae"] == "///" and hatches["wm"] is None
    assert "not a win" in ax.get_legend().get_texts()[0].get_text()
    curves = figs["curves.png"].axes[0]
    styles = [(line.get_linestyle(), line.get_marker()) for line in curves.get_lines()]
    assert len(set(styles)) == len(styles) == 5
    labels = [t.get_text() for t in curves.get_legend().get_texts()]
    assert "ae (reconstructed endpoints)" in labels and "wm" in labels


def test_collapse_maps_place_orbits_with_the_fitted_transform(inrs, assets, monkeypatch):
    """UMAP is fitted on the background alone and the orbits are placed by its
    ``transform`` (a fake UMAP records the calls); the figure gives each orbit's latent
    spread beside the maps."""
    calls = []

    class FakeUMAP:
        def __init__(self, **kw):
            pass

        def fit_transform(self, x):
            calls.append(("fit", x.shape[0]))
            return x[:, :2]

        def transform(self, x):
            calls.append(("transform", x.shape[0]))
            return x[:, :2]

    import symmerge.experiments.latents as latents

    monkeypatch.setattr(latents, "_umap", lambda: types.SimpleNamespace(UMAP=FakeUMAP))
    r = orbit_collapse(inrs, run=assets.run, networks=3, orbit_size=4, background=6,
                       map_orbits=2, maps=["umap", "tsne"])
    assert calls == [("fit", 6), ("transform", 4), ("transform", 4)]
    panel = r.maps["run"]["umap"]
    assert [o.shape for o in panel.overlay] == [(4, 2), (4, 2)]
    fig = r.figures()["maps.png"]
    assert len(fig.axes) == 3  # UMAP, t-SNE and each orbit's latent spread
    spread = fig.axes[2]
    assert spread.get_yscale() == "log" and "latent spread" in spread.get_title()
    legend = " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert f"latent spread {r.distances['run'].per_orbit[0]:.2g}" in legend
    # orbits of one size: the mean of the orbits' means is the mean of all within pairs
    np.testing.assert_allclose(r.distances["run"].per_orbit.mean(),
                               r.distances["run"].within.mean(), rtol=1e-6)


# ------------------------------------------------------------ progress
def test_progress_bars_on_stderr_and_off_on_request(assets, capsys):
    kw = {"split": "all", "pairs": 2, "steps": 3, "methods": ["naive", "sort"]}
    pair_interpolation(assets.inr_zoo, progress=False, **kw)
    assert "pair-interpolation" not in capsys.readouterr().err
    pair_interpolation(assets.inr_zoo, **kw)
    err = capsys.readouterr().err
    assert "pair-interpolation" in err and "2/2" in err
    latent_map(assets.inr_zoo, run=assets.run, split="all", maps=[])
    assert "latent-map" in capsys.readouterr().err
    assert "tqdm" in sys.modules


@pytest.mark.parametrize("per_orbit", [np.zeros(0), np.array([np.nan, np.nan])])
def test_the_within_orbit_panel_says_when_it_has_nothing_to_show(per_orbit):
    """A record without per-orbit distances (written before they were kept) still draws."""
    import matplotlib.figure

    from symmerge.experiments.plots import within_panel
    from symmerge.experiments.results import DistanceHistogram

    ax = matplotlib.figure.Figure().subplots()
    h = DistanceHistogram(np.ones(3), np.ones(3), "between-orbit pair", per_orbit)
    within_panel(ax, h, 2)
    assert "no within-orbit distances recorded" in ax.texts[0].get_text()
