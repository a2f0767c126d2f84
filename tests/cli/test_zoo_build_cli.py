"""``symmerge zoo inr`` / ``symmerge zoo cnn``: zoos, clear errors, resume, two ranks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from symmerge.zoo import Zoo
from symmerge.zoo.shards import shard_dir_for
from tests.cli._util import run_cli

SYMMERGE = str(Path(sys.executable).with_name("symmerge"))
INR_ARGS = ["zoo", "inr", "--limit", "4", "--steps", "15", "--quiet"]


def same_zoo(a: Path, b: Path) -> None:
    za, zb = Zoo(a), Zoo(b)
    assert torch.equal(za.params, zb.params)
    assert torch.equal(za.labels, zb.labels)
    for name in za.metric_names:
        assert torch.equal(za.metric(name), zb.metric(name))


def test_inr_command_writes_a_zoo(tmp_path, capsys):
    out = tmp_path / "inr.safetensors"
    code, stdout, err = run_cli([*INR_ARGS, "--per-image", "2", "--out", out, "--workers", "1"],
                                capsys)
    assert code == 0, err
    assert "8 networks" in stdout and "PSNR median" in stdout
    zoo = Zoo(out)
    assert zoo.image_index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert zoo.provenance["config"]["steps"] == 15
    assert not shard_dir_for(out).exists()


def test_cnn_command_writes_a_zoo(tmp_path, capsys):
    out = tmp_path / "cnn.safetensors"
    code, stdout, err = run_cli(["zoo", "cnn", "--activation", "tanh", "--n", "3", "--steps", "4",
                                 "--seed", "1", "--out", out, "--quiet", "--workers", "1"], capsys)
    assert code == 0, err
    assert "3 networks" in stdout and "test accuracy median" in stdout
    zoo = Zoo(out)
    assert zoo.spec.activation == "tanh" and zoo.spec.layout == (1, 16, 16, 16, 10)
    assert {"train_accuracy", "test_accuracy", "lr", "dropout"} <= set(zoo.metric_names)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cnn_zoo_is_bitwise_independent_of_chunks_and_workers(tmp_path, capsys, activation):
    base = ["zoo", "cnn", "--activation", activation, "--n", "5", "--steps", "6", "--quiet"]
    default = tmp_path / "default.safetensors"
    assert run_cli([*base, "--out", default], capsys)[0] == 0
    for extra in (["--chunk-size", "3", "--workers", "1"], ["--chunk-size", "2", "--workers", "2"],
                  ["--chunk-size", "1", "--workers", "1"]):
        out = tmp_path / f"chunks{extra[1]}_workers{extra[3]}.safetensors"
        assert run_cli([*base, *extra, "--out", out], capsys)[0] == 0
        assert out.read_bytes() == default.read_bytes(), extra


@pytest.mark.parametrize(
    "argv, message",
    [
        ([*INR_ARGS, "--limit", "0"], "--limit must be positive"),
        ([*INR_ARGS, "--per-image", "-1"], "--per-image must be positive"),
        (["zoo", "inr", "--data", "imagenet-42"], "unknown data source"),
        ([*INR_ARGS, "--preset", "turbo"], "unknown INR preset"),
        ([*INR_ARGS, "--lr", "0"], "learning rate must be positive"),
        ([*INR_ARGS, "--hidden", "32,x"], "--hidden"),
        (["zoo", "cnn", "--n", "0"], "--n must be positive"),
        (["zoo", "cnn", "--n", "2", "--activation", "sine"], "relu or tanh"),
        (["zoo", "cnn", "--n", "2", "--data", "nope"], "unknown data source"),
        ([*INR_ARGS, "--device", "quantum"], "unknown --device"),
    ],
)
def test_bad_input_is_one_error_line_and_no_zoo(tmp_path, capsys, argv, message):
    out = tmp_path / "zoo.safetensors"
    code, _, err = run_cli([*argv, "--out", out], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for out in (blocker / "zoo.safetensors", tmp_path):
        code, _, err = run_cli([*INR_ARGS, "--out", out], capsys)
        assert code == 2 and err.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_max_chunks_then_rerun_gives_the_uninterrupted_zoo(tmp_path, capsys):
    ref, out = tmp_path / "ref.safetensors", tmp_path / "zoo.safetensors"
    common = [*INR_ARGS, "--chunk-size", "1", "--workers", "1"]
    assert run_cli([*common, "--out", ref], capsys)[0] == 0
    code, stdout, _ = run_cli([*common, "--out", out, "--max-chunks", "2"], capsys)
    assert code == 0 and "rerun to continue" in stdout and not out.exists()
    code, _, err = run_cli([*common, "--seed", "9", "--out", out], capsys)
    assert code == 2 and "differs in --seed" in err and "rerun with --fresh to discard" in err
    assert run_cli([*common, "--out", out], capsys)[0] == 0
    same_zoo(ref, out)


def test_a_shard_folder_that_cannot_be_trusted_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "zoo.safetensors"
    common = [*INR_ARGS, "--chunk-size", "1", "--workers", "1", "--out", out]
    assert run_cli([*common, "--max-chunks", "1"], capsys)[0] == 0
    manifest = shard_dir_for(out) / "manifest.json"
    for broken in (b"\x00\x9f binary", None):
        if broken is None:
            manifest.unlink()
        else:
            manifest.write_bytes(broken)
        code, _, err = run_cli(common, capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
        assert "--fresh" in err and not out.exists()
    assert run_cli([*common, "--fresh"], capsys)[0] == 0 and len(Zoo(out)) == 4


def test_two_ranks_under_torchrun_give_the_single_process_zoo(tmp_path, capsys):
    ref, out = tmp_path / "ref.safetensors", tmp_path / "ranks.safetensors"
    args = [*INR_ARGS, "--per-image", "2", "--chunk-size", "3"]
    assert run_cli([*args, "--out", ref, "--workers", "1"], capsys)[0] == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--no-python", SYMMERGE, *args, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 reports
    same_zoo(ref, out)
    assert not shard_dir_for(out).exists()


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_zoo(tmp_path, capsys):
    ref, out = tmp_path / "ref.safetensors", tmp_path / "zoo.safetensors"
    args = ["zoo", "inr", "--limit", "12", "--steps", "300", "--quiet", "--chunk-size", "1",
            "--workers", "1"]
    assert run_cli([*args, "--out", ref], capsys)[0] == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([SYMMERGE, *args, "--out", str(out)], env=env)
    shards = shard_dir_for(out)
    deadline = time.time() + 300
    while len(list(shards.glob("chunk-*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    n_done = len(list(shards.glob("chunk-*")))
    assert 2 <= n_done < 12
    assert run_cli([*args, "--out", out], capsys)[0] == 0
    same_zoo(ref, out)
