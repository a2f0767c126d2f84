"""Smoke tests: the benchmark scripts run end to end at toy sizes and write their JSON."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from tests.benchmarks.test_reference_design import BENCH_DIR, _load


def _run(monkeypatch: pytest.MonkeyPatch, name: str, argv: list[str]) -> None:
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    monkeypatch.setattr(sys, "argv", [name, *argv])
    _load(name).main()


def test_bench_canonicalize_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "canon.json"
    _run(monkeypatch, "bench_canonicalize",
         ["--pairs", "4", "--repeats", "1", "--json", str(out)])
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert {"ae", "sort", "ae-lift", "ae-lift (descent)", "wm (pairwise)"} <= set(rows)
    assert all(r["networks_per_s"] > 0 for r in rows.values())


def test_bench_ae_quality_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from symmerge.zoo.fit_inr import fit_inr_zoo

    zoo = tmp_path / "zoo.safetensors"  # an existing zoo is reused, not rebuilt
    fit_inr_zoo("mnist-embedded", out=zoo, limit=30, stride=100, config="quick", progress=False)
    out = tmp_path / "quality.json"
    _run(monkeypatch, "bench_ae_quality",
         ["--zoo", str(zoo), "--out-dir", str(tmp_path / "runs"), "--max-epochs", "1",
          "--variants", "latent_norm_off", "--threads", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert [r["variant"] for r in result["rows"]] == ["quick", "latent_norm_off"]
    assert result["info"]["zoo_fit_s"] == 0.0
    for r in result["rows"]:
        assert r["epochs"] == 1 and math.isfinite(r["ratio"]) and r["ratio"] > 0


def test_bench_repair_smoke(assets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "repair.json"
    _run(monkeypatch, "bench_repair",
         ["--zoo", str(assets.cnn_zoo), "--split", "all", "--pairs", "2", "--steps", "3",
          "--repair-images", "40", "--eval-images", "100", "--restarts", "0", "--threads", "1",
          "--json", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert row["pairs"] == 2 and row["repair_images"] == 40 and row["eval_images"] == 100
    assert set(row["methods"]) == {"naive", "wm", "wm+repair"} and row["midpoint_alpha"] == 0.5
    for summary in row["methods"].values():
        assert summary["midpoint_cross_entropy"]["n"] == 2
        assert math.isfinite(summary["barrier_cross_entropy"]["mean"])
    assert math.isfinite(row["ratio_repair_to_wm"]["midpoint_cross_entropy"])


def _device_checks(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    return _load("device_checks").main(argv)


def test_device_checks_budget_spent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """No time left: every step is recorded as skipped, nothing is started, exit 1."""
    code = _device_checks(monkeypatch, ["--dry-run", "--out", str(tmp_path), "--budget", "0"])
    assert code == 1
    result = json.loads((tmp_path / "device_checks.json").read_text())
    steps = ["tests", "zoo_inr", "train", "encoder", "canonicalize"]
    assert list(result["steps"]) == steps
    assert {r["status"] for r in result["steps"].values()} == {"skipped"}
    printed = capsys.readouterr().out
    assert "the full run measures" in printed and "70,000 INRs" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_checks_failure_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that fails is recorded with its error, and the next step still runs."""
    code = _device_checks(monkeypatch, ["--dry-run", "--device", "cuda", "--out", str(tmp_path),
                                        "--steps", "encoder,canonicalize"])
    assert code == 1
    steps = json.loads((tmp_path / "device_checks.json").read_text())["steps"]
    assert list(steps) == ["encoder", "canonicalize"]
    for rec in steps.values():
        assert rec["status"] == "failed" and rec["error"] and rec["wall_s"] > 0
    log = (tmp_path / "device_checks.log").read_text()
    assert "step encoder" in log and "step canonicalize" in log and "Traceback" in log


@pytest.mark.slow
def test_device_checks_dry_run(tmp_path: Path) -> None:
    """benchmarks/device_checks.sh --dry-run: every step runs at tiny sizes and passes."""
    import subprocess

    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    proc = subprocess.run(["bash", str(BENCH_DIR / "device_checks.sh"), "--dry-run",
                           "--out", str(tmp_path)], env=env, cwd=BENCH_DIR.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the full run measures" in proc.stdout
    result = json.loads((tmp_path / "device_checks.json").read_text())
    assert result["mode"] == "dry-run"
    assert list(result["steps"]) == ["tests", "zoo_inr", "train", "encoder", "canonicalize"]
    for name, rec in result["steps"].items():
        assert rec["status"] == "ok", (name, rec)
        assert rec["numbers"] and rec["wall_s"] > 0
    numbers = {name: rec["numbers"] for name, rec in result["steps"].items()}
    assert numbers["zoo_inr"]["networks"] == 32
    assert numbers["train"]["summary"]["max_loss_diff"] < 1e-5
    assert {"ae", "sort", "ae-lift", "wm (pairwise)"} <= set(numbers["canonicalize"]["summary"])
    assert (tmp_path / "device_checks.log").stat().st_size > 0


def test_device_checks_header_matches_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell script's header table states each step's cap and expected seconds."""
    import re

    monkeypatch.syspath_prepend(str(BENCH_DIR))
    steps = _load("device_checks").STEPS
    header = (BENCH_DIR / "device_checks.sh").read_text()
    for step in steps:
        row = re.search(rf"^#\s+{step.name}\s+(\d+)\s+(\d+)\s", header, re.MULTILINE)
        assert row, f"no header row for {step.name}"
        assert (float(row[1]), float(row[2])) == (step.cap_s, step.expected_s), step.name


def test_bench_full_scale_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """steptime, train on a training subset (tested on the full zoo's test split) and
    shift run end to end at toy sizes and print JSON."""
    from symmerge.zoo import load_zoo
    from symmerge.zoo.fit_inr import fit_inr_zoo

    zoo = tmp_path / "zoo.safetensors"
    fit_inr_zoo("mnist-embedded", out=zoo, limit=30, stride=100, config="quick", progress=False)
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    bench = _load("bench_full_scale")
    small = bench.sub_zoo(load_zoo(zoo), 5)
    full, sub = load_zoo(zoo).splits(), small.splits()
    assert len(sub["train"]) == 5 and len(sub["test"]) == len(full["test"])
    assert torch.equal(small.params[sub["test"]], load_zoo(zoo).params[full["test"]])
    bench.main(["--threads", "1", "steptime", "--zoo", str(zoo), "--variants", "quick",
                "--train-networks", "8", "--val-networks", "2"])
    run = tmp_path / "run"
    bench.main(["--threads", "1", "train", "--zoo", str(zoo), "--out", str(run),
                "--epochs", "1", "--train-size", "10"])
    bench.main(["--threads", "1", "shift", "--zoo", str(zoo), "--run", str(run), "--n", "2",
                "--recipes", "init2-lr5e-3"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")]
    assert rows[0]["variant"] == "quick" and rows[0]["cpu_s"] > 0
    assert rows[1]["num_networks"]["train"] == 10 and math.isfinite(rows[1]["metrics"]["ratio"])
    assert [r.get("recipe") for r in rows[2:4]] == [
        "quick (the zoo's, in distribution)", "init2-lr5e-3"]
    assert all(math.isfinite(r["ratio"]) for r in rows[2:4])
