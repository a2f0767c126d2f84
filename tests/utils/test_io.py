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
