"""Importers for the published zoos: DWSNets INRs (MNIST, Fashion-MNIST, the paper's orbit
datasets) and the Small CNN Zoo, with their published splits.

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
from symmerge.utils.io import error_summary, load_weights_only, require_file
from symmerge.zoo.io import SPLITS, save_zoo
from symmerge.zoo.published_splits import (
    CNN_ZOO_FINAL_STEP,
    SplitEntry,
    integer_label,
    nfn_split_codes,
    read_index_file,
    read_split_file,
)


@dataclass(frozen=True)
class ImportedZoo:
    """Networks read from a published zoo, ready for :func:`symmerge.zoo.save_zoo`."""

    spec: WeightSpaceSpec
    params: Tensor
    labels: Tensor
    image_index: Tensor | None = None
    split: Tensor | None = None
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
            split=self.split,
            metrics=self.metrics,
            provenance=self.provenance,
        )


def _existing_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise SymmergeError(f"directory not found: {p}")
    return p


# ------------------------------------------------------------------ DWSNets
#: MNIST naming ``{prefix}_{training|testing}_{label}_{idx}`` (``prefix`` is ``mnist_png`` in
#: the published data); the paper's orbit datasets add ``_augmented_{k}`` (orbit member k).
DWSNETS_DIR = re.compile(
    r"^(?P<image>(?P<prefix>.+)_(?P<split>training|testing)_(?P<label>\d+)_(?P<index>\d+))"
    r"(?:_augmented_(?P<member>\d+))?$"
)
DWSNETS_FILE = "checkpoints/model_final.pth"
#: Fashion-MNIST naming ``{train|test}/model_{idx}.pth``; the label is inside the checkpoint
FMNIST_DIRS = ("train", "test")
FMNIST_FILE = re.compile(r"^model_(?P<index>\d+)\.pth$")
#: split files looked for in the dataset folder: ``mnist_splits.json``,
#: ``mnist_orbit_splits.json``, ``fmnist_splits.json``, ``splits.json``
SPLIT_FILE_GLOB = "*splits.json"


@dataclass(frozen=True)
class _INRFile:
    """One INR checkpoint found under the dataset folder."""

    path: Path
    key: tuple[str, ...]  # the trailing path components a split file names it by
    is_test: bool  # image_index refers to the (Fashion-)MNIST test images
    index: int
    label: int | None  # None: stored in the checkpoint (Fashion-MNIST)
    image: str  # the image's folder name (an orbit's base INR) or file stem
    member: int | None = None  # orbit member k

    @property
    def order(self) -> tuple[bool, int, str, int]:
        return (self.is_test, self.index, self.image, -1 if self.member is None else self.member)


def _load_checkpoint(path: Path, *, labelled: bool = False) -> tuple[dict[str, Tensor], int | None]:
    """The state dict of ``path`` and, with ``labelled``, its ``label`` entry (taken out)."""
    state = load_weights_only(path, "checkpoint")
    if not isinstance(state, Mapping):
        raise SymmergeError(f"{path} is not a state dict of tensors")
    state, label = dict(state), None
    if labelled:
        if "label" not in state:
            raise SymmergeError(
                f"{path} has no 'label' entry (Fashion-MNIST INR checkpoints store their class)"
            )
        label = integer_label(state.pop("label"), f"{path}: 'label'")
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise SymmergeError(f"{path} is not a state dict of tensors")
    return state, label


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


def _scan_inrs(root: Path) -> list[_INRFile]:
    """Every INR checkpoint under ``root`` in either naming, sorted (training before testing,
    then by image index, orbit member)."""
    mnist, fmnist = [], []
    for path in root.rglob(DWSNETS_FILE):
        folder = path.parent.parent.name
        match = DWSNETS_DIR.match(folder)
        if match is None:
            raise SymmergeError(
                f"cannot read split, label and index from folder name {folder!r} ({path}); "
                "expected mnist_png_{training|testing}_{label}_{idx}, optionally with "
                "_augmented_{k} (an orbit member)"
            )
        member = None if match["member"] is None else int(match["member"])
        mnist.append(_INRFile(path, (folder, *DWSNETS_FILE.split("/")),
                              match["split"] == "testing", int(match["index"]),
                              int(match["label"]), match["image"], member))
    for split in FMNIST_DIRS:
        for path in root.rglob(f"{split}/model_*.pth"):
            match = FMNIST_FILE.match(path.name)
            if match is None:
                raise SymmergeError(
                    f"cannot read the image index from file name {path.name!r} ({path}); "
                    f"expected {split}/model_{{idx}}.pth"
                )
            fmnist.append(_INRFile(path, (split, path.name), split == "test",
                                   int(match["index"]), None, path.stem))
    if mnist and fmnist:
        raise SymmergeError(
            f"{root} holds both MNIST INR folders ({mnist[0].path}) and Fashion-MNIST INR "
            f"files ({fmnist[0].path}); import each dataset's folder on its own"
        )
    found = sorted(mnist or fmnist, key=lambda f: f.order)
    if not found:
        raise SymmergeError(
            f"no */{DWSNETS_FILE} (MNIST) or {{train|test}}/model_{{idx}}.pth (Fashion-MNIST) "
            f"files found under {root}"
        )
    seen: dict[tuple[bool, int, int | None], Path] = {}
    for f in found:
        other = seen.setdefault((f.is_test, f.index, f.member), f.path)
        if other != f.path:
            split = "testing" if f.is_test else "training"
            member = "" if f.member is None else f" (orbit member {f.member})"
            raise SymmergeError(
                f"two INRs for {split} image {f.index}{member}: {other} and {f.path}"
            )
    return found


def _check_orbits(root: Path, found: list[_INRFile], several_orbits: bool) -> list[str]:
    """The orbit base images of ``found`` (empty for plain INRs); one unless ``several_orbits``."""
    orbit = [f for f in found if f.member is not None]
    if not orbit:
        return []
    if len(orbit) < len(found):
        plain = next(f for f in found if f.member is None)
        raise SymmergeError(
            f"{root} mixes orbit members ({orbit[0].path.parent.parent.name}) with plain INR "
            f"folders ({plain.path.parent.parent.name}); import the orbit's folder on its own"
        )
    images = sorted({f.image for f in orbit})
    if len(images) > 1 and not several_orbits:
        raise SymmergeError(
            f"the orbit folder {root} mixes the orbits of {len(images)} images "
            f"({images[0]}, {images[1]}{', ...' if len(images) > 2 else ''}); import each "
            "orbit's folder on its own, or ask for several orbits in one zoo "
            "(several_orbits=True)", params=("several_orbits",)
        )
    return images


def _find_split_file(root: Path, split_file: str | os.PathLike[str] | None) -> Path | None:
    if split_file is not None:
        return require_file(Path(split_file).expanduser(), "split file")
    found = sorted(p for p in root.glob(SPLIT_FILE_GLOB) if p.is_file())
    if len(found) > 1:
        raise SymmergeError(
            f"{root} holds several split files ({', '.join(p.name for p in found)}); "
            "choose one with split_file", params=("split_file",)
        )
    return found[0] if found else None


def _assign_splits(
    root: Path, found: list[_INRFile], split_file: Path
) -> tuple[list[_INRFile], list[SplitEntry]]:
    """The networks a split file names, in ``found`` order, and its entry for each.

    Paths are matched by their trailing components (the image folder or split folder and
    file names); every listed network must be under ``root``.
    """
    width = len(found[0].key)
    keys = {f.key for f in found}
    chosen: dict[tuple[str, ...], SplitEntry] = {}
    missing = []
    for entry in read_split_file(split_file):
        key = entry.parts[-width:]
        if key not in keys:
            missing.append(entry.name)
        elif key in chosen:
            raise SymmergeError(
                f"split file {split_file} lists {'/'.join(key)} twice "
                f"({SPLITS[chosen[key].split]} and {SPLITS[entry.split]})"
            )
        else:
            chosen[key] = entry
    if missing:
        raise SymmergeError(
            f"split file {split_file} names {len(missing)} "
            f"{'network that is' if len(missing) == 1 else 'networks that are'} not under {root}: "
            f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"
        )
    kept = [f for f in found if f.key in chosen]
    if not kept:
        raise SymmergeError(f"split file {split_file} names no networks")
    return kept, [chosen[f.key] for f in kept]


def import_dwsnets(
    root: str | os.PathLike[str],
    *,
    split_file: str | os.PathLike[str] | None = None,
    several_orbits: bool = False,
    w0: float = 30.0,
    output_offset: float = 0.5,
    progress: bool | None = None,
) -> ImportedZoo:
    """Import INR datasets in the published layouts (SIREN checkpoints).

    Namings (found anywhere below ``root``):

    * DWSNets MNIST: ``{prefix}_{training|testing}_{label}_{idx}/checkpoints/model_final.pth``
      (``prefix`` is ``mnist_png``);
    * the paper's orbit datasets: the same folder name plus ``_augmented_{k}``: member ``k``
      of the orbit of image ``idx`` (metric ``orbit_member``). An orbit folder holds one
      image's orbit; ``several_orbits`` accepts several (each member keeps its image);
    * Fashion-MNIST: ``{train|test}/model_{idx}.pth`` with the class as the checkpoint's
      ``label`` entry.

    ``labels`` and ``image_index`` come from the names; the ``is_test`` metric (0/1) says
    which split of the image set ``image_index`` refers to (``mnist:DIR@train`` or
    ``@test``). The published split: ``split_file``, or else the one ``*splits.json`` in
    ``root`` (``mnist_splits.json``, ``mnist_orbit_splits.json``, ...): its assignment is
    stored as the zoo's ``split`` and only the networks it lists are imported (matched by
    their trailing path components; a listed network that is missing is an error, its
    labels must agree). Without one, :meth:`Zoo.splits` keeps ``is_test`` as the test split.
    The SIREN layout is inferred from the first checkpoint; every checkpoint must match it
    and be finite. Order: training before testing, then by image index and orbit member.
    ``progress=None`` shows a progress bar only on a terminal.
    """
    root = _existing_dir(root)
    found = _scan_inrs(root)
    images = _check_orbits(root, found, several_orbits)
    split_path = _find_split_file(root, split_file)
    entries = None
    unlisted = 0
    if split_path is not None:
        listed, entries = _assign_splits(root, found, split_path)
        unlisted, found = len(found) - len(listed), listed
    labelled = found[0].label is None
    n = len(found)
    first = found[0].path
    state, _ = _load_checkpoint(first, labelled=labelled)
    spec = _siren_spec_from_state_dict(state, first, w0, output_offset)
    params = torch.empty(n, spec.num_params, dtype=torch.float32)
    labels = []
    disable = None if progress is None else not progress
    with tqdm(found, desc="importing INRs", unit="net", disable=disable) as bar:
        for i, item in enumerate(bar):
            state, label = _load_checkpoint(item.path, labelled=labelled)
            try:
                flat = spec.from_state_dict(state)
            except SymmergeError as exc:
                raise SymmergeError(
                    f"{item.path}: {exc} (layout {list(spec.layout)} inferred from {first})"
                ) from exc
            if not bool(torch.isfinite(flat).all()):
                raise SymmergeError(f"{item.path} contains NaN or infinite weights")
            params[i] = flat
            label = item.label if label is None else label
            listed = None if entries is None else entries[i].label
            if listed is not None and listed != label:
                raise SymmergeError(
                    f"split file {split_path} gives {item.path} label {listed}, "
                    f"its {'checkpoint' if labelled else 'folder name'} says {label}"
                )
            labels.append(label)
    is_test = torch.tensor([f.is_test for f in found], dtype=torch.float32)
    metrics = {"is_test": is_test}
    if images:
        metrics["orbit_member"] = torch.tensor([f.member for f in found], dtype=torch.float32)
    split = None if entries is None else torch.tensor([e.split for e in entries])
    n_test = int(is_test.sum())
    provenance: dict[str, Any] = {
        "importer": "dwsnets",
        "naming": "fashion-mnist" if labelled else ("mnist-orbit" if images else "mnist"),
        "source": str(root.resolve()),
        "count": n,
        "training_count": n - n_test,
        "testing_count": n_test,
    }
    if images:
        provenance["orbit_images"] = images
    if split is not None:
        provenance["split_file"] = str(split_path.resolve())
        provenance["split_counts"] = {s: int((split == i).sum()) for i, s in enumerate(SPLITS)}
        if unlisted:
            provenance["not_in_split_file"] = unlisted
    return ImportedZoo(
        spec=spec,
        params=params,
        labels=torch.tensor(labels, dtype=torch.long),
        image_index=torch.tensor([f.index for f in found], dtype=torch.long),
        split=split,
        metrics=metrics,
        provenance=provenance,
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


def _published_cnn_rows(
    steps: np.ndarray, acts: np.ndarray, index_file: str | os.PathLike[str], source: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(final rows, their split codes, their activations)`` as the published loaders take
    them: rows in index-file order, those with ``step == 86``, split by
    :func:`nfn_split_codes` before any activation filter."""
    order = read_index_file(index_file, steps.size)
    final = order[steps[order] == CNN_ZOO_FINAL_STEP]
    if final.size == 0:
        raise SymmergeError(
            f"no final checkpoints (step == {CNN_ZOO_FINAL_STEP}) in {source} "
            f"(steps found: {', '.join(f'{v:g}' for v in np.unique(steps)[:10])}); "
            "the published split is defined on the Small CNN Zoo's final checkpoints"
        )
    return final, nfn_split_codes(final.size), acts[final]


def import_cnn_zoo(
    directory: str | os.PathLike[str],
    activation: str,
    *,
    stride: int = 2,
    split_file: str | os.PathLike[str] | None = None,
) -> ImportedZoo:
    """Import the final checkpoints of one activation from a Small CNN Zoo directory.

    Reads ``weights.npy`` (memory-mapped; one TF-order row per checkpoint),
    ``metrics.csv[.gz]`` (one row per checkpoint) and ``layout.csv``.

    With ``split_file`` (NFN's index file, e.g. ``nfn_cifar10_split.csv``: one row index
    per line) the networks and their split are the published ones, computed as the
    paper's code does: rows reordered by the file, the final checkpoints
    (``step == 86``) kept, split by :func:`nfn_split_codes`, and only then the rows whose
    ``config.activation`` is ``activation`` kept, in that order; the zoo stores the
    split. Without it: rows whose ``step`` is the largest step and whose
    ``config.activation`` is ``activation``, in file order (no stored split).
    Metrics: ``test_accuracy``, ``train_accuracy`` (if present) and ``source_row`` (the
    row in ``weights.npy``). Labels are -1.
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
    split = None
    if split_file is None:
        final_step = float(steps.max())
        final = np.flatnonzero(steps == final_step)
        final_acts = acts[final]
    else:
        final_step = float(CNN_ZOO_FINAL_STEP)
        final, codes, final_acts = _published_cnn_rows(steps, acts, split_file, metrics_path)
        split = torch.from_numpy(codes[final_acts == activation])
    keep = final[final_acts == activation]
    if keep.size == 0:
        present = sorted(set(final_acts.tolist()))
        raise SymmergeError(
            f"no checkpoints with config.activation == {activation!r} at the final step "
            f"{final_step:g} in {metrics_path} (found: {', '.join(present)})"
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
    provenance: dict[str, Any] = {
        "importer": "cnn-zoo",
        "source": str(directory.resolve()),
        "activation": activation,
        "final_step": final_step,
        "count": int(keep.size),
        "source_rows": int(weights.shape[0]),
        "final_step_rows": int(final.size),
        "weights_order": "converted from TF flat order (CNNSpec.from_tf_flat)",
    }
    if split is not None:
        provenance["split_file"] = str(Path(split_file).resolve())
        provenance["split_counts"] = {s: int((split == i).sum()) for i, s in enumerate(SPLITS)}
    return ImportedZoo(
        spec=spec,
        params=params,
        labels=torch.full((keep.size,), -1, dtype=torch.long),
        split=split,
        metrics=metrics,
        provenance=provenance,
    )
