"""The devices the suite runs on, PyTorch Geometric style: the CPU always, CUDA when torch
sees a GPU. Tests take the ``device`` fixture (``tests/conftest.py``); CPU CI runs their
CPU half, the same suite on a GPU machine runs the CUDA half too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

#: ``cpu``, plus ``cuda`` where torch sees a GPU
DEVICES: list[str] = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def tensors(obj: Any) -> Iterator[Tensor]:
    """Every tensor in ``obj``: a tensor, or (nested) tuples, lists, dicts and dataclass-like
    objects' attributes of tensors."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors(item)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from tensors(getattr(obj, name))


def on(t: Tensor, device: torch.device | str) -> bool:
    """Whether ``t`` lives on ``device`` (``cuda`` matches any ``cuda:N``)."""
    device = torch.device(device)
    return t.device.type == device.type and device.index in (None, t.device.index)


def assert_on(obj: Any, device: torch.device | str) -> None:
    """Every tensor in ``obj`` lives on ``device``."""
    found = list(tensors(obj))
    assert found, "no tensors to check"
    wrong = sorted({str(t.device) for t in found if not on(t, device)})
    assert not wrong, f"tensors on {wrong}, expected {device}"
