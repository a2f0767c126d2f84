"""Autoencoder training: losses, validated configs and presets, Lightning module, runs."""

from symmerge.training.config import PRESETS, TrainConfig, resolve_config
from symmerge.training.run import TrainResult, encode, load_autoencoder, reconstruct, train

__all__ = [
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "encode",
    "load_autoencoder",
    "reconstruct",
    "resolve_config",
    "train",
]
