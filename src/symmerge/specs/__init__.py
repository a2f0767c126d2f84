"""Immutable specs of network weight spaces, shared by every component.

A spec knows a family's parameter shapes, the flat [B, P] layout (PyTorch
state-dict order: per layer weight row-major, then bias), its symmetry group
type, how to build an ``nn.Module`` and how to evaluate B networks at once.
"""

from symmerge.specs.base import WeightSpaceSpec, spec_from_dict, spec_from_json
from symmerge.specs.cnn import CNNSpec
from symmerge.specs.mlp import MLPSpec
from symmerge.specs.siren import SirenSpec

__all__ = [
    "CNNSpec",
    "MLPSpec",
    "SirenSpec",
    "WeightSpaceSpec",
    "spec_from_dict",
    "spec_from_json",
]
