"""Merging networks (raw, weight-matched or canonical frames) and single-network files."""

from symmerge.merge.core import MergeResult, check_merge_options, merge, merge_weights
from symmerge.merge.io import (
    Network,
    infer_spec,
    load_module,
    load_network,
    load_networks,
    parse_spec,
    save_network,
)

__all__ = [
    "MergeResult",
    "Network",
    "check_merge_options",
    "infer_spec",
    "load_module",
    "load_network",
    "load_networks",
    "merge",
    "merge_weights",
    "parse_spec",
    "save_network",
]
