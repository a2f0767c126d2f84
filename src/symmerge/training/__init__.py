"""Autoencoder training (Lightning): losses, the Lightning module, runs in memory or in a
run directory. Using a trained model needs none of it: see :mod:`symmerge.models.runs`."""

from symmerge.models.train_config import PRESETS, TrainConfig, resolve_config
from symmerge.training.run import TrainResult, train

__all__ = [
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "resolve_config",
    "train",
]
