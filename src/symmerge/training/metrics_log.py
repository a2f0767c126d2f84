"""The run's CSV metrics log across resumes.

Lightning's CSV logger deletes an existing ``metrics.csv`` when it starts, so a
resumed run would lose the rows of its earlier epochs. Before a resume,
:func:`stash_history` moves the rows of the epochs the checkpoint covers aside;
after the fit, :func:`restore_history` puts them back in front of the new rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

from symmerge.utils.io import atomic_path

METRICS = "metrics.csv"
#: rows of earlier sessions while a resumed fit runs (left behind if it is interrupted)
STASH = "metrics.before-resume.csv"


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    keys = {k for r in rows for k in r}
    fields = [k for k in ("epoch", "step") if k in keys] + sorted(keys - {"epoch", "step"})
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _epoch(row: dict[str, str]) -> int:
    try:
        return int(float(row.get("epoch") or -1))
    except ValueError:
        return -1


def stash_history(log_dir: Path, up_to_epoch: int) -> None:
    """Move the rows of epochs ``<= up_to_epoch`` (from the log and from a stash an
    interrupted resume left, each row once) into the stash, and remove the log."""
    rows, seen = [], set()
    for name in (STASH, METRICS):  # a crash inside restore_history leaves rows in both
        for r in _read(log_dir / name):
            key = tuple(sorted(r.items()))
            if _epoch(r) <= up_to_epoch and key not in seen:
                seen.add(key)
                rows.append(r)
    if rows:
        _write(log_dir / STASH, rows)
    else:
        (log_dir / STASH).unlink(missing_ok=True)
    (log_dir / METRICS).unlink(missing_ok=True)


def restore_history(log_dir: Path) -> None:
    """Put the stashed rows in front of the log the resumed fit wrote."""
    old = _read(log_dir / STASH)
    if not old:
        return
    _write(log_dir / METRICS, old + _read(log_dir / METRICS))
    (log_dir / STASH).unlink()
