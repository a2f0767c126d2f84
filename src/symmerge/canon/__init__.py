"""Canonicalization of networks behind one batched interface (``[B, P]`` in and out)."""

from symmerge.canon.core import (
    AECanonicalizer,
    AELiftCanonicalizer,
    Canonicalizer,
    SortCanonicalizer,
    canonicalize,
    make_canonicalizer,
)
from symmerge.canon.zoo import CanonicalizeReport, canonicalize_phase_zoo, canonicalize_zoo
from symmerge.models.runs import load_run

__all__ = [
    "AECanonicalizer",
    "AELiftCanonicalizer",
    "CanonicalizeReport",
    "Canonicalizer",
    "SortCanonicalizer",
    "canonicalize",
    "canonicalize_phase_zoo",
    "canonicalize_zoo",
    "load_run",
    "make_canonicalizer",
]
