"""Model zoos: one safetensors file per zoo (or networks held in memory), builders and
importers."""

from symmerge.zoo.io import Zoo, as_zoo, load_zoo, save_zoo, split_indices
from symmerge.zoo.quality import FailedNetworks, failed_networks

__all__ = ["FailedNetworks", "Zoo", "as_zoo", "failed_networks", "load_zoo", "save_zoo",
           "split_indices"]
