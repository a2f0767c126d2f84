"""symmerge: symmetry-aware model merging through parameter canonicalization."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("symmerge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from symmerge.errors import SymmergeError
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec, WeightSpaceSpec, spec_from_dict

__all__ = [
    "CNNSpec",
    "MLPSpec",
    "SirenSpec",
    "SymmergeError",
    "WeightSpaceSpec",
    "__version__",
    "spec_from_dict",
]
