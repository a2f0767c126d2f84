"""Atomic writes: all or nothing, usual file mode, clear errors."""

from __future__ import annotations

import json
import os
import stat

import pytest

from symmerge.errors import SymmergeError
from symmerge.utils.io import atomic_path, require_file


def test_atomic_path_writes_on_success_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()  # nothing visible under the final name yet
    assert target.read_text() == "done"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


def test_atomic_path_refuses_a_directory(tmp_path):
    with pytest.raises(SymmergeError, match="is a directory"), atomic_path(tmp_path):
        pass


def test_require_file(tmp_path):
    with pytest.raises(SymmergeError, match="zoo not found"):
        require_file(tmp_path / "missing", "zoo")
    (tmp_path / "f").write_text("")
    assert require_file(tmp_path / "f") == tmp_path / "f"


def test_atomic_path_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    under_file = tmp_path / "f" / "out.txt"
    with pytest.raises(SymmergeError, match="not a directory|cannot create"), atomic_path(
        under_file
    ):
        pass
    with pytest.raises(SymmergeError, match="cannot"), atomic_path("/proc/nope.safetensors"):
        pass


def test_save_safetensors_same_inputs_same_bytes_and_usual_mode(tmp_path):
    import subprocess
    import sys

    from safetensors import safe_open

    script = (
        "import sys, torch\n"
        "from symmerge.utils.io import save_safetensors\n"
        "meta = {k: k * 3 for k in ('format', 'spec', 'provenance', 'a', 'zz')}\n"
        "save_safetensors(sys.argv[1], {'w': torch.arange(6.0), 'b': torch.ones(2)}, meta)\n"
    )
    old = os.umask(0o022)
    try:
        for name in ("a", "b", "c"):  # separate processes: separate hash seeds
            subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True)
    finally:
        os.umask(old)
    data = [(tmp_path / n).read_bytes() for n in ("a", "b", "c")]
    assert data[0] == data[1] == data[2]
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    n = int.from_bytes(data[0][:8], "little")
    meta = json.loads(data[0][8 : 8 + n])["__metadata__"]
    assert list(meta) == sorted(meta)
    with safe_open(str(tmp_path / "a"), framework="pt") as f:  # still a valid file
        assert f.metadata()["spec"] == "specspecspec" and f.get_tensor("w")[5] == 5


def test_read_text_refuses_binary_and_missing(tmp_path):
    from symmerge.utils.io import read_text

    (tmp_path / "a.yaml").write_text("x: 1\n")
    assert read_text(tmp_path / "a.yaml") == "x: 1\n"
    (tmp_path / "b.yaml").write_bytes(b"\x80\xff\x00binary")
    with pytest.raises(SymmergeError, match=r"cannot read config b\.yaml|not a text file"):
        read_text(tmp_path / "b.yaml", "config")
    with pytest.raises(SymmergeError, match="spec not found"):
        read_text(tmp_path / "missing.json", "spec")


def test_require_finite_names_the_input_and_first_row():
    import torch

    from symmerge.utils.io import require_finite

    require_finite(torch.zeros(3, 2), "x")
    require_finite(torch.arange(3), "ints")  # integers are always finite
    t = torch.zeros(4, 2)
    t[2, 1] = float("nan")
    t[3, 0] = float("inf")
    with pytest.raises(SymmergeError, match=r"zoo z\.safetensors holds 2 non-finite .* 2 of 4 "
                                            r"rows \(first: row 2\)"):
        require_finite(t, "zoo z.safetensors")


_WRITER = (
    "import sys, time\n"
    "from symmerge.utils.io import atomic_path\n"
    "with atomic_path(sys.argv[1]) as tmp:\n"
    "    tmp.write_bytes(b'x' * 4096)\n"
    "    print(tmp, flush=True)\n"
    "    time.sleep(600)\n"
)


def _start_writer(target):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)],
                            stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    assert tmp, "the writer did not start"
    return proc, tmp


def test_temp_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    import signal
    from pathlib import Path

    target = tmp_path / "out.bin"
    proc, tmp = _start_writer(target)
    tmp = Path(tmp)
    try:
        assert tmp.parent == tmp_path and f".{proc.pid}." in tmp.name
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # dies before its rename, as kill -9 would
        proc.wait(timeout=60)
        proc.stdout.close()
    assert tmp.stat().st_size == 4096 and not target.exists()
    # a dead writer's leftovers of another target, and a foreign file, are not ours
    other = tmp_path / tmp.name.replace(".out.bin.", ".other.bin.")
    other.write_bytes(b"y")
    foreign = tmp_path / ".out.bin.notes.tmp"
    foreign.write_bytes(b"z")
    with atomic_path(target) as new:
        new.write_text("done")
    assert target.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, other.name, foreign.name])


def test_temp_file_of_a_live_writer_is_kept(tmp_path):
    import signal
    from pathlib import Path

    target = tmp_path / "out.bin"
    proc, tmp = _start_writer(target)
    try:
        with atomic_path(target) as new:
            new.write_text("mine")
        assert Path(tmp).is_file() and target.read_text() == "mine"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
