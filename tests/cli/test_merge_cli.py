"""``symmerge merge`` / ``canonicalize`` / ``experiment``: round trips and clear errors
(named by the commands' flags)."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from symmerge import SirenSpec
from symmerge.merge import load_module
from symmerge.specs import spec_from_json
from symmerge.symmetry import assert_function_preserved, make_orbit
from symmerge.zoo import load_zoo
from tests.cli._util import run_cli

SPEC = SirenSpec((2, 16, 16, 1))


@pytest.fixture
def orbit_files(tmp_path):
    """Two .pth state dicts of one SIREN in different orbit positions (dtype float64)."""
    gen = torch.Generator().manual_seed(0)
    base = SPEC.init_params(1, generator=gen, dtype=torch.float64)[0]
    orbit, _ = make_orbit(SPEC, base, 3, "PD", generator=gen)
    paths = []
    for i, p in enumerate(orbit):
        path = tmp_path / f"net{i}.pth"
        torch.save(SPEC.module(p).state_dict(), path)
        paths.append(path)
    return base, orbit, paths


def test_merge_round_trip_through_an_nn_module(orbit_files, tmp_path, capsys):
    base, orbit, paths = orbit_files
    out = tmp_path / "merged.safetensors"
    code, stdout, err = run_cli(["merge", paths[0], paths[1], "--method", "wm", "--out", out],
                                capsys)
    assert code == 0, err
    assert "merged 2" in stdout and out.is_file()
    module = load_module(out)
    assert isinstance(module, torch.nn.Module)
    x = SPEC.probe_inputs(dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(module.double()(x), SPEC.forward(base, x), rtol=1e-5, atol=1e-5)
    # plain safetensors + the spec in the metadata is enough to rebuild the module by hand
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    spec = spec_from_json(meta["spec"])
    fresh = spec.build_module()
    fresh.load_state_dict(load_file(str(out)))
    assert json.loads(meta["provenance"])["method"] == "wm"


def test_n_model_merge_with_weights_and_zoo_refs(assets, tmp_path, capsys):
    out = tmp_path / "merged.safetensors"
    refs = [f"{assets.inr_zoo}:{i}" for i in range(4)]
    code, _, err = run_cli(["merge", *refs, "--method", "sort", "--weights", "1,1,1,2",
                            "--out", out], capsys)
    assert code == 0, err
    prov = json.loads(safe_open(str(out), framework="pt").metadata()["provenance"])
    assert prov["weights"] == pytest.approx([0.2, 0.2, 0.2, 0.4])
    code, _, err = run_cli(["merge", *refs[:3], "--method", "ae-lift", "--run", assets.run,
                            "--out", tmp_path / "lift.safetensors"], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "soup"], "unknown merge method 'soup'; choose one of naive, wm, sort"),
        (["--method", "ae-latent"], "method 'ae-latent' is no merge method"),
        (["--method", "ae"], "'ae' needs a trained (ScaleGMN) autoencoder: pass --run DIR"),
        (["--method", "ae-lift"], "'ae-lift' needs a trained (ScaleGMN) autoencoder: pass --run"),
        (["--alpha", "0.5", "--weights", "1,1"], "give either --alpha or --weights, not both"),
        (["--weights", "1,x"], "--weights must be comma-separated numbers"),
        (["--weights", "1,1,1"], "--weights must hold one number per network: got 3 for 2"),
        (["--strategy", "greedy"], "--strategy must be one of descent, forward"),
    ],
)
def test_merge_bad_options(orbit_files, tmp_path, capsys, extra, message):
    _, _, paths = orbit_files
    code, _, err = run_cli(["merge", paths[0], paths[1], "--out", tmp_path / "o.safetensors",
                            *extra], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_merge_mismatched_architectures(orbit_files, assets, tmp_path, capsys):
    _, _, paths = orbit_files
    other = tmp_path / "small.pth"
    torch.save(SirenSpec((2, 8, 8, 1)).module().state_dict(), other)
    code, _, err = run_cli(["merge", paths[0], other, "--out", tmp_path / "o.safetensors"], capsys)
    assert code == 2 and "architectures differ" in err
    code, _, err = run_cli(["merge", paths[0], "--out", tmp_path / "o.safetensors"], capsys)
    assert code == 2 and "at least two" in err
    code, _, err = run_cli(["merge", paths[0], paths[1], "--method", "ae", "--run", assets.cnn_run,
                            "--out", tmp_path / "o.safetensors"], capsys)
    assert code == 2 and "was trained on" in err
    code, _, err = run_cli(["merge", paths[0], tmp_path / "nope.pth", "--out",
                            tmp_path / "o.safetensors"], capsys)
    assert code == 2 and "not found" in err


def test_canonicalize_cli(assets, tmp_path, capsys):
    out = tmp_path / "canon.safetensors"
    code, stdout, err = run_cli(["canonicalize", "--method", "sort", "--zoo", assets.inr_zoo,
                                 "--out", out], capsys)
    assert code == 0, err
    assert "function-preserving" in stdout
    assert_function_preserved(load_zoo(out).spec, load_zoo(assets.inr_zoo).params,
                              load_zoo(out).params)
    code, _, err = run_cli(["canonicalize", "--method", "ae-lift", "--zoo", assets.inr_zoo,
                            "--out", out], capsys)
    assert code == 2 and "autoencoder: pass --run DIR" in err
    for strategy in ("forward", "descent"):
        code, stdout, err = run_cli(["canonicalize", "--method", "ae-lift", "--run", assets.run,
                                     "--strategy", strategy, "--zoo", assets.inr_zoo,
                                     "--out", out], capsys)
        assert code == 0, err
        assert load_zoo(out).provenance["lift_strategy"] == strategy
        assert_function_preserved(load_zoo(out).spec, load_zoo(assets.inr_zoo).params,
                                  load_zoo(out).params)
    code, _, err = run_cli(["canonicalize", "--method", "ae-lift", "--run", assets.run,
                            "--strategy", "greedy", "--zoo", assets.inr_zoo, "--out", out],
                           capsys)
    assert code == 2 and "--strategy must be one of descent, forward" in err
    code, _, err = run_cli(["canonicalize", "--method", "nope", "--zoo", assets.inr_zoo,
                            "--out", out], capsys)
    assert code == 2 and "unknown canonicalization method 'nope'" in err


def test_experiment_cli(assets, tmp_path, capsys):
    out = tmp_path / "exp"
    code, stdout, err = run_cli(
        ["experiment", "orbit-interpolation", "--zoo", assets.inr_zoo, "--out", out,
         "--runs", "1", "--orbit-size", "4", "--steps", "5", "--split", "all"], capsys)
    assert code == 0, err
    assert "naive: barrier" in stdout and "ae: skipped" in stdout  # a default method
    assert "ae: skipped (needs a trained (ScaleGMN) autoencoder: pass --run DIR" in stdout
    code, _, err = run_cli(["experiment", "orbit-interpolation", "--zoo", assets.inr_zoo,
                            "--out", tmp_path / "e2", "--methods", "naive,ae"], capsys)
    assert code == 2 and "'ae' needs a trained (ScaleGMN) autoencoder: pass --run DIR" in err
    assert not (tmp_path / "e2").exists()
    assert (out / "metrics.json").is_file() and (out / "report.md").is_file()
    code, _, err = run_cli(["experiment", "orbit-interpolation", "--zoo", assets.inr_zoo,
                            "--out", out, "--methods", "naive,bogus"], capsys)
    assert code == 2 and "unknown interpolation method 'bogus'" in err


def test_merge_notes_an_inferred_architecture(orbit_files, tmp_path, capsys):
    _, _, paths = orbit_files
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(["merge", paths[0], paths[1], "--out", out], capsys)
    assert code == 0 and err.count("no architecture metadata; read as a siren") == 2
    code, _, err = run_cli(["merge", paths[0], paths[1], "--spec", SPEC.to_json(),
                            "--out", out], capsys)
    assert code == 0 and "architecture metadata" not in err


def test_merge_bad_files_name_themselves(orbit_files, tmp_path, capsys):
    _, orbit, paths = orbit_files
    truncated = tmp_path / "t.safetensors"
    code, _, _ = run_cli(["merge", paths[0], paths[1], "--out", truncated], capsys)
    assert code == 0
    truncated.write_bytes(truncated.read_bytes()[:40])
    code, _, err = run_cli(["merge", truncated, paths[1], "--out", tmp_path / "o.safetensors"],
                           capsys)
    assert code == 2 and "not a valid safetensors file" in err and "torch.load" not in err
    bad = orbit[0].clone()
    bad[3] = float("nan")
    nan_path = tmp_path / "nan.pth"
    torch.save(SPEC.module(bad).state_dict(), nan_path)
    code, _, err = run_cli(["merge", paths[0], nan_path, "--out", tmp_path / "o.safetensors"],
                           capsys)
    assert code == 2 and str(nan_path) in err and "NaN" in err
    assert not (tmp_path / "o.safetensors").exists()


def test_merge_ae_lift_strategy_is_checked_and_recorded(assets, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(["merge", f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:1", "--method",
                            "ae-lift", "--run", assets.run, "--strategy", "descent",
                            "--out", out], capsys)
    assert code == 0, err
    with safe_open(str(out), framework="pt") as f:
        assert json.loads(f.metadata()["provenance"])["lift_strategy"] == "descent"
    code, _, err = run_cli(["merge", f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:1", "--strategy",
                            "sideways", "--out", out], capsys)
    assert code == 2 and "--strategy must be one of descent, forward" in err
    code, _, err = run_cli(["merge", f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:1", "--method",
                            "wm", "--restarts", "1", "--out", out], capsys)
    assert code == 0, err
    with safe_open(str(out), framework="pt") as f:
        prov = json.loads(f.metadata()["provenance"])
    assert prov["method"] == "wm" and "lift_strategy" not in prov


@pytest.mark.parametrize(("argv", "message"), [
    (["merge", "a.pth", "b.pth", "c.pth", "--alpha", "0.5", "--out", "m.safetensors"],
     "error: --alpha is for two networks; use --weights for 3\n"),
    (["merge", "a.pth", "b.pth", "--method", "wm", "--strategy", "greedy", "--out", "m"],
     "error: --strategy must be one of descent, forward; got "
     "'greedy'\n"),
    (["experiment", "orbit-interpolation", "--zoo", "z.safetensors", "--orbit-zoo",
      "o.safetensors", "--out", "o"],
     "error: orbit-interpolation takes either --zoo (orbits generated from its networks) or "
     "--orbit-zoo (a published orbit), not both\n"),
    (["experiment", "orbit-collapse", "--orbit-zoo", "o.safetensors", "--orbit-size", "4",
      "--out", "o"],
     "error: orbit-collapse: --orbit-size shapes the orbits generated from --zoo; with "
     "--orbit-zoo the orbits are the published ones: drop it\n"),
    (["experiment", "orbit-collapse", "--orbit-zoo", "o.safetensors", "--split", "all",
      "--out", "o"],
     "error: orbit-collapse: --split picks the background networks of --zoo, and none was "
     "given\n"),
])
def test_library_errors_name_the_commands_flags(tmp_path, capsys, monkeypatch, argv, message):
    """The library's messages name parameters; each command shows its own flags."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and message in err, err
    assert list(tmp_path.iterdir()) == []
