"""``symmerge zoo info`` on zoos whose parameters hold NaN or Inf: described, and flagged."""

from __future__ import annotations

from pathlib import Path

import torch

from symmerge import SirenSpec
from symmerge.zoo.io import load_zoo, save_zoo
from tests.cli._util import overwrite_params, run_cli


def test_info_flags_non_finite_networks(tmp_path: Path, capsys) -> None:
    path = tmp_path / "z.safetensors"
    save_zoo(path, SirenSpec(), torch.zeros(14, 1185))
    params = torch.zeros(14, 1185)
    params[3, 7] = params[3, 8] = float("nan")
    params[12, 0] = float("-inf")
    params[13, 1] = float("inf")
    overwrite_params(path, params)
    code, stdout, err = run_cli(["zoo", "info", path], capsys)
    assert code == 0, err  # described, not refused
    assert ("params: NOT FINITE in 3 of 14 networks (2 NaN, 2 Inf values): networks 3, 12, 13"
            in stdout.splitlines())
    assert load_zoo(path).non_finite(chunk=5).networks.tolist() == [3, 12, 13]
    save_zoo(path, SirenSpec(), torch.zeros(2, 1185))
    _, stdout, _ = run_cli(["zoo", "info", path], capsys)
    assert "params: all finite" in stdout.splitlines()


def test_info_counts_failed_networks(tmp_path: Path, capsys) -> None:
    """A CNN zoo without the ``failed`` mark (an old or imported zoo): ``zoo info`` derives
    it and counts the networks at chance level although none diverged."""
    from symmerge import CNNSpec

    spec = CNNSpec((1, 4, 10), "relu")
    path = tmp_path / "cnn.safetensors"
    save_zoo(path, spec, spec.init_params(4, generator=torch.Generator().manual_seed(0)),
             metrics={"test_accuracy": torch.tensor([0.9, 0.098, 0.078, 0.8]),
                      "diverged": torch.zeros(4)})
    code, stdout, err = run_cli(["zoo", "info", path], capsys)
    assert code == 0, err
    assert "failed: 2 of 4 (chance 2); rule (derived): diverged" in stdout
