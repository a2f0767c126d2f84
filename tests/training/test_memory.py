"""Training in memory: nothing written anywhere, the model a run directory would hold, and
the caller's global random states left as they were."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from symmerge import SirenSpec, SymmergeError
from symmerge.models.autoencoder import Autoencoder
from symmerge.models.runs import encode, load_run, reconstruct
from symmerge.training import TrainResult, train
from symmerge.training.rundir import last_checkpoint
from symmerge.utils.io import load_weights_only
from symmerge.zoo import Zoo, load_zoo
from tests.training._util import assert_reported_metrics
from tests.training.test_run import TINY

#: a learning rate at which validation losses go up and down: the best epoch (4) is not
#: the last, and early stopping ends the run after epoch 7 of 8 (seed 0, ``siren_zoo``)
BUMPY = {**TINY, "optim": {**TINY["optim"], "lr": 0.03},
         "early_stopping": {"enabled": True, "rule": "no_improvement", "patience": 2}}


def _tree(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, dirs, files in os.walk(root) for f in files + dirs)


def test_in_memory_training_writes_nothing_and_returns_the_model(siren_zoo, quiet_places):
    zoo = load_zoo(siren_zoo)
    in_memory = Zoo.from_tensors(zoo.params, zoo.spec, zoo.labels)
    result = train(in_memory, overrides=TINY, max_epochs=2, progress=False)
    for name, place in quiet_places.items():
        assert _tree(place) == [], f"{name} holds {_tree(place)}"
    assert result.run_dir is None and result.zoo == "in-memory zoo"
    assert isinstance(result.model, Autoencoder) and not result.model.training
    assert result.spec == zoo.spec and result.config is not None
    assert result.config.optim.max_epochs == 2 and result.timings["epochs"] == 2
    assert sum(result.num_networks.values()) == 48
    assert_reported_metrics(result, in_memory)
    params = zoo.params[:5]
    latents = encode(result.model, params)
    assert latents.shape == (5, 8) and torch.isfinite(latents).all()
    assert reconstruct(result.model, params).shape == params.shape
    with pytest.raises(SymmergeError, match="trained in memory"):
        result.save()


def test_in_memory_equals_a_run_directory(siren_zoo, tmp_path):
    """The same weights (the best epoch, by the same rule), metrics and early stop, with
    the zoo given as a path."""
    run = tmp_path / "run"
    on_disk = train(siren_zoo, run, overrides=BUMPY, max_epochs=8, progress=False)
    in_memory = train(siren_zoo, overrides=BUMPY, max_epochs=8, progress=False)
    assert on_disk.stopped_early and in_memory.stopped_early
    assert in_memory.timings["epochs"] == on_disk.timings["epochs"] == 7
    assert in_memory.metrics == on_disk.metrics
    saved = load_file(str(run / "model.safetensors"))
    state = in_memory.model.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[k], state[k]) for k in saved)
    # the rule kept an earlier epoch than the last: the comparison covers the selection
    last = load_weights_only(last_checkpoint(run))["state_dict"]
    assert any(not torch.equal(last[f"model.{k}"], state[k]) for k in state)
    # a run directory's result holds its model too
    assert on_disk.model is not None
    assert all(torch.equal(on_disk.model.state_dict()[k], state[k]) for k in state)


def test_train_leaves_the_global_random_states_as_they_were(siren_zoo, tmp_path):
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    seed_variables = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    train(siren_zoo, overrides=TINY, max_epochs=1, progress=False)
    train(siren_zoo, tmp_path / "run", overrides=TINY, max_epochs=1, progress=False)
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    after_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    assert all(torch.equal(a, b) for a, b in zip(cuda, after_cuda, strict=True))
    assert py == before[0]
    assert np_state[0] == before[1][0] and np.array_equal(np_state[1], before[1][1])
    assert np_state[2:] == before[1][2:]
    assert torch.equal(cpu, before[2]) and torch.initial_seed() == 123
    assert {k: os.environ.get(k) for k in seed_variables} == seed_variables


def test_in_memory_training_refuses_a_logger_it_cannot_write(siren_zoo, quiet_places):
    with pytest.raises(SymmergeError, match="logger 'tensorboard' writes into a run directory"):
        train(siren_zoo, overrides=TINY, max_epochs=1, logger="tensorboard", progress=False)
    assert _tree(quiet_places["cwd"]) == []


def test_a_finished_run_returns_its_model(siren_zoo, tmp_path):
    run = tmp_path / "run"
    first = train(siren_zoo, run, overrides=TINY, max_epochs=1, progress=False)
    again = train(siren_zoo, run, max_epochs=1, progress=False)
    assert again.up_to_date and again.model is not None and not again.model.training
    assert again.config == first.config == load_run(run).config
    assert all(torch.equal(again.model.state_dict()[k], v)
               for k, v in first.model.state_dict().items())
    assert TrainResult.load(run).model is None  # result.json holds no model


def test_a_single_network_zoo_is_refused_naming_it():
    spec = SirenSpec((2, 8, 8, 1))
    zoo = Zoo.from_tensors(spec.init_params(1), spec)
    with pytest.raises(SymmergeError, match=r"too few networks \(1\) in in-memory zoo"):
        train(zoo, overrides=TINY, max_epochs=1, progress=False)
