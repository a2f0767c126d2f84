"""Helpers shared by the zoo-building benchmarks (``bench_zoo_inr.py``, ``bench_zoo_cnn.py``)."""

from __future__ import annotations

import os
import platform
import resource

import torch


def machine() -> dict[str, object]:
    """torch version, threads, CPU and the 1-minute load average, for the JSON record."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the worker processes)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)
