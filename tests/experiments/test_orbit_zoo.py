"""Orbit experiments on a published orbit (``--orbit-zoo``): pairing in member order, the
loss target (ground truth or the orbit's own render), exact endpoints, collapse, and the
inputs that are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from symmerge import SirenSpec, SymmergeError
from symmerge.experiments import orbit_collapse, orbit_interpolation
from symmerge.experiments.orbit_zoo import load_orbit_zoo
from symmerge.zoo import load_zoo, save_zoo
from symmerge.zoo.importers import import_dwsnets
from tests.assets import SIREN
from tests.cli._util import overwrite_params, run_cli
from tests.data.test_images import IDX_NAMES, write_idx
from tests.zoo.published import ReferenceSiren, make_orbit_tree, orbit_folder, write_inr

IMAGE = ("testing", 6, 2)  # (split, label, MNIST index) of the orbit's image
MEMBERS = 6
FEW = {"steps": 5, "methods": ["naive", "wm", "sort"]}


def _import(folder: Path, out: Path, **kwargs) -> Path:
    return import_dwsnets(folder, progress=False, **kwargs).save(out)


@pytest.fixture(scope="module")
def orbit(tmp_path_factory) -> tuple[Path, Path]:
    """(orbit folder, imported orbit zoo): a signed-permutation orbit of the assets' SIREN
    architecture, so that the shared autoencoder runs apply."""
    root = tmp_path_factory.mktemp("orbit")
    make_orbit_tree(root / "folder", image=IMAGE, members=MEMBERS, layout=SIREN.layout)
    return root / "folder", _import(root / "folder", root / "orbit.safetensors")


def _member_render(folder: Path, k: int, alpha: float = 0.0, other: int | None = None,
                   resolution: int = 28) -> torch.Tensor:
    """The reference SIREN's render of member ``k`` (or of ``(1 - alpha) k + alpha other``),
    read from the checkpoint files, on the grid ``(x_c, y_r)`` in [-1, 1]."""
    def state(j: int) -> dict[str, torch.Tensor]:
        return torch.load(folder / orbit_folder(*IMAGE, j) / "checkpoints" / "model_final.pth")

    sd = state(k)
    if other is not None:
        sd2 = state(other)
        sd = {n: (1 - alpha) * v + alpha * sd2[n] for n, v in sd.items()}
    net = ReferenceSiren(SIREN.layout)
    net.load_state_dict(sd)
    axis = torch.linspace(-1.0, 1.0, resolution)
    points = torch.stack([axis.repeat(resolution), axis.repeat_interleave(resolution)], 1)
    with torch.no_grad():
        return net(points).reshape(resolution, resolution)


def _shuffled(zoo_path: Path, out: Path, perm: torch.Tensor) -> Path:
    """The zoo with its rows in the order ``perm`` (members no longer in row order)."""
    z = load_zoo(zoo_path)
    return save_zoo(out, z.spec, z.params[perm], z.labels[perm], image_index=z.image_index[perm],
                    split=z.stored_split[perm],
                    metrics={k: z.metric(k)[perm] for k in z.metric_names},
                    provenance=z.provenance)


# ------------------------------------------------------------ interpolation
def test_pairs_are_members_i_and_i_plus_1_in_member_order(orbit, tmp_path):
    folder, path = orbit
    shuffled = _shuffled(path, tmp_path / "shuffled.safetensors", torch.tensor([3, 0, 5, 1, 4, 2]))
    r = orbit_interpolation(None, orbit_zoo=shuffled, perturbation=0.0,
                            steps=5, methods=["naive"])
    target = _member_render(folder, 0)  # the orbit's first member: the fallback target
    expected = [float(((_member_render(folder, i, 0.5, (i + 1) % MEMBERS) - target) ** 2).mean())
                for i in range(MEMBERS)]
    mid = r.curves["naive"]["render_mse"][:, 2]
    np.testing.assert_allclose(mid, expected, rtol=1e-3, atol=1e-7)
    assert len(set(np.round(expected, 6))) == MEMBERS  # the check tells the pairings apart
    assert r.settings.orbits[0].rows == (1, 3, 5, 0, 4, 2)


def test_loss_falls_back_to_the_orbits_render(orbit, tmp_path):
    folder, path = orbit
    r = orbit_interpolation(None, orbit_zoo=path, **FEW)
    r.save(tmp_path / "o")
    m = json.loads(r.metrics_path.read_text())
    assert m["primary_metric"] == "render_mse" and set(m["methods"]["naive"]) >= {"render_mse"}
    assert "mse" not in m["methods"]["naive"] and "mse" not in r.curves["naive"]
    assert m["loss_target"]["target"] == "orbit-render" and m["settings"]["data_source"] is None
    assert m["pairs"] == MEMBERS and m["labels"] == [6] and m["image_index"] == [2]
    report = r.report_path.read_text()
    assert str(path) in report and "test image 2 (label 6, 6 members)" in report
    assert "`(O_i, Õ_((i+1) mod K))`" in report and "`orbit_member` order" in report
    assert "**not** to the ground-truth digit" in report
    assert "No ground-truth image" in report and "--data mnist:DIR" in report
    # the clean member renders as the orbit does; the perturbed one does not
    assert r.curves["naive"]["render_mse"][:, 0].max() < 1e-8
    assert r.curves["naive"]["render_mse"][:, -1].min() > 1e-6


def test_exact_endpoint_methods_keep_the_endpoints(assets, orbit, tmp_path):
    _, path = orbit
    r = orbit_interpolation(None, orbit_zoo=path, run=assets.run,
                            pna_run=assets.pna_run, steps=4)
    assert r.skipped == {}
    c = r.curves
    for m in ("naive", "wm", "sort", "ae-lift"):
        assert c[m]["render_mse"][:, 0].max() < 1e-8, m
        np.testing.assert_allclose(c[m]["render_mse"][:, -1], c["naive"]["render_mse"][:, -1],
                                   rtol=1e-4, atol=1e-8)
    for m in ("ae", "pna-ae"):  # reconstructions: not the endpoints
        assert c[m]["render_mse"][:, 0].min() > 1e-6, m


def test_same_seed_same_noise(orbit, tmp_path):
    _, path = orbit
    a = orbit_interpolation(None, orbit_zoo=path, **FEW)
    b = orbit_interpolation(None, orbit_zoo=path, **FEW)
    c = orbit_interpolation(None, orbit_zoo=path, seed=1, **FEW)
    np.testing.assert_array_equal(a.curves["naive"]["render_mse"], b.curves["naive"]["render_mse"])
    assert not np.array_equal(a.curves["naive"]["render_mse"], c.curves["naive"]["render_mse"])


def _mnist_dir(directory: Path, test_label: int) -> tuple[np.ndarray, np.ndarray]:
    """IDX files whose training and test image 2 both carry label 6 (test: ``test_label``)
    but differ; returns (train images, test images)."""
    rng = np.random.default_rng(1)
    directory.mkdir()
    out = []
    for split, n, label in (("train", 3, 6), ("test", 4, test_label)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.array([1] * n, dtype=np.uint8)
        y[2] = label
        write_idx(directory / IDX_NAMES[split][0], x)
        write_idx(directory / IDX_NAMES[split][1], y)
        out.append(x)
    return out[0], out[1]


def test_ground_truth_from_the_mnist_files(orbit, tmp_path):
    folder, path = orbit
    _, test_images = _mnist_dir(tmp_path / "mnist", test_label=6)
    r = orbit_interpolation(None, orbit_zoo=path,
                            data=f"mnist:{tmp_path / 'mnist'}", **FEW)
    m = r.to_json()
    assert m["primary_metric"] == "mse" and m["loss_target"]["target"] == "image"
    assert r.loss_target.target == "image" and r.base_fit_mse == m["base_fit_mse"]
    digit = torch.from_numpy(test_images[2].astype(np.float32) / 255.0)
    expected = float(((_member_render(folder, 0) - digit) ** 2).mean())
    assert m["base_fit_mse"] == pytest.approx(expected, rel=1e-4)  # the test image, not train
    r.save(tmp_path / "o")
    assert "No ground-truth image" not in r.report_path.read_text()
    _mnist_dir(tmp_path / "wrong", test_label=5)
    with pytest.raises(SymmergeError, match="wrong data source"):
        orbit_interpolation(None, orbit_zoo=path,
                            data=f"mnist:{tmp_path / 'wrong'}", **FEW)


def test_several_orbits(tmp_path):
    folder = tmp_path / "two"
    make_orbit_tree(folder, image=IMAGE, members=3, layout=SIREN.layout, split_file=False)
    make_orbit_tree(folder, image=("training", 2, 7), members=4, layout=SIREN.layout, seed=1,
                    split_file=False)
    path = _import(folder, tmp_path / "two.safetensors", several_orbits=True)
    r = orbit_interpolation(None, orbit_zoo=path, **FEW)
    assert r.pairs == 7 and r.settings.runs == 2
    assert sorted(r.image_index.tolist()) == [2, 7]
    one = orbit_interpolation(None, orbit_zoo=path, runs=1, **FEW)
    assert one.settings.runs == 1 and one.pairs in (3, 4)
    with pytest.raises(SymmergeError, match="asked for 3 orbits, but orbit zoo .* holds 2"):
        orbit_interpolation(None, orbit_zoo=path, runs=3, **FEW)


# ------------------------------------------------------------ collapse
def test_orbit_collapse_on_a_published_orbit(assets, orbit, tmp_path):
    _, path = orbit
    r = orbit_collapse(None, orbit_zoo=path, run=assets.run,
                       pna_run=assets.pna_run)
    enc = r.encoders
    # the sign-invariant encoder maps the whole orbit to one point; permutation-only cannot
    assert enc["run"].within_vs_latent_norm < 1e-4
    assert enc["pna_run"].within_vs_latent_norm > 100 * enc["run"].within_vs_latent_norm
    assert np.isnan(enc["run"].ratio) and np.isnan(enc["run"].within_vs_background)
    assert r.maps == {} and "maps.png" not in r.figures()
    r.save(tmp_path / "c")
    assert not (tmp_path / "c" / "maps.png").exists()
    report = r.report_path.read_text()
    assert str(path) in report and "No background networks" in report
    bg = orbit_collapse(assets.inr_zoo, orbit_zoo=path, run=assets.run,
                        background=20, maps=["tsne"], split="all")
    assert bg.encoders["run"].within_vs_background < 1e-4
    bg.save(tmp_path / "bg")
    assert bg.settings.background == 20 and (tmp_path / "bg" / "maps.png").is_file()


def test_orbit_collapse_with_several_orbits(assets, tmp_path):
    folder = tmp_path / "two"
    make_orbit_tree(folder, image=IMAGE, members=3, layout=SIREN.layout, split_file=False)
    make_orbit_tree(folder, image=("training", 2, 7), members=4, layout=SIREN.layout, seed=1,
                    split_file=False)
    path = _import(folder, tmp_path / "two.safetensors", several_orbits=True)
    r = orbit_collapse(None, orbit_zoo=path, run=assets.run, maps=[])
    assert r.encoders["run"].ratio < 1e-3
    assert [o.members for o in r.settings.orbits] == [4, 3]


# ------------------------------------------------------------ bad inputs
def test_a_zoo_that_is_not_an_orbit_is_refused(orbit, assets, tmp_path):
    folder, _ = orbit
    broken = tmp_path / "broken"
    make_orbit_tree(broken, image=IMAGE, members=4, layout=SIREN.layout)
    other = ReferenceSiren(SIREN.layout)  # member 2 replaced by an unrelated network
    write_inr(broken, orbit_folder(*IMAGE, 2), other.state_dict())
    path = _import(broken, tmp_path / "broken.safetensors")
    with pytest.raises(SymmergeError, match=r"is not an orbit: member 2 \(row 2\) of test image 2"):
        orbit_interpolation(None, orbit_zoo=path, **FEW)
    with pytest.raises(SymmergeError, match="is not an orbit: member 2"):
        orbit_collapse(None, orbit_zoo=path, run=assets.run)
    with pytest.raises(SymmergeError, match="is not an orbit zoo .no metric 'orbit_member'"):
        orbit_interpolation(None, orbit_zoo=assets.inr_zoo, **FEW)


def test_malformed_orbit_zoos(orbit, tmp_path):
    _, path = orbit
    z = load_zoo(path)
    member = z.metric("orbit_member")
    dup = save_zoo(tmp_path / "dup.safetensors", z.spec, z.params, z.labels,
                   image_index=z.image_index,
                   metrics={"orbit_member": torch.where(member == 1, 0.0, member)})
    with pytest.raises(SymmergeError, match="has two members 0"):
        load_orbit_zoo(dup)
    lone = save_zoo(tmp_path / "lone.safetensors", z.spec, z.params, z.labels,
                    image_index=torch.arange(len(z)), metrics={"orbit_member": member})
    with pytest.raises(SymmergeError, match="single member"):
        load_orbit_zoo(lone)
    nan = tmp_path / "nan.safetensors"
    nan.write_bytes(path.read_bytes())
    params = z.params.clone()
    params[3, 0] = float("nan")
    overwrite_params(nan, params)
    with pytest.raises(SymmergeError, match="NaN"):
        load_orbit_zoo(nan)


def test_architecture_must_match(assets, tmp_path):
    small = tmp_path / "small"
    make_orbit_tree(small, image=IMAGE, members=3, layout=(2, 8, 8, 1))
    path = _import(small, tmp_path / "small.safetensors")
    with pytest.raises(SymmergeError, match=r"run .* was trained on .* but orbit zoo .* holds"):
        orbit_interpolation(None, orbit_zoo=path, run=assets.run, steps=3)
    with pytest.raises(SymmergeError, match=r"orbit zoo .* holds .*, but zoo .* holds"):
        orbit_collapse(assets.inr_zoo, orbit_zoo=path, run=assets.run)
    assert load_orbit_zoo(path).spec == SirenSpec((2, 8, 8, 1))


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"orbit_size": 4}, "orbit_size shapes the orbits generated from zoo"),
    ({"transform": "P", "split": "all"}, "transform, split shape the orbits"),
    ({"zoo": "ZOO"}, r"either zoo \(.*\) or orbit_zoo \(a published orbit\), not both"),
])
def test_interpolation_options_that_make_no_sense(assets, orbit, tmp_path, kwargs, pattern):
    kwargs = dict(kwargs)
    zoo = assets.inr_zoo if kwargs.pop("zoo", None) else None
    with pytest.raises(SymmergeError, match=pattern):
        orbit_interpolation(zoo, orbit_zoo=orbit[1], **kwargs)
    with pytest.raises(SymmergeError, match="got neither"):
        orbit_interpolation(None)


def test_collapse_options_that_make_no_sense(assets, orbit, tmp_path):
    with pytest.raises(SymmergeError, match="orbit_size shapes"):
        orbit_collapse(None, orbit_zoo=orbit[1], run=assets.run, orbit_size=4)
    with pytest.raises(SymmergeError, match="split picks the background networks of zoo"):
        orbit_collapse(None, orbit_zoo=orbit[1], run=assets.run, split="all")
    with pytest.raises(SymmergeError, match=r"needs zoo \(.*\) or orbit_zoo \(a published orbit\)"):
        orbit_collapse(None, run=assets.run)


# ------------------------------------------------------------ CLI
def test_cli(assets, orbit, tmp_path, capsys):
    _, path = orbit
    exp = ["experiment", "orbit-interpolation", "--orbit-zoo", path, "--steps", "3",
           "--methods", "naive,sort"]
    code, out, err = run_cli([*exp, "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    assert "naive: barrier" in out and (tmp_path / "o" / "report.md").is_file()
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["primary_metric"] == \
        "render_mse"
    code, out, err = run_cli(["experiment", "orbit-collapse", "--orbit-zoo", path, "--run",
                              assets.run, "--maps", "", "--out", tmp_path / "c"], capsys)
    assert code == 0, err
    assert "ScaleGMN (sign): within" in out and (tmp_path / "c" / "report.md").is_file()
    for extra, pattern in (
        (["--orbit-size", "4"], "--orbit-size shapes the orbits generated from --zoo; with "
                                "--orbit-zoo"),
        (["--zoo", assets.inr_zoo], "either --zoo (orbits generated from its networks) or "
                                    "--orbit-zoo (a published orbit), not both"),
        (["--runs", "2"], "asked for 2 orbits"),
    ):
        code, _, err = run_cli([*exp, *extra, "--out", tmp_path / "x"], capsys)
        errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
        assert pattern in errors[0], err
        assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind", ["folder", "missing", "binary", "cnn"])
def test_cli_bad_orbit_zoo_files(assets, orbit, tmp_path, capsys, kind):
    folder, _ = orbit
    bad = {"folder": folder, "missing": tmp_path / "missing.safetensors",
           "binary": tmp_path / "binary.safetensors", "cnn": assets.cnn_zoo}[kind]
    if kind == "binary":
        bad.write_bytes(b"\x80\xff\x00binary" * 50)
    expect = {"folder": "symmerge zoo import dwsnets", "missing": "not found",
              "binary": "cannot read zoo", "cnn": "published orbits are INRs"}[kind]
    for command in ("orbit-interpolation", "orbit-collapse"):
        code, _, err = run_cli(["experiment", command, "--orbit-zoo", bad, "--run", assets.run,
                                "--out", tmp_path / "x"], capsys)
        errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
        assert expect in errors[0], err
        assert not (tmp_path / "x").exists()
