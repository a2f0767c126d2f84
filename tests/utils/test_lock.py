"""Directory locks: exclusive across processes, released when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from symmerge.errors import SymmergeError
from symmerge.utils.lock import DirectoryLock, lock_holder


def test_second_holder_gets_one_clear_error(tmp_path):
    with DirectoryLock(tmp_path / "run", "run directory run") as lock:
        assert lock.held and lock_holder(tmp_path / "run")["pid"] == os.getpid()
        with pytest.raises(SymmergeError, match=rf"run directory run is in use by process "
                                                rf"{os.getpid()}"):
            DirectoryLock(tmp_path / "run", "run directory run").acquire()
    assert not lock.held
    with DirectoryLock(tmp_path / "run"):  # free again
        pass


def test_lock_dies_with_its_process(tmp_path):
    code = ("import sys, time; from symmerge.utils.lock import DirectoryLock; "
            f"lock = DirectoryLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(SymmergeError, match=f"process {proc.pid}"):
            DirectoryLock(tmp_path).acquire()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while True:
            try:
                DirectoryLock(tmp_path).acquire().release()
                break
            except SymmergeError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


def test_unwritable_place_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SymmergeError, match="cannot lock"):
        DirectoryLock(tmp_path / "file" / "run").acquire()
