"""Model zoos: one safetensors file per zoo, builders and importers."""

from symmerge.zoo.io import Zoo, load_zoo, save_zoo, split_indices

__all__ = ["Zoo", "load_zoo", "save_zoo", "split_indices"]
