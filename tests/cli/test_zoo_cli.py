"""``symmerge zoo import`` / ``symmerge zoo info``: success paths and one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from symmerge import CNNSpec, SirenSpec
from symmerge.specs.siren import coordinate_grid
from symmerge.symmetry import assert_function_preserved, tolerance
from symmerge.zoo.io import FORMAT, load_zoo, save_zoo
from tests.cli._util import run_cli
from tests.symmetry.nets import random_params
from tests.zoo.published import (
    ReferenceSiren,
    inr_folder,
    make_cnn_zoo,
    make_dwsnets_tree,
    make_orbit_tree,
    mnist_split_path,
    write_index_csv,
    write_inr,
    write_split_json,
)


def assert_one_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# ------------------------------------------------------------------ success
def test_import_dwsnets_then_info(tmp_path: Path, capsys) -> None:
    src = tmp_path / "mnist-inrs"
    make_dwsnets_tree(src, [("training", 4, 1), ("training", 4, 0), ("testing", 7, 0)])
    out = tmp_path / "zoos" / "inr.safetensors"
    code, stdout, _ = run_cli(["zoo", "import", "dwsnets", src, "--out", out], capsys)
    assert code == 0 and "wrote 3 networks" in stdout
    z = load_zoo(out)
    assert len(z) == 3 and z.labels.tolist() == [4, 4, 7] and z.image_index.tolist() == [0, 1, 0]
    assert z.provenance["importer"] == "dwsnets" and z.provenance["source"] == str(src)
    assert list(out.parent.iterdir()) == [out]

    code, stdout, err = run_cli(["zoo", "info", out], capsys)
    assert code == 0 and err == ""
    assert "spec: siren [2, 32, 32, 1]" in stdout
    assert "networks: 3 (1185 parameters each)" in stdout
    assert "labels: 4: 2, 7: 1" in stdout
    assert "is_test: min 0  median 0  mean 0.333333  max 1" in stdout
    assert "importer: dwsnets" in stdout and "testing_count: 1" in stdout
    assert "splits: train 2, val 0, test 1 (test: the published is_test; train/val: seeded" \
        in stdout


def test_import_dwsnets_with_split_file_then_info(tmp_path: Path, capsys) -> None:
    src = tmp_path / "mnist-inrs"
    entries = [("training", 4, 1), ("training", 4, 0), ("training", 2, 5), ("testing", 7, 0),
               ("testing", 3, 8)]  # not in the split file
    make_dwsnets_tree(src, entries, layout=(2, 4, 1))
    write_split_json(src / "mnist_splits.json", {
        "train": [(mnist_split_path(inr_folder("training", 4, 0)), "4"),
                  (mnist_split_path(inr_folder("training", 2, 5)), "2")],
        "val": [(mnist_split_path(inr_folder("training", 4, 1)), "4")],
        "test": [(mnist_split_path(inr_folder("testing", 7, 0)), "7")]})
    out = tmp_path / "inr.safetensors"
    code, stdout, _ = run_cli(["zoo", "import", "dwsnets", src, "--out", out], capsys)
    assert code == 0 and "wrote 4 networks" in stdout
    assert f"split: train 2, val 1, test 1 (published, from {src / 'mnist_splits.json'})" in stdout
    assert "left out 1 of the folder's networks: the split file does not list them" in stdout
    assert load_zoo(out).stored_split.tolist() == [0, 1, 0, 2]
    code, stdout, _ = run_cli(["zoo", "info", out], capsys)
    assert code == 0
    assert "splits: train 2, val 1, test 1 (stored in the zoo: the published split)" in stdout


def test_import_orbit_dataset(tmp_path: Path, capsys) -> None:
    make_orbit_tree(tmp_path / "orbit", members=3)
    out = tmp_path / "orbit.safetensors"
    code, stdout, _ = run_cli(["zoo", "import", "dwsnets", tmp_path / "orbit", "-o", out], capsys)
    assert code == 0 and "wrote 3 networks" in stdout and "split: train 0, val 0, test 3" in stdout
    z = load_zoo(out)
    assert z.image_index.tolist() == [3665] * 3 and z.metric("orbit_member").tolist() == [0, 1, 2]


def test_import_cnn_zoo_with_split_file(tmp_path: Path, capsys) -> None:
    make_cnn_zoo(tmp_path / "cifar10", layout=(1, 4, 4, 3))
    write_index_csv(tmp_path / "nfn_cifar10_split.csv", [7, 6, 5, 4, 3, 2, 1, 0])
    out = tmp_path / "cnn.safetensors"
    code, stdout, _ = run_cli(["zoo", "import", "cnn-zoo", tmp_path / "cifar10", "--activation",
                               "relu", "--split-file", tmp_path / "nfn_cifar10_split.csv",
                               "-o", out], capsys)
    # final rows in file order 6 5 4 2 1: test from position 2 on (4 2 1), then relu only
    assert code == 0 and "wrote 3 networks" in stdout and "split: train 1, val 0, test 2" in stdout
    assert load_zoo(out).metric("source_row").tolist() == [6, 4, 1]
    code, stdout, _ = run_cli(["zoo", "info", out], capsys)
    assert "splits: train 1, val 0, test 2 (stored in the zoo: the published split)" in stdout


def test_import_cnn_zoo_then_info(tmp_path: Path, capsys) -> None:
    make_cnn_zoo(tmp_path / "cifar10", layout=(1, 4, 4, 3))
    out = tmp_path / "cnn.safetensors"
    args = ["zoo", "import", "cnn-zoo", tmp_path / "cifar10", "--activation", "tanh", "-o", out]
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0 and "wrote 2 networks (cnn [1, 4, 4, 3]" in stdout
    code, stdout, _ = run_cli(["zoo", "info", out], capsys)
    assert code == 0
    assert "labels: none" in stdout and "image_index: no" in stdout
    assert "source_row: min 2  median 3.5  mean 3.5  max 5" in stdout
    assert "test_accuracy: min" in stdout and "activation: tanh" in stdout
    assert "splits: train 2, val 0, test 0 (seeded (seed 0" in stdout


def test_canonicalize_phase(tmp_path: Path, capsys) -> None:
    spec = SirenSpec((2, 8, 8, 1))
    n = 10
    params = random_params(spec, n, dtype=torch.float32, generator=torch.Generator().manual_seed(3),
                           bias_phase=20.0)  # |w0 b| up to 20 rad: far from canonical
    src, out = tmp_path / "src.safetensors", tmp_path / "out" / "phase.safetensors"
    split = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0, 0, 2])
    save_zoo(src, spec, params, torch.arange(n) % 10, image_index=torch.arange(n) + 100,
             split=split, metrics={"psnr": torch.linspace(20, 30, n), "is_test": torch.zeros(n)},
             provenance={"data": "mnist-embedded"})
    code, stdout, _ = run_cli(["zoo", "canonicalize-phase", src, "--out", out,
                               "--batch-size", 3], capsys)
    assert code == 0 and f"to {out}" in stdout
    z, s = load_zoo(out), load_zoo(src)
    assert z.spec == spec
    for name in ("labels", "image_index", "stored_split"):
        assert torch.equal(getattr(z, name), getattr(s, name))
    assert z.metric_names == s.metric_names
    assert all(torch.equal(z.metric(m), s.metric(m)) for m in s.metric_names)
    assert z.provenance["data"] == "mnist-embedded"
    assert z.provenance["phase_canonicalized_from"] == str(src)
    assert not torch.equal(z.params, s.params)
    grid = coordinate_grid(64, dtype=torch.float64)
    # the exact (float64) functions of the stored float32 parameters agree to float32 precision
    assert_function_preserved(spec, s.params.double(), z.params.double(), grid,
                              rtol=tolerance(torch.float32))
    _, biases = spec.unflatten(z.params.double())
    for b in biases[:-1]:
        phase = spec.w0 * b
        assert phase.min() >= 0 and phase.max() <= math.pi / 2 + 1e-5


def test_canonicalize_phase_errors(tmp_path: Path, capsys) -> None:
    cnn = tmp_path / "cnn.safetensors"
    save_zoo(cnn, CNNSpec((1, 4, 3)), torch.zeros(2, CNNSpec((1, 4, 3)).num_params))
    out = tmp_path / "out" / "z.safetensors"
    code, _, err = run_cli(["zoo", "canonicalize-phase", cnn, "--out", out], capsys)
    assert_one_error(code, err, "applies to SIREN zoos only", str(cnn))
    assert_nothing_written(out)
    bad = tmp_path / "nan.safetensors"
    params = SirenSpec((2, 4, 1)).init_params(3)
    params[1, 2] = float("nan")  # written around save_zoo, which refuses it
    save_file({"params": params, "labels": torch.zeros(3, dtype=torch.long)}, str(bad),
              metadata={"format": FORMAT, "spec": SirenSpec((2, 4, 1)).to_json()})
    code, _, err = run_cli(["zoo", "canonicalize-phase", bad, "--out", out], capsys)
    assert_one_error(code, err, str(bad), "NaN")
    assert_nothing_written(out)
    code, _, err = run_cli(["zoo", "canonicalize-phase", tmp_path / "absent.safetensors",
                            "--out", out], capsys)
    assert_one_error(code, err, "not found")
    assert_nothing_written(out)


# ------------------------------------------------------------------ errors
def _dwsnets_with(tmp_path: Path, state: dict) -> Path:
    src = tmp_path / "inrs"
    make_dwsnets_tree(src, [("training", 0, 0)], layout=(2, 4, 1))
    write_inr(src, inr_folder("training", 1, 1), state)
    return src


def test_wrong_shape_checkpoint(tmp_path: Path, capsys) -> None:
    state = ReferenceSiren((2, 5, 1)).state_dict()
    src = _dwsnets_with(tmp_path, state)
    out = tmp_path / "out" / "z.safetensors"
    code, _, err = run_cli(["zoo", "import", "dwsnets", src, "--out", out], capsys)
    assert_one_error(code, err, "mnist_png_training_1_1", "seq.0.weight", "shape")
    assert_nothing_written(out)


def test_nan_weight(tmp_path: Path, capsys) -> None:
    state = ReferenceSiren((2, 4, 1)).state_dict()
    state["seq.1.weight"][0, 2] = float("nan")
    src = _dwsnets_with(tmp_path, state)
    out = tmp_path / "out" / "z.safetensors"
    code, _, err = run_cli(["zoo", "import", "dwsnets", src, "--out", out], capsys)
    assert_one_error(code, err, "mnist_png_training_1_1", "NaN")
    assert_nothing_written(out)


def test_truncated_zoo(tmp_path: Path, capsys) -> None:
    path = tmp_path / "z.safetensors"
    save_zoo(path, SirenSpec(), torch.zeros(4, 1185))
    path.write_bytes(path.read_bytes()[:-50])
    code, stdout, err = run_cli(["zoo", "info", path], capsys)
    assert_one_error(code, err, str(path), "corrupt or not safetensors")
    assert stdout == ""


def test_unknown_architecture_family(tmp_path: Path, capsys) -> None:
    path = tmp_path / "z.safetensors"
    spec = json.dumps({"family": "resnet", "layout": [3, 10]})
    save_file({"params": torch.zeros(2, 5)}, str(path), metadata={"format": FORMAT, "spec": spec})
    code, _, err = run_cli(["zoo", "info", path], capsys)
    assert_one_error(code, err, "unknown architecture family 'resnet'", str(path))


@pytest.mark.parametrize("kind", ["dwsnets", "cnn-zoo"])
def test_empty_directory(tmp_path: Path, capsys, kind: str) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out" / "z.safetensors"
    extra = ["--activation", "relu"] if kind == "cnn-zoo" else []
    args = ["zoo", "import", kind, tmp_path / "empty", *extra, "--out", out]
    code, _, err = run_cli(args, capsys)
    assert_one_error(code, err, str(tmp_path / "empty"))
    assert_nothing_written(out)


def test_missing_data_file(tmp_path: Path, capsys) -> None:
    make_cnn_zoo(tmp_path / "zoo", layout=(1, 4, 4, 3))
    (tmp_path / "zoo" / "metrics.csv.gz").unlink()
    out = tmp_path / "out" / "z.safetensors"
    args = ["zoo", "import", "cnn-zoo", tmp_path / "zoo", "--activation", "relu", "--out", out]
    code, _, err = run_cli(args, capsys)
    assert_one_error(code, err, "missing metrics.csv.gz in", str(tmp_path / "zoo"))
    assert_nothing_written(out)


def test_corrupt_weights_file(tmp_path: Path, capsys) -> None:
    make_cnn_zoo(tmp_path / "zoo", layout=(1, 4, 4, 3))
    blob = (tmp_path / "zoo" / "weights.npy").read_bytes()
    (tmp_path / "zoo" / "weights.npy").write_bytes(blob[:300])
    out = tmp_path / "out" / "z.safetensors"
    args = ["zoo", "import", "cnn-zoo", tmp_path / "zoo", "--activation", "relu", "--out", out]
    code, _, err = run_cli(args, capsys)
    assert_one_error(code, err, "weights.npy")
    assert_nothing_written(out)


@pytest.mark.parametrize(
    "args",
    [
        ["zoo", "import", "dwsnets", "{tmp}/absent", "--out", "{tmp}/out/z.safetensors"],
        ["zoo", "import", "cnn-zoo", "{tmp}/absent", "--activation", "relu", "--out",
         "{tmp}/out/z.safetensors"],
        ["zoo", "info", "{tmp}/absent.safetensors"],
    ],
)
def test_missing_path(tmp_path: Path, capsys, args: list[str]) -> None:
    code, _, err = run_cli([a.format(tmp=tmp_path) for a in args], capsys)
    assert_one_error(code, err, str(tmp_path / "absent"), "not found")
    assert_nothing_written(tmp_path / "out" / "z.safetensors")


def test_out_is_a_directory(tmp_path: Path, capsys) -> None:
    make_dwsnets_tree(tmp_path / "inrs", [("training", 0, 0)], layout=(2, 4, 1))
    (tmp_path / "out").mkdir()
    code, _, err = run_cli(["zoo", "import", "dwsnets", tmp_path / "inrs", "--out",
                            tmp_path / "out"], capsys)
    assert_one_error(code, err, "is a directory")
    assert list((tmp_path / "out").iterdir()) == []


def test_out_under_a_file_fails_before_importing(tmp_path: Path, capsys) -> None:
    make_dwsnets_tree(tmp_path / "inrs", [("training", 0, 0)], layout=(2, 4, 1))
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(["zoo", "import", "dwsnets", tmp_path / "inrs", "--out",
                            tmp_path / "f" / "z.safetensors"], capsys)
    assert_one_error(code, err, "is not a directory")


def test_info_with_non_finite_metric_values(tmp_path: Path, capsys) -> None:
    path = tmp_path / "z.safetensors"
    save_zoo(path, SirenSpec(), torch.zeros(3, 1185),
             metrics={"acc": torch.tensor([0.5, float("nan"), 0.7]),
                      "dead": torch.full((3,), float("nan"))})
    code, stdout, _ = run_cli(["zoo", "info", path], capsys)
    assert code == 0
    assert "acc: min 0.5  median 0.6  mean 0.6  max 0.7  (1 not finite)" in stdout
    assert "dead: no finite values  (3 not finite)" in stdout


def test_bad_activation_is_a_usage_error(tmp_path: Path, capsys) -> None:
    make_cnn_zoo(tmp_path / "zoo", layout=(1, 4, 4, 3))
    out = tmp_path / "out" / "z.safetensors"
    args = ["zoo", "import", "cnn-zoo", tmp_path / "zoo", "--activation", "sine", "--out", out]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "Invalid value" in err and "Traceback" not in err
    assert_nothing_written(out)


@pytest.mark.slow  # a fresh interpreter imports torch: several seconds on a shared CPU
def test_error_line_from_a_real_process(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    proc = subprocess.run(
        [sys.executable, "-c", "from symmerge.cli.app import main; main()", "zoo", "info",
         str(missing)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: zoo file not found: {missing}"]


def test_info_values_match_zoo(tmp_path: Path, capsys) -> None:
    path = tmp_path / "z.safetensors"
    psnr = np.array([1.0, 2.0, 10.0, 3.0], dtype=np.float32)
    save_zoo(path, SirenSpec(), torch.zeros(4, 1185), torch.tensor([2, 2, -1, 0]),
             metrics={"psnr": torch.from_numpy(psnr)}, provenance={"note": "x"})
    code, stdout, _ = run_cli(["zoo", "info", path], capsys)
    assert code == 0
    assert "labels: 0: 1, 2: 2 (unlabelled: 1)" in stdout
    assert "psnr: min 1  median 2.5  mean 4  max 10" in stdout
    assert "  note: x" in stdout


# ------------------------------------------------ published layouts: bad input
def _bad_split_file(tmp_path: Path) -> list:
    src = tmp_path / "inrs"
    make_dwsnets_tree(src, [("training", 1, 0), ("testing", 2, 0)], layout=(2, 4, 1))
    write_split_json(src / "mnist_splits.json", {
        "train": [(mnist_split_path(inr_folder("training", 1, 0)), "1"),
                  (mnist_split_path(inr_folder("training", 3, 9)), "3")],
        "test": [(mnist_split_path(inr_folder("testing", 2, 0)), "2")]})
    return ["dwsnets", src], ["names 1 network that is not under", "mnist_png_training_3_9"]


def _cnn_without_final(tmp_path: Path) -> list:
    make_cnn_zoo(tmp_path / "zoo", layout=(1, 4, 4, 3), steps=(0, 85, 85, 40, 85, 85, 85, 0))
    write_index_csv(tmp_path / "split.csv", range(8))
    return (["cnn-zoo", tmp_path / "zoo", "--activation", "relu", "--split-file",
             tmp_path / "split.csv"], ["no final checkpoints (step == 86)"])


def _index_wrong_length(tmp_path: Path) -> list:
    make_cnn_zoo(tmp_path / "zoo", layout=(1, 4, 4, 3))
    write_index_csv(tmp_path / "split.csv", range(9))
    return (["cnn-zoo", tmp_path / "zoo", "--activation", "relu", "--split-file",
             tmp_path / "split.csv"], ["has 9 row indices, weights.npy has 8 rows"])


def _orbit_mixing_images(tmp_path: Path) -> list:
    make_orbit_tree(tmp_path / "orbit", members=2)
    make_orbit_tree(tmp_path / "orbit", image=("testing", 1, 7), members=2, seed=1,
                    split_file=False)
    return ["dwsnets", tmp_path / "orbit"], ["mixes the orbits of 2 images"]


@pytest.mark.parametrize("case", [_bad_split_file, _cnn_without_final, _index_wrong_length,
                                  _orbit_mixing_images])
def test_published_layout_bad_input(tmp_path: Path, capsys, case) -> None:
    args, fragments = case(tmp_path)
    out = tmp_path / "out" / "z.safetensors"
    code, stdout, err = run_cli(["zoo", "import", *args, "--out", out], capsys)
    assert_one_error(code, err, *fragments)
    assert stdout == ""
    assert_nothing_written(out)
