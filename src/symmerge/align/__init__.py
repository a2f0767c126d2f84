"""Alignment and exact canonicalization of networks (no learning involved).

* :func:`weight_matching`: Git Re-Basin weight matching with signed permutations
  (sine, tanh) or scale normalization (ReLU), any depth, MLP / SIREN / CNN;
* :func:`sort_canonicalize`: sign or scale fixing plus sorting of hidden neurons;
* :func:`scale_normalization`: the exact element giving ReLU neurons unit incoming norm.
"""

from symmerge.align.canonical import scale_normalization, sort_canonicalize
from symmerge.align.matching import MODES, MatchResult, weight_matching

__all__ = [
    "MODES",
    "MatchResult",
    "scale_normalization",
    "sort_canonicalize",
    "weight_matching",
]
