"""Model zoos: one safetensors file per zoo (or networks held in memory), builders and
importers."""

from symmerge.zoo.io import Zoo, as_zoo, load_zoo, save_zoo, split_indices

__all__ = ["Zoo", "as_zoo", "load_zoo", "save_zoo", "split_indices"]
