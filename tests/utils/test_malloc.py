"""retain_freed_memory: takes effect on glibc Linux, idempotent, switchable off."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from symmerge.utils import retain_freed_memory

_PROBE = "from symmerge.utils import retain_freed_memory as r; print(r(), r())"


def _probe(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SYMMERGE_MALLOC"}
    if env_value is not None:
        env["SYMMERGE_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_returns_a_bool_and_is_idempotent():
    first = retain_freed_memory()
    assert isinstance(first, bool) and retain_freed_memory() is first


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_applies_in_a_fresh_process_unless_switched_off():
    glibc = platform.libc_ver()[0] == "glibc"
    assert _probe(None) == ("True True" if glibc else "False False")
    assert _probe("0") == "False False"
