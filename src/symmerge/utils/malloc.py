"""Keep freed heap memory in the process (glibc), so large tensors are not re-faulted.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it to the kernel on ``free``. A training step on CPU allocates
and frees hundreds of edge-sized tensors (73 MB each at the ``paper-inr`` size), and
every one of them is then page-faulted and zeroed again by the kernel. Serving them
from the heap and never trimming it makes freed blocks reusable, which makes CPU
training steps much faster (BENCHMARKS.md, "Autoencoder training throughput", runs E
and F). The cost is that the process keeps its peak heap. The effect matches the
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`` environment variables (or a preloaded
jemalloc/tcmalloc), applied from inside Python.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: ``mallopt`` parameters (glibc ``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: Set ``SYMMERGE_MALLOC=0`` to leave the allocator alone.
ENV_SWITCH = "SYMMERGE_MALLOC"

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Tell glibc to serve large blocks from the heap and never trim it.

    Returns whether it took effect: False off Linux, without glibc, or when the
    environment variable ``SYMMERGE_MALLOC`` is ``0``. Idempotent.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
