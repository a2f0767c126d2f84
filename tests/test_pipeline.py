"""The one-call quickstart pipeline."""

import json

import pytest

from symmerge.cli.app import main
from symmerge.errors import SymmergeError
from symmerge.pipeline import SIZES, quickstart


def test_unknown_size_is_a_clear_error(tmp_path):
    with pytest.raises(SymmergeError, match="size must be one of default, tiny"):
        quickstart(tmp_path / "qs", size="huge")


def test_cli_unknown_size_exits_nonzero(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["quickstart", "--out", str(tmp_path / "qs"), "--size", "huge"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: --size must be one of default")


def test_default_size_is_consistent():
    s = SIZES["default"]
    assert s.per_image >= 2  # pairs of independently fitted INRs for pair-interpolation
    assert (s.images - 1) * s.stride < 5000  # within the embedded digits


@pytest.mark.slow
def test_tiny_quickstart_end_to_end(tmp_path):
    from symmerge.experiments import OrbitInterpolationResult
    from symmerge.training import TrainResult

    out = tmp_path / "qs"
    result = quickstart(out, size="tiny", progress=False, log=lambda m: None)
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
