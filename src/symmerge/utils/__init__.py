"""Small shared utilities (atomic writes, seeding, devices)."""

from symmerge.utils.io import atomic_path, require_file
from symmerge.utils.seed import seed_everything, torch_generator

__all__ = ["atomic_path", "require_file", "seed_everything", "torch_generator"]
