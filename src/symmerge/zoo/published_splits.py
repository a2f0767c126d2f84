"""The published train/val/test splits of the imported zoos, read as their authors wrote them.

* INR datasets (DWSNets MNIST / Fashion-MNIST, the paper's orbit datasets): a JSON split
  file ``{split: {"path": [...], "label": [...]}}`` (or ``{split: [path, ...]}``), paths
  relative to wherever the authors ran their scripts, labels often strings.
* The Small CNN Zoo: NFN's index file (one row index of ``weights.npy`` per line, no
  header) and the split rule that the NFN, Neural Graphs and ScaleGMN loaders apply to the
  final checkpoints in that order (:func:`nfn_split_codes`).

Codes: 0 train, 1 val, 2 test (positions in :data:`symmerge.zoo.io.SPLITS`).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.utils.io import read_text
from symmerge.zoo.io import SPLITS

#: ``step`` of the Small CNN Zoo's final checkpoints, the value the published loaders select
CNN_ZOO_FINAL_STEP = 86


@dataclass(frozen=True)
class SplitEntry:
    """One network named by a split file: its path components, split code and label."""

    parts: tuple[str, ...]
    split: int
    label: int | None

    @property
    def name(self) -> str:
        return "/".join(self.parts)


def integer_label(value: object, what: str) -> int:
    """A class label given as an int, a digit string (``"6"``) or a one-element integer tensor."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise SymmergeError(f"{what} is not an integer class label: {value!r}")
    return value


def read_split_file(path: str | os.PathLike[str]) -> list[SplitEntry]:
    """Parse a published INR split file (every listed network, in file order)."""
    path = Path(path)
    try:
        data = json.loads(read_text(path, "split file"))
    except json.JSONDecodeError as exc:
        raise SymmergeError(f"split file {path} is not valid JSON: {exc}") from exc
    shape = '{"train": {"path": [...], "label": [...]}, "val": ..., "test": ...}'
    if not isinstance(data, dict) or not data:
        raise SymmergeError(f"split file {path}: expected {shape}")
    unknown = [str(k) for k in data if k not in SPLITS]
    if unknown:
        raise SymmergeError(
            f"split file {path} has split {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(SPLITS)}"
        )
    entries = []
    for name, value in data.items():
        paths, labels = (value, None) if isinstance(value, list) else (
            (value.get("path"), value.get("label")) if isinstance(value, dict) else (None, None)
        )
        if not isinstance(paths, list) or not (labels is None or isinstance(labels, list)):
            raise SymmergeError(
                f'split file {path}: split {name!r} must be {{"path": [...], "label": [...]}} '
                "or a list of paths"
            )
        if labels is not None and len(labels) != len(paths):
            raise SymmergeError(
                f"split file {path}: split {name!r} has {len(paths)} paths and {len(labels)} labels"
            )
        for i, p in enumerate(paths):
            if not isinstance(p, str) or not p.strip():
                raise SymmergeError(f"split file {path}: {name} path {i} is not a path: {p!r}")
            label = None if labels is None else integer_label(
                labels[i], f"split file {path}: {name} label {i}"
            )
            parts = PurePosixPath(p.strip().replace("\\", "/")).parts
            entries.append(SplitEntry(parts, SPLITS.index(name), label))
    return entries


def read_index_file(path: str | os.PathLike[str], rows: int) -> np.ndarray:
    """NFN's index file: one row index per line, no header; a permutation of ``range(rows)``."""
    path = Path(path)
    values = []
    for i, line in enumerate(read_text(path, "index file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append(int(line.strip()))
        except ValueError:
            raise SymmergeError(
                f"index file {path} line {i}: {line.strip()[:40]!r} is not a row index "
                "(expected one integer per line, no header)"
            ) from None
    if len(values) != rows:
        raise SymmergeError(
            f"index file {path} has {len(values)} row indices, weights.npy has {rows} rows; "
            "it must list every row once (the index file published for this zoo)"
        )
    order = np.asarray(values, dtype=np.int64)
    if not np.array_equal(np.sort(order), np.arange(rows)):
        raise SymmergeError(
            f"index file {path} is not a permutation of the rows 0..{rows - 1} "
            "(an index is repeated or out of range)"
        )
    return order


def nfn_split_codes(n: int) -> np.ndarray:
    """The published split of ``n`` final checkpoints taken in index-file order.

    As the NFN, Neural Graphs and ScaleGMN loaders compute it: positions from
    ``int(0.5 * n)`` on are test; the positions before, shuffled in place by
    ``random.Random(0)``, give their first ``int(0.8 * count)`` to train and the rest
    to val. Returns codes ``[n]`` (0 train, 1 val, 2 test).
    """
    codes = np.full(n, SPLITS.index("test"), dtype=np.int64)
    first_half = list(range(int(0.5 * n)))
    cut = int(0.8 * len(first_half))
    random.Random(0).shuffle(first_half)
    codes[np.asarray(first_half[:cut], dtype=np.int64)] = SPLITS.index("train")
    codes[np.asarray(first_half[cut:], dtype=np.int64)] = SPLITS.index("val")
    return codes
