"""The Lightning module's optimizer, schedule and CNN accuracy metric."""

import csv
import math

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from symmerge import CNNSpec, SirenSpec, SymmergeError
from symmerge.models.train_config import load_config, resolve_config
from symmerge.training import train
from symmerge.training.losses import accuracy
from symmerge.training.module import AutoencoderModule, lr_factor
from symmerge.training.rundir import last_checkpoint
from symmerge.zoo import load_zoo, save_zoo
from symmerge.zoo.images import held_out_images
from tests.training.test_run import TINY


class ReferenceWarmup(LRScheduler):
    """The reference's warm-up rule (ScaleGMN's and Neural Graphs' ``WarmupLRScheduler``):
    ``lr * _step_count / warmup`` while ``_step_count < warmup``, then ``lr``; torch's
    scheduler counts its own construction as step 1."""

    def __init__(self, optimizer, warmup_steps):
        self.warmup_steps = warmup_steps
        super().__init__(optimizer)

    def get_lr(self):
        n = self._step_count
        return [lr * n / self.warmup_steps if n < self.warmup_steps else lr
                for lr in self.base_lrs]


def module_for(spec, overrides):
    cfg = resolve_config("quick", overrides={**TINY, **overrides}, spec=spec)
    return AutoencoderModule(spec.to_json(), cfg.model_dump(mode="json"))


def test_warmup_and_amsgrad_follow_the_reference():
    module = module_for(SirenSpec((2, 8, 8, 1)), {"optim": {"lr": 0.1, "warmup_steps": 4,
                                                            "amsgrad": True}})
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step" and opt.defaults["amsgrad"] is True
    ref_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ref = ReferenceWarmup(ref_opt, 4)
    ours, theirs = [], []
    for _ in range(7):
        ours.append(opt.param_groups[0]["lr"])
        theirs.append(ref_opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        ref_opt.step()
        ref.step()
    assert ours == pytest.approx(theirs)
    assert theirs == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1])  # lr / 4 first
    plain = module_for(SirenSpec((2, 8, 8, 1)), {})
    assert plain.configure_optimizers()["optimizer"].defaults["amsgrad"] is False


@pytest.mark.parametrize("recorded", [True, False])
def test_val_l1_is_the_mean_accuracy_error_over_every_validation_network(recorded, tmp_path):
    """Against the zoo's recorded test accuracies, or without them the originals'."""
    spec = CNNSpec((1, 4, 4, 10), "relu")
    params = spec.init_params(40, generator=torch.Generator().manual_seed(3))
    metrics = {"test_accuracy": torch.rand(40, generator=torch.Generator().manual_seed(4))}
    zoo_path = save_zoo(tmp_path / "cnn.safetensors", spec, params,
                        metrics=metrics if recorded else None,
                        provenance={"data": "mnist-embedded"})
    run = tmp_path / "run"
    overrides = {**TINY, "optim": {**TINY["optim"], "batch_size": 3},
                 "checkpoint": {"monitor": "val_l1", "ties": "later"}}
    train(zoo_path, run, overrides=overrides, max_epochs=1, progress=False)
    with (run / "logs" / "metrics.csv").open(newline="") as f:
        logged = [float(r["val_l1"]) for r in csv.DictReader(f) if r.get("val_l1")]

    zoo, cfg = load_zoo(zoo_path), load_config(run / "config.yaml")
    val = zoo.splits(seed=cfg.split.seed, fractions=cfg.split.fractions,
                     by_image=cfg.split.by_image)["val"]
    assert len(val) % 3 != 0  # batches of unequal size: the mean is over networks
    module = AutoencoderModule(spec.to_json(), cfg.model_dump(mode="json"))
    module.load_state_dict(torch.load(last_checkpoint(run), weights_only=True)["state_dict"])
    held = held_out_images(zoo)
    with torch.no_grad():
        decoded = module.model.eval()(params[val])
    target = (metrics["test_accuracy"][val] if recorded
              else accuracy(spec, params[val], held.images, held.labels))
    expected = (accuracy(spec, decoded, held.images, held.labels) - target).abs().mean()
    assert logged == pytest.approx([float(expected)], abs=1e-6)


def test_constant_schedule_is_the_warmup_rule():
    for step in range(12):
        assert lr_factor(step, warmup_steps=4) == min(1.0, (step + 1) / 4)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    kw = {"warmup_steps": 4, "schedule": "cosine", "total_steps": 20}
    f = [lr_factor(s, **kw) for s in range(21)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # the warm-up is unchanged
    after = f[3:20]
    assert all(a > b for a, b in zip(after, after[1:], strict=False))  # strictly falling
    assert 0 < f[19] < 0.02 and f[20] == pytest.approx(0.0, abs=1e-12)
    assert f[11] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 17)))
    with pytest.raises(SymmergeError, match="schedule"):
        resolve_config("quick", overrides={"optim": {"schedule": "linear"}})


def test_cosine_run_ends_at_the_last_step_of_max_epochs(siren_zoo, tmp_path):
    """In a run the cosine spans every optimizer step of ``max_epochs``: the learning rate
    after the last step is the rule's at that step, and near zero."""
    run = tmp_path / "run"
    lr = 3e-3
    train(siren_zoo, run, overrides={**TINY, "optim": {**TINY["optim"], "lr": lr,
                                                       "schedule": "cosine"}},
          max_epochs=3, progress=False)
    ckpt = torch.load(last_checkpoint(run), weights_only=True)
    steps = ckpt["global_step"]
    assert steps > 4
    sched = ckpt["lr_schedulers"][0]
    assert sched["last_epoch"] == steps
    want = lr * lr_factor(steps, warmup_steps=2, schedule="cosine", total_steps=steps)
    assert sched["_last_lr"][0] == pytest.approx(want, abs=1e-12) and want < 1e-4 * lr + 1e-12
