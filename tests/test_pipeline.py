"""The one-call quickstart pipeline: sizes, stages with ETA, resume, determinism."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from symmerge.cli.app import main
from symmerge.errors import SymmergeError
from symmerge.pipeline import SIZES, STAGES, _Ledger, _run_stages, _Stage, quickstart
from symmerge.zoo import Zoo, split_indices

#: framework chatter that must not reach the console
CHATTER = ("Tip:", "💡", "GPU available", "TPU available", "LOCAL_RANK", "You are using a CUDA",
           "litlogger", "tensorboard", "Warning", "warn(", "deprecat", "Deprecat")


def test_unknown_size_is_a_clear_error(tmp_path):
    with pytest.raises(SymmergeError, match="size must be one of default, full, tiny"):
        quickstart(tmp_path / "qs", size="huge")


def test_cli_unknown_size_exits_nonzero(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["quickstart", "--out", str(tmp_path / "qs"), "--size", "huge"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: --size must be one of default")


@pytest.mark.parametrize("name", list(SIZES))
def test_sizes_are_consistent(name):
    s = SIZES[name]
    assert s.per_image >= 2  # pairs of independently fitted INRs for pair-interpolation
    assert (s.images - 1) * s.stride < 5000  # within the embedded digits
    # held-out images (val + test of the INR runs' 0.8/0.1/0.1 split by image) hold the pairs
    assert round(s.images * 0.1) * 2 >= s.pairs
    # the CNN pairs come from the CNN runs' test split, with a margin for excluded networks
    test = len(split_indices(s.cnn_networks, fractions=s.cnn_split)["test"])
    assert test >= 2 * s.cnn_pairs + max(1, test // 20)
    assert set(s.stage_seconds) == set(STAGES) and min(s.stage_seconds.values()) > 0
    assert set(s.run_overrides) <= {"scalegmn", "pna", "cnn-relu", "cnn-tanh"}


def test_full_size_is_the_whole_embedded_data():
    s = SIZES["full"]
    # the zoo stages' arguments: prebuilt zoos of exactly these calls are reused
    assert (s.images, s.stride, s.per_image, s.inr_config) == (5000, 1, 2, "quick")
    assert (s.cnn_networks, s.cnn_config) == (1000, "quick")
    assert s.orbit_runs >= 16 and s.orbit_size >= 64 and s.pairs >= 256 and s.cnn_pairs >= 64
    assert s.map_points is None  # orbit collapse and latent maps: the whole test split
    assert sum(s.stage_seconds.values()) <= 90 * 60


@pytest.mark.parametrize("name", list(SIZES))
def test_every_run_of_every_size_has_a_valid_configuration(name):
    from symmerge.models.train_config import resolve_config

    s = SIZES[name]
    for run in ("scalegmn", "pna", "cnn-relu", "cnn-tanh"):
        cfg = resolve_config(s.presets.get(run, "quick"), None,
                             {**s.overrides(run, 0), "optim": {
                                 **s.overrides(run, 0).get("optim", {}),
                                 "max_epochs": s.epochs(run)}})
        assert cfg.seed == 0 and cfg.optim.max_epochs == s.epochs(run)
        assert (cfg.encoder.mode == "pna") == (run == "pna")
        if run.startswith("cnn-"):
            assert tuple(cfg.split.fractions) == s.cnn_split


def test_run_settings_merge_in_order():
    s = SIZES["tiny"]
    pna = s.overrides("pna", 7)
    assert pna["seed"] == 7 and pna["encoder"] == {"d_hidden": 8, "num_layers": 1,
                                                   "d_latent": 8, "mode": "pna"}
    assert s.overrides("cnn-tanh", 0)["split"] == {"fractions": list(s.cnn_split)}
    assert "split" not in s.overrides("scalegmn", 0)
    assert (s.epochs("scalegmn"), s.epochs("pna"), s.epochs("cnn-relu")) == (
        s.ae_epochs, s.pna_epochs, s.cnn_ae_epochs)
    from dataclasses import replace

    tuned = replace(s, run_overrides={"cnn-relu": {"optim": {"max_epochs": 5, "lr": 1e-4}}})
    assert tuned.epochs("cnn-relu") == 5 and tuned.epochs("cnn-tanh") == s.cnn_ae_epochs
    assert tuned.overrides("cnn-relu", 0)["optim"] == {"batch_size": 16, "warmup_steps": 2,
                                                      "lr": 1e-4}
    assert s.run_overrides == {}  # the size itself is not changed by merging
    bare = replace(tuned, ae_overrides={})
    assert bare.overrides("cnn-relu", 0)["optim"] == {"lr": 1e-4}
    assert bare.run_overrides["cnn-relu"]["optim"] == {"max_epochs": 5, "lr": 1e-4}
    # max_epochs in the shared overrides counts for every run; a run's own wins
    shared = replace(tuned, ae_overrides={"optim": {"max_epochs": 7}})
    assert (shared.epochs("scalegmn"), shared.epochs("cnn-relu")) == (7, 5)
    assert "max_epochs" not in shared.overrides("scalegmn", 0).get("optim", {})


def test_stages_print_index_elapsed_and_a_scaled_eta(tmp_path):
    ticks = iter(range(0, 1000, 10))  # every reading of the clock advances 10 s
    ledger = _Ledger.open(tmp_path, 0, "tiny", SIZES["tiny"])
    ran = []
    stages = [_Stage("a", lambda: True, lambda: ran.append("a")),
              _Stage("b", lambda: False, lambda: ran.append("b"), lambda: "resumes"),
              _Stage("c", lambda: False, lambda: ran.append("c")),
              _Stage("d", lambda: True, lambda: ran.append("d"))]
    lines: list[str] = []
    _run_stages(stages, {"a": 100.0, "b": 5.0, "c": 20.0, "d": 50.0}, ledger, lines.append,
                clock=lambda: next(ticks))
    assert ran == ["b", "c"]
    assert lines[0] == "[1/4] a: done earlier, reused"
    # the estimates of the stages left to run (not d's, done already)
    assert lines[1] == "[2/4] b (resumes) ... elapsed 0:10, ETA 0:25"
    assert lines[2] == "[2/4] b: 0:10"
    # b took twice its estimate: c's estimate is doubled
    assert lines[3] == "[3/4] c ... elapsed 0:40, ETA 0:40"
    assert lines[5] == "[4/4] d: done earlier, reused"
    assert ledger.timings() == {} and json.loads(ledger.path.read_text())["stages"] == {
        "b": 10, "c": 10}


def test_a_stage_runs_again_when_a_stage_it_needs_runs(tmp_path):
    """A finished stage whose input is made again in this call (e.g. a deleted training
    run) is not reused: its saved output came from the old input."""
    ledger = _Ledger.open(tmp_path, 0, "tiny", SIZES["tiny"])
    ran: list[str] = []
    stages = [_Stage("zoo", lambda: True, lambda: ran.append("zoo")),
              _Stage("run", lambda: False, lambda: ran.append("run"), needs=("zoo",)),
              _Stage("other", lambda: True, lambda: ran.append("other"), needs=("zoo",)),
              _Stage("exp", lambda: True, lambda: ran.append("exp"), needs=("zoo", "run")),
              _Stage("exp2", lambda: True, lambda: ran.append("exp2"), needs=("other",))]
    lines: list[str] = []
    _run_stages(stages, {}, ledger, lines.append)
    assert ran == ["run", "exp"]
    assert "[3/5] other: done earlier, reused" in lines
    assert "[5/5] exp2: done earlier, reused" in lines


def test_an_experiment_saved_by_another_version_is_computed_again(tmp_path, monkeypatch):
    from symmerge import pipeline
    from symmerge.experiments.results import LatentMapResult

    saved = types.SimpleNamespace(version="0.0.1", seed=0)
    monkeypatch.setattr(LatentMapResult, "record_file", "record.json")
    (tmp_path / "record.json").write_text("{}")
    monkeypatch.setattr(LatentMapResult, "load", classmethod(lambda cls, d: saved))
    lines: list[str] = []
    assert pipeline._saved_experiment(LatentMapResult, tmp_path, 0, lines.append) is None
    assert "saved by symmerge 0.0.1" in lines[0]
    saved.version = pipeline.__version__
    assert pipeline._saved_experiment(LatentMapResult, tmp_path, 0, lines.append) is saved


def test_another_seed_or_size_in_the_same_directory_is_an_error(tmp_path):
    _Ledger.open(tmp_path, 0, "tiny", SIZES["tiny"]).save()
    with pytest.raises(SymmergeError, match="holds a quickstart of seed 0, size 'tiny'.*seed"):
        quickstart(tmp_path, seed=1, size="tiny", progress=False, log=lambda m: None)
    with pytest.raises(SymmergeError, match="differs in: size"):
        quickstart(tmp_path, seed=0, size="default", progress=False, log=lambda m: None)
    data = json.loads((tmp_path / "quickstart.json").read_text())
    data["settings"]["pairs"] += 1  # made by an older definition of the size
    (tmp_path / "quickstart.json").write_text(json.dumps(data))
    with pytest.raises(SymmergeError, match="pairs: 9 -> 8"):
        quickstart(tmp_path, seed=0, size="tiny", progress=False, log=lambda m: None)


def test_a_zoo_from_another_call_is_an_error(tmp_path):
    from tests.assets import inr_zoo

    z = inr_zoo()
    Zoo.from_tensors(z.params, z.spec, z.labels, image_index=z.image_index,
                     provenance={"limit": 40, "stride": 100, "per_image": 2, "seed": 3}
                     ).save(tmp_path / "zoo" / "inrs.safetensors")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SymmergeError, match=r"inrs.safetensors was built with other settings: "
                                            r"seed 3 \(wanted 0\); delete it"):
        quickstart(tmp_path, size="tiny", progress=False, log=lambda m: None)
    assert sorted(tmp_path.rglob("*")) == before  # refused before anything is written


def test_a_run_of_another_seed_is_an_error(tmp_path):
    run = tmp_path / "runs" / "pna"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 5\n")
    with pytest.raises(SymmergeError, match="run .*pna was trained with seed 5, this "
                                            "quickstart's seed is 0"):
        quickstart(tmp_path, size="tiny", progress=False, log=lambda m: None)
    assert not (tmp_path / "quickstart.json").exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted tiny quickstart (in this process) and its log lines. One thread,
    as every run it is compared with: training sums in another order with another number
    of threads, and its numbers move in the last digits."""
    lines: list[str] = []
    out = tmp_path_factory.mktemp("reference") / "qs"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return quickstart(out, size="tiny", progress=False, log=lines.append), lines
    finally:
        torch.set_num_threads(before)


def _metrics(out: Path) -> str:
    """``result.json``'s metrics as comparable text (NaN equals NaN)."""
    return json.dumps(json.loads((out / "result.json").read_text())["metrics"], sort_keys=True)


@pytest.mark.slow
def test_tiny_quickstart_end_to_end(reference, tmp_path):
    from symmerge.experiments import OrbitInterpolationResult
    from symmerge.training import TrainResult

    result, lines = reference
    out = result.out_dir
    assert (out / "report.md").is_file() and (out / "result.json").is_file()
    assert result.report == out / "report.md" and result.out_dir == out
    saved = json.loads((out / "result.json").read_text())
    assert saved["seed"] == 0 and saved["timings"]["total"] > 0
    assert isinstance(result.orbit_interpolation, OrbitInterpolationResult)
    assert set(result.training) == {"scalegmn", "pna", "cnn-relu", "cnn-tanh"}
    assert all(isinstance(r, TrainResult) for r in result.training.values())
    barriers = result.metrics["orbit_interpolation_barriers"]
    assert {"naive", "wm", "sort", "ae", "ae-lift"} <= set(barriers)
    assert saved["metrics"]["orbit_interpolation_barriers"] == barriers
    assert saved["metrics"]["ae_scalegmn"] == result.training["scalegmn"].metrics
    for name, r in result.experiments.items():  # each saved where the layout says
        assert r.directory == out / "experiments" / name
        assert json.loads((r.directory / "metrics.json").read_text())["experiment"] == \
            r.experiment
    report = (out / "report.md").read_text()
    assert "orbit" in report.lower() and ".png" in report
    assert "| ScaleGMN |" in report and "| PNA (permutation-only) |" in report
    assert "| ScaleGMN, relu CNNs |" in report and "| ScaleGMN, tanh CNNs |" in report
    # the CNN experiments ran the autoencoder methods too
    assert {"ae", "ae-lift"} <= set(result.cnn_interpolation["tanh"].methods)
    # saved elsewhere: every experiment, the report and result.json, the same numbers
    copy = result.save(tmp_path / "copy")
    assert json.loads(copy.read_text())["metrics"] == saved["metrics"]
    assert (tmp_path / "copy" / "experiments" / "latent-map" / "latent_map.png").is_file()
    # every stage ran once, with its number and an ETA, and its seconds are recorded
    assert [ln.split(" ...")[0] for ln in lines if " ... elapsed " in ln] == [
        f"[{i}/{len(STAGES)}] {label}" for i, label in enumerate(STAGES, 1)]
    assert set(saved["timings"]) == {*STAGES, "total"}
    # the CNN pairs are networks of the CNN autoencoders' test split only
    for act, r in result.cnn_interpolation.items():
        assert r.settings.split == "test"
        z = Zoo(out / "zoo" / f"cnn-{act}.safetensors")
        test = z.split("test", fractions=SIZES["tiny"].cnn_split, by_image=True)
        assert set(r.networks.ravel().tolist()) <= set(test.tolist())


class Killed(Exception):
    """Stands for a run killed in the middle of a stage."""


def _spy(monkeypatch, target: str, calls: list, fail_if=lambda *a, **k: False):
    """Replace ``module.attr`` by a wrapper that records its calls (and raises
    :class:`Killed` where ``fail_if`` says so)."""
    import importlib

    module, name = target.rsplit(".", 1)
    mod = importlib.import_module(module)
    real = getattr(mod, name)

    def wrapper(*args, **kwargs):
        calls.append(name)
        if fail_if(*args, **kwargs):
            raise Killed(name)
        return real(*args, **kwargs)
    monkeypatch.setattr(mod, name, wrapper)


@pytest.mark.slow
def test_an_interrupted_run_resumes_and_gives_the_same_metrics(reference, tmp_path,
                                                                monkeypatch):
    from symmerge.training.module import AutoencoderModule

    out = tmp_path / "qs"
    lines: list[str] = []

    def run():
        return quickstart(out, size="tiny", progress=False, log=lines.append)

    # 1. killed in the ScaleGMN autoencoder's second epoch (its first one is checkpointed)
    real_end = AutoencoderModule.on_train_epoch_end

    def end_of_epoch(self):
        real_end(self)
        if self.current_epoch == 1:
            raise Killed("epoch 2")
    with monkeypatch.context() as m:
        m.setattr(AutoencoderModule, "on_train_epoch_end", end_of_epoch)
        with pytest.raises(Killed):
            run()
    assert (out / "runs" / "scalegmn" / "checkpoints" / "last.ckpt").is_file()
    assert not (out / "runs" / "scalegmn" / "result.json").is_file()

    # 2. resumed, then killed in the tanh CNN interpolation
    calls: list[str] = []
    with monkeypatch.context() as m:
        _spy(m, "symmerge.zoo.fit_inr.fit_inr_zoo", calls)
        _spy(m, "symmerge.experiments.cnn_interpolation", calls,
             fail_if=lambda zoo, **kw: "tanh" in str(zoo))
        with pytest.raises(Killed):
            run()
    assert "fit_inr_zoo" not in calls
    assert "[1/13] fit INR zoo: done earlier, reused" in lines
    assert any(ln.startswith("[2/13] train autoencoder (scalegmn) (resumes from its last "
                             "epoch) ... elapsed") for ln in lines)
    assert (out / "experiments" / "cnn-interpolation-relu" / "record.safetensors").is_file()
    assert not (out / "experiments" / "cnn-interpolation-tanh").exists()
    # a finished experiment whose record is gone is computed again
    (out / "experiments" / "pair-interpolation" / "record.safetensors").unlink()

    # 3. finished: only the stages left are computed
    calls.clear()
    lines.clear()
    with monkeypatch.context() as m:
        for target in ("symmerge.zoo.fit_inr.fit_inr_zoo", "symmerge.zoo.train_cnn.train_cnn_zoo",
                       "symmerge.training.train", "symmerge.experiments.orbit_interpolation",
                       "symmerge.experiments.pair_interpolation",
                       "symmerge.experiments.cnn_interpolation",
                       "symmerge.experiments.orbit_collapse", "symmerge.experiments.latent_map"):
            _spy(m, target, calls)
        result = run()
    assert calls == ["pair_interpolation", "cnn_interpolation", "orbit_collapse", "latent_map"]
    assert sum("done earlier, reused" in ln for ln in lines) == len(STAGES) - 4
    # the same numbers as the uninterrupted run, and every stage's seconds recorded
    assert _metrics(out) == _metrics(reference[0].out_dir)
    assert list(result.timings) == [*STAGES, "total"]


@pytest.mark.slow
def test_the_cli_run_is_quiet_and_gives_the_same_metrics(reference, tmp_path):
    """The console shows the stages and progress, no framework chatter; a second run of
    the same seed (another process) gives the same metrics."""
    out = tmp_path / "qs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
           "OMP_NUM_THREADS": "1"}  # as the reference run
    proc = subprocess.run([sys.executable, "-m", "symmerge", "quickstart", "--size", "tiny",
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = proc.stdout + proc.stderr
    assert [c for c in CHATTER if c in console] == []
    assert "[13/13] latent-map ... elapsed" in proc.stderr and "ETA" in proc.stderr
    assert _metrics(out) == _metrics(reference[0].out_dir)


def test_autoencoder_table_reports_the_ratio_and_its_n():
    from symmerge.experiments.evidence import MIN_NETWORKS, TOO_SMALL
    from symmerge.experiments.sections import autoencoder_table

    table = autoencoder_table({"scalegmn": {"test_render_mse": 0.03,
                                            "test_mean_image_mse": 0.06, "test_networks": 50},
                               "pna": {"test_mean_image_mse": 0.06}})
    assert "| ScaleGMN | 50 | 0.03 | 0.06 | 0.500 |" in table and "PNA" not in table
    assert "CNN" not in table and TOO_SMALL not in table
    cnn = autoencoder_table({"cnn-tanh": {"test_acc_original": 0.9, "test_acc_decoded": 0.5,
                                          "test_acc_kendall_tau": 0.25, "test_networks": 3}})
    assert "| ScaleGMN, tanh CNNs | 3 | 0.900 | 0.500 | 0.250 |" in cnn
    assert "render MSE" not in cnn and "test networks" in cnn
    # a Kendall tau over 3 networks is not presented as a finding
    assert f"{TOO_SMALL} (at least {MIN_NETWORKS} needed): ScaleGMN, tanh CNNs (3)" in cnn
    enough = autoencoder_table({"cnn-tanh": {"test_acc_original": 0.9, "test_acc_decoded": 0.5,
                                             "test_acc_kendall_tau": 0.25,
                                             "test_networks": MIN_NETWORKS}})
    assert TOO_SMALL not in enough
    # a run trained before the n was recorded: a dash, not a guess
    old = autoencoder_table({"cnn-relu": {"test_acc_original": 0.9, "test_acc_decoded": 0.5,
                                          "test_acc_kendall_tau": 0.25}})
    assert "| ScaleGMN, relu CNNs | - | 0.900 |" in old
    assert autoencoder_table({}) == ""


def test_autoencoder_findings_say_what_is_too_small():
    from symmerge.experiments.evidence import TOO_SMALL
    from symmerge.experiments.findings import autoencoder_findings

    found = autoencoder_findings({
        "scalegmn": {"test_render_mse": 0.03, "test_mean_image_mse": 0.06, "test_networks": 50},
        "cnn-relu": {"test_acc_original": 0.5, "test_acc_decoded": 0.4,
                     "test_acc_kendall_tau": -0.33, "test_networks": 3},
        "cnn-tanh": {"test_acc_original": 0.9, "test_acc_decoded": 0.8,
                     "test_acc_kendall_tau": 0.7, "test_networks": 100}})
    texts = [f.text for f in found]
    assert "ScaleGMN 0.5 (50 test INRs)" in texts[0] and not found[0].too_small
    assert "over 3 test networks" in texts[1] and TOO_SMALL in texts[1]
    assert found[1].too_small == ("relu CNN autoencoder: Kendall tau and accuracies over 3 test "
                                  "networks",)
    assert "over 100 test networks" in texts[2] and TOO_SMALL not in texts[2]
    assert not found[2].too_small


def test_cli_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("symmerge.pipeline.quickstart", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["quickstart", "--out", str(tmp_path / "qs"), "--size", "tiny"])
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert f"`symmerge quickstart --out {tmp_path / 'qs'} --seed 0 --size tiny` resumes" in err
    assert "Traceback" not in err
