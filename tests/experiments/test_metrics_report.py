"""Curve metrics and the report writer."""

import json

import numpy as np
import pytest
import torch

from symmerge import SymmergeError
from symmerge.experiments import (
    CurveSummary,
    ReportSection,
    barrier_areas,
    barriers,
    markdown_table,
    summarize_curves,
    write_json,
    write_report,
)
from symmerge.experiments.metrics import alpha_grid


def test_barrier_and_area():
    a = alpha_grid(41).numpy()
    line = np.stack([1 + a, 2 - a])  # straight lines: no barrier
    np.testing.assert_allclose(barriers(line, a), 0, atol=1e-12)
    bump = 1 + 0.5 * np.sin(np.pi * a)[None]  # excess 0.5 sin(pi a): max 0.5, area 1/pi
    np.testing.assert_allclose(barriers(bump, a), [0.5])
    np.testing.assert_allclose(barrier_areas(bump, a), [1 / np.pi], rtol=1e-3)
    dip = 0.9 - 0.2 * np.sin(np.pi * a)[None]  # an accuracy dip of 0.2
    np.testing.assert_allclose(barriers(dip, a, higher_is_better=True), [0.2])
    convex = (a - 0.5) ** 2
    assert barriers(convex[None], a)[0] == pytest.approx(0.0)  # below the line: 0 at the ends


def test_summary():
    a = alpha_grid(5)
    curves = torch.tensor([[0.0, 1.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    s = summarize_curves(curves, a)
    assert isinstance(s, CurveSummary)
    assert s.pairs == 2 and s.barrier_mean == pytest.approx(1.0)
    assert s.barrier_std == pytest.approx(2**0.5)  # barriers 2 and 0: sample std
    assert s.barrier_sem == pytest.approx(1.0)
    assert s.spread("std") == s.barrier_std and s.spread("sem") == s.barrier_sem
    assert s.barrier_of_mean_curve == pytest.approx(1.0)
    assert s.start_mean == pytest.approx(0.5) and s.end_mean == pytest.approx(0.5)
    assert s.mid_mean == pytest.approx(1.5) and s.worst_mean == pytest.approx(1.5)
    assert s.barrier_vs_naive is None  # until compared with the reference method
    with pytest.raises(SymmergeError):
        summarize_curves(curves[:, :3], a)
    with pytest.raises(SymmergeError):
        alpha_grid(1)


def test_report_composition(tmp_path):
    img = tmp_path / "a" / "plot.png"
    img.parent.mkdir()
    img.write_bytes(b"png")
    section = ReportSection("Title", text="hello", table=markdown_table(
        [{"m": "x", "v": 0.5}, {"m": "y", "v": float("nan")}], [("m", "method"), ("v", "value")]),
        images=[("cap", str(img))], notes=["a note"])
    write_json(tmp_path / "a" / "metrics.json", {"x": 1.0, "nan": float("nan")})
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == {"nan": None, "x": 1.0}
    own = write_report(tmp_path / "a" / "report.md", [section], title=None).read_text()
    assert "![cap](plot.png)" in own and "| y | - |" in own
    combined = write_report(tmp_path / "top" / "report.md", [section], title="All", intro="intro")
    text = combined.read_text()
    assert text.startswith("# All") and "![cap](../a/plot.png)" in text and "- a note" in text
