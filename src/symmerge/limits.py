"""Bounds of numeric options, shared by the library's checks and the CLI's options.

A value outside them makes no sense for its option (a negative count, a NaN noise level)
or would only run for hours, exhaust memory or overflow a seed. The library refuses it
with one :class:`SymmergeError` before any work; the CLI's options carry the same bounds
(and the defaults both share). This module imports nothing heavy, so that the CLI can read
it at start-up.
"""

from __future__ import annotations

import math
import numbers

from symmerge.errors import SymmergeError

#: seeds reach NumPy, scikit-learn and UMAP, whose seeds are unsigned 32-bit integers
MAX_SEED = 2**32 - 1
#: weight-matching random restarts (each one is a full coordinate ascent)
MAX_RESTARTS = 1000
#: weight-matching sweeps and merge's re-matching rounds (both stop once nothing changes)
MAX_ITER = 10_000
#: interpolation steps (alphas in [0, 1])
MAX_STEPS = 10_000
#: members of one orbit (each is a full copy of the network)
MAX_ORBIT = 100_000
#: noise std of orbit interpolation's perturbed orbit; network weights are of order 1
MAX_PERTURBATION = 1e3
#: data images a REPAIR measures activations on by default (a merge's ``--repair``, the
#: experiments' repaired paths): enough for the mean and std of every channel
REPAIR_IMAGES = 500


def _show(x: float) -> str:
    return str(x) if isinstance(x, numbers.Integral) else f"{x:g}"


def check_range(value: float, name: str, lo: float, hi: float) -> float:
    """``value`` if it is a finite number in ``[lo, hi]`` (an integer where both bounds are
    integers), else one :class:`SymmergeError` naming ``name``."""
    integer = isinstance(lo, numbers.Integral) and isinstance(hi, numbers.Integral)
    kind = numbers.Integral if integer else numbers.Real
    if (isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value)
            or not lo <= value <= hi):
        what = "an integer" if integer else "a finite number"
        raise SymmergeError(f"{name} must be {what} in [{_show(lo)}, {_show(hi)}], "
                            f"got {value!r}")
    return value
