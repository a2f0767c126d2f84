"""Importers for the published zoos: DWSNets MNIST INRs and the Small CNN Zoo.

Both return an :class:`ImportedZoo` (already validated) whose :meth:`ImportedZoo.save`
writes a symmerge zoo file. Nothing is downloaded: the user points at the files.
"""

from __future__ import annotations

import ast
import csv
import gzip
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec
from symmerge.specs.cnn import CNNSpec
from symmerge.specs.siren import SirenSpec, siren_layout
from symmerge.utils.io import error_summary, load_weights_only
from symmerge.zoo.io import save_zoo


@dataclass(frozen=True)
class ImportedZoo:
    """Networks read from a published zoo, ready for :func:`symmerge.zoo.save_zoo`."""

    spec: WeightSpaceSpec
    params: Tensor
    labels: Tensor
    image_index: Tensor | None = None
    metrics: dict[str, Tensor] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.params.shape[0]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Atomically write this zoo to ``path``."""
        return save_zoo(
            path,
            self.spec,
            self.params,
            self.labels,
            image_index=self.image_index,
            metrics=self.metrics,
            provenance=self.provenance,
        )


def _existing_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise SymmergeError(f"directory not found: {p}")
    return p


# ------------------------------------------------------------------ DWSNets
#: ``mnist_png_{training|testing}_{label}_{idx}`` (any prefix before the split).
DWSNETS_DIR = re.compile(
    r"^(?P<prefix>.+)_(?P<split>training|testing)_(?P<label>\d+)_(?P<index>\d+)$"
)
DWSNETS_FILE = "checkpoints/model_final.pth"


def _load_checkpoint(path: Path) -> Mapping[str, Tensor]:
    state = load_weights_only(path, "checkpoint")
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise SymmergeError(f"{path} is not a state dict of tensors")
    return state


def _siren_spec_from_state_dict(
    state: Mapping[str, Tensor], path: Path, w0: float, output_offset: float
) -> SirenSpec:
    """The SIREN of ``seq.{i}.weight`` / ``seq.{i}.bias`` shapes."""
    try:
        layout = siren_layout(state)
    except SymmergeError as exc:
        raise SymmergeError(
            f"{path}: expected keys seq.{{i}}.weight / seq.{{i}}.bias of a SIREN: {exc}"
        ) from exc
    return SirenSpec(layout, w0=w0, output_offset=output_offset)


def import_dwsnets(
    root: str | os.PathLike[str],
    *,
    w0: float = 30.0,
    output_offset: float = 0.5,
    progress: bool | None = None,
) -> ImportedZoo:
    """Import DWSNets INRs: ``**/{prefix}_{split}_{label}_{idx}/checkpoints/model_final.pth``.

    ``prefix`` is ``mnist_png`` in the published data, ``split`` training or testing.
    The SIREN layout is inferred from the first checkpoint's ``seq.{i}.weight``
    shapes; every checkpoint must match it and be finite. Order: training before
    testing, then by image index. ``labels`` and ``image_index`` come from the folder
    names; the ``is_test`` metric (0/1) says which MNIST split ``image_index``
    refers to (``mnist:DIR@train`` or ``mnist:DIR@test``). ``progress=None`` shows a
    progress bar only on a terminal.
    """
    root = _existing_dir(root)
    entries = []
    for path in root.rglob(DWSNETS_FILE):
        folder = path.parent.parent.name
        match = DWSNETS_DIR.match(folder)
        if match is None:
            raise SymmergeError(
                f"cannot read split, label and index from folder name {folder!r} ({path}); "
                "expected mnist_png_{training|testing}_{label}_{idx}"
            )
        is_test = match["split"] == "testing"
        entries.append((is_test, int(match["index"]), int(match["label"]), str(path)))
    if not entries:
        raise SymmergeError(f"no */{DWSNETS_FILE} files found under {root}")
    entries.sort()
    for a, b in zip(entries, entries[1:], strict=False):
        if a[:2] == b[:2]:
            split = "testing" if a[0] else "training"
            raise SymmergeError(f"two INRs for {split} image {a[1]}: {a[3]} and {b[3]}")
    n = len(entries)
    first = Path(entries[0][3])
    spec = _siren_spec_from_state_dict(_load_checkpoint(first), first, w0, output_offset)
    params = torch.empty(n, spec.num_params, dtype=torch.float32)
    disable = None if progress is None else not progress
    with tqdm(entries, desc="importing INRs", unit="net", disable=disable) as bar:
        for i, (*_, name) in enumerate(bar):
            path = Path(name)
            state = _load_checkpoint(path)
            try:
                flat = spec.from_state_dict(state)
            except SymmergeError as exc:
                raise SymmergeError(
                    f"{path}: {exc} (layout {list(spec.layout)} inferred from {first})"
                ) from exc
            if not bool(torch.isfinite(flat).all()):
                raise SymmergeError(f"{path} contains NaN or infinite weights")
            params[i] = flat
    is_test = torch.tensor([e[0] for e in entries], dtype=torch.float32)
    n_test = int(is_test.sum())
    return ImportedZoo(
        spec=spec,
        params=params,
        labels=torch.tensor([e[2] for e in entries], dtype=torch.long),
        image_index=torch.tensor([e[1] for e in entries], dtype=torch.long),
        metrics={"is_test": is_test},
        provenance={
            "importer": "dwsnets",
            "source": str(root.resolve()),
            "count": n,
            "training_count": n - n_test,
            "testing_count": n_test,
        },
    )


# ----------------------------------------------------------- Small CNN Zoo
CNN_ZOO_COLUMNS = ("step", "test_accuracy", "config.activation")
_LAYOUT_COLUMNS = ("varname", "start_idx", "end_idx", "shape")


@dataclass(frozen=True)
class LayoutRow:
    """One row of the Small CNN Zoo's ``layout.csv`` (TF-order ``shape``)."""

    varname: str
    start: int
    end: int
    shape: tuple[int, ...]


def _open_text(path: Path):
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with _open_text(path) as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise SymmergeError(f"{path} has no column {', '.join(missing)}")
            rows = []
            for row in reader:  # short rows fill with None, long ones put the rest under None
                if None in row or None in row.values():
                    fields = sum(v is not None for k, v in row.items() if k is not None)
                    fields += len(row.get(None) or [])  # type: ignore[call-overload]
                    raise SymmergeError(f"{path} line {reader.line_num} has {fields} fields, "
                                        f"its header {len(reader.fieldnames or [])}")
                rows.append(row)
            return rows
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise SymmergeError(f"cannot read {path}: {error_summary(exc)}") from exc


def read_cnn_zoo_layout(path: str | os.PathLike[str]) -> list[LayoutRow]:
    """Parse ``layout.csv``; rows must be contiguous, sorted by ``start_idx``, from 0."""
    path = Path(path)
    rows = []
    for i, raw in enumerate(_read_csv(path, _LAYOUT_COLUMNS), start=2):
        try:
            shape = ast.literal_eval(raw["shape"].strip())
            start, end = int(raw["start_idx"]), int(raw["end_idx"])
        except (ValueError, SyntaxError, TypeError) as exc:
            raise SymmergeError(
                f"{path} line {i}: cannot parse {raw}: {error_summary(exc)}"
            ) from exc
        if not isinstance(shape, tuple) or not shape or not all(
            isinstance(s, int) and s > 0 for s in shape
        ):
            raise SymmergeError(f"{path} line {i}: shape {raw['shape']!r} is not a tuple of sizes")
        if end - start != math.prod(shape):
            raise SymmergeError(
                f"{path} line {i}: {raw['varname']} spans {start}:{end} but has shape {shape}"
            )
        expected_start = rows[-1].end if rows else 0
        if start != expected_start:
            raise SymmergeError(
                f"{path} line {i}: {raw['varname']} starts at {start}, expected {expected_start} "
                "(layout rows must be contiguous and sorted by start_idx)"
            )
        rows.append(LayoutRow(raw["varname"], start, end, shape))
    if not rows:
        raise SymmergeError(f"{path} has no rows")
    return rows


def cnn_spec_from_layout(
    rows: list[LayoutRow], activation: str, *, stride: int = 2, source: str = "layout.csv"
) -> CNNSpec:
    """The :class:`CNNSpec` of TF layout rows (conv kernel, bias, ..., dense kernel, bias)."""

    def fail(msg: str) -> SymmergeError:
        return SymmergeError(f"{source}: {msg}")

    if len(rows) < 4 or len(rows) % 2:
        raise fail(
            f"expected (kernel, bias) pairs for >= 1 conv and 1 dense layer, got {len(rows)} rows"
        )
    pairs = [(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]
    layout: list[int] = []
    kernel_sizes = set()
    for layer, (kernel, bias) in enumerate(pairs):
        dense = layer == len(pairs) - 1
        if dense and len(kernel.shape) != 2:
            raise fail(
                f"{kernel.varname} has shape {kernel.shape}; the last layer must be dense (in, out)"
            )
        if not dense and (len(kernel.shape) != 4 or kernel.shape[0] != kernel.shape[1]):
            raise fail(
                f"{kernel.varname} has shape {kernel.shape}; "
                "expected a square conv kernel (k, k, in, out)"
            )
        n_in, n_out = kernel.shape[-2:]
        if bias.shape != (n_out,):
            raise fail(
                f"{bias.varname} has shape {bias.shape}; "
                f"expected the bias ({n_out},) of {kernel.varname}"
            )
        if layout and n_in != layout[-1]:
            raise fail(
                f"{kernel.varname} takes {n_in} channels, the previous layer gives {layout[-1]}"
            )
        if not dense:
            kernel_sizes.add(kernel.shape[0])
        layout += [n_in, n_out] if not layout else [n_out]
    if len(kernel_sizes) != 1:
        raise fail(f"conv kernels must share one size, got {sorted(kernel_sizes)}")
    return CNNSpec(tuple(layout), activation, kernel_size=kernel_sizes.pop(), stride=stride)


def _find(directory: Path, *names: str) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


def _float_column(rows: list[dict[str, str]], column: str, path: Path) -> np.ndarray:
    try:
        return np.array([float(r[column]) for r in rows], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SymmergeError(
            f"{path}: column {column} is not numeric: {error_summary(exc)}"
        ) from exc


def import_cnn_zoo(
    directory: str | os.PathLike[str], activation: str, *, stride: int = 2
) -> ImportedZoo:
    """Import the final checkpoints of one activation from a Small CNN Zoo directory.

    Reads ``weights.npy`` (memory-mapped; one TF-order row per checkpoint),
    ``metrics.csv[.gz]`` (one row per checkpoint) and ``layout.csv``. Keeps rows whose
    ``step`` is the largest step and whose ``config.activation`` is ``activation``,
    in file order. Metrics: ``test_accuracy``, ``train_accuracy`` (if present) and
    ``source_row`` (the row in ``weights.npy``). Labels are -1.
    """
    directory = _existing_dir(directory)
    if activation not in CNNSpec.allowed_activations():
        raise SymmergeError(
            f"activation must be one of {', '.join(CNNSpec.allowed_activations())}, "
            f"got {activation!r}"
        )
    found = {
        "weights.npy": _find(directory, "weights.npy"),
        "metrics.csv.gz": _find(directory, "metrics.csv", "metrics.csv.gz"),
        "layout.csv": _find(directory, "layout.csv"),
    }
    missing = [name for name, p in found.items() if p is None]
    if missing:
        raise SymmergeError(
            f"missing {', '.join(missing)} in {directory}; put the Small CNN Zoo files "
            "(weights.npy, metrics.csv or metrics.csv.gz, layout.csv) there"
        )
    weights_path, metrics_path, layout_path = (Path(p) for p in found.values() if p is not None)

    rows = read_cnn_zoo_layout(layout_path)
    spec = cnn_spec_from_layout(rows, activation, stride=stride, source=str(layout_path))
    try:
        weights = np.load(weights_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SymmergeError(f"cannot read {weights_path}: {error_summary(exc)}") from exc
    if weights.ndim != 2 or not np.issubdtype(weights.dtype, np.floating):
        raise SymmergeError(
            f"{weights_path} holds {weights.dtype} {weights.shape}, expected float rows [N, P]"
        )
    if weights.shape[1] != rows[-1].end:
        raise SymmergeError(
            f"{weights_path} rows have {weights.shape[1]} values, "
            f"{layout_path} covers {rows[-1].end}"
        )

    table = _read_csv(metrics_path, CNN_ZOO_COLUMNS)
    if not table:
        raise SymmergeError(f"{metrics_path} has no rows")
    if len(table) != weights.shape[0]:
        raise SymmergeError(
            f"{metrics_path} has {len(table)} rows, {weights_path} has {weights.shape[0]}"
        )
    steps = _float_column(table, "step", metrics_path)
    acts = np.array([(r["config.activation"] or "").strip() for r in table])
    final = steps == steps.max()
    keep = np.flatnonzero(final & (acts == activation))
    if keep.size == 0:
        present = sorted(set(acts[final].tolist()))
        raise SymmergeError(
            f"no checkpoints with config.activation == {activation!r} at the final step "
            f"{steps.max():g} in {metrics_path} (found: {', '.join(present)})"
        )
    block = np.asarray(weights[keep], dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if bad.size:
        raise SymmergeError(
            f"{weights_path}: rows {keep[bad[:5]].tolist()} contain NaN or infinite weights"
        )
    params = spec.from_tf_flat(torch.from_numpy(block))
    kept = [table[i] for i in keep]
    metrics = {
        "test_accuracy": torch.from_numpy(_float_column(kept, "test_accuracy", metrics_path))
    }
    if "train_accuracy" in table[0]:
        metrics["train_accuracy"] = torch.from_numpy(
            _float_column(kept, "train_accuracy", metrics_path)
        )
    metrics["source_row"] = torch.from_numpy(keep.astype(np.float64))
    return ImportedZoo(
        spec=spec,
        params=params,
        labels=torch.full((keep.size,), -1, dtype=torch.long),
        metrics=metrics,
        provenance={
            "importer": "cnn-zoo",
            "source": str(directory.resolve()),
            "activation": activation,
            "final_step": float(steps.max()),
            "count": int(keep.size),
            "source_rows": int(weights.shape[0]),
            "final_step_rows": int(final.sum()),
            "weights_order": "converted from TF flat order (CNNSpec.from_tf_flat)",
        },
    )
