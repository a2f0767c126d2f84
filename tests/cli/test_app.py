"""The entry points: ``main()`` (what tests and Python callers run) changes no process
setting; the console script tunes the allocator first."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest


def _run(entry: str) -> dict:
    code = textwrap.dedent(f"""
        import json, sys
        from symmerge.cli import app
        from symmerge.utils import malloc

        hook = sys.excepthook
        sys.argv = ["symmerge", "--version"]
        try:
            app.{entry}()
        except SystemExit as exc:
            code = exc.code
        print(json.dumps({{"code": code, "malloc": malloc._applied,
                          "excepthook": sys.excepthook is hook}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_main_leaves_the_process_settings_alone():
    assert _run("main") == {"code": 0, "malloc": None, "excepthook": True}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_the_console_script_tunes_the_allocator(monkeypatch):
    monkeypatch.delenv("SYMMERGE_MALLOC", raising=False)
    assert _run("console_main") == {"code": 0, "malloc": True, "excepthook": True}


def test_the_installed_script_is_the_console_entry_point():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["symmerge"] == "symmerge.cli.app:console_main"


def test_start_up_loads_no_model_code():
    """Registering every command (help texts read the method registry) imports neither the
    autoencoders nor torch_geometric nor Lightning: they load when a command runs."""
    code = textwrap.dedent("""
        import json, sys
        from symmerge.cli import app

        app._register()
        heavy = ("torch_geometric", "lightning", "symmerge.models.autoencoder",
                 "symmerge.canon.core", "symmerge.methods.frames")
        print(json.dumps([m for m in heavy if m in sys.modules]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
