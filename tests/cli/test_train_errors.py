"""Bad input to ``train``, ``encode`` and ``reconstruct``: one ``error:`` line, a non-zero
exit, no traceback, and nothing left behind."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from symmerge import SirenSpec
from symmerge.training import train
from symmerge.training.module import AutoencoderModule
from symmerge.utils.lock import LOCK_NAME
from symmerge.zoo import save_zoo
from tests.cli._util import run_cli
from tests.training.test_run import TINY

BINARY = bytes(range(128, 256)) * 4


def error_line(code: int, err: str) -> str:
    """The one ``error:`` line of a failed command (and no traceback)."""
    assert code != 0
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def snapshot(run):
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK_NAME}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny INR zoo, the same zoo with a NaN, a trained run and a tiny config file."""
    root = tmp_path_factory.mktemp("train_errors")
    spec = SirenSpec((2, 8, 8, 1))
    params = spec.init_params(40, generator=torch.Generator().manual_seed(1))
    zoo, nan_zoo = root / "inr.safetensors", root / "nan.safetensors"
    save_zoo(zoo, spec, params, torch.arange(40) % 10)
    with safe_open(str(zoo), "pt") as f:  # save_zoo refuses NaN: write the file around it
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118
    tensors["params"][7, 3] = float("nan")
    save_file(tensors, str(nan_zoo), meta)
    run = root / "run"
    train(zoo, run, overrides=TINY, max_epochs=1, progress=False)
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    return {"zoo": zoo, "nan_zoo": nan_zoo, "run": run, "cfg": cfg}


@pytest.fixture
def run_copy(made, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(made["run"], copy)
    return copy


def _train(made, out, *extra):
    return ["train", "--zoo", made["zoo"], "--out", out, "--config", made["cfg"], *extra]


@pytest.mark.parametrize(("flags", "message"), [
    (["--devices", "0"], "error: --devices must be at least 1"),  # the library's devices
    (["--num-nodes", "-1"], "error: --num-nodes must be at least 1"),
    (["--accelerator", "quantum"], "unknown accelerator 'quantum'"),
])
def test_bad_hardware_flags(made, tmp_path, capsys, flags, message):
    code, _, err = run_cli(_train(made, tmp_path / "r", *flags), capsys)
    assert message in error_line(code, err)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="has torch_xla")
def test_tpu_without_torch_xla(made, tmp_path, capsys):
    code, _, err = run_cli(_train(made, tmp_path / "r", "--accelerator", "tpu"), capsys)
    assert "'tpu' is not available here: it needs the torch_xla package" in error_line(code, err)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="has a CUDA GPU")
@pytest.mark.parametrize("name", ["gpu", "cuda"])
def test_gpu_without_a_gpu(made, tmp_path, capsys, name):
    code, _, err = run_cli(_train(made, tmp_path / "r", "--accelerator", name), capsys)
    assert f"'{name}' is not available here" in error_line(code, err)
    assert not (tmp_path / "r").exists()


def test_out_under_a_file(made, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(_train(made, tmp_path / "file" / "run"), capsys)
    assert "is not a directory" in error_line(code, err)
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_in_an_unwritable_directory(made, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run_cli(_train(made, locked / "run"), capsys)
        assert "is not writable" in error_line(code, err)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_binary_config_file(made, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(BINARY)
    code, _, err = run_cli(["train", "--zoo", made["zoo"], "--out", tmp_path / "r",
                            "--config", cfg], capsys)
    assert "not a text file" in error_line(code, err)
    assert not (tmp_path / "r").exists()


def test_nan_zoo_is_refused_before_training(made, tmp_path, capsys):
    code, _, err = run_cli(["train", "--zoo", made["nan_zoo"], "--out", tmp_path / "r"], capsys)
    line = error_line(code, err)
    assert str(made["nan_zoo"]) in line and "non-finite" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["config.yaml", "spec.json"])
def test_binary_run_file_on_resume(made, run_copy, capsys, name):
    (run_copy / name).write_bytes(BINARY)
    before = snapshot(run_copy)
    code, _, err = run_cli(_train(made, run_copy, "--max-epochs", "2"), capsys)
    assert name in error_line(code, err)
    assert snapshot(run_copy) == before


def test_last_checkpoint_that_is_not_a_lightning_checkpoint(made, run_copy, capsys):
    torch.save({"epoch": 0, "weights": torch.zeros(3)}, run_copy / "checkpoints" / "last.ckpt")
    before = snapshot(run_copy)
    code, _, err = run_cli(_train(made, run_copy, "--max-epochs", "2"), capsys)
    assert "not a Lightning training checkpoint" in error_line(code, err)
    assert snapshot(run_copy) == before


def _edit_config(run):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["encoder"]["d_hidden"] = 12
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_resume_of_a_run_whose_config_no_longer_fits_its_weights(made, run_copy, capsys):
    _edit_config(run_copy)
    before = snapshot(run_copy)
    code, _, err = run_cli(_train(made, run_copy, "--max-epochs", "2"), capsys)
    line = error_line(code, err)
    assert "last.ckpt do not fit the model that config.yaml describes (size mismatch" in line
    assert snapshot(run_copy) == before


def test_failure_in_the_first_epoch_leaves_nothing_behind(made, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(AutoencoderModule, "_loss",
                        lambda self, p, i, g=None: torch.tensor(float("nan")))
    code, _, err = run_cli(_train(made, tmp_path / "new" / "run"), capsys)
    assert "nothing of the run is kept" in error_line(code, err)
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"  # a directory that existed keeps what it had, and only that
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "a.txt").write_text("keep")
    code, _, err = run_cli(_train(made, mine), capsys)
    error_line(code, err)
    assert sorted(p.name for p in mine.rglob("*")) == ["a.txt", "notes"]


@pytest.mark.parametrize("command", ["encode", "reconstruct"])
class TestInference:
    def run(self, command, run, zoo, out, capsys):
        return run_cli([command, "--run", run, "--zoo", zoo, "--out", out], capsys)

    @pytest.mark.parametrize("name", ["config.yaml", "spec.json"])
    def test_binary_run_file(self, made, run_copy, tmp_path, capsys, command, name):
        (run_copy / name).write_bytes(BINARY)
        code, _, err = self.run(command, run_copy, made["zoo"], tmp_path / "o.st", capsys)
        assert name in error_line(code, err) and "not a text file" in err
        assert not (tmp_path / "o.st").exists()

    def test_config_no_longer_fits_the_weights(self, made, run_copy, tmp_path, capsys, command):
        _edit_config(run_copy)
        code, _, err = self.run(command, run_copy, made["zoo"], tmp_path / "o.st", capsys)
        line = error_line(code, err)
        assert "model.safetensors do not fit" in line and "size mismatch" in line
        assert not (tmp_path / "o.st").exists()

    def test_nan_model(self, made, run_copy, tmp_path, capsys, command):
        state = load_file(str(run_copy / "model.safetensors"))
        name = sorted(state)[0]
        state[name].view(-1)[0] = float("nan")
        save_file(state, str(run_copy / "model.safetensors"))
        code, _, err = self.run(command, run_copy, made["zoo"], tmp_path / "o.st", capsys)
        line = error_line(code, err)
        assert "model.safetensors" in line and name in line and "non-finite" in line
        assert not (tmp_path / "o.st").exists()

    def test_nan_zoo(self, made, tmp_path, capsys, command):
        code, _, err = self.run(command, made["run"], made["nan_zoo"], tmp_path / "o.st", capsys)
        assert str(made["nan_zoo"]) in error_line(code, err)
        assert not (tmp_path / "o.st").exists()

    def test_non_finite_output_is_never_written(self, made, tmp_path, capsys, command,
                                                monkeypatch):
        import symmerge.models.runs

        monkeypatch.setattr(symmerge.models.runs, command,
                            lambda model, params, batch_size, **kw: params * float("nan"))
        code, _, err = self.run(command, made["run"], made["zoo"], tmp_path / "o.st", capsys)
        assert "non-finite" in error_line(code, err)
        assert not (tmp_path / "o.st").exists()
