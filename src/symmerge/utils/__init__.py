"""Small shared utilities (atomic writes, seeding, the C allocator)."""

from symmerge.utils.io import atomic_path, require_file
from symmerge.utils.malloc import retain_freed_memory
from symmerge.utils.seed import random_state_kept, seed_everything, torch_generator

__all__ = [
    "atomic_path",
    "random_state_kept",
    "require_file",
    "retain_freed_memory",
    "seed_everything",
    "torch_generator",
]
