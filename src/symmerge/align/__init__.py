"""Alignment and exact canonicalization of networks (no learning involved).

* :func:`weight_matching`: Git Re-Basin weight matching with signed permutations
  (sine, tanh) or scale normalization (ReLU), any depth, MLP / SIREN / CNN, set by one
  :class:`MatchOptions`;
* :func:`sort_canonicalize`: sign or scale fixing plus sorting of hidden neurons;
* :func:`scale_normalization`: the exact element giving ReLU neurons unit incoming norm;
* :func:`closest_scales`: the positive-scale representative of a network nearest to another.
"""

from symmerge.align.canonical import closest_scales, scale_normalization, sort_canonicalize
from symmerge.align.matching import (
    MODES,
    STRATEGIES,
    MatchOptions,
    MatchResult,
    weight_matching,
)

__all__ = [
    "MODES",
    "STRATEGIES",
    "MatchOptions",
    "MatchResult",
    "closest_scales",
    "scale_normalization",
    "sort_canonicalize",
    "weight_matching",
]
