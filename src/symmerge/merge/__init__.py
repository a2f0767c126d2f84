"""Merging networks (raw, weight-matched or canonical frames), REPAIR of merged networks
and single-network files."""

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
from symmerge.merge.repair import (
    REPAIR_IMAGES,
    LayerStats,
    preactivation_stats,
    repair,
    repair_to,
)
from symmerge.merge.state_dicts import (
    ArchitectureHints,
    StateKeys,
    infer_architecture,
    match_architecture,
)

__all__ = [
    "REPAIR_IMAGES",
    "ArchitectureHints",
    "LayerStats",
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
    "preactivation_stats",
    "repair",
    "repair_to",
    "save_network",
]
