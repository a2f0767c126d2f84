"""The CSV metrics log across resumes: earlier rows survive, no row is doubled."""

from __future__ import annotations

import csv
from pathlib import Path

from symmerge.training.metrics_log import METRICS, STASH, restore_history, stash_history


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "step", "val_loss"])
        w.writeheader()
        w.writerows(rows)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _row(epoch: int) -> dict[str, str]:
    return {"epoch": str(epoch), "step": str(10 * epoch), "val_loss": f"{1 / (epoch + 1):.3f}"}


def test_resume_keeps_covered_epochs_in_order(tmp_path):
    _write(tmp_path / METRICS, [_row(0), _row(1), _row(2)])
    stash_history(tmp_path, up_to_epoch=1)  # the checkpoint covers epochs 0 and 1
    assert not (tmp_path / METRICS).exists()
    _write(tmp_path / METRICS, [_row(2), _row(3)])  # what the resumed fit logs
    restore_history(tmp_path)
    assert _rows(tmp_path / METRICS) == [_row(e) for e in range(4)]
    assert not (tmp_path / STASH).exists()


def test_interrupted_restore_does_not_double_rows(tmp_path):
    # restore_history wrote the merged log but died before removing the stash
    _write(tmp_path / STASH, [_row(0), _row(1)])
    _write(tmp_path / METRICS, [_row(0), _row(1), _row(2)])
    stash_history(tmp_path, up_to_epoch=2)
    _write(tmp_path / METRICS, [_row(3)])
    restore_history(tmp_path)
    assert _rows(tmp_path / METRICS) == [_row(e) for e in range(4)]


def test_no_history_leaves_no_stash(tmp_path):
    stash_history(tmp_path, up_to_epoch=3)
    assert not (tmp_path / STASH).exists()
    restore_history(tmp_path)  # nothing stashed: a no-op
    assert not (tmp_path / METRICS).exists()
