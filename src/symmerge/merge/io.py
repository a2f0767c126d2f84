"""Reading and writing single networks for merging.

Inputs are state dicts (``.pth`` / ``.pt``, read with ``torch.load(weights_only=True)``),
safetensors state dicts (the spec JSON in the metadata, as :func:`save_network`
writes them) or ``ZOO:index`` (one network of a zoo file). Outputs are
safetensors state dicts whose metadata holds the spec, so that
:func:`load_module` rebuilds a ready ``nn.Module``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.specs import SirenSpec, WeightSpaceSpec, spec_from_json
from symmerge.specs.siren import siren_layout
from symmerge.utils.io import (
    load_weights_only,
    read_text,
    require_finite,
    safetensors_metadata,
    save_safetensors,
)
from symmerge.zoo.io import FORMAT as ZOO_FORMAT
from symmerge.zoo.io import load_zoo

NETWORK_FORMAT = "symmerge-network/1"


@dataclass(frozen=True)
class Network:
    """One network: its spec, flat parameters ``[P]`` and where it came from."""

    spec: WeightSpaceSpec
    params: Tensor
    source: str
    #: True when the file held no architecture and the spec was inferred (a SIREN)
    inferred: bool = False


def parse_spec(text: str) -> WeightSpaceSpec:
    """A spec from JSON text, a ``.json`` file, a zoo file or a saved network file."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return spec_from_json(stripped)
    path = Path(text)
    if not path.is_file():
        raise SymmergeError(
            f"spec must be architecture JSON, a .json file or a zoo file; got {text!r}"
        )
    if path.suffix == ".json":
        text = read_text(path, "spec file")
    else:
        meta = _safetensors_metadata(path)
        if meta is None or "spec" not in meta:
            raise SymmergeError(f"{path} holds no architecture spec")
        text = meta["spec"]
    try:
        return spec_from_json(text)
    except SymmergeError as exc:
        raise SymmergeError(f"{path}: {exc}") from exc


def infer_spec(state_dict: Mapping[str, Tensor]) -> WeightSpaceSpec:
    """Infer a SIREN spec (default w0 and output offset) from ``seq.i`` dense layers.

    Anything else (convolutions, other key names) needs an explicit spec.
    """
    try:
        return SirenSpec(layout=siren_layout(state_dict))
    except SymmergeError as exc:
        raise SymmergeError(
            f"cannot infer the architecture ({exc}); only dense SIRENs are inferred: pass "
            "spec (the architecture: JSON, a .json file or a zoo of the same one)",
            params=("spec",),
        ) from exc


def _safetensors_metadata(path: Path) -> dict[str, str] | None:
    return safetensors_metadata(path)


def _unwrap(obj: Any, source: str) -> dict[str, Tensor]:
    """A flat ``{name: tensor}`` state dict from a loaded ``.pth`` object."""
    if isinstance(obj, Mapping) and not all(isinstance(v, Tensor) for v in obj.values()):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                return _unwrap(obj[key], source)
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(v, Tensor) for v in obj.values()
    ):
        raise SymmergeError(f"{source} does not hold a state dict of tensors")
    return {str(k): v for k, v in obj.items()}


def _split_zoo_ref(source: str) -> tuple[Path, int] | None:
    head, sep, tail = source.rpartition(":")
    if not sep or not re.fullmatch(r"-?\d+", tail) or Path(source).exists():
        return None
    return Path(head), int(tail)


def load_network(source: str | os.PathLike[str], spec: WeightSpaceSpec | None = None) -> Network:
    """Load ``FILE.pth``, ``FILE.safetensors`` or ``ZOO:index``.

    The architecture comes from the file (zoo or network metadata), else from
    ``spec``, else it is inferred (SIRENs only). A given ``spec`` must agree
    with the file's own.
    """
    source = str(source)
    ref = _split_zoo_ref(source)
    if ref is not None:
        zoo_path, index = ref
        zoo = load_zoo(zoo_path)
        if not -len(zoo) <= index < len(zoo):
            raise SymmergeError(f"{source}: index {index} out of range for a zoo of {len(zoo)}")
        _check_same(spec, zoo.spec, source)
        params = zoo.get_params([index])[0].float()
        require_finite(params, f"network {source}")
        return Network(zoo.spec, params, source)

    path = Path(source)
    if not path.is_file():
        raise SymmergeError(
            f"network file not found: {path} (use FILE.pth, FILE.safetensors or ZOO:index)"
        )
    meta = _safetensors_metadata(path)
    if meta is None and path.suffix == ".safetensors":
        raise SymmergeError(f"cannot read {path}: not a valid safetensors file")
    if meta is not None:
        if meta.get("format") == ZOO_FORMAT:
            raise SymmergeError(f"{path} is a zoo; pick one network with {path}:INDEX")
        from safetensors.torch import load_file

        state = load_file(str(path))
        try:
            file_spec = spec_from_json(meta["spec"]) if "spec" in meta else None
        except SymmergeError as exc:
            raise SymmergeError(f"{path}: {exc}") from exc
    else:
        state = _unwrap(load_weights_only(path, "state dict"), str(path))
        file_spec = None
    if file_spec is not None:
        _check_same(spec, file_spec, source)
    try:
        use = file_spec or spec or infer_spec(state)
    except SymmergeError as exc:
        raise SymmergeError(f"{source}: {exc}") from exc
    try:
        params = use.from_state_dict(state).float()
    except SymmergeError as exc:
        raise SymmergeError(f"{source}: {exc}") from exc
    require_finite(params, f"network {source}")  # float64 beyond float32's range too
    return Network(use, params, source, inferred=file_spec is None and spec is None)


def _check_same(given: WeightSpaceSpec | None, found: WeightSpaceSpec, source: str) -> None:
    if given is not None and given != found:
        raise SymmergeError(
            f"{source} holds {found.describe()}, but the spec given is {given.describe()}"
        )


def load_networks(
    sources: Sequence[str | os.PathLike[str]], spec: WeightSpaceSpec | None = None
) -> tuple[WeightSpaceSpec, Tensor]:
    """Load several networks of one architecture; returns the spec and ``[N, P]``."""
    if not sources:
        raise SymmergeError("no networks given")
    return stack_networks([load_network(s, spec) for s in sources])


def stack_networks(nets: Sequence[Network]) -> tuple[WeightSpaceSpec, Tensor]:
    """The common spec and ``[N, P]`` of loaded networks; differing architectures raise."""
    if not nets:
        raise SymmergeError("no networks given")
    first = nets[0].spec
    for net in nets[1:]:
        if net.spec != first:
            raise SymmergeError(
                f"architectures differ: {nets[0].source} is {first.describe()}, "
                f"{net.source} is {net.spec.describe()}"
            )
    return first, torch.stack([n.params for n in nets])


def save_network(
    path: str | os.PathLike[str],
    spec: WeightSpaceSpec,
    params: Tensor,
    provenance: Mapping[str, Any] | None = None,
    quality: Mapping[str, Any] | None = None,
) -> Path:
    """Write one network ``[P]`` as a safetensors state dict with the spec in its metadata
    (through :func:`save_safetensors`, whose atomic write refuses a directory); ``quality``
    (a merge's :meth:`~symmerge.evaluation.MergeQuality.to_dict`) goes in with it."""
    spec.check_params(params)
    state = {k: v.detach().float().contiguous() for k, v in spec.to_state_dict(params).items()}
    meta = {"format": NETWORK_FORMAT, "spec": spec.to_json(),
            "provenance": json.dumps(dict(provenance or {}), default=str, sort_keys=True)}
    if quality is not None:
        meta["quality"] = json.dumps(dict(quality), sort_keys=True)
    save_safetensors(path, state, meta)
    return Path(path)


def load_module(path: str | os.PathLike[str]) -> nn.Module:
    """An ``nn.Module`` loaded with a network written by :func:`save_network`."""
    net = load_network(path)
    return net.spec.module(net.params)
