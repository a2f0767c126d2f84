"""Smoke tests: the benchmark scripts run end to end at toy sizes and write their JSON."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_device_checks_script_smoke(tmp_path: Path) -> None:
    """The prepared GPU script runs end to end on the CPU at tiny sizes."""
    import os
    import subprocess

    env = {**os.environ, "DEVICE": "cpu", "SMALL": "1", "OUT": str(tmp_path),
           "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(BENCH_DIR / "device_checks.sh")], env=env,
                          cwd=BENCH_DIR.parent, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    steps = (tmp_path / "steps.txt").read_text()
    assert steps.count("exit 0") == 3, steps
    for name in ("zoo_inr", "train_throughput", "canonicalize"):
        assert json.loads((tmp_path / f"{name}.json").read_text())
