"""Early stopping and best-checkpoint rules, through exact resumption."""

import csv

import pytest
import torch

from symmerge.models.train_config import EarlyStoppingConfig
from symmerge.training import train
from symmerge.training.callbacks import EarlyStop, stopped_epoch
from symmerge.training.module import AutoencoderModule
from symmerge.training.rundir import last_checkpoint
from tests.training.test_resume import assert_same_run, snapshot
from tests.training.test_run import TINY


def first_stop(rule: str, patience: int, values: list[float]) -> int | None:
    """The index of the value after which :class:`EarlyStop` stops, or None."""
    stop = EarlyStop(EarlyStoppingConfig(enabled=True, rule=rule, patience=patience))
    return next((i for i, v in enumerate(values) if stop.update(v)), None)


def test_increasing_rule_stops_when_the_last_patience_values_strictly_increase():
    assert first_stop("increasing", 3, [5, 4, 3, 3.5, 4, 4.5]) == 4  # 3 < 3.5 < 4
    assert first_stop("increasing", 3, [5, 4, 4, 5, 5, 6, 7]) == 6  # ties do not rise
    assert first_stop("increasing", 3, [1, 2, 1, 2, 1, 2, 1]) is None  # rises, not in a row
    assert first_stop("increasing", 50, list(range(49))) is None  # 49 values, 48 rises
    assert first_stop("increasing", 50, [9.0, *range(50)]) == 50  # 50 values, 49 rises


def test_no_improvement_rule_counts_validations_above_the_best():
    # a value equal to the best resets the count (the reference's <=)
    assert first_stop("no_improvement", 2, [3, 2, 2, 2.5, 2.5, 2.1]) == 4
    assert first_stop("no_improvement", 2, [3, 2, 2.5, 1, 1.5, 1.5]) == 5
    assert first_stop("no_improvement", 3, [3, 2, 2.5, 2, 2.5, 2, 2.5]) is None


def scripted(losses):
    """A validation step that logs ``losses[epoch]`` as the validation loss."""

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", float(losses[self.current_epoch]), batch_size=batch[0].shape[0])

    return validation_step


def epoch_of(run, name):
    return torch.load(run / "checkpoints" / name, weights_only=True)["epoch"]


#: epochs 2, 3, 4 rise: the increasing rule (patience 3) stops after epoch 4
LOSSES = [5, 4, 3, 3.5, 4, 4.5, 1, 1, 1, 1, 1, 1]
STOPS = {**TINY, "early_stopping": {"enabled": True, "rule": "increasing", "patience": 3},
         "checkpoint": {"ties": "later"}}


@pytest.mark.parametrize(("rule", "losses", "epochs"), [
    ("increasing", LOSSES, 5),
    ("no_improvement", [3, 2, 2, 2.5, 2.5, 2.1, 1, 1, 1], 5),
])
def test_a_stopped_run_is_finished(rule, losses, epochs, siren_zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(AutoencoderModule, "validation_step", scripted(losses))
    run = tmp_path / "run"
    stop = {"enabled": True, "rule": rule, "patience": 3 if rule == "increasing" else 2}
    result = train(siren_zoo, run, overrides={**TINY, "early_stopping": stop}, max_epochs=9,
                   progress=False)
    assert result.stopped_early and result.timings["epochs"] == epochs
    ckpt = torch.load(last_checkpoint(run), weights_only=True)
    assert ckpt["epoch"] == epochs - 1 and stopped_epoch(ckpt) == epochs - 1
    files = snapshot(run)
    lines: list[str] = []
    again = train(siren_zoo, run, max_epochs=20, progress=False, log=lines.append)
    assert again.up_to_date and again.stopped_early
    assert lines == [f"{run} stopped early after epoch {epochs} (its early-stopping rule); "
                     "nothing to do"]
    assert snapshot(run) == files


def test_resumed_run_stops_where_the_uninterrupted_run_stops(siren_zoo, tmp_path, monkeypatch):
    """The rules' memory (the losses of epochs 2 and 3, the best one) survives the resume
    after epoch 3."""
    monkeypatch.setattr(AutoencoderModule, "validation_step", scripted(LOSSES))
    train(siren_zoo, tmp_path / "whole", overrides=STOPS, max_epochs=10, progress=False)
    first = train(siren_zoo, tmp_path / "parts", overrides=STOPS, max_epochs=4, progress=False)
    assert not first.stopped_early
    result = train(siren_zoo, tmp_path / "parts", max_epochs=10, progress=False)
    assert result.stopped_early and result.timings["epochs"] == 5
    assert_same_run(tmp_path / "whole", tmp_path / "parts")
    assert epoch_of(tmp_path / "parts", "best.ckpt") == 2


@pytest.mark.parametrize(("ties", "best"), [("later", 2), ("earlier", 1)])
def test_best_checkpoint_ties(ties, best, siren_zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(AutoencoderModule, "validation_step", scripted([3, 2, 2, 5]))
    run = tmp_path / "run"
    train(siren_zoo, run, overrides={**TINY, "checkpoint": {"ties": ties}}, max_epochs=4,
          progress=False)
    assert epoch_of(run, "best.ckpt") == best


def test_validation_every_n_steps_counts_steps_across_epochs(siren_zoo, tmp_path):
    run = tmp_path / "run"
    result = train(siren_zoo, run, overrides={**TINY, "eval_every_n_steps": 4}, max_epochs=4,
                   progress=False)
    with (run / "logs" / "metrics.csv").open(newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("val_loss")]
    total = torch.load(last_checkpoint(run), weights_only=True)["global_step"]
    assert total // int(result.timings["epochs"]) != 4  # else both cadences coincide
    # the logged step of a validation is the last step before it (0-based)
    assert [s + 1 for s in steps] == list(range(4, total + 1, 4))
