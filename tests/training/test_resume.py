"""A resumed training run is the uninterrupted run, bit for bit; one run per directory."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from symmerge import SymmergeError
from symmerge.training import train
from symmerge.training.module import AutoencoderModule
from symmerge.training.rundir import last_checkpoint
from symmerge.utils.lock import LOCK_NAME, DirectoryLock, lock_holder
from tests.cli._util import run_cli
from tests.training.test_run import TINY

#: TINY with dropout: the global RNG matters as well as the loader's
DROPOUT = {**TINY, "encoder": {**TINY["encoder"], "dropout": 0.2}}


def rows(run):
    with (run / "logs" / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def snapshot(run):
    """Every file of a run but its lock file (which each call rewrites) -> its bytes."""
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK_NAME}


def assert_same_run(a, b):
    """The same weights (best and last, optimizer too), metrics rows and test metrics."""
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    ca, cb = (torch.load(last_checkpoint(r), weights_only=True) for r in (a, b))
    assert ca["epoch"] == cb["epoch"] and ca["global_step"] == cb["global_step"]
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    assert all(torch.equal(ca["state_dict"][k], cb["state_dict"][k]) for k in ca["state_dict"])
    sa, sb = (c["optimizer_states"][0]["state"] for c in (ca, cb))
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    assert rows(a) == rows(b)
    ma, mb = (json.loads((r / "result.json").read_text())["metrics"] for r in (a, b))
    assert json.dumps(ma, sort_keys=True) == json.dumps(mb, sort_keys=True)  # NaN == NaN


@pytest.mark.parametrize("zoo_name", ["siren_zoo", "cnn_zoo"])
def test_stop_and_resume_is_the_uninterrupted_run(zoo_name, tmp_path, request):
    zoo = request.getfixturevalue(zoo_name)
    train(zoo, tmp_path / "whole", overrides=DROPOUT, max_epochs=4, progress=False)
    train(zoo, tmp_path / "parts", overrides=DROPOUT, max_epochs=1, progress=False)
    train(zoo, tmp_path / "parts", max_epochs=3, progress=False)
    result = train(zoo, tmp_path / "parts", max_epochs=4, progress=False)
    assert result.timings["epochs"] == 4
    assert_same_run(tmp_path / "whole", tmp_path / "parts")


def test_last_checkpoint_every_epoch_best_only_on_improvement(siren_zoo, tmp_path, monkeypatch):
    def worse_each_epoch(self, batch, batch_idx):
        self.log("val_loss", float(self.current_epoch), batch_size=batch[0].shape[0])

    monkeypatch.setattr(AutoencoderModule, "validation_step", worse_each_epoch)
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=3, progress=False)
    epoch = {n: torch.load(run / "checkpoints" / n, weights_only=True)["epoch"]
             for n in ("last.ckpt", "best.ckpt")}
    assert epoch == {"last.ckpt": 2, "best.ckpt": 0}


def test_finished_run_does_nothing_and_a_larger_max_epochs_extends_it(siren_zoo, tmp_path,
                                                                        capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "run"
    command = ["train", "--zoo", siren_zoo, "--out", run, "--config", cfg, "--max-epochs", 2]
    assert run_cli(command, capsys)[0] == 0
    files = snapshot(run)
    code, out, err = run_cli(command, capsys)
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert code == 0 and len(lines) == 1 and "nothing to do" in lines[0], lines
    assert snapshot(run) == files
    code, out, _ = run_cli([*command[:-1], 3], capsys)
    assert code == 0 and "trained in" in out
    assert json.loads((run / "result.json").read_text())["timings"]["epochs"] == 3
    assert (run / "model.safetensors").read_bytes() != files[run / "model.safetensors"]


def test_finished_checkpoint_without_exported_model_is_exported(siren_zoo, tmp_path):
    """Killed between the last epoch and the export: the rerun exports, trains nothing."""
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=2, progress=False)
    model = (run / "model.safetensors").read_bytes()
    ckpt = last_checkpoint(run).read_bytes()
    (run / "model.safetensors").unlink()
    (run / "result.json").unlink()
    result = train(siren_zoo, run, progress=False)
    assert not result.up_to_date and result.timings["epochs"] == 2
    assert (run / "model.safetensors").read_bytes() == model
    assert last_checkpoint(run).read_bytes() == ckpt


def test_second_train_into_a_locked_run_fails_before_touching_it(siren_zoo, tmp_path):
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=1, progress=False)
    files = snapshot(run)
    with DirectoryLock(run, "held"), pytest.raises(
        SymmergeError, match=rf"run directory {run} is in use by process {os.getpid()}"
    ):
        train(siren_zoo, run, max_epochs=2, progress=False)
    assert snapshot(run) == files


# a CLI run that pauses after each epoch's validation, before its last checkpoint: time
# to kill it mid-run, or to start a second run beside it (one thread, as in the tests)
_SLOW_CLI = """
import sys, time
import torch
from symmerge.cli.app import main
from symmerge.training.module import AutoencoderModule

torch.set_num_threads(1)
AutoencoderModule.on_train_epoch_end = lambda self: time.sleep(float(sys.argv[1]))
main(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def slow_cli(tmp_path_factory, siren_zoo):
    """``(start(run, pause) -> Popen, reference run of 5 epochs)``."""
    root = tmp_path_factory.mktemp("slow")
    script, cfg = root / "slow_cli.py", root / "tiny.yaml"
    script.write_text(_SLOW_CLI)
    cfg.write_text(yaml.safe_dump(DROPOUT))
    reference = root / "reference"
    threads = torch.get_num_threads()  # (module fixtures run before the one-thread fixture)
    torch.set_num_threads(1)
    try:
        train(siren_zoo, reference, overrides=DROPOUT, max_epochs=5, progress=False)
    finally:
        torch.set_num_threads(threads)

    def start(run, pause):
        return subprocess.Popen(
            [sys.executable, str(script), str(pause), "train", "--zoo", str(siren_zoo),
             "--out", str(run), "--config", str(cfg), "--max-epochs", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    return start, reference


def _wait(condition, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _checkpoint_epoch(run):
    try:
        return torch.load(last_checkpoint(run), weights_only=True)["epoch"]
    except (OSError, RuntimeError, EOFError):
        return -1


def test_killed_run_resumes_from_its_last_epoch_and_ends_as_the_whole_run(
    siren_zoo, slow_cli, tmp_path
):
    start, reference = slow_cli
    run = tmp_path / "run"
    proc = start(run, 0.5)
    try:
        _wait(lambda: _checkpoint_epoch(run) >= 1, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    epoch = _checkpoint_epoch(run)
    assert 1 <= epoch < 4
    logged = max(int(r["epoch"]) for r in rows(run) if r["val_loss"])
    assert epoch >= logged - 1  # the checkpoint of every completed epoch, not the best's
    train(siren_zoo, run, progress=False)
    assert_same_run(reference, run)


def test_second_run_beside_a_live_one_fails_and_the_first_completes(
    siren_zoo, slow_cli, tmp_path, capsys
):
    start, reference = slow_cli
    run = tmp_path / "run"
    proc = start(run, 0.3)
    try:
        _wait(lambda: (lock_holder(run) or {}).get("pid") == proc.pid, proc)
        code, _, err = run_cli(["train", "--zoo", siren_zoo, "--out", run], capsys)
        assert code == 2 and "Traceback" not in err
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and f"is in use by process {proc.pid}" in errors[0]
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    assert_same_run(reference, run)


@pytest.mark.slow
def test_ddp_stop_and_resume_is_the_uninterrupted_ddp_run(siren_zoo, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(DROPOUT))

    def ddp(run, epochs):
        proc = subprocess.run(
            [sys.executable, "-m", "symmerge", "train", "--zoo", str(siren_zoo), "--out",
             str(run), "--config", str(cfg), "--max-epochs", str(epochs), "--devices", "2",
             "--accelerator", "cpu"],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]

    ddp(tmp_path / "whole", 3)
    ddp(tmp_path / "parts", 1)
    ddp(tmp_path / "parts", 3)
    assert_same_run(tmp_path / "whole", tmp_path / "parts")


def test_only_global_rank_zero_owns_the_run(monkeypatch):
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from symmerge.training.launch import owns_run

    monkeypatch.setattr(rank_zero_only, "rank", 0)
    monkeypatch.delenv("NODE_RANK", raising=False)
    assert owns_run()
    monkeypatch.setenv("NODE_RANK", "1")  # local rank 0 of another node
    assert not owns_run()
    monkeypatch.setenv("NODE_RANK", "0")
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # a DDP worker Lightning launched
    assert not owns_run()


def test_a_moved_run_directory_resumes_with_its_best_checkpoint(siren_zoo, tmp_path, monkeypatch):
    """A run directory copied elsewhere resumes as it would have in place: the best
    checkpoint's score comes along, so a worse later epoch does not replace it."""
    import shutil

    def worse_each_epoch(self, batch, batch_idx):
        self.log("val_loss", float(self.current_epoch), batch_size=batch[0].shape[0])

    monkeypatch.setattr(AutoencoderModule, "validation_step", worse_each_epoch)
    train(siren_zoo, tmp_path / "here", overrides=TINY, max_epochs=1, progress=False)
    shutil.copytree(tmp_path / "here", tmp_path / "moved")
    shutil.rmtree(tmp_path / "here")
    train(siren_zoo, tmp_path / "moved", max_epochs=3, progress=False)
    best = torch.load(tmp_path / "moved" / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == 0
    last = torch.load(tmp_path / "moved" / "checkpoints" / "last.ckpt", weights_only=True)
    states = [s for k, s in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert len(states) == 2  # best and last, under Lightning's own keys
    for state in states:  # rebased onto the new folder
        assert state["dirpath"] == str(tmp_path / "moved" / "checkpoints")
        assert all(str(tmp_path / "here") not in str(v) for v in state.values())
