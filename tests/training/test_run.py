"""End-to-end training runs on tiny zoos (seconds on a CPU)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from symmerge import CNNSpec, SirenSpec, SymmergeError
from symmerge.models.runs import encode, load_run, reconstruct
from symmerge.models.train_config import resolve_config
from symmerge.training import train
from symmerge.training.module import AutoencoderModule
from symmerge.zoo import save_zoo
from tests.training._util import assert_reported_metrics

TINY = {
    "encoder": {"d_hidden": 8, "num_layers": 1, "d_latent": 8, "dropout": 0.0},
    "optim": {"batch_size": 16, "warmup_steps": 2},
    "loss": {"images_per_step": 16},
}


def test_train_writes_run_and_resumes(siren_zoo, tmp_path):
    run = tmp_path / "run"
    result = train(siren_zoo, run, preset="quick", overrides=TINY, max_epochs=2, progress=False)
    for name in ("config.yaml", "spec.json", "model.safetensors", "result.json",
                 "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "result.json").read_text())
    assert saved["seed"] == 0 and saved["version"]
    assert saved["metrics"] == result.metrics
    assert_reported_metrics(result, siren_zoo)
    assert sum(result.num_networks.values()) == 48

    model, spec, cfg = load_run(run)
    params = SirenSpec((2, 8, 8, 1)).init_params(5)
    assert encode(model, params).shape == (5, 8)
    assert reconstruct(model, params).shape == (5, spec.num_params)

    resumed = train(siren_zoo, run, max_epochs=3, progress=False)
    assert resumed.timings["epochs"] == 3


def test_same_seed_same_model(siren_zoo, tmp_path):
    a = train(siren_zoo, tmp_path / "a", overrides=TINY, max_epochs=1, progress=False)
    b = train(siren_zoo, tmp_path / "b", overrides=TINY, max_epochs=1, progress=False)
    assert a.metrics == b.metrics
    wa, wb = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("a", "b"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_same_seed_same_weights_with_two_threads(tmp_path):
    """Threaded float reductions (scatter sums over ~10^6 edge entries) must not make two
    runs differ: the trainer runs with deterministic algorithms. (Without them this
    quick-preset run on 80 full-size SIRENs differed in about half of the tries.)"""
    spec = SirenSpec()
    zoo = tmp_path / "zoo.safetensors"
    save_zoo(zoo, spec, spec.init_params(80, generator=torch.Generator().manual_seed(0)),
             torch.arange(80) % 10)
    torch.set_num_threads(2)  # the autouse fixture restores the count
    for r in ("a", "b"):
        train(zoo, tmp_path / r, max_epochs=1, progress=False)
    wa, wb = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("a", "b"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_preset_rejects_wrong_zoo(siren_zoo, tmp_path):
    with pytest.raises(SymmergeError, match="paper-cnn-relu"):
        train(siren_zoo, tmp_path / "run", preset="paper-cnn-relu", progress=False)
    assert not (tmp_path / "run").exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(siren_zoo, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=1, progress=False)
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    monkeypatch.setattr(AutoencoderModule, "_loss",
                        lambda self, p, i, g=None, d=None: torch.tensor(float("nan")))
    with pytest.raises(SymmergeError, match="nan"):
        train(siren_zoo, run, max_epochs=2, progress=False)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_corrupt_run_is_a_clear_error(siren_zoo, tmp_path):
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=1, progress=False)
    (run / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(SymmergeError, match="cannot load run"):
        load_run(run)
    with pytest.raises(SymmergeError, match="not a finished training run"):
        load_run(tmp_path / "missing")


def test_cnn_autoencoder_reports_decoded_accuracy(cnn_zoo, tmp_path):
    result = train(cnn_zoo, tmp_path / "run", overrides=TINY, max_epochs=1, progress=False)
    assert_reported_metrics(result, cnn_zoo)


def test_cli_train_ddp_two_cpu_processes(siren_zoo, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "symmerge", "train", "--zoo", str(siren_zoo), "--out", str(run),
         "--config", str(cfg), "--max-epochs", "1", "--devices", "2", "--accelerator", "cpu"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "model.safetensors").is_file()


def _csv_epochs(run):
    import csv

    with (run / "logs" / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, sorted({int(r["epoch"]) for r in rows if r.get("val_loss")})


def test_resume_keeps_metrics_history_and_saves_new_max_epochs(siren_zoo, tmp_path):
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=2, progress=False)
    _, before = _csv_epochs(run)
    assert before == [0, 1]
    train(siren_zoo, run, max_epochs=4, progress=False)
    rows, after = _csv_epochs(run)
    assert after == [0, 1, 2, 3]  # earlier epochs kept, none repeated
    assert len([r for r in rows if r.get("val_loss")]) == 4
    assert not (run / "logs" / "metrics.before-resume.csv").exists()
    assert "max_epochs: 4" in (run / "config.yaml").read_text()
    with pytest.raises(SymmergeError, match="invalid training config.*max_epochs"):
        train(siren_zoo, run, max_epochs=-1, progress=False)


def test_resume_from_corrupt_or_incomplete_run_is_a_clear_error(siren_zoo, tmp_path):
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=1, progress=False)
    (run / "spec.json").rename(run / "spec.moved")
    with pytest.raises(SymmergeError, match="no spec.json"):
        train(siren_zoo, run, max_epochs=2, progress=False)
    (run / "spec.moved").rename(run / "spec.json")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    with pytest.raises(SymmergeError, match="cannot resume from .*last.ckpt"):
        train(siren_zoo, run, max_epochs=2, progress=False)


def test_nan_validation_loss_saves_no_checkpoint(siren_zoo, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(siren_zoo, run, overrides=TINY, max_epochs=1, progress=False)
    ckpts = {n: (run / "checkpoints" / n).read_bytes() for n in ("last.ckpt", "best.ckpt")}
    finite = AutoencoderModule._loss

    def nan_in_eval(self, params, index, generator=None, decoded=None):
        loss = finite(self, params, index, generator, decoded)
        return loss if self.training else loss * float("nan")

    monkeypatch.setattr(AutoencoderModule, "_loss", nan_in_eval)
    with pytest.raises(SymmergeError, match="validation loss became nan.*last good checkpoint"):
        train(siren_zoo, run, max_epochs=2, progress=False)
    for name, data in ckpts.items():
        assert (run / "checkpoints" / name).read_bytes() == data, name


def test_nan_in_first_epoch_says_no_checkpoint(siren_zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(AutoencoderModule, "_loss",
                        lambda self, p, i, g=None, d=None: torch.tensor(float("nan")))
    with pytest.raises(SymmergeError, match="training loss became nan.*No checkpoint"):
        train(siren_zoo, tmp_path / "run", overrides=TINY, max_epochs=1, progress=False)
    assert not (tmp_path / "run").exists()


def test_bad_logger_or_out_fails_before_creating_the_run(siren_zoo, tmp_path):
    with pytest.raises(SymmergeError, match="unknown logger"):
        train(siren_zoo, tmp_path / "a", logger="nope", progress=False)
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(SymmergeError, match="is an existing file"):
        train(siren_zoo, tmp_path / "file", progress=False)


def test_logger_without_its_package_is_a_clear_error(siren_zoo, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SymmergeError, match="needs the wandb package"):
        train(siren_zoo, tmp_path / "run", logger="wandb", progress=False)
    assert not (tmp_path / "run").exists()


def test_overrides_are_not_mutated(siren_zoo, tmp_path):
    overrides = {"optim": {"batch_size": 16}, "encoder": dict(TINY["encoder"])}
    train(siren_zoo, tmp_path / "run", overrides=overrides, max_epochs=1, progress=False)
    assert overrides["optim"] == {"batch_size": 16}


@pytest.mark.parametrize(("n", "world", "drop"), [(34, 1, False), (34, 2, True), (33, 1, True),
                                                  (32, 2, False)])
def test_train_loader_never_ends_in_a_batch_of_one_per_process(n, world, drop):
    from symmerge.models.train_config import resolve_config
    from symmerge.training.run import _loaders

    cfg = resolve_config("quick", overrides={"optim": {"batch_size": 16}})
    splits = {"train": torch.arange(n), "val": torch.arange(4)}
    loaders = _loaders(torch.zeros(n, 3), splits, cfg, world_size=world)
    assert loaders["train"].drop_last is drop
    assert loaders["val"].drop_last is False


def test_cnn_validation_loss_is_repeatable_and_leaves_the_rng_alone():
    spec = CNNSpec((1, 4, 4, 10), "relu")
    cfg = resolve_config("quick", overrides=TINY, spec=spec)
    module = AutoencoderModule(spec.to_json(), cfg.model_dump(mode="json"))
    module.attach_loss_data(train_images=torch.randn(50, 1, 28, 28))
    params = spec.init_params(4, generator=torch.Generator().manual_seed(0))
    logged = []
    module.log = lambda name, value, **kw: logged.append(float(value))  # no trainer here
    state = torch.get_rng_state()
    module.eval()
    with torch.no_grad():
        module.validation_step((params, torch.arange(4)), 0)
        module.validation_step((params, torch.arange(4)), 0)
        module.validation_step((params, torch.arange(4)), 1)
    assert torch.equal(torch.get_rng_state(), state)
    assert logged[0] == logged[1] and logged[0] != logged[2]


_NAN_ON_RANK_1 = """
import sys
from symmerge.training import train
from symmerge.training.module import AutoencoderModule

finite = AutoencoderModule._loss


def nan_on_rank_1(self, params, index, generator=None, decoded=None):
    loss = finite(self, params, index, generator, decoded)
    return loss * float("nan") if not self.training and self.global_rank == 1 else loss


AutoencoderModule._loss = nan_on_rank_1
train(sys.argv[1], sys.argv[2], overrides=TINY, max_epochs=2, devices=2, progress=False)
"""


def test_ddp_nan_on_one_process_stops_every_process_before_a_checkpoint(siren_zoo, tmp_path):
    script = tmp_path / "nan_ddp.py"  # a file: Lightning relaunches it for the second process
    script.write_text(f"TINY = {TINY!r}\n{_NAN_ON_RANK_1}")  # the module's TINY
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(script), str(siren_zoo), str(run)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "validation loss became" in proc.stderr
    assert not (run / "checkpoints" / "best.ckpt").exists()
    assert not (run / "checkpoints" / "last.ckpt").exists()


def test_runs_saved_before_by_image_keep_plain_splits(tmp_path):
    from symmerge.models.train_config import load_config, save_config

    cfg = resolve_config("quick")
    assert cfg.split.by_image
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml").split.by_image
    old = (tmp_path / "config.yaml").read_text().replace("  by_image: true\n", "")
    (tmp_path / "config.yaml").write_text(old)
    assert load_config(tmp_path / "config.yaml").split.by_image is False


_RECORD_NORM_STATS = """
import sys
import torch
from symmerge.models.autoencoder import Autoencoder
from symmerge.training import train
from symmerge.training.module import AutoencoderModule

out = sys.argv[3]
recompute = Autoencoder.recompute_latent_stats


def record_own_share(self, batches):
    recompute(self, batches)
    rank = torch.distributed.get_rank()
    torch.save(self.latent_norm.running_mean.clone(), f"{out}/own{rank}.pt")


start = AutoencoderModule.on_validation_epoch_start


def record_used(self):
    start(self)
    torch.save(self.model.latent_norm.running_mean.clone(), f"{out}/used{self.global_rank}.pt")


Autoencoder.recompute_latent_stats = record_own_share
AutoencoderModule.on_validation_epoch_start = record_used
train(sys.argv[1], sys.argv[2], overrides=TINY, max_epochs=1, devices=2, progress=False)
"""


def test_ddp_latent_norm_statistics_are_averaged_over_processes(siren_zoo, tmp_path):
    script = tmp_path / "stats_ddp.py"
    script.write_text(f"TINY = {TINY!r}\n{_RECORD_NORM_STATS}")
    proc = subprocess.run([sys.executable, str(script), str(siren_zoo), str(tmp_path / "run"),
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    own = [torch.load(tmp_path / f"own{r}.pt", weights_only=True) for r in (0, 1)]
    used = [torch.load(tmp_path / f"used{r}.pt", weights_only=True) for r in (0, 1)]
    assert not torch.allclose(own[0], own[1])  # the shares differ ...
    for u in used:  # ... and both processes use their mean
        torch.testing.assert_close(u, (own[0] + own[1]) / 2)


def test_quick_preset_gives_probe_features_to_dense_networks_only():
    cnn = CNNSpec((1, 4, 4, 10), "relu")
    assert resolve_config("quick", spec=SirenSpec((2, 8, 8, 1))).encoder.probe_points == 256
    assert resolve_config("quick", spec=cnn).encoder.probe_points == 0
    over = {"encoder": {"probe_points": 8}}
    assert resolve_config("quick", overrides=over, spec=cnn).encoder.probe_points == 8
    assert resolve_config("paper-inr", spec=SirenSpec()).encoder.probe_points == 0


def test_probe_run_reloads_with_its_probes(siren_zoo, tmp_path):
    """The probe inputs and their fitted scales are saved with the weights."""
    result = train(siren_zoo, tmp_path / "run", overrides=TINY, max_epochs=1, progress=False)
    model, _, cfg = load_run(result.run_dir)
    assert cfg.encoder.probe_points == 256
    assert model.probe_inputs.shape == (256, 2)
    assert not torch.all(model.probe_scale == 1)  # fitted to the training split
    fresh = AutoencoderModule(model.spec.to_json(), cfg.model_dump(mode="json")).model
    assert torch.equal(fresh.probe_inputs, model.probe_inputs)  # the same seeded inputs
    params = load_file(str(siren_zoo))["params"][:4]
    again, _, _ = load_run(result.run_dir)
    assert torch.equal(encode(model, params), encode(again, params))


def test_phase_canonical_run_encodes_phase_shifted_copies_alike(siren_zoo, tmp_path):
    """The flag is saved with the run: a loaded model canonicalizes what it encodes."""
    from symmerge.symmetry import invariance_error, sample_group_elements
    from tests.models._util import random_params

    over = {**TINY, "encoder": {**TINY["encoder"], "phase_canonical": True}}
    result = train(siren_zoo, tmp_path / "run", overrides=over, max_epochs=1, progress=False)
    model, spec, cfg = load_run(result.run_dir)
    assert cfg.encoder.phase_canonical and model.phase_canonical
    params = random_params(spec, 6, dtype=torch.float32, seed=7)
    g = sample_group_elements(spec, 6, phase=True, max_shift=2,
                              generator=torch.Generator().manual_seed(8))
    assert invariance_error(lambda p: encode(model, p), spec, params, g) < 1e-4


def test_training_prints_no_framework_chatter(siren_zoo, tmp_path, capfd):
    """Lightning's hardware lines, product tips and its own deprecation notes stay out of
    the user's output; its loggers' levels are put back afterwards."""
    import logging

    before = {n: logging.getLogger(n).level for n in ("lightning.pytorch", "lightning.fabric")}
    train(siren_zoo, tmp_path / "run", preset="quick", overrides=TINY, max_epochs=1,
          progress=False)
    out, err = capfd.readouterr()
    for chatter in ("GPU available", "TPU available", "Tip:", "LeafSpec", "`Trainer.fit` stopped"):
        assert chatter not in out + err, chatter
    assert {n: logging.getLogger(n).level for n in before} == before
