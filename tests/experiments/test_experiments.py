"""The experiments on tiny zoos: typed results, saved files, metrics, skipped methods,
determinism, side effects, errors."""

import json
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from symmerge import SymmergeError, __version__
from symmerge.align import MatchOptions
from symmerge.experiments import (
    CNNInterpolationResult,
    CurveSummary,
    LatentMapResult,
    MethodSummary,
    OrbitCollapseResult,
    OrbitInterpolationResult,
    PairInterpolationResult,
    cnn_interpolation,
    latent_map,
    orbit_collapse,
    orbit_interpolation,
    pair_interpolation,
    write_report,
)
from symmerge.experiments.results import OrbitInterpolationSettings
from symmerge.experiments.sections import setup_note
from symmerge.models import LoadedRun, encode, load_run
from symmerge.zoo import Zoo, load_zoo, save_zoo
from symmerge.zoo.images import ground_truth
from tests.cli._util import run_cli

SMALL = {"runs": 2, "orbit_size": 6, "steps": 6, "split": "all"}
#: what ``to_json`` holds that is not deterministic (wall-clock seconds) or names paths
UNSTABLE = {"timing", "seconds"}


def _stable(metrics, drop=()):
    """The deterministic part of ``metrics`` as comparable text (NaN equals NaN)."""
    kept = {k: v for k, v in metrics.items() if k not in UNSTABLE}
    for path in drop:
        *parents, leaf = path.split("/")
        node = kept
        for name in parents:
            node = node[name]
        node.pop(leaf)
    return json.dumps(kept, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def orbit_result(assets, tmp_path_factory):
    result = orbit_interpolation(assets.inr_zoo, run=assets.run, pna_run=assets.pna_run,
                                 **SMALL)
    result.save(tmp_path_factory.mktemp("orbit"))
    return result


def test_orbit_interpolation_outputs(orbit_result):
    r = orbit_result
    for name in ("metrics.json", "report.md", "curves.png", "barriers.png", "curves.safetensors"):
        assert (r.directory / name).is_file(), name
    methods = ["naive", "wm", "sort", "ae", "ae-latent", "ae-lift", "pna-ae"]
    assert list(r.methods) == methods and r.skipped == {}
    # the report's prose cites docs/METHOD.md by sections that exist
    from tests.test_docs import METHOD, bad_mentions, cited, sections
    report = (r.directory / "report.md").read_text()
    assert cited(report) and set(cited(report)) <= sections(METHOD.read_text(encoding="utf-8"))
    assert bad_mentions(report, METHOD) == []
    assert r.curves["naive"]["mse"].shape == (12, 6) and r.alphas.shape == (6,)
    saved = json.loads(r.metrics_path.read_text())
    assert sorted(saved["methods"]) == sorted(methods) and saved["skipped"] == {}
    for m in methods:
        s = saved["methods"][m]["mse"]
        for key in ("barrier_mean", "barrier_std", "auc_mean", "start_mean", "end_mean"):
            assert np.isfinite(s[key]), (m, key)
        assert saved["timing"][m]["seconds_per_pair"] > 0
    report = r.report_path.read_text()
    for m in methods:
        assert f"`{m}`" in report
    assert "reconstructions" in report and "ms / pair" in report
    # ae-lift reports how far its lifted networks are from their templates
    dist = saved["methods"]["ae-lift"]["template_distance"]
    assert np.isfinite(dist) and dist > 0 and f"{dist:.3g}" in report
    assert dist == r.methods["ae-lift"].template_distance
    assert "template_distance" not in saved["methods"]["wm"]
    assert r.methods["wm"].template_distance is None
    # the report says which setup produced its numbers
    assert f"`run` {assets_run(r)} (preset quick, sign encoder, seed 0)" in report
    assert "`pna_run`" in report and "pna encoder" in report and "seed 0" in report


def assets_run(result):
    return next(run.path for run in result.runs if run.role == "run")


def test_results_are_typed_and_saved_as_json(orbit_result):
    """The result's typed fields and ``metrics.json`` hold the same numbers, under the keys
    consumers read."""
    r = orbit_result
    saved = json.loads(r.metrics_path.read_text())
    assert isinstance(r, OrbitInterpolationResult) and r.experiment == "orbit-interpolation"
    assert isinstance(r.settings, OrbitInterpolationSettings)
    with pytest.raises(FrozenInstanceError):
        r.settings.steps = 3  # type: ignore[misc]
    assert (r.settings.runs, r.settings.orbit_size, r.settings.steps, r.seed) == (2, 6, 6, 0)
    assert r.settings.matching == MatchOptions() and r.version == __version__
    assert [(run.role, run.preset, run.encoder_mode, run.seed) for run in r.runs] == \
        [("run", "quick", "sign", 0), ("pna_run", "quick", "pna", 0)]
    assert saved["encoder_modes"] == {"run": "sign", "pna_run": "pna"}
    assert saved["symmerge_version"] == __version__ and saved["settings"]["wm_restarts"] == 0
    for m, summary in r.methods.items():
        assert isinstance(summary, MethodSummary)
        for metric in ("mse", "render_mse"):
            c = summary[metric]
            assert isinstance(c, CurveSummary)
            assert saved["methods"][m][metric] == {
                k: None if isinstance(v, float) and np.isnan(v) else v for k, v in vars(c).items()}
            assert c.barrier_sem == pytest.approx(c.barrier_std / np.sqrt(c.pairs))
        assert saved["methods"][m]["exact_endpoints"] == summary.exact_endpoints
        assert saved["methods"][m]["endpoint_distance"] == summary.endpoint_distance
        assert saved["timing"][m]["seconds_per_pair"] == summary.seconds_per_pair
        # the barrier relative to the reference method's, computed independently here
        ref = r.methods["naive"][metric].barrier_mean
        assert summary[metric].barrier_vs_naive == pytest.approx(summary[metric].barrier_mean
                                                                 / ref)
    assert r.barriers() == {m: s["mse"].barrier_mean for m, s in r.methods.items()}
    assert r.summary("wm") == r.methods["wm"]["mse"] and r.primary_metric == "mse"
    assert saved["networks"] == r.networks.tolist() and saved["pairs"] == r.pairs == 12
    assert saved["loss_target"]["metric"] == "mse" and r.loss_target.target == "image"
    assert saved["base_fit_mse"] == r.base_fit_mse
    curves = load_file(str(r.directory / "curves.safetensors"))
    np.testing.assert_array_equal(curves["alphas"].numpy(), r.alphas)
    np.testing.assert_array_equal(curves["ae-lift/mse"].numpy(), r.curves["ae-lift"]["mse"])


def test_save_writes_exactly_its_files_and_nothing_else_writes(assets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may appear here (or anywhere) without save()
    r = orbit_interpolation(assets.inr_zoo, methods=["naive", "sort"], **SMALL)
    assert list(tmp_path.iterdir()) == [] and r.directory is None and r.metrics_path is None
    assert all(img == [] for img in (s.images for s in r.sections()))  # no files to show
    files = r.save(tmp_path / "a" / "b")
    assert sorted(p.name for p in files) == sorted(
        ["curves.safetensors", "curves.png", "barriers.png", "report.md", "metrics.json",
         "record.safetensors"])
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == sorted(
        p.name for p in files)
    assert r.directory == tmp_path / "a" / "b"
    (tmp_path / "file").write_text("x")
    with pytest.raises(SymmergeError, match="not a directory"):
        r.save(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_plots_are_figures_and_the_backend_is_untouched(orbit_result):
    """Figures are built without pyplot: no backend switch, no global figure list."""
    import sys

    from matplotlib.figure import Figure

    figs = orbit_result.figures()
    assert set(figs) == {"curves.png", "barriers.png"}
    assert all(isinstance(f, Figure) for f in figs.values())
    assert len(figs["curves.png"].axes) == 2
    assert "matplotlib.pyplot" not in sys.modules or sys.modules["matplotlib.pyplot"] \
        .get_fignums() == []


def test_importing_and_running_leaves_the_matplotlib_backend(assets, tmp_path):
    """A notebook keeps its inline backend: importing symmerge imports no pyplot, and
    running and saving experiments changes no backend and leaves no pyplot figure (in a
    fresh interpreter; Lightning's torchmetrics imports pyplot when a run is loaded)."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import symmerge, symmerge.experiments, symmerge.pipeline, symmerge.methods\n"
        "import symmerge.cli.app\n"
        "symmerge.cli.app._register()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "from symmerge.experiments import orbit_interpolation, latent_map\n"
        f"r = orbit_interpolation({str(assets.inr_zoo)!r}, runs=1, orbit_size=3, steps=3, "
        "split='all', methods=['naive'])\n"
        f"r.save({str(tmp_path / 'o')!r})\n"
        f"latent_map({str(assets.inr_zoo)!r}, run={str(assets.run)!r}, split='all', "
        f"maps=['tsne']).save({str(tmp_path / 'l')!r})\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "plt = sys.modules.get('matplotlib.pyplot')\n"
        "assert plt is None or plt.get_fignums() == []\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "curves.png").is_file() and (tmp_path / "l" / "latent_map.png") \
        .is_file()


def test_no_module_touches_pyplot_or_the_backend():
    """symmerge builds Figure objects itself: no module imports pyplot or sets a backend."""
    import ast

    import symmerge

    def touches(tree: ast.AST) -> bool:
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) else [])
            if any(n.startswith("matplotlib.pyplot") for n in names):
                return True
            if isinstance(node, ast.Attribute) and node.attr in ("use", "switch_backend") \
                    and isinstance(node.value, ast.Name) and node.value.id == "matplotlib":
                return True
        return False

    root = Path(symmerge.__file__).parent
    offending = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if touches(ast.parse(p.read_text()))]
    assert offending == []


def test_same_seed_same_numbers(assets, orbit_result):
    again = orbit_interpolation(assets.inr_zoo, run=assets.run, pna_run=assets.pna_run,
                                **SMALL)
    assert _stable(again.to_json()) == _stable(orbit_result.to_json())
    for m, per in orbit_result.curves.items():
        for k, v in per.items():
            np.testing.assert_array_equal(again.curves[m][k], v)
    other = orbit_interpolation(assets.inr_zoo, methods=["naive"], seed=1, **SMALL)
    assert other.networks.tolist() != orbit_result.networks.tolist() or \
        other.methods["naive"] != orbit_result.methods["naive"]


def test_a_zoo_in_memory(assets):
    """A Zoo object works as a path does (same numbers); messages name it."""
    z = load_zoo(assets.inr_zoo)
    mem = Zoo.from_tensors(z.params, z.spec, z.labels, image_index=z.image_index,
                           provenance=z.provenance)
    a = orbit_interpolation(mem, methods=["naive", "sort"], **SMALL)
    b = orbit_interpolation(assets.inr_zoo, methods=["naive", "sort"], **SMALL)
    assert _stable(a.to_json(), ["settings/zoo"]) == _stable(b.to_json(), ["settings/zoo"])
    assert a.settings.zoo == "in-memory zoo" and b.settings.zoo == str(assets.inr_zoo)
    cnn = load_zoo(assets.cnn_zoo)
    with pytest.raises(SymmergeError, match="in-memory zoo holds cnn"):
        orbit_interpolation(Zoo.from_tensors(cnn.params, cnn.spec), **SMALL)


def test_a_model_in_memory_works_as_its_run_directory(assets, device):
    """``run=`` takes a trained model in memory (same numbers; results name it), and the
    caller's model stays on its device."""
    loaded = load_run(assets.run)
    memory = LoadedRun(loaded.model, loaded.spec, loaded.config)  # no directory
    kw = {"pairs": 3, "steps": 4, "split": "all", "methods": ["naive", "ae", "ae-lift"],
          "device": device}
    a = pair_interpolation(assets.inr_zoo, run=memory, **kw)
    b = pair_interpolation(assets.inr_zoo, run=assets.run, **kw)
    assert _stable(a.to_json(), ["settings/run", "runs"]) == \
        _stable(b.to_json(), ["settings/run", "runs"])
    assert a.settings.run == "in-memory model" and a.runs[0].path == "in-memory model"
    assert "`run` in-memory model (preset quick" in setup_note(a)
    assert next(memory.model.parameters()).device.type == "cpu"
    with pytest.raises(SymmergeError, match="run in-memory model was trained on siren .* but zoo"):
        cnn_interpolation(assets.cnn_zoo, run=memory)


def test_default_methods_without_runs_are_skipped(assets, tmp_path):
    r = orbit_interpolation(assets.inr_zoo, transform="P", **SMALL)
    assert list(r.methods) == ["naive", "wm", "sort"]
    assert set(r.skipped) == {"ae", "ae-latent", "ae-lift", "pna-ae"}
    assert "pass run=DIR" in r.skipped["ae"] and "pass pna_run=DIR" in r.skipped["pna-ae"]
    r.save(tmp_path)
    assert "`ae` skipped" in r.report_path.read_text()


def test_requested_methods_without_runs_are_an_error(assets):
    with pytest.raises(SymmergeError, match=r"'ae' needs a trained \(ScaleGMN\) autoencoder: "
                                            "pass run=DIR"):
        orbit_interpolation(assets.inr_zoo, methods=["naive", "ae"], **SMALL)
    with pytest.raises(SymmergeError, match=r"needs a trained permutation-only .*: pass pna_run="):
        orbit_interpolation(assets.inr_zoo, methods=["pna-ae"], **SMALL)


def test_orbit_interpolation_errors(assets):
    with pytest.raises(SymmergeError, match="unknown interpolation method 'magic'"):
        orbit_interpolation(assets.inr_zoo, methods=["magic"], **SMALL)
    with pytest.raises(SymmergeError, match="no methods selected"):
        orbit_interpolation(assets.inr_zoo, methods=[], **SMALL)
    with pytest.raises(SymmergeError, match="transform must be one of P, D, PD; got 'X'"):
        orbit_interpolation(assets.inr_zoo, **{**SMALL, "transform": "X"})
    with pytest.raises(SymmergeError, match="only holds"):
        orbit_interpolation(assets.inr_zoo, runs=50, orbit_size=4, split="test")
    with pytest.raises(SymmergeError, match="needs an INR"):
        orbit_interpolation(assets.cnn_zoo, **SMALL)
    with pytest.raises(SymmergeError, match="seed must be an integer"):
        orbit_interpolation(assets.inr_zoo, seed=-1, matching=MatchOptions(), **SMALL)


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
    with pytest.raises(SymmergeError, match="wrong data source .* .pass data=SOURCE."):
        ground_truth(load_zoo(wrong), torch.tensor([0, 1]))
    bare = tmp_path / "bare.safetensors"
    save_zoo(bare, z.spec, z.params, z.labels, image_index=z.image_index)
    assert ground_truth(load_zoo(bare), torch.tensor([0])).assumed is True
    assert ground_truth(load_zoo(bare), torch.tensor([0]), "mnist-embedded").assumed is False
    dws = tmp_path / "dws.safetensors"
    save_zoo(dws, z.spec, z.params, z.labels, image_index=z.image_index,
             provenance={"importer": "dwsnets"})
    with pytest.raises(SymmergeError, match="data=mnist:DIR"):
        ground_truth(load_zoo(dws), torch.tensor([0]))


def test_pair_interpolation(assets, tmp_path):
    r = pair_interpolation(assets.inr_zoo, run=assets.run, pairs=5, steps=5, split="all",
                           methods=["naive", "wm", "sort", "ae-lift"])
    assert isinstance(r, PairInterpolationResult) and r.pairs == 5
    assert r.networks.shape == (5, 2)
    z = load_zoo(assets.inr_zoo)
    pairs = torch.from_numpy(r.networks)
    assert torch.equal(z.image_index[pairs[:, 0]], z.image_index[pairs[:, 1]])
    assert r.image_index.tolist() == z.image_index[pairs[:, 0]].tolist()
    split = load_run(assets.run).config.split
    train_idx = z.splits(seed=split.seed, fractions=split.fractions, by_image=split.by_image)[
        "train"]
    assert r.endpoints_in_ae_training_split == int(torch.isin(pairs, train_idx).sum())
    # computed here from the zoo: the endpoints' mean parameter distance
    expected = float((z.params[pairs[:, 0]] - z.params[pairs[:, 1]]).norm(dim=1).mean())
    assert r.endpoint_param_distance == pytest.approx(expected, rel=1e-6)
    r.save(tmp_path)
    saved = json.loads(r.metrics_path.read_text())
    assert saved["pairs"] == 5 and np.array(saved["networks"]).shape == (5, 2)
    assert saved["endpoints_in_ae_training_split"] == r.endpoints_in_ae_training_split
    assert "endpoints were in the autoencoder's training split" in r.report_path.read_text()
    with pytest.raises(SymmergeError, match="only"):
        pair_interpolation(assets.inr_zoo, pairs=100, split="all")


def test_cnn_interpolation(assets, tmp_path):
    r = cnn_interpolation(assets.cnn_zoo, run=assets.cnn_run, pairs=3, steps=4,
                          top=None, split="all", eval_images=200,
                          methods=["naive", "wm", "wm-perm", "wm+repair", "sort", "ae",
                                   "ae-lift"])
    assert isinstance(r, CNNInterpolationResult)
    assert set(r.methods) == {"naive", "wm", "wm-perm", "wm+repair", "sort", "ae", "ae-lift"}
    assert r.curves["naive"]["accuracy"].shape == (3, 4)
    assert r.settings.held_out.startswith("seeded split") and r.activation == "relu"
    assert r.primary_metric == "cross_entropy" and r.higher_is_better == {"accuracy"}
    assert r.settings.repaired == ("wm+repair",) and r.settings.repair_images == 500
    # repair moves the interpolants between the endpoints, not the endpoints
    inner = r.curves["wm+repair"]["cross_entropy"][:, 1:-1]
    assert not np.allclose(inner, r.curves["wm"]["cross_entropy"][:, 1:-1])
    for meth in ("wm", "wm-perm", "wm+repair", "sort", "ae-lift"):  # exact endpoints
        assert r.methods[meth].exact_endpoints
        np.testing.assert_allclose(r.curves[meth]["accuracy"][:, [0, -1]],
                                   r.curves["naive"]["accuracy"][:, [0, -1]])
    assert not r.methods["ae"].exact_endpoints
    r.save(tmp_path)
    assert "accuracy barrier" in r.report_path.read_text()
    assert "`wm+repair` repaired every interpolant" in r.report_path.read_text()
    assert json.loads(r.metrics_path.read_text())["settings"]["held_out"] == r.settings.held_out
    with pytest.raises(SymmergeError, match="needs a CNN"):
        cnn_interpolation(assets.inr_zoo)
    with pytest.raises(SymmergeError, match="disjoint pairs"):
        cnn_interpolation(assets.cnn_zoo, pairs=50, split="all")


def test_orbit_collapse_and_latent_map(assets, tmp_path):
    r = orbit_collapse(assets.inr_zoo, run=assets.run, pna_run=assets.pna_run,
                       networks=3, orbit_size=5, background=20, map_orbits=1, maps=["tsne"],
                       split="all")
    assert isinstance(r, OrbitCollapseResult)
    enc = r.encoders
    # the sign-invariant encoder collapses PD orbits; the permutation-only one cannot
    assert enc["run"].ratio < 1e-3
    assert enc["pna_run"].ratio > 10 * enc["run"].ratio
    assert enc["run"].encoder == "ScaleGMN (sign)"
    assert r.distances["run"].within.size == 3 * 10  # 5 members: 10 pairs per orbit
    assert r.maps["run"]["tsne"].points.shape == (20, 2)
    assert [o.shape for o in r.maps["run"]["tsne"].overlay] == [(5, 2)]
    files = r.save(tmp_path / "c")
    assert sorted(p.name for p in files) == ["distances.png", "distances.safetensors",
                                             "maps.png", "metrics.json", "record.safetensors",
                                             "report.md"]
    saved = json.loads(r.metrics_path.read_text())
    assert saved["encoders"]["run"]["ratio"] == enc["run"].ratio
    lm = latent_map(assets.inr_zoo, run=assets.run, split="all", maps=["tsne"])
    assert isinstance(lm, LatentMapResult)
    assert np.isfinite(lm.encoders["run"].knn_accuracy)
    assert lm.latents["run"].shape == (len(lm.networks), lm.encoders["run"].latent_dim)
    # the latents are the run's encoding of the networks mapped, in order
    expected = encode(load_run(assets.run).model, load_zoo(assets.inr_zoo).params[lm.networks])
    np.testing.assert_allclose(lm.latents["run"], expected.double().numpy(), rtol=1e-5,
                               atol=1e-6)
    lm.save(tmp_path / "l")
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == [
        "latent_map.png", "latents.safetensors", "metrics.json", "record.safetensors",
        "report.md"]
    again = latent_map(assets.inr_zoo, run=assets.run, split="all", maps=["tsne"])
    assert again.encoders == lm.encoders
    report = write_report(tmp_path / "report.md", [r, lm])
    assert "c/maps.png" in report.read_text() and "l/latent_map.png" in report.read_text()
    with pytest.raises(SymmergeError, match="needs an autoencoder: pass run and/or pna_run"):
        orbit_collapse(assets.inr_zoo, split="all")
    with pytest.raises(SymmergeError, match="unknown map"):
        latent_map(assets.inr_zoo, run=assets.run, maps=["pca"])


@pytest.mark.slow
def test_umap_maps_are_seeded(assets, tmp_path):
    pytest.importorskip("umap")
    from symmerge.experiments import embed_2d

    x = np.random.default_rng(0).normal(size=(40, 6))
    np.testing.assert_array_equal(embed_2d(x, "umap", 3), embed_2d(x, "umap", 3))
    r = orbit_collapse(assets.inr_zoo, run=assets.run, networks=2, orbit_size=5,
                       background=20, maps=["umap"], split="all")
    r.save(tmp_path)
    assert (tmp_path / "maps.png").is_file() and r.settings.maps == ("umap",)


def test_split_members(assets):
    from symmerge.experiments.common import split_members
    from symmerge.experiments.results import SplitSettings

    z = load_zoo(assets.inr_zoo)
    default = SplitSettings()
    parts = {s: split_members(z, s, default) for s in ("train", "val", "test", "heldout")}
    expected = torch.sort(torch.cat([parts["val"], parts["test"]])).values
    assert torch.equal(parts["heldout"], expected)
    assert not bool(torch.isin(parts["heldout"], parts["train"]).any())
    assert torch.equal(split_members(z, "all", default), torch.arange(len(z)))
    with pytest.raises(SymmergeError, match="split must be one of train, val, test, heldout, "
                                            "all; got 'dev'"):
        split_members(z, "dev", default)


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


def test_held_out_images_limit_is_a_sample_across_classes(tmp_path):
    """``mnist-embedded`` is sorted by class: a limit takes a fixed random sample of the
    held-out images (every class present, same images every call), not the first ones."""
    from symmerge.experiments import held_out_images
    from symmerge.zoo.train_cnn import CNNTrainConfig, train_cnn_zoo

    path = tmp_path / "cnn.safetensors"
    train_cnn_zoo("mnist-embedded", out=path, n=2, activation="relu", progress=False,
                  config=CNNTrainConfig(hidden=(4, 4), steps=2), workers=1)
    z = load_zoo(path)
    every = held_out_images(z)
    some = held_out_images(z, limit=100)
    assert some.images.shape[0] == 100
    assert set(some.labels.tolist()) == set(range(10))
    assert set(every.labels[:100].tolist()) != set(range(10))  # why a sample is needed
    torch.testing.assert_close(held_out_images(z, limit=100).images, some.images)
    rows = {tuple(x.flatten().tolist()) for x in every.images}
    assert all(tuple(x.flatten().tolist()) in rows for x in some.images)


def test_without_umap_learn_maps_are_tsne_and_say_so(assets, tmp_path, monkeypatch, capsys):
    """umap-learn is optional: a UMAP map asked for is made with t-SNE, and the result, its
    metrics.json, the report and the command say so."""
    from symmerge.experiments import embed_2d
    from symmerge.experiments.latents import NO_UMAP

    monkeypatch.setitem(sys.modules, "umap", None)  # ``import umap`` fails
    with pytest.raises(SymmergeError, match="umap-learn, which is not installed"):
        embed_2d(np.zeros((8, 3)), "umap")
    r = latent_map(assets.inr_zoo, run=assets.run, split="all", max_points=20,
                   maps=["umap", "tsne"])
    assert r.settings.maps == ("tsne",) and r.settings.notes == (NO_UMAP,)
    assert list(r.maps["run"]) == ["tsne"]
    alone = latent_map(assets.inr_zoo, run=assets.run, split="all", max_points=20,
                       maps=["tsne"])
    assert alone.settings.notes == ()  # nothing to say when UMAP was not asked for
    np.testing.assert_array_equal(r.maps["run"]["tsne"].points, alone.maps["run"]["tsne"].points)
    r.save(tmp_path / "l")
    assert "umap-learn not installed; t-SNE used" in r.report_path.read_text()
    assert json.loads(r.metrics_path.read_text())["settings"]["notes"] == [NO_UMAP]
    code, _, err = run_cli(["experiment", "latent-map", "--zoo", assets.inr_zoo, "--run",
                            assets.run, "--split", "all", "--max-points", "20", "--out",
                            tmp_path / "cli", "--device", "cpu"], capsys)
    assert code == 0, err
    assert f"note: {NO_UMAP}" in err
