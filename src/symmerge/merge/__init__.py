"""Merging networks (raw, weight-matched or canonical frames) and single-network files."""

from symmerge.merge.core import MergeResult, check_merge_options, merge, merge_weights
from symmerge.merge.io import (
    Network,
    infer_spec,
    load_module,
    load_network,
    load_networks,
    output_keys,
    parse_spec,
    save_network,
)
from symmerge.merge.state_dicts import (
    ArchitectureHints,
    StateKeys,
    infer_architecture,
    match_architecture,
)

__all__ = [
    "ArchitectureHints",
    "MergeResult",
    "Network",
    "StateKeys",
    "check_merge_options",
    "infer_architecture",
    "infer_spec",
    "load_module",
    "load_network",
    "load_networks",
    "match_architecture",
    "merge",
    "merge_weights",
    "output_keys",
    "parse_spec",
    "save_network",
]
