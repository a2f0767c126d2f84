"""Writers of tiny zoos in the published formats, for tests: DWSNets MNIST and Fashion-MNIST
INRs with their split files, the paper's orbit datasets, the Small CNN Zoo and NFN's index
file."""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEFAULT_CNN_LAYOUT = (1, 16, 16, 16, 10)


class ReferenceSiren(nn.Module):
    """A SIREN written independently of symmerge: sin(30 (W x + b)) layers, linear output, +0.5."""

    def __init__(self, layout: Sequence[int]) -> None:
        super().__init__()
        pairs = zip(layout[:-1], layout[1:], strict=True)
        self.seq = nn.Sequential(*(nn.Linear(a, b) for a, b in pairs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.seq):
            x = layer(x)
            if i < len(self.seq) - 1:
                x = torch.sin(30.0 * x)
        return x + 0.5


def inr_folder(split: str, label: int, index: int) -> str:
    return f"mnist_png_{split}_{label}_{index}"


def write_inr(root: Path, folder: str, state: dict[str, torch.Tensor]) -> Path:
    path = root / folder / "checkpoints" / "model_final.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def make_dwsnets_tree(
    root: Path,
    entries: Sequence[tuple[str, int, int]],
    layout: Sequence[int] = (2, 32, 32, 1),
    seed: int = 0,
) -> dict[str, ReferenceSiren]:
    """One random SIREN per ``(split, label, index)``; returns the modules by folder name."""
    torch.manual_seed(seed)
    nets = {}
    for split, label, index in entries:
        net = ReferenceSiren(layout)
        with torch.no_grad():
            for p in net.parameters():
                p.uniform_(-0.1, 0.1)
        folder = inr_folder(split, label, index)
        write_inr(root, folder, net.state_dict())
        nets[folder] = net
    return nets


def random_siren(layout: Sequence[int], generator: torch.Generator) -> ReferenceSiren:
    net = ReferenceSiren(layout)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=generator) * 0.2 - 0.1)
    return net


def write_split_json(path: Path, splits: dict[str, list[tuple[str, object]]]) -> None:
    """``{split: {"path": [...], "label": [...]}}`` from ``(path, label)`` pairs per split."""
    data = {name: {"path": [p for p, _ in items], "label": [lab for _, lab in items]}
            for name, items in splits.items()}
    path.write_text(json.dumps(data, indent=4))


def mnist_split_path(folder: str, prefix: str = "dataset/mnist-inrs") -> str:
    """How DWSNets' split script names a checkpoint: relative to where it ran."""
    return f"{prefix}/{folder}/checkpoints/model_final.pth"


def orbit_folder(split: str, label: int, index: int, member: int) -> str:
    return f"{inr_folder(split, label, index)}_augmented_{member}"


def signed_permutation(state: dict[str, torch.Tensor], generator: torch.Generator
                       ) -> dict[str, torch.Tensor]:
    """A random permutation and sign flip of every hidden layer (the orbit script's ``PD``)."""
    out = {k: v.clone() for k, v in state.items()}
    n_layers = len(out) // 2
    for h in range(n_layers - 1):
        w, b, w_next = out[f"seq.{h}.weight"], out[f"seq.{h}.bias"], out[f"seq.{h + 1}.weight"]
        perm = torch.randperm(b.numel(), generator=generator)
        signs = torch.randint(0, 2, (b.numel(),), generator=generator).float() * 2 - 1
        out[f"seq.{h}.weight"] = signs[:, None] * w[perm]
        out[f"seq.{h}.bias"] = signs * b[perm]
        out[f"seq.{h + 1}.weight"] = w_next[:, perm] * signs[None, :]
    return out


def make_orbit_tree(
    root: Path,
    image: tuple[str, int, int] = ("testing", 6, 3665),
    members: int = 12,
    layout: Sequence[int] = (2, 8, 8, 1),
    seed: int = 0,
    split_file: bool = True,
) -> ReferenceSiren:
    """The orbit script's output: ``{image folder}_augmented_{k}`` folders, each a signed
    permutation of one base INR, and ``mnist_orbit_splits.json`` (one ``test`` split, string
    labels, paths as the script wrote them). Returns the base INR."""
    gen = torch.Generator().manual_seed(seed)
    base = random_siren(layout, gen)
    split, label, index = image
    items = []
    for k in range(members):
        folder = orbit_folder(split, label, index, k)
        write_inr(root, folder, signed_permutation(base.state_dict(), gen))
        items.append((f"analysis/tmp_dir/orbit/{folder}/checkpoints/model_final.pth", str(label)))
    if split_file:
        write_split_json(root / "mnist_orbit_splits.json", {"test": items})
    return base


def write_fmnist_inr(root: Path, split: str, index: int, state: dict, label: object) -> Path:
    path = root / split / f"model_{index}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**state, "label": label}, path)
    return path


def make_fmnist_tree(
    root: Path,
    entries: Sequence[tuple[str, int, int]],
    layout: Sequence[int] = (2, 8, 8, 1),
    seed: int = 0,
) -> dict[tuple[str, int], ReferenceSiren]:
    """The DWSNets Fashion-MNIST INRs: ``{train|test}/model_{idx}.pth`` per ``(split, label,
    idx)``, the class as the checkpoint's ``label`` entry. Returns the modules."""
    gen = torch.Generator().manual_seed(seed)
    nets = {}
    for split, label, index in entries:
        net = random_siren(layout, gen)
        write_fmnist_inr(root, split, index, net.state_dict(), label)
        nets[(split, index)] = net
    return nets


def write_index_csv(path: Path, order: Sequence[int]) -> None:
    """NFN's index file: one row index per line, no header."""
    path.write_text("".join(f"{int(i)}\n" for i in order))


def cnn_layout_rows(layout: Sequence[int], kernel: int = 3) -> list[tuple[str, tuple[int, ...]]]:
    """(TF variable name, TF shape) per tensor: conv kernel, bias, ..., dense kernel, bias."""
    rows = []
    n_conv = len(layout) - 2
    for i in range(n_conv):
        name = "conv2d" if i == 0 else f"conv2d_{i}"
        rows.append((f"sequential/{name}/kernel:0", (kernel, kernel, layout[i], layout[i + 1])))
        rows.append((f"sequential/{name}/bias:0", (layout[i + 1],)))
    rows.append(("sequential/dense/kernel:0", (layout[-2], layout[-1])))
    rows.append(("sequential/dense/bias:0", (layout[-1],)))
    return rows


def write_layout_csv(path: Path, rows: Sequence[tuple[str, tuple[int, ...]]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["varname", "start_idx", "end_idx", "shape"])
        start = 0
        for name, shape in rows:
            end = start + math.prod(shape)
            w.writerow([name, start, end, str(shape)])
            start = end


def write_metrics_csv(path: Path, columns: dict[str, Sequence]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        names = list(columns)
        w.writerow(["", *names])  # pandas-style unnamed index column
        for i, values in enumerate(zip(*columns.values(), strict=True)):
            w.writerow([i, *values])


def make_cnn_zoo(
    directory: Path,
    *,
    layout: Sequence[int] = DEFAULT_CNN_LAYOUT,
    steps: Sequence[int] = (0, 86, 86, 40, 86, 86, 86, 0),
    activations: Sequence[str] = ("relu", "relu", "tanh", "relu", "relu", "tanh", "relu", "tanh"),
    gz: bool = True,
    train_accuracy: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """weights.npy, metrics.csv[.gz] and layout.csv; returns the TF-order weights [R, P]."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = cnn_layout_rows(layout)
    n_params = sum(math.prod(s) for _, s in rows)
    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 0.5, size=(len(steps), n_params)).astype(np.float32)
    np.save(directory / "weights.npy", weights)
    write_layout_csv(directory / "layout.csv", rows)
    columns: dict[str, Sequence] = {
        "step": list(steps),
        "test_accuracy": np.round(rng.uniform(0.1, 0.6, len(steps)), 4).tolist(),
        "config.activation": list(activations),
        "config.w_init": ["he_normal"] * len(steps),
    }
    if train_accuracy:
        columns["train_accuracy"] = np.round(rng.uniform(0.1, 0.7, len(steps)), 4).tolist()
    write_metrics_csv(directory / ("metrics.csv.gz" if gz else "metrics.csv"), columns)
    return weights


def tf_forward(
    flat: np.ndarray,
    rows: Sequence[tuple[str, tuple[int, ...]]],
    images_nhwc: np.ndarray,
    activation: str,
    stride: int = 2,
) -> np.ndarray:
    """A TF-convention forward pass of one zoo row: NHWC images, HWIO kernels, VALID padding,
    stride ``stride``, activation, mean over H and W, dense (in, out) kernel. float64."""
    act = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh}[activation]
    tensors, start = [], 0
    for _, shape in rows:
        size = math.prod(shape)
        tensors.append(flat[start : start + size].astype(np.float64).reshape(shape))
        start += size
    h = images_nhwc.astype(np.float64)
    for kernel, bias in zip(tensors[0:-2:2], tensors[1:-2:2], strict=True):
        k = kernel.shape[0]
        windows = np.lib.stride_tricks.sliding_window_view(h, (k, k), axis=(1, 2))
        windows = windows[:, ::stride, ::stride]  # [N, H', W', C_in, kh, kw]
        h = act(np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias)
    pooled = h.mean(axis=(1, 2))
    return pooled @ tensors[-2] + tensors[-1]
