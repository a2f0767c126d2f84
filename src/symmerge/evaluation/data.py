"""What a network is evaluated on, and where that is recorded.

* Classifiers (CNNs, MLPs; ``kind="classifier"``): the held-out labelled images of an image
  source (:func:`symmerge.zoo.images.held_out_indices`: the seeded split the CNN zoo
  builder uses, 20% held out with seed 0 unless the zoo records other values, or the
  source's published test set when it has one and nothing else is recorded), after an
  input transform (``none``: pixels in [0, 1]; ``x * 2 - 1``: pixels in [-1, 1], what
  the CNN zoos' networks take). MLPs see the images flattened.
* INRs (``kind="inr"``): one image of a source (its row ``image``), the one the INR fits.

A zoo network (``ZOO:index``) brings its own: the zoo's source, split and input
transform, or the image its ``image_index`` names. A network file that ``symmerge merge``
wrote records the data its quality was measured on (its ``quality`` metadata entry).
Anything else needs a source (``data``), and an INR the image (``image``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from symmerge.data import load_images
from symmerge.data.images import ImageSet
from symmerge.errors import SymmergeError
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec, WeightSpaceSpec
from symmerge.utils.io import safetensors_metadata
from symmerge.zoo.images import (
    INPUT_TRANSFORMS,
    ground_truth,
    held_out_indices,
    held_out_rule,
    image_targets,
    zoo_data_source,
)
from symmerge.zoo.io import load_zoo

if TYPE_CHECKING:
    from symmerge.merge.io import Network

KINDS = ("classifier", "inr")
#: the metadata entry of a network file that holds its measured quality and data
QUALITY_KEY = "quality"


class NoEvalData(SymmergeError):
    """Nothing says what a network is to be evaluated on (no zoo, no record, no source)."""


def network_kind(spec: WeightSpaceSpec) -> str:
    """``inr`` for SIRENs, ``classifier`` for CNNs and MLPs."""
    if isinstance(spec, SirenSpec):
        return "inr"
    if isinstance(spec, CNNSpec | MLPSpec):
        return "classifier"
    raise NoEvalData(f"cannot evaluate {spec.describe()}: no known kind of network")


def input_transform_name(text: str) -> str:
    """The input transform ``text`` names (spaces ignored: ``x*2-1`` is ``x * 2 - 1``)."""
    names = {name.replace(" ", ""): name for name in INPUT_TRANSFORMS}
    found = names.get(text.replace(" ", ""))
    if found is None:
        raise SymmergeError(f"input_transform must be one of {', '.join(names)}; got {text!r}")
    return found


@dataclass(frozen=True)
class DataSettings:
    """Evaluation data in full, as stored with a merged network (:meth:`to_dict`):
    ``kind``, image ``source``; classifiers: the recorded split (``test_fraction``,
    ``split_seed``; None: :func:`~symmerge.zoo.images.held_out_indices`' defaults) and
    ``input_transform``; INRs: the ``image`` row. ``assumed``: the source was assumed
    (the zoo names none)."""

    kind: str
    source: str
    test_fraction: float | None = None
    split_seed: int | None = None
    input_transform: str = "none"
    image: int | None = None
    assumed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SymmergeError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not isinstance(self.source, str) or not self.source:
            raise SymmergeError(f"data source must be a non-empty string, got {self.source!r}")
        if self.input_transform not in INPUT_TRANSFORMS:
            raise SymmergeError(f"input_transform must be one of {', '.join(INPUT_TRANSFORMS)};"
                                f" got {self.input_transform!r}")
        if self.test_fraction is not None and not (
                isinstance(self.test_fraction, int | float) and 0 < self.test_fraction < 1):
            raise SymmergeError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")
        for name in ("split_seed", "image"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise SymmergeError(f"{name} must be a non-negative integer, got {value!r}")
        if self.kind == "inr" and self.image is None:
            raise NoEvalData("an INR is evaluated against one image: pass image=N (its row "
                             f"in {self.source})", params=("image",))
        if self.kind == "classifier" and self.image is not None:
            raise SymmergeError("image is for INRs; a classifier is evaluated on held-out "
                                "images", params=("image",))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> DataSettings:
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        if not isinstance(d, Mapping) or set(d) - names or required - set(d):
            raise SymmergeError(f"evaluation data must be an object with keys among "
                                f"{', '.join(f.name for f in fields(cls))} (required: "
                                f"{', '.join(sorted(required))}); got {d!r}")
        return cls(**d)


@dataclass(frozen=True)
class EvalData:
    """Loaded evaluation data: classifiers: network ``inputs [N, ...]`` (as their
    ``spec.forward`` takes them) and ``labels [N]``; INRs: the target image ``inputs
    [R, R]`` (``[R, R, C]``), ``labels`` None. On the CPU; ``description`` says what
    they are in words."""

    settings: DataSettings
    inputs: Tensor
    labels: Tensor | None
    description: str

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def examples(self) -> int:
        """Images (classifiers) or pixel values (INRs) evaluated."""
        return int(self.labels.numel()) if self.labels is not None else int(self.inputs.numel())


def _classifier_inputs(spec: WeightSpaceSpec, x: Tensor, source: str) -> Tensor:
    """Images ``[N, C, H, W]`` shaped as the classifier takes them (checked)."""
    if isinstance(spec, MLPSpec):
        x = x.flatten(1)
        if x.shape[1] != spec.layout[0]:
            raise SymmergeError(f"{source!r} images flatten to {x.shape[1]} values, the MLP "
                                f"takes {spec.layout[0]} inputs")
        return x
    assert isinstance(spec, CNNSpec)
    if x.shape[1] != spec.layout[0]:
        raise SymmergeError(f"{source!r} images have {x.shape[1]} channels, the CNN takes "
                            f"{spec.layout[0]}")
    if min(x.shape[-2:]) < spec.min_input_size():
        raise SymmergeError(f"{source!r} images of {tuple(x.shape[-2:])} pixels are too small "
                            f"for {spec.describe()}")
    return x


def load_eval_data(settings: DataSettings, spec: WeightSpaceSpec) -> EvalData:
    """The data ``settings`` describe, loaded and checked against the networks' ``spec``."""
    kind = network_kind(spec)
    if settings.kind != kind:
        raise SymmergeError(f"evaluation data for a {settings.kind} given to {spec.describe()}")
    images = load_images(settings.source)
    assumed = " (assumed: the zoo names no data)" if settings.assumed else ""
    if kind == "inr":
        assert settings.image is not None  # DataSettings requires it
        if settings.image >= len(images):
            raise SymmergeError(f"image {settings.image} is out of range for data source "
                                f"{settings.source!r} ({len(images)} images)", params=("image",))
        target = image_targets(images, torch.tensor([settings.image], device="cpu"),
                               spec.layout[-1])[0]
        return EvalData(settings, target, None, f"image {settings.image} of {settings.source}"
                        f"{assumed} ({target.shape[0]}x{target.shape[1]} pixels)")
    return _classifier_data(settings, spec, images, held_out=True)


def training_data(settings: DataSettings, spec: WeightSpaceSpec) -> EvalData:
    """The other side of a classifier's evaluation data (:func:`load_eval_data`): the
    images of the same source and split that are *not* held out (those the networks could
    train on), in the same input transform and shape; for measuring activations (REPAIR)
    without touching the evaluation images."""
    if network_kind(spec) != "classifier" or settings.kind != "classifier":
        raise SymmergeError(f"training images are for classifiers (CNNs, MLPs), not "
                            f"{spec.describe()}")
    return _classifier_data(settings, spec, load_images(settings.source), held_out=False)


def _classifier_data(settings: DataSettings, spec: WeightSpaceSpec, images: ImageSet, *,
                     held_out: bool) -> EvalData:
    """The held-out (or the training) images of ``settings``' split, checked."""
    train, test, how = held_out_indices(images, settings.test_fraction, settings.split_seed)
    idx, side = (test, "held-out") if held_out else (train, "training")
    if idx.numel() == 0:
        raise SymmergeError(f"{settings.source!r} has no {side} images")
    x = INPUT_TRANSFORMS[settings.input_transform](images.images[idx])
    labels = images.labels[idx]
    classes = spec.layout[-1]
    if int(labels.max()) >= classes:
        raise SymmergeError(f"{settings.source!r} has labels up to {int(labels.max())}, the "
                            f"network has {classes} outputs")
    assumed = " (assumed: the zoo names no data)" if settings.assumed else ""
    return EvalData(settings, _classifier_inputs(spec, x, settings.source), labels,
                    f"{idx.numel()} {side} images of {settings.source}{assumed} ({how}, "
                    f"input transform {settings.input_transform})")


def _zoo_reference(source: str) -> tuple[Path, int] | None:
    """``(zoo, index)`` of a loaded network's ``ZOO:index`` source (read as
    :func:`~symmerge.merge.io.split_zoo_ref` reads it; ``load_network`` has checked the
    index); None for a file."""
    from symmerge.merge.io import split_zoo_ref

    ref = split_zoo_ref(source)
    return None if ref is None else (ref[0], int(ref[1]))


def stored_settings(path: str | Path) -> DataSettings | None:
    """The evaluation data a network file records (``symmerge merge`` writes it with the
    merged network's quality), or None."""
    meta = safetensors_metadata(path)
    if not meta or QUALITY_KEY not in meta:
        return None
    try:
        return DataSettings.from_dict(json.loads(meta[QUALITY_KEY]).get("data"))
    except (json.JSONDecodeError, AttributeError, SymmergeError) as exc:
        raise SymmergeError(f"{path}: unreadable {QUALITY_KEY!r} metadata entry: {exc}") from exc


def evaluation_data(network: Network, data: str | None = None, *,
                    input_transform: str | None = None, image: int | None = None) -> EvalData:
    """What ``network`` (:func:`~symmerge.merge.load_network`'s result) is evaluated on.

    A zoo network: its zoo's data (``data`` replaces the zoo's source, keeping its split;
    an INR's image comes from the zoo's ``image_index`` unless ``image`` is given). A file
    with a recorded evaluation (a merge's output): that, with the given ``data``,
    ``input_transform`` and ``image`` in place of the recorded ones. Any other file:
    ``data`` with the default split and ``input_transform`` (default ``none``), and for an
    INR ``image``. Raises :class:`NoEvalData` when nothing names the data, and, without
    ``data``, when the data the network's zoo or file names cannot be found or used.
    """
    try:
        return _evaluation_data(network, data, input_transform, image)
    except NoEvalData:
        raise
    except SymmergeError as exc:
        if data is not None:
            raise
        raise NoEvalData(str(exc), params=exc.params) from exc


def _evaluation_data(network: Network, data: str | None, input_transform: str | None,
                     image: int | None) -> EvalData:
    spec = network.spec
    kind = network_kind(spec)
    transform = None if input_transform is None else input_transform_name(input_transform)
    if kind == "classifier" and image is not None:
        raise SymmergeError("image is for INRs; a classifier is evaluated on held-out images",
                            params=("image",))
    if image is not None and (isinstance(image, bool) or image < 0):
        raise SymmergeError(f"image must be a non-negative integer, got {image!r}")
    ref = _zoo_reference(network.source)
    if ref is not None:
        zoo = load_zoo(ref[0])
        if kind == "classifier":
            try:
                rule = held_out_rule(zoo, data)
            except SymmergeError as exc:  # an imported zoo that names no images
                if "images" not in exc.params:
                    raise
                raise NoEvalData(f"{zoo.name} names no evaluation images: pass "
                                 "data=SOURCE (cifar10-gs:DIR for the Small CNN Zoo)",
                                 params=("data",)) from exc
            settings = DataSettings(kind, rule.source, rule.test_fraction, rule.split_seed,
                                    transform or rule.input_transform, assumed=rule.assumed)
        elif image is not None:
            source, assumed = zoo_data_source(zoo, data)
            settings = DataSettings(kind, source, image=image, assumed=assumed)
        else:
            gt = ground_truth(zoo, torch.tensor([ref[1]], device="cpu"), data)
            settings = DataSettings(kind, gt.source, image=int(gt.index[0]), assumed=gt.assumed)
        return load_eval_data(settings, spec)
    stored = stored_settings(network.source)
    if stored is not None:
        settings = replace(stored, source=data or stored.source,
                           input_transform=transform or stored.input_transform,
                           image=stored.image if image is None else image,
                           assumed=stored.assumed and not data)
    elif data:
        settings = DataSettings(kind, data, input_transform=transform or "none", image=image)
    else:
        raise NoEvalData(f"{network.source} records no evaluation data: pass data=SOURCE",
                         params=("data",))
    return load_eval_data(settings, spec)


def merge_evaluation_data(networks: Sequence[Network], data: str | None = None) -> EvalData:
    """One evaluation data for a merge's input ``networks`` and its output: the first
    input's that has any (:func:`evaluation_data`, with ``data``). INRs fitted to
    different images have none in common; raises :class:`NoEvalData` when none is found."""
    found: list[EvalData] = []
    missing: list[str] = []
    for net in networks:
        try:
            found.append(evaluation_data(net, data))
        except NoEvalData as exc:
            missing.append(str(exc))
    if not found:
        raise NoEvalData(missing[0] if len(set(missing)) == 1 else
                         "no input records evaluation data: pass data=SOURCE", params=("data",))
    first = found[0]
    if first.kind == "inr" and any(d.settings.image != first.settings.image for d in found):
        images = sorted({d.settings.image for d in found if d.settings.image is not None})
        raise NoEvalData(f"the INRs fit different images ({', '.join(map(str, images))}): the "
                         "merged network has no one image to be measured against")
    return first
