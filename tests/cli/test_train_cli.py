"""``symmerge train``, ``encode`` and ``reconstruct`` through the CLI entry point."""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import load_file

from symmerge import SirenSpec
from symmerge.models.runs import encode, load_run
from symmerge.training import train
from symmerge.zoo import load_zoo, save_zoo
from tests.cli._util import run_cli
from tests.training.test_run import TINY


@pytest.fixture(scope="module")
def zoo_and_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cli")
    spec = SirenSpec((2, 8, 8, 1))
    zoo = root / "inr.safetensors"
    save_zoo(zoo, spec, spec.init_params(40, generator=torch.Generator().manual_seed(1)),
             torch.arange(40) % 10, provenance={"data": "mnist-embedded", "note": "kept"},
             image_index=torch.arange(40) % 30,
             metrics={"is_test": (torch.arange(40) >= 30).float(), "psnr": torch.ones(40)})
    run = root / "run"
    train(zoo, run, overrides=TINY, max_epochs=1, progress=False)
    return zoo, run


def test_encode_writes_latents_in_zoo_order(zoo_and_run, tmp_path, capsys):
    zoo, run = zoo_and_run
    out = tmp_path / "lat.safetensors"
    code, stdout, _ = run_cli(["encode", "--run", run, "--zoo", zoo, "--out", out,
                               "--batch-size", 7], capsys)
    assert code == 0 and "(40, 8)" in stdout
    saved = load_file(str(out))
    model, _, _ = load_run(run)
    params = load_zoo(zoo).params
    assert saved["latents"].shape == (40, 8)
    torch.testing.assert_close(saved["latents"][[0, 17, 39]], encode(model, params[[0, 17, 39]]),
                               rtol=1e-4, atol=1e-4)
    assert torch.equal(saved["labels"], torch.arange(40) % 10)


def test_reconstruct_keeps_order_labels_and_provenance(zoo_and_run, tmp_path, capsys):
    zoo, run = zoo_and_run
    out = tmp_path / "rec.safetensors"
    code, _, _ = run_cli(["reconstruct", "--run", run, "--zoo", zoo, "--out", out], capsys)
    assert code == 0
    rec, src = load_zoo(out), load_zoo(zoo)
    model, _, _ = load_run(run)
    torch.testing.assert_close(rec.params[5], model(src.params[5:6].float())[0].detach())
    assert torch.equal(rec.labels, src.labels)
    assert rec.provenance["data"] == "mnist-embedded" and rec.provenance["note"] == "kept"
    assert rec.provenance["reconstructed_from"] == str(zoo)
    assert rec.metric_names == ["is_test"]  # what defines the splits, not the source's scores
    assert all(torch.equal(rec.splits()[k], src.splits()[k]) for k in ("train", "val", "test"))


@pytest.mark.parametrize("command", ["encode", "reconstruct"])
def test_inference_bad_input_is_one_clear_error(zoo_and_run, tmp_path, capsys, command):
    zoo, run = zoo_and_run
    code, _, err = run_cli([command, "--run", run, "--zoo", zoo, "--out", tmp_path], capsys)
    assert code == 2 and "is a directory" in err and "Traceback" not in err
    other = tmp_path / "other.safetensors"
    spec = SirenSpec((2, 16, 1))
    save_zoo(other, spec, spec.init_params(3))
    code, _, err = run_cli([command, "--run", run, "--zoo", other,
                            "--out", tmp_path / "x.safetensors"], capsys)
    assert code == 2 and "trained on" in err
    code, _, err = run_cli([command, "--run", tmp_path / "nope", "--zoo", zoo,
                            "--out", tmp_path / "y.safetensors"], capsys)
    assert code == 2 and "not a finished training run" in err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()


def test_train_resume_notes_ignored_options(zoo_and_run, tmp_path, capsys):
    import shutil

    zoo, run = zoo_and_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"seed": 3}))
    code, _, err = run_cli(["train", "--zoo", zoo, "--out", copy, "--max-epochs", 2,
                            "--config", cfg, "--seed", 5], capsys)
    assert code == 0
    note = next(ln for ln in err.splitlines() if ln.startswith("resuming"))
    assert note.endswith(f"after epoch 1 of 2 with its saved config.yaml; ignored: config file "
                         f"{cfg}, seed")
    assert "seed: 0" in (copy / "config.yaml").read_text()


def test_train_cli_errors(zoo_and_run, tmp_path, capsys):
    zoo, _ = zoo_and_run
    code, _, err = run_cli(["train", "--zoo", zoo, "--out", tmp_path / "r", "--logger", "x"],
                           capsys)
    assert code == 2 and "unknown logger" in err and not (tmp_path / "r").exists()
    code, _, err = run_cli(["train", "--zoo", zoo, "--out", tmp_path / "r",
                            "--preset", "paper-cnn-relu"], capsys)
    assert code == 2 and "paper-cnn-relu" in err and not (tmp_path / "r").exists()


def test_reconstruct_keeps_a_stored_split(zoo_and_run, tmp_path, capsys):
    zoo, run = zoo_and_run
    src = load_zoo(zoo)
    split = torch.arange(40) % 3
    with_split = tmp_path / "split.safetensors"
    save_zoo(with_split, src.spec, src.params, src.labels, split=split)
    out = tmp_path / "rec.safetensors"
    code, _, _ = run_cli(["reconstruct", "--run", run, "--zoo", with_split, "--out", out], capsys)
    assert code == 0 and torch.equal(load_zoo(out).stored_split, split)


def test_train_and_encode_find_the_device_and_say_so(zoo_and_run, tmp_path, capsys):
    """Defaults: ``--accelerator auto``, ``--device auto``: a GPU when there is one."""
    zoo, _ = zoo_and_run
    here = "cuda:0" if torch.cuda.is_available() else "cpu"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--zoo", zoo, "--out", run, "--config", cfg,
                            "--max-epochs", 1, "--precision", "32"], capsys)
    assert code == 0 and f"training on {here}" in err
    out = tmp_path / "lat.safetensors"
    code, stdout, err = run_cli(["encode", "--run", run, "--zoo", zoo, "--out", out], capsys)
    assert code == 0 and f"note: running on {here}" in err and "(40, 8)" in stdout
    code, _, err = run_cli(["train", "--zoo", zoo, "--out", tmp_path / "r2", "--config", cfg,
                            "--precision", "16"], capsys)
    assert code == 2 and "precision" in err and not (tmp_path / "r2").exists()


def test_print_config_prints_the_resolved_yaml_and_trains_nothing(zoo_and_run, tmp_path,
                                                                   capsys):
    from symmerge.models.train_config import resolve_config

    zoo, _ = zoo_and_run
    code, out, err = run_cli(["train", "--preset", "paper-inr", "--print-config"], capsys)
    assert code == 0 and not err
    assert yaml.safe_load(out) == resolve_config("paper-inr").model_dump(mode="json")
    # without a zoo, family-dependent values stay unresolved; with one they resolve
    code, out, _ = run_cli(["train", "--print-config"], capsys)
    assert code == 0 and yaml.safe_load(out)["encoder"]["mode"] == "auto"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"optim": {"lr": 0.5}}))
    code, out, _ = run_cli(["train", "--zoo", zoo, "--out", tmp_path / "r", "--config", cfg,
                            "--max-epochs", 7, "--seed", 3, "--print-config"], capsys)
    printed = yaml.safe_load(out)
    assert code == 0 and printed["encoder"]["mode"] == "sign"
    assert printed["encoder"]["probe_points"] == 256  # quick's SIREN value
    assert (printed["optim"]["lr"], printed["optim"]["max_epochs"], printed["seed"]) == (0.5, 7, 3)
    code, out, _ = run_cli(["train", "--preset", "paper-inr", "--encoder", "permutation",
                            "--print-config"], capsys)
    assert code == 0 and yaml.safe_load(out)["encoder"]["mode"] == "permutation"
    assert not (tmp_path / "r").exists()


def test_train_needs_zoo_and_out_unless_printing_the_config(zoo_and_run, tmp_path, capsys):
    zoo, _ = zoo_and_run
    code, out, err = run_cli(["train", "--zoo", zoo], capsys)
    assert code == 2 and not out and err == "error: train needs --out (or --print-config)\n"
    code, _, err = run_cli(["train", "--print-config", "--preset", "nope"], capsys)
    assert code == 2 and err.startswith("error: unknown preset 'nope'")
    code, _, err = run_cli(["train", "--preset", "paper-cnn-relu", "--zoo", zoo,
                            "--print-config"], capsys)
    assert code == 2 and "paper-cnn-relu" in err and "cnn zoos" in err
