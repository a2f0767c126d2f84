"""Importing symmerge changes nothing global: every module is imported in a fresh process,
and the global random states, matplotlib's backend, the C allocator's settings, the
environment and torch's global flags are compared before and after."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent("""
    import ctypes, hashlib, importlib, json, os, pickle, pkgutil, random, sys
    import matplotlib, numpy as np, torch

    def large_blocks_mapped():
        # glibc's default serves a 64 MiB block with mmap (its threshold is at most
        # 32 MiB); symmerge.utils.malloc.retain_freed_memory turns that off
        if not sys.platform.startswith("linux"):
            return None
        libc = ctypes.CDLL("libc.so.6")
        if not hasattr(libc, "mallinfo2"):
            return None
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                        "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc.mallinfo2.restype = Info
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        size = 64 << 20
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(size)
        mapped = libc.mallinfo2().hblkhd - before >= size
        libc.free(block)
        return mapped

    def digest(obj):
        return hashlib.sha256(pickle.dumps(obj)).hexdigest()

    def state():
        backend = dict.__getitem__(matplotlib.rcParams, "backend")
        np_state = np.random.get_state()
        return {
            "matplotlib backend": backend if isinstance(backend, str) else "(not chosen)",
            "random": digest(random.getstate()),
            "numpy.random": digest((np_state[0], np_state[1].tobytes(), *np_state[2:])),
            "torch": digest(torch.get_rng_state().numpy().tobytes()),
            "torch.initial_seed": torch.initial_seed(),
            "malloc: large blocks mapped": large_blocks_mapped(),
            "environment (symmerge's variables)": sorted(
                (k, v) for k, v in os.environ.items()
                if k.startswith(("SYMMERGE_", "PL_", "CUBLAS_"))),
            "sys.excepthook": repr(sys.excepthook),
            "torch flags": [torch.are_deterministic_algorithms_enabled(),
                            torch.get_num_threads(), str(torch.get_default_dtype()),
                            torch.backends.cudnn.benchmark],
        }

    before = state()
    import symmerge
    names = [m.name for m in pkgutil.walk_packages(symmerge.__path__, "symmerge.")]
    for name in names:
        importlib.import_module(name)
    print(json.dumps({"before": before, "after": state(), "modules": names,
                      "umap": sorted(m for m in ("umap", "pynndescent") if m in sys.modules)}))
""")


@pytest.fixture(scope="module")
def imported() -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_module_was_imported(imported):
    modules = set(imported["modules"])
    assert {"symmerge.training.run", "symmerge.experiments.plots", "symmerge.cli.app",
            "symmerge.models.runs", "symmerge.utils.malloc", "symmerge.__main__"} <= modules


def test_imports_leave_umap_alone(imported):
    """umap-learn (optional) is slow to import and has side effects: only making a UMAP
    map imports it. (torch_geometric imports numba when it is installed: theirs.)"""
    assert imported["umap"] == []


@pytest.mark.parametrize("what", ["random", "numpy.random", "torch", "torch.initial_seed",
                                  "sys.excepthook", "torch flags"])
def test_imports_change_no_global_state(imported, what):
    assert imported["after"][what] == imported["before"][what]


def test_imports_set_no_environment_variable_of_symmerge_or_its_trainer(imported):
    """(torch_geometric sets TORCHINDUCTOR_CACHE_DIR and Lightning
    PYTORCH_NVML_BASED_CUDA_CHECK when imported: theirs, left alone.)"""
    key = "environment (symmerge's variables)"
    assert imported["after"][key] == imported["before"][key]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the probe reads glibc's mallinfo2")
def test_imports_leave_the_allocator_alone(imported):
    assert imported["before"]["malloc: large blocks mapped"] is True
    assert imported["after"]["malloc: large blocks mapped"] is True


def test_imports_leave_the_matplotlib_backend_alone(imported):
    assert imported["after"]["matplotlib backend"] == imported["before"]["matplotlib backend"]
