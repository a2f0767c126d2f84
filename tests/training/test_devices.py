"""Training on the machine's device: ``accelerator="auto"``, loss data that follows the
module, non-finite losses watched without host synchronization, bf16 mixed precision."""

from __future__ import annotations

import pytest
import torch
import yaml

from symmerge import CNNSpec, SirenSpec, SymmergeError
from symmerge.models.train_config import resolve_config
from symmerge.training import train
from symmerge.training.launch import describe_accelerator, resolve_accelerator
from symmerge.training.module import AutoencoderModule, FirstNonFinite
from tests.training._util import assert_reported_metrics
from tests.training.test_run import TINY

HERE = "cuda" if torch.cuda.is_available() else "cpu"


def test_auto_is_this_machines_accelerator():
    assert resolve_accelerator("auto") == HERE
    assert resolve_accelerator("cpu") == "cpu"
    assert describe_accelerator("cpu", 2, 1) == "training on cpu (2 devices, DDP)"
    assert describe_accelerator("cuda", 4, 2) == "training on cuda (4 devices x 2 nodes, DDP)"
    assert describe_accelerator("cpu", 1, 1).startswith("training on cpu (")


def test_auto_training_says_where_and_leaves_torch_flags_alone(siren_zoo, tmp_path):
    """A tiny end-to-end run with the default accelerator (auto): it trains on the GPU
    when there is one, says so, and hands back the deterministic-algorithms flag that
    Lightning turns on for it."""
    lines: list[str] = []
    before = torch.are_deterministic_algorithms_enabled()
    result = train(siren_zoo, tmp_path / "run", overrides=TINY, max_epochs=1, progress=False,
                   log=lines.append)
    assert any(ln.startswith(f"training on {HERE}") for ln in lines), lines
    assert torch.are_deterministic_algorithms_enabled() == before
    assert_reported_metrics(result, siren_zoo)


def test_loss_data_follows_the_module():
    """Target renders and distillation images are non-persistent buffers: ``.to()``
    moves them with the weights, checkpoints never hold them."""
    siren = SirenSpec((2, 6, 1))
    module = AutoencoderModule(siren.to_json(), resolve_config("quick", overrides=TINY,
                                                               spec=siren).model_dump())
    module.attach_loss_data(targets=torch.zeros(5, 28, 28))
    cnn = CNNSpec((1, 4, 4, 10), "relu")
    kd = AutoencoderModule(cnn.to_json(), resolve_config("quick", overrides=TINY,
                                                          spec=cnn).model_dump())
    kd.attach_loss_data(train_images=torch.zeros(4, 1, 28, 28),
                        test_images=(torch.zeros(3, 1, 28, 28), torch.zeros(3).long()))
    module.to("meta")
    kd.to("meta")
    assert module._targets.device.type == "meta"
    assert {t.device.type for t in (kd.kd_loss.train_images, kd._test_x, kd._test_y)} == {
        "meta"}
    for m in (module, kd):
        assert not [k for k in m.state_dict() if "targets" in k or "images" in k or "_test" in k]


def test_first_non_finite_is_kept_on_the_device():
    watch = FirstNonFinite()
    assert watch.found() is None
    for step, value in enumerate([1.0, 2.0, float("nan"), float("inf"), 3.0]):
        watch.update(torch.tensor(value), step)
    step, value = watch.found()
    assert step == 2 and value != value  # the first one: nan at step 2
    watch.reset()
    watch.update(torch.tensor(1.0), 9)
    assert watch.found() is None


def test_deferred_check_stops_before_any_checkpoint(siren_zoo, tmp_path, monkeypatch):
    """The accelerator path (no per-step check): a loss that turns non-finite at step 2
    stops the run at the end of the epoch, naming that step, before a checkpoint."""
    finite = AutoencoderModule._loss

    def nan_from_step_2(self, params, index, generator=None, decoded=None):
        loss = finite(self, params, index, generator, decoded)
        return loss * float("nan") if self.training and self.global_step >= 2 else loss

    monkeypatch.setattr(AutoencoderModule, "CHECK_EVERY_STEP", ())
    monkeypatch.setattr(AutoencoderModule, "_loss", nan_from_step_2)
    with pytest.raises(SymmergeError, match=r"training loss became nan at step 2.*No checkpoint"):
        train(siren_zoo, tmp_path / "run", overrides=TINY, max_epochs=1, progress=False)
    assert not (tmp_path / "run").exists()


def test_bf16_mixed_precision_is_an_opt_in(siren_zoo, tmp_path):
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    assert all(resolve_config(p).precision == "32"
               for p in ("quick", "paper-inr", "paper-cnn-relu", "paper-cnn-tanh"))
    run = tmp_path / "run"
    result = train(siren_zoo, run, overrides={**TINY, "precision": "bf16-mixed"}, max_epochs=1,
                   progress=False)
    assert yaml.safe_load((run / "config.yaml").read_text())["precision"] == "bf16-mixed"
    assert_reported_metrics(result, siren_zoo)
