"""Zoo builders under faults, as separate processes: the main process killed by PID while its
workers fit, two runs into one ``--out``, and a killed run followed by runs of another
configuration. Nothing may be left running, nothing half-written or foreign may be reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import safe_open

from symmerge.utils.lock import LOCK_NAME
from symmerge.zoo import Zoo
from symmerge.zoo.shards import shard_dir_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="scans /proc for the builders' processes")

SYMMERGE = str(Path(sys.executable).with_name("symmerge"))
#: tiny zoos of 8 chunks of 2 networks, fitted by 2 worker processes (a few seconds each)
ARGS = {
    "inr": ["zoo", "inr", "--limit", "16", "--chunk-size", "2", "--preset", "quick",
            "--workers", "2", "--quiet"],
    "cnn": ["zoo", "cnn", "--n", "16", "--chunk-size", "2", "--steps", "30", "--workers", "2",
            "--quiet"],
}
N_CHUNKS = 8


def processes_with(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line contains ``marker``; forked workers
    carry their parent's command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def start(args: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([SYMMERGE, *args, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def build(args: list[str], out: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([SYMMERGE, *args, "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def check_chunks(shards: Path) -> int:
    """Every chunk file is complete and of the folder's run; returns their number."""
    run_id = json.loads((shards / "manifest.json").read_text())["run_id"]
    chunks = sorted(shards.glob("chunk-*.safetensors"))
    for path in chunks:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            assert meta["run_id"] == run_id and meta["rows"] == "2"
            assert all(f.get_slice(k).get_shape()[0] == 2 for k in f.keys())  # noqa: SIM118
    return len(chunks)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Callable[[str], bytes]:
    """The bytes of the uninterrupted zoo of each builder (built once)."""
    cache: dict[str, bytes] = {}

    def get(builder: str) -> bytes:
        if builder not in cache:
            out = tmp_path_factory.mktemp("ref") / f"{builder}.safetensors"
            build(ARGS[builder], out)
            cache[builder] = out.read_bytes()
        return cache[builder]

    return get


@pytest.mark.parametrize("builder", ["inr", "cnn"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killing_the_main_process_takes_its_workers_along(tmp_path, reference, builder, sig):
    out = tmp_path / f"{builder}.safetensors"
    shards = shard_dir_for(out)
    proc = start(ARGS[builder], out)
    try:
        wait_until(lambda: proc.poll() is not None or (
            len(processes_with(str(out))) >= 3 and any(shards.glob("chunk-*.safetensors"))),
            120, "the workers and a first chunk")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(lambda: not processes_with(str(out)), 10, "the workers to die with their parent")
    assert not out.exists()
    assert 1 <= check_chunks(shards) < N_CHUNKS
    build(ARGS[builder], out)  # resumes
    assert out.read_bytes() == reference(builder)
    assert not shards.exists()


def test_a_second_run_into_the_same_out_is_refused_and_changes_nothing(tmp_path):
    out = tmp_path / "inr.safetensors"
    shards = shard_dir_for(out)
    args = [*ARGS["inr"], "--steps", "3000", "--target-psnr", "99"]  # runs for a while
    first = start(args, out)
    try:
        wait_until(lambda: first.poll() is not None or len(processes_with(str(out))) >= 3, 120,
                   "the first run's workers")
        before = {name: (shards / name).read_bytes() for name in (LOCK_NAME, "manifest.json")}
        second = subprocess.run([SYMMERGE, *args, "--out", str(out)], capture_output=True,
                                text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second started"
        assert second.returncode == 2
        assert second.stderr.startswith("error: ") and second.stderr.count("\n") == 1
        assert f"shard folder {shards} is in use by process {first.pid} " in second.stderr
        assert before == {name: (shards / name).read_bytes() for name in before}
        added = {p.name for p in shards.iterdir()} - set(before)  # the first run's chunks only
        assert all(n.startswith(("chunk-", ".chunk-")) for n in added), added
        assert sorted(p.name for p in tmp_path.iterdir()) == [shards.name]
    finally:
        first.kill()
        first.wait(timeout=30)
    wait_until(lambda: not processes_with(str(out)), 10, "the first run's workers to die")


def test_a_killed_long_run_cannot_leak_into_later_runs(tmp_path):
    """Run A (3000 steps) killed while fitting, B (60 steps, --fresh, shards kept), then C
    (60 steps) resumes B's folder: C must be exactly a clean 60-step zoo."""
    out, clean = tmp_path / "zoo.safetensors", tmp_path / "clean.safetensors"
    args = ["zoo", "inr", "--limit", "8", "--chunk-size", "2", "--workers", "2", "--quiet",
            "--target-psnr", "99"]
    a = start([*args, "--steps", "3000"], out)
    try:
        wait_until(lambda: a.poll() is not None or len(processes_with(str(out))) >= 3, 120,
                   "run A's workers")
        assert a.poll() is None
        a.kill()
        a.wait(timeout=30)
    finally:
        if a.poll() is None:
            a.kill()
    wait_until(lambda: not processes_with(str(out)), 10, "run A's workers to die")
    build([*args, "--steps", "60", "--fresh", "--keep-shards"], out)
    assert check_chunks(shard_dir_for(out)) == 4
    out.unlink()
    build([*args, "--steps", "60"], out)
    build([*args, "--steps", "60"], clean)
    assert out.read_bytes() == clean.read_bytes()
    assert Zoo(out).provenance["config"]["steps"] == 60
