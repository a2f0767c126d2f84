"""Which images a zoo's networks were trained or evaluated on, recovered from its
provenance: the held-out images of a CNN zoo (:func:`held_out_images`, by the split rule
of :func:`held_out_indices`) and the image each INR was fitted to (:func:`ground_truth`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from symmerge.data import load_images
from symmerge.data.images import ImageSet
from symmerge.errors import SymmergeError
from symmerge.utils.seed import sample_rows
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


def held_out_indices(data: ImageSet, test_fraction: float | None = None,
                     split_seed: int | None = None) -> tuple[Tensor, Tensor, str]:
    """``(train, held-out, how)``: index tensors of ``data`` and how they were chosen.

    The CNN zoo builder's seeded split (:meth:`ImageSet.split`) when ``test_fraction`` or
    ``split_seed`` is given (the other takes its default, 0.2 or 0) or when ``data`` has no
    published test set; else that published test set.
    """
    if test_fraction is not None or split_seed is not None or data.num_train is None:
        frac = float(test_fraction if test_fraction is not None else 0.2)
        seed = int(split_seed if split_seed is not None else 0)
        train_idx, idx = data.split(frac, seed=seed)
        return train_idx, idx, f"seeded split (test_fraction {frac:g}, seed {seed})"
    return (torch.arange(data.num_train), torch.arange(data.num_train, len(data)),
            "published test set")


@dataclass(frozen=True)
class HeldOutRule:
    """How a CNN zoo's held-out images are chosen (:func:`held_out_rule`): the image
    ``source`` (``assumed`` when the zoo names none), the recorded ``test_fraction`` and
    ``split_seed`` of :func:`held_out_indices` (None: not recorded) and the networks'
    ``input_transform`` (a key of :data:`INPUT_TRANSFORMS`)."""

    source: str
    test_fraction: float | None
    split_seed: int | None
    input_transform: str
    assumed: bool = False


def held_out_rule(zoo: Zoo, images: str | None = None) -> HeldOutRule:
    """The held-out rule of ``zoo`` from its provenance (``images`` replaces its source).

    Source: ``images``, else the zoo provenance's ``data`` (or ``data_source``),
    else ``mnist-embedded`` (flagged as assumed); imported Small-CNN-Zoo files
    need ``images`` explicitly. Split: ``test_fraction`` / ``split_seed`` as the
    provenance or its ``config`` records them.
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
    recorded = {k: prov.get(k, cfg.get(k)) for k in ("test_fraction", "split_seed")}
    return HeldOutRule(str(source), recorded["test_fraction"], recorded["split_seed"],
                       _input_transform(zoo), assumed)


def held_out_images(zoo: Zoo, images: str | None = None, limit: int | None = None) -> HeldOut:
    """Images the zoo's CNNs did not train on, by :func:`held_out_rule`.

    Split: the zoo builder's seeded split if recorded, else the source's published test
    set, else :meth:`ImageSet.split` with its defaults (:func:`held_out_indices`). With a
    ``limit``, a fixed random sample of that many held-out images is used (seed 0, kept in
    index order): sources may be sorted by class, and the first images alone would miss
    classes. Images go through the provenance's ``input_transform`` (e.g. ``x * 2 - 1``).
    """
    rule = held_out_rule(zoo, images)
    source = rule.source
    data = load_images(source)
    train_idx, idx, how = held_out_indices(data, rule.test_fraction, rule.split_seed)
    if limit is not None:
        if limit < 1:
            raise SymmergeError(f"need at least one evaluation image, got {limit}")
        idx = sample_rows(idx, limit, seed=0)
    if idx.numel() == 0:
        raise SymmergeError(f"{source!r} has no held-out images")
    transform = INPUT_TRANSFORMS[rule.input_transform]
    x = transform(data.images[idx])
    in_c = zoo.spec.layout[0]
    if x.shape[1] != in_c:
        raise SymmergeError(f"{source!r} images have {x.shape[1]} channels, the CNNs take {in_c}")
    how += f", input transform {rule.input_transform}"
    return HeldOut(x, data.labels[idx], source, rule.assumed, how,
                   transform(data.images[train_idx]))




# ------------------------------------------------------------ INR ground truth
@dataclass(frozen=True)
class GroundTruth:
    """Images ``[n, R, R]`` (``[n, R, R, C]`` for C channels), their rows ``index [n]`` in
    the source they came from, and whether that source was assumed (the zoo's provenance
    names none)."""

    images: Tensor
    source: str
    assumed: bool
    index: Tensor


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


def image_targets(images: ImageSet, index: Tensor, outputs: int) -> Tensor:
    """Rows ``index`` of ``images`` as INR targets ``[n, R, R]`` (``[n, R, R, C]`` for
    ``outputs`` = C > 1 channels), checked: indices in range, as many channels as the
    INRs output, square images."""
    source = images.name
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(images)):
        bad = int(index.max()) if int(index.max()) >= len(images) else int(index.min())
        raise SymmergeError(f"image_index {bad} is out of range for data source {source!r} "
                            f"({len(images)} images)")
    x = images.images[index]
    if x.shape[1] != outputs:
        raise SymmergeError(f"{source!r} images have {x.shape[1]} channels, the INRs output "
                            f"{outputs}")
    if x.shape[-1] != x.shape[-2]:
        raise SymmergeError(f"INRs need square images, got {tuple(x.shape[-2:])}")
    x = x[:, 0] if outputs == 1 else x.permute(0, 2, 3, 1)
    return x.contiguous()


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
    return GroundTruth(image_targets(images, idx, zoo.spec.layout[-1]), source, assumed, idx)
