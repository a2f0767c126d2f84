"""Which images a CNN zoo was trained and evaluated on, recovered from its provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from symmerge.data import load_images
from symmerge.errors import SymmergeError
from symmerge.zoo.io import Zoo

#: Input transforms a zoo's provenance may record (``input_transform``).
INPUT_TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda x: x,
    "x * 2 - 1": lambda x: x * 2.0 - 1.0,
}


def _input_transform(zoo: Zoo) -> str:
    name = str(zoo.provenance.get("input_transform") or "none")
    if name not in INPUT_TRANSFORMS:
        raise SymmergeError(
            f"{zoo.name} records the unknown input transform {name!r}; known: "
            f"{', '.join(INPUT_TRANSFORMS)}"
        )
    return name


@dataclass(frozen=True)
class HeldOut:
    """Held-out evaluation images ``[n, C, H, W]`` with labels, how they were chosen, and
    the complementary training images (the ones the zoo's CNNs could train on)."""

    images: Tensor
    labels: Tensor
    source: str
    assumed: bool
    how: str
    train_images: Tensor


def held_out_images(zoo: Zoo, images: str | None = None, limit: int | None = None) -> HeldOut:
    """Images the zoo's CNNs did not train on.

    Source: ``images``, else the zoo provenance's ``data`` (or ``data_source``),
    else ``mnist-embedded`` (flagged as assumed); imported Small-CNN-Zoo files
    need ``images`` explicitly. Split: the zoo builder's seeded split
    (``test_fraction`` / ``split_seed`` in the provenance or its ``config``) if
    recorded, else the source's published test set, else :meth:`ImageSet.split`
    with its defaults. The first ``limit`` held-out images (in index order) are
    used, after the provenance's ``input_transform`` (e.g. ``x * 2 - 1``).
    """
    prov = zoo.provenance
    cfg = prov.get("config") if isinstance(prov.get("config"), dict) else {}
    source = images or prov.get("data") or prov.get("data_source")
    assumed = False
    if not source:
        if prov.get("importer") == "cnn-zoo":
            raise SymmergeError(
                f"{zoo.name} was imported from the Small CNN Zoo: pass the evaluation images "
                "explicitly (images='cifar10-gs:DIR')", params=("images",)
            )
        source, assumed = "mnist-embedded", True
    data = load_images(str(source))
    recorded = {k: prov.get(k, cfg.get(k)) for k in ("test_fraction", "split_seed")}
    if any(v is not None for v in recorded.values()) or data.num_train is None:
        frac = float(recorded["test_fraction"] if recorded["test_fraction"] is not None else 0.2)
        seed = int(recorded["split_seed"] if recorded["split_seed"] is not None else 0)
        train_idx, idx = data.split(frac, seed=seed)
        how = f"seeded split (test_fraction {frac:g}, seed {seed})"
    else:
        train_idx, idx = torch.arange(data.num_train), torch.arange(data.num_train, len(data))
        how = "published test set"
    if limit is not None:
        if limit < 1:
            raise SymmergeError(f"need at least one evaluation image, got {limit}")
        idx = idx[:limit]
    if idx.numel() == 0:
        raise SymmergeError(f"{source!r} has no held-out images")
    transform = INPUT_TRANSFORMS[_input_transform(zoo)]
    x = transform(data.images[idx])
    in_c = zoo.spec.layout[0]
    if x.shape[1] != in_c:
        raise SymmergeError(f"{source!r} images have {x.shape[1]} channels, the CNNs take {in_c}")
    how += f", input transform {_input_transform(zoo)}"
    return HeldOut(x, data.labels[idx], str(source), assumed, how,
                   transform(data.images[train_idx]))


