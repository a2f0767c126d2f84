"""When a run stops early and which validation its best checkpoint keeps (METHOD.md 4.5).

Both carry their state in every checkpoint, so that a resumed run decides as the
uninterrupted one would have; a run that stopped early records the epoch it stopped at
(:func:`stopped_epoch`), which makes it finished.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.models.train_config import CheckpointConfig, EarlyStoppingConfig

#: checkpoint key (under ``callbacks``) of the early-stopping state
EARLY_STOP_KEY = "symmerge_early_stopping"


class EarlyStop(L.Callback):
    """Stops training by the rule of an :class:`EarlyStoppingConfig`, checked after every
    validation on the logged ``monitor``.

    ``increasing``: stop once the last ``patience`` values are strictly increasing.
    ``no_improvement``: stop once ``patience`` validations in a row stayed above the
    best value so far (a value equal to the best resets the count).
    """

    def __init__(self, config: EarlyStoppingConfig) -> None:
        self.monitor, self.rule, self.patience = config.monitor, config.rule, config.patience
        self.recent: list[float] = []  # the last ``patience`` values (``increasing``)
        self.best = math.inf  # the best value so far (``no_improvement``)
        self.waited = 0  # validations since the best one (``no_improvement``)
        self.stopped_epoch: int | None = None

    @property
    def state_key(self) -> str:
        return EARLY_STOP_KEY

    def update(self, value: float) -> bool:
        """Record one validation's value; whether training should stop now."""
        if self.rule == "increasing":
            self.recent = [*self.recent, value][-self.patience:]
            return len(self.recent) == self.patience and all(
                a < b for a, b in itertools.pairwise(self.recent)
            )
        if value <= self.best:
            self.best, self.waited = value, 0
        else:
            self.waited += 1
        return self.waited >= self.patience

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.stopped_epoch is not None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise SymmergeError(f"early stopping monitors {self.monitor}, which this "
                                "run's validation does not compute")
        stop = trainer.strategy.reduce_boolean_decision(self.update(float(value)), all=False)
        if stop:
            self.stopped_epoch = trainer.current_epoch
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "best": self.best, "waited": self.waited,
                "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.recent = [float(v) for v in state_dict["recent"]]
        self.best = float(state_dict["best"])
        self.waited = int(state_dict["waited"])
        self.stopped_epoch = state_dict["stopped_epoch"]


def stopped_epoch(checkpoint: Mapping[str, Any] | None) -> int | None:
    """The epoch (0-based) at which the run of ``checkpoint`` stopped early, or None."""
    callbacks = checkpoint.get("callbacks") if checkpoint is not None else None
    state = callbacks.get(EARLY_STOP_KEY) if isinstance(callbacks, Mapping) else None
    epoch = state.get("stopped_epoch") if isinstance(state, Mapping) else None
    return epoch if isinstance(epoch, int) else None


class RunCheckpoint(ModelCheckpoint):
    """A :class:`ModelCheckpoint` whose saved state follows its run directory: a run
    copied or moved elsewhere resumes with its best score and paths, rebased onto the
    new folder (Lightning's own keeps only ``best_model_path`` when the folder changed,
    so the first validation after the move would replace a better best checkpoint)."""

    def _generate_state_key(self, **kwargs: Any) -> str:
        # the key its state is saved under stays Lightning's, so that checkpoints written
        # with a plain ModelCheckpoint resume with their state and the reverse
        key = super()._generate_state_key(**kwargs)
        if type(self) is RunCheckpoint:
            key = ModelCheckpoint.__qualname__ + key.removeprefix(RunCheckpoint.__qualname__)
        return key

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old is None or self.dirpath is None or old == self.dirpath:
            return super().load_state_dict(state_dict)

        def rebase(path: Any) -> Any:
            if isinstance(path, str) and path and Path(path).parent == Path(old):
                return str(Path(self.dirpath) / Path(path).name)
            return path

        moved = {key: rebase(value) for key, value in state_dict.items()}
        moved["dirpath"] = self.dirpath
        if isinstance(state_dict.get("best_k_models"), Mapping):
            moved["best_k_models"] = {rebase(k): v
                                      for k, v in state_dict["best_k_models"].items()}
        super().load_state_dict(moved)


class LaterTiesCheckpoint(RunCheckpoint):
    """A :class:`ModelCheckpoint` (``mode="min"``, one file) that a later validation
    with a value *equal* to the best also replaces (the reference's ``<=``; Lightning's
    own rule is ``<``, so ties keep the earlier epoch)."""

    def check_monitor_top_k(self, trainer: L.Trainer, current: Tensor | None = None) -> bool:
        if current is None or len(self.best_k_models) < self.save_top_k:
            return super().check_monitor_top_k(trainer, current)
        better = bool(current <= self.best_k_models[self.kth_best_model_path])
        return trainer.strategy.reduce_boolean_decision(better)


def best_checkpoint(config: CheckpointConfig, dirpath: str | os.PathLike[str]) -> ModelCheckpoint:
    """The callback that keeps ``dirpath/best.ckpt`` by ``config``'s rule."""
    cls = LaterTiesCheckpoint if config.ties == "later" else RunCheckpoint
    return cls(dirpath=dirpath, filename="best", monitor=config.monitor, mode="min",
               enable_version_counter=False)


class BestWeights(L.Callback):
    """The in-memory counterpart of :func:`best_checkpoint` (a run trained without a run
    directory): a copy of the module's weights at the validation that ``config``'s rule
    selects, the lowest ``monitor`` (``ties="later"``: a later equal value replaces it),
    kept in :attr:`state` (None until a validation has run)."""

    def __init__(self, config: CheckpointConfig) -> None:
        self.monitor, self.later = config.monitor, config.ties == "later"
        self.best = math.inf
        self.state: dict[str, Tensor] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise SymmergeError(f"the best-checkpoint rule monitors {self.monitor}, which "
                                "this run's validation does not compute")
        current = float(value)
        if self.state is None or current < self.best or (self.later and current == self.best):
            self.best = current
            self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
