"""Ground-truth images of INR zoo members (by ``image_index`` into the zoo's data source)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from symmerge.data import load_images
from symmerge.errors import SymmergeError
from symmerge.zoo import Zoo


@dataclass(frozen=True)
class GroundTruth:
    """Images ``[n, R, R]`` (``[n, R, R, C]`` for C channels), the source they came
    from and whether that source was assumed (the zoo's provenance names none)."""

    images: Tensor
    source: str
    assumed: bool


def named_data_source(zoo: Zoo, data: str | None = None) -> str | None:
    """``data`` if given, else the image source the zoo's provenance names, else None."""
    if data:
        return data
    named = zoo.provenance.get("data")
    return str(named) if named else None


def zoo_data_source(zoo: Zoo, data: str | None = None) -> tuple[str, bool]:
    """The image source of an INR zoo: ``data`` if given, else its provenance's
    ``data``, else ``mnist-embedded`` (flagged as assumed). Zoos imported from
    DWSNets index the full MNIST and need ``data`` explicitly."""
    named = named_data_source(zoo, data)
    if named:
        return named, False
    if zoo.provenance.get("importer") == "dwsnets":
        raise SymmergeError(
            f"{zoo.name} was imported from DWSNets; its image indices refer to the full MNIST: "
            "pass the data source explicitly: data=mnist:DIR (the MNIST IDX files)",
            params=("data",),
        )
    return "mnist-embedded", True


def ground_truth(zoo: Zoo, indices: Tensor, data: str | None = None) -> GroundTruth:
    """The image each network ``indices`` was fitted to.

    Raises unless the zoo has ``image_index``, every index is in range, and the
    zoo's labels agree with the data source's labels (a wrong source is an
    error, never a silently wrong image).
    """
    if zoo.image_index is None:
        raise SymmergeError(
            f"{zoo.name} has no image_index, so the images its networks were fitted to are "
            "unknown; use an INR zoo built with `symmerge zoo inr` (or imported with indices)"
        )
    source, assumed = zoo_data_source(zoo, data)
    images = load_images(source)
    idx = zoo.image_index[indices].clone()
    if "is_test" in zoo.metric_names and images.num_train is not None:
        idx += (zoo.metric("is_test")[indices] > 0.5).long() * images.num_train
    if int(idx.min()) < 0 or int(idx.max()) >= len(images):
        raise SymmergeError(
            f"image_index {int(idx.max())} is out of range for data source {source!r} "
            f"({len(images)} images)"
        )
    labels = zoo.labels[indices]
    known = labels >= 0
    bad = known & (labels != images.labels[idx])
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise SymmergeError(
            f"network {int(indices[i])} has label {int(labels[i])}, but image {int(idx[i])} of "
            f"{source!r} has label {int(images.labels[idx[i]])}: wrong data source for this zoo "
            "(pass data=SOURCE)", params=("data",)
        )
    x = images.images[idx]
    out_dim = zoo.spec.layout[-1]
    if x.shape[1] != out_dim:
        raise SymmergeError(
            f"{source!r} images have {x.shape[1]} channels, the INRs output {out_dim}"
        )
    if x.shape[-1] != x.shape[-2]:
        raise SymmergeError(f"INR experiments need square images, got {tuple(x.shape[-2:])}")
    x = x[:, 0] if out_dim == 1 else x.permute(0, 2, 3, 1)
    return GroundTruth(x.contiguous(), source, assumed)
