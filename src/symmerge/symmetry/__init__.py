"""Parameter symmetries: group elements, orbits, phase canonicalization, test helpers."""

from symmerge.symmetry.group import GroupElement, sample_group_elements
from symmerge.symmetry.orbit import TRANSFORMS, make_orbit
from symmerge.symmetry.phase import canonicalize_phase
from symmerge.symmetry.testing import (
    assert_function_preserved,
    function_error,
    invariance_error,
    tolerance,
)

__all__ = [
    "TRANSFORMS",
    "GroupElement",
    "assert_function_preserved",
    "canonicalize_phase",
    "function_error",
    "invariance_error",
    "make_orbit",
    "sample_group_elements",
    "tolerance",
]
