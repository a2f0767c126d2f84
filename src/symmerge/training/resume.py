"""Exact resumption: checkpoints that carry every random state a training epoch draws from.

The random draws of an epoch come from: the train loader's shuffling generator (its
permutation and its iterator's seed; the latent-statistics pass before each validation
iterates the train loader too), torch's global generator (dropout, the distillation
images of a CNN training step, the validation loader's iterator seed) and, on a GPU,
CUDA's. Under DDP the train order comes from Lightning's ``DistributedSampler``, a
function of the seed and of the epoch (restored with the fit loop). :class:`RandomState`
saves all of them (with Python's and NumPy's, unused today) in every checkpoint, one set
per process, and puts them back when a run resumes, so stopping after epoch ``k`` and
resuming gives the weights and metrics of the uninterrupted run, bit for bit.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from symmerge.errors import SymmergeError
from symmerge.utils.io import load_weights_only, require_finite

#: checkpoint key of the per-process random states (a list indexed by global rank)
RANDOM_STATE_KEY = "symmerge_random_state"
#: keys every Lightning training checkpoint holds
_LIGHTNING_KEYS = ("epoch", "global_step", "state_dict", "loops", "callbacks",
                   "optimizer_states")


def collect_random_state(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """This process's random states, in types ``torch.load(weights_only=True)`` reads."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(gauss)),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Put back what :func:`collect_random_state` returned."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    for k, g in generators.items():
        g.set_state(state["generators"][k])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class RandomState(L.Callback):
    """Saves every process's random states with each checkpoint; restores them on resume.

    ``generators`` are the explicit generators the training draws from (the train
    loader's), by name. Lightning restores a checkpoint before the fit loop creates the
    first epoch's train iterator (its first draws), and nothing between draws.
    """

    def __init__(self, generators: Mapping[str, torch.Generator]) -> None:
        self.generators = dict(generators)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = collect_random_state(self.generators)
        states: list[Any] = [state]
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            # every process saves (Lightning dumps the checkpoint on all of them)
            states = [None] * trainer.world_size
            torch.distributed.all_gather_object(states, state)
        checkpoint[RANDOM_STATE_KEY] = states

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get(RANDOM_STATE_KEY)
        if states and len(states) == trainer.world_size:  # else: another layout, not exact
            set_random_state(states[trainer.global_rank], self.generators)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The Lightning checkpoint a run resumes from, checked: an unreadable file, one that
    is not a Lightning training checkpoint, or non-finite weights are one clear error."""
    advice = "delete it to start over, or choose a new run directory"
    try:
        ckpt = load_weights_only(path, "checkpoint")
    except SymmergeError as exc:
        reason = str(exc).removeprefix(f"cannot read checkpoint {path}: ")
        raise SymmergeError(f"cannot resume from {path}: {reason}; {advice}") from None
    missing = ([k for k in _LIGHTNING_KEYS if k not in ckpt] if isinstance(ckpt, dict)
               else ["any key"])
    if not missing and not (isinstance(ckpt["epoch"], int)
                            and isinstance(ckpt["state_dict"], dict)):
        missing = ["epoch and state_dict of the right types"]
    if missing:
        raise SymmergeError(f"cannot resume from {path}: not a Lightning training checkpoint "
                            f"(it has no {missing[0]}); {advice}")
    for name, tensor in ckpt["state_dict"].items():
        require_finite(tensor, f"checkpoint {path}: {name}")
    return ckpt
