"""The experiments on tiny zoos: files, metrics, skipped methods, determinism, errors."""

import json

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
from symmerge.experiments.images import ground_truth
from symmerge.zoo import load_zoo, save_zoo

SMALL = {"runs": 2, "orbit_size": 6, "steps": 6, "split": "all"}


def _without_timing(metrics):
    return {k: v for k, v in metrics.items() if k != "timing"}


@pytest.fixture(scope="module")
def orbit_result(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("orbit")
    return orbit_interpolation(assets.inr_zoo, out, run=assets.run, pna_run=assets.pna_run,
                               **SMALL)


def test_orbit_interpolation_outputs(orbit_result):
    r = orbit_result
    for name in ("metrics.json", "report.md", "curves.png", "barriers.png", "curves.safetensors"):
        assert (r.out_dir / name).is_file(), name
    methods = ["naive", "wm", "sort", "ae", "ae-latent", "ae-lift", "pna-ae"]
    assert list(r.metrics["methods"]) == methods and r.metrics["skipped"] == {}
    assert r.curves["naive"]["mse"].shape == (12, 6) and r.alphas.shape == (6,)
    saved = json.loads(r.metrics_path.read_text())
    for m in methods:
        s = saved["methods"][m]["mse"]
        for key in ("barrier_mean", "barrier_std", "auc_mean", "start_mean", "end_mean"):
            assert np.isfinite(s[key]), (m, key)
        assert saved["timing"][m]["seconds_per_pair"] >= 0
    report = r.report_path.read_text()
    for m in methods:
        assert f"`{m}`" in report
    assert "reconstructions" in report and "ms / pair" in report
    # ae-lift reports how far its lifted networks are from their templates
    dist = saved["methods"]["ae-lift"]["template_distance"]
    assert np.isfinite(dist) and dist > 0 and f"{dist:.3g}" in report
    assert "template_distance" not in saved["methods"]["wm"]


def test_exact_methods_keep_the_endpoints(orbit_result):
    c = orbit_result.curves
    for m in ("wm", "sort", "ae-lift"):
        np.testing.assert_allclose(c[m]["render_mse"][:, 0], c["naive"]["render_mse"][:, 0],
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c[m]["render_mse"][:, -1], c["naive"]["render_mse"][:, -1],
                                   rtol=1e-4, atol=1e-6)
    # the pair's first member is an exact orbit member: its render is the base INR's
    assert c["naive"]["render_mse"][:, 0].max() < 1e-8
    # weight matching recovers a noisy orbit's alignment: no barrier above the line
    s = orbit_result.metrics["methods"]
    assert s["wm"]["mse"]["barrier_mean"] < 0.1 * s["naive"]["mse"]["barrier_mean"]


def test_same_seed_same_numbers(assets, orbit_result, tmp_path):
    again = orbit_interpolation(assets.inr_zoo, tmp_path, run=assets.run,
                                pna_run=assets.pna_run, **SMALL)
    assert _without_timing(again.metrics) | {"settings": None} == \
        _without_timing(orbit_result.metrics) | {"settings": None}
    other = orbit_interpolation(assets.inr_zoo, tmp_path / "s1", methods=["naive"], seed=1,
                                **SMALL)
    assert other.metrics["networks"] != orbit_result.metrics["networks"] or \
        other.metrics["methods"]["naive"] != orbit_result.metrics["methods"]["naive"]


def test_default_methods_without_runs_are_skipped(assets, tmp_path):
    r = orbit_interpolation(assets.inr_zoo, tmp_path, transform="P", **SMALL)
    assert list(r.metrics["methods"]) == ["naive", "wm", "sort"]
    assert set(r.metrics["skipped"]) == {"ae", "ae-latent", "ae-lift", "pna-ae"}
    assert "--run" in r.metrics["skipped"]["ae"] and "--pna-run" in r.metrics["skipped"]["pna-ae"]
    assert "`ae` skipped" in r.report_path.read_text()


def test_requested_methods_without_runs_are_an_error(assets, tmp_path):
    with pytest.raises(SymmergeError, match="'ae' needs an autoencoder run"):
        orbit_interpolation(assets.inr_zoo, tmp_path / "a", methods=["naive", "ae"], **SMALL)
    with pytest.raises(SymmergeError, match="needs an autoencoder run .--pna-run"):
        orbit_interpolation(assets.inr_zoo, tmp_path / "b", methods=["pna-ae"], **SMALL)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_orbit_interpolation_errors(assets, tmp_path):
    with pytest.raises(SymmergeError, match="unknown method"):
        orbit_interpolation(assets.inr_zoo, tmp_path, methods=["magic"], **SMALL)
    with pytest.raises(SymmergeError, match="unknown transform"):
        orbit_interpolation(assets.inr_zoo, tmp_path, **{**SMALL, "transform": "X"})
    with pytest.raises(SymmergeError, match="only holds"):
        orbit_interpolation(assets.inr_zoo, tmp_path, runs=50, orbit_size=4, split="test")
    with pytest.raises(SymmergeError, match="needs an INR"):
        orbit_interpolation(assets.cnn_zoo, tmp_path, **SMALL)


def test_ground_truth_is_checked(assets, tmp_path):
    z = load_zoo(assets.inr_zoo)
    gt = ground_truth(z, torch.tensor([0, 5]))
    assert gt.images.shape == (2, 28, 28) and gt.source == "mnist-embedded" and not gt.assumed
    no_index = tmp_path / "noindex.safetensors"
    save_zoo(no_index, z.spec, z.params, z.labels, provenance={"data": "mnist-embedded"})
    with pytest.raises(SymmergeError, match="no image_index"):
        ground_truth(load_zoo(no_index), torch.tensor([0]))
    wrong = tmp_path / "wrong.safetensors"
    save_zoo(wrong, z.spec, z.params, (z.labels + 1) % 10, image_index=z.image_index)
    with pytest.raises(SymmergeError, match="wrong data source"):
        ground_truth(load_zoo(wrong), torch.tensor([0, 1]))
    bare = tmp_path / "bare.safetensors"
    save_zoo(bare, z.spec, z.params, z.labels, image_index=z.image_index)
    assert ground_truth(load_zoo(bare), torch.tensor([0])).assumed is True
    assert ground_truth(load_zoo(bare), torch.tensor([0]), "mnist-embedded").assumed is False
    dws = tmp_path / "dws.safetensors"
    save_zoo(dws, z.spec, z.params, z.labels, image_index=z.image_index,
             provenance={"importer": "dwsnets"})
    with pytest.raises(SymmergeError, match="--data"):
        ground_truth(load_zoo(dws), torch.tensor([0]))


def test_pair_interpolation(assets, tmp_path):
    r = pair_interpolation(assets.inr_zoo, tmp_path, run=assets.run, pairs=5, steps=5,
                           split="all", methods=["naive", "wm", "sort", "ae-lift"])
    assert r.metrics["pairs"] == 5 and np.array(r.metrics["networks"]).shape == (5, 2)
    z = load_zoo(assets.inr_zoo)
    pairs = torch.tensor(r.metrics["networks"])
    assert torch.equal(z.image_index[pairs[:, 0]], z.image_index[pairs[:, 1]])
    assert r.metrics["endpoints_in_ae_training_split"] >= 0
    assert "endpoints were in the autoencoder's training split" in r.report_path.read_text()
    with pytest.raises(SymmergeError, match="only"):
        pair_interpolation(assets.inr_zoo, tmp_path, pairs=100, split="all")


def test_cnn_interpolation(assets, tmp_path):
    r = cnn_interpolation(assets.cnn_zoo, tmp_path, run=assets.cnn_run, pairs=3, steps=4,
                          top=None, split="all", eval_images=200,
                          methods=["naive", "wm", "wm-perm", "sort", "ae", "ae-lift"])
    m = r.metrics["methods"]
    assert set(m) == {"naive", "wm", "wm-perm", "sort", "ae", "ae-lift"}
    assert r.curves["naive"]["accuracy"].shape == (3, 4)
    assert r.metrics["settings"]["held_out"].startswith("seeded split")
    for meth in ("wm", "sort", "ae-lift"):  # exact endpoints
        np.testing.assert_allclose(r.curves[meth]["accuracy"][:, [0, -1]],
                                   r.curves["naive"]["accuracy"][:, [0, -1]])
    assert "accuracy barrier" in r.report_path.read_text()
    with pytest.raises(SymmergeError, match="needs a CNN"):
        cnn_interpolation(assets.inr_zoo, tmp_path)
    with pytest.raises(SymmergeError, match="disjoint pairs"):
        cnn_interpolation(assets.cnn_zoo, tmp_path, pairs=50, split="all")


def test_orbit_collapse_and_latent_map(assets, tmp_path):
    r = orbit_collapse(assets.inr_zoo, tmp_path / "c", run=assets.run, pna_run=assets.pna_run,
                       networks=3, orbit_size=5, background=20, map_orbits=1, maps=["tsne"],
                       split="all")
    enc = r.metrics["encoders"]
    # the sign-invariant encoder collapses PD orbits; the permutation-only one cannot
    assert enc["run"]["ratio"] < 1e-3
    assert enc["pna_run"]["ratio"] > 10 * enc["run"]["ratio"]
    assert (tmp_path / "c" / "maps.png").is_file() and (tmp_path / "c" / "distances.png").is_file()
    lm = latent_map(assets.inr_zoo, tmp_path / "l", run=assets.run, split="all", maps=["tsne"])
    assert 0.0 <= lm.metrics["encoders"]["run"]["knn_accuracy"] <= 1.0
    again = latent_map(assets.inr_zoo, tmp_path / "l2", run=assets.run, split="all",
                       maps=["tsne"])
    assert again.metrics["encoders"] == lm.metrics["encoders"]
    report = write_report(tmp_path / "report.md", [r, lm])
    assert "c/maps.png" in report.read_text() and "l/latent_map.png" in report.read_text()
    with pytest.raises(SymmergeError, match="needs an autoencoder"):
        orbit_collapse(assets.inr_zoo, tmp_path / "x", split="all")
    with pytest.raises(SymmergeError, match="unknown map"):
        latent_map(assets.inr_zoo, tmp_path / "x", run=assets.run, maps=["pca"])


@pytest.mark.slow
def test_umap_maps_are_seeded(assets, tmp_path):
    from symmerge.experiments import embed_2d

    x = np.random.default_rng(0).normal(size=(40, 6))
    np.testing.assert_array_equal(embed_2d(x, "umap", 3), embed_2d(x, "umap", 3))
    r = orbit_collapse(assets.inr_zoo, tmp_path, run=assets.run, networks=2, orbit_size=5,
                       background=20, maps=["umap"], split="all")
    assert (tmp_path / "maps.png").is_file() and r.metrics["settings"]["maps"] == ["umap"]


def test_split_members(assets):
    from symmerge.experiments.common import DEFAULT_SPLIT, split_members

    z = load_zoo(assets.inr_zoo)
    parts = {s: split_members(z, s, DEFAULT_SPLIT) for s in ("train", "val", "test", "heldout")}
    expected = torch.sort(torch.cat([parts["val"], parts["test"]])).values
    assert torch.equal(parts["heldout"], expected)
    assert not bool(torch.isin(parts["heldout"], parts["train"]).any())
    assert torch.equal(split_members(z, "all", DEFAULT_SPLIT), torch.arange(len(z)))
    with pytest.raises(SymmergeError, match="unknown split"):
        split_members(z, "dev", DEFAULT_SPLIT)


def test_held_out_images_reproduce_the_zoo_builders_test_accuracy(tmp_path):
    """Split, input transform and source follow the CNN zoo builder's provenance."""
    from symmerge.experiments import held_out_images
    from symmerge.training.losses import accuracy
    from symmerge.zoo.train_cnn import CNNTrainConfig, train_cnn_zoo

    path = tmp_path / "cnn.safetensors"
    train_cnn_zoo("mnist-embedded", out=path, n=3, activation="tanh", progress=False,
                  config=CNNTrainConfig(hidden=(4, 4), steps=20), workers=1)
    z = load_zoo(path)
    held = held_out_images(z)
    assert "x * 2 - 1" in held.how and not held.assumed
    torch.testing.assert_close(accuracy(z.spec, z.params, held.images, held.labels),
                               z.metric("test_accuracy"))
