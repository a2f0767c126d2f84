"""``symmerge zoo import`` / ``symmerge zoo info``: success paths and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from symmerge import SirenSpec
from symmerge.zoo.io import FORMAT, load_zoo, save_zoo
from tests.cli._util import run_cli
from tests.zoo.published import (
    ReferenceSiren,
    inr_folder,
    make_cnn_zoo,
    make_dwsnets_tree,
    write_inr,
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
