"""Autoencoder training (Lightning): losses, the Lightning module, runs in memory or in a
run directory. Using a trained model needs none of it: see :mod:`symmerge.models.runs`."""

from symmerge.utils.seed import random_state_kept

# Importing Lightning draws from Python's global random generator (rich, its progress
# bar's library, seeds its style ids): the caller's random state is put back.
with random_state_kept():
    from symmerge.models.train_config import PRESETS, TrainConfig, resolve_config
    from symmerge.training.run import TrainResult, train

__all__ = [
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "resolve_config",
    "train",
]
