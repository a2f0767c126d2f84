"""Reading and writing single networks for merging.

Inputs are state dicts (``.pth`` / ``.pt``, read with ``torch.load(weights_only=True)``),
safetensors state dicts (with the spec JSON in the metadata, as :func:`save_network`
writes them, or without: a user's own) or ``ZOO:index`` (one network of a zoo file).
A plain state dict's architecture is given (a spec), inferred from its ``nn.Sequential``
layers and :class:`~symmerge.merge.state_dicts.ArchitectureHints` (the activation, and
what else the weights do not show), or, without either, read as a SIREN of our own keys.
Its keys stay with the network (:attr:`Network.keys`), so that outputs can be written in
the user's layout.

Outputs are safetensors state dicts whose metadata holds the spec (and the user's keys,
if any), so that :func:`load_module` rebuilds a ready ``nn.Module``; or, for a ``.pth``
or ``.pt`` name, a plain torch state dict.
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
from symmerge.merge.state_dicts import (
    ArchitectureHints,
    StateKeys,
    infer_architecture,
    match_architecture,
)
from symmerge.specs import SirenSpec, WeightSpaceSpec, spec_from_json
from symmerge.specs.siren import siren_layout
from symmerge.utils.io import (
    atomic_path,
    load_weights_only,
    read_text,
    require_finite,
    safetensors_metadata,
    save_safetensors,
)
from symmerge.zoo.io import FORMAT as ZOO_FORMAT
from symmerge.zoo.io import load_zoo

NETWORK_FORMAT = "symmerge-network/1"
#: output names written as torch state dicts (anything else: safetensors)
TORCH_SUFFIXES = (".pth", ".pt")


@dataclass(frozen=True)
class Network:
    """One network: its spec, flat parameters ``[P]``, where it came from and, for a
    user's state dict, where its tensors live there (``keys``; None: a zoo network or our
    own layout)."""

    spec: WeightSpaceSpec
    params: Tensor
    source: str
    #: True when the file held no architecture, no spec or hints were given, and the spec
    #: was inferred (a SIREN)
    inferred: bool = False
    keys: StateKeys | None = None


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


def infer_spec(
    state_dict: Mapping[str, Tensor], hints: ArchitectureHints | None = None
) -> WeightSpaceSpec:
    """The architecture of a plain state dict: with ``hints``, an ``nn.Sequential`` MLP or
    CNN (:func:`~symmerge.merge.state_dicts.infer_architecture`); without, a SIREN
    (default w0 and output offset) of ``seq.i`` dense layers."""
    return _plain_architecture(state_dict, None, hints)[0]


def _plain_architecture(
    state: Mapping[str, Tensor], spec: WeightSpaceSpec | None,
    hints: ArchitectureHints | None,
) -> tuple[WeightSpaceSpec, StateKeys]:
    """The spec of a plain state dict (``spec`` if given, else inferred) and its keys."""
    if spec is not None:
        return spec, match_architecture(state, spec)
    if hints is not None:
        return infer_architecture(state, hints)
    try:
        siren = SirenSpec(layout=siren_layout(state))
    except SymmergeError as exc:
        raise SymmergeError(
            "cannot infer the architecture: a plain state dict does not say which "
            "nonlinearity it uses; pass activation (relu, tanh or sine) for an nn.Sequential "
            "MLP or CNN, or spec (the architecture: JSON, a .json file or a zoo of the same "
            "one)", params=("activation", "spec"),
        ) from exc
    return siren, StateKeys.of(siren, state)


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


def split_zoo_ref(source: str) -> tuple[Path, str] | None:
    """``(zoo, index text)`` of ``ZOO:INDEX`` (an existing zoo file, any index text; or an
    integer index); None for a file name."""
    head, sep, tail = source.rpartition(":")
    if not sep or Path(source).exists():
        return None
    if Path(head).is_file() or re.fullmatch(r"[+-]?\d+", tail.strip()):
        return Path(head), tail
    return None


def _zoo_index(source: str, text: str, size: int) -> int:
    """The index of ``ZOO:INDEX``: an integer in ``[0, size)``, else one clear error."""
    text = text.strip()
    if re.fullmatch(r"\d+", text) and int(text) < size:
        return int(text)
    what = (f"index {text} is out of range" if re.fullmatch(r"[+-]?\d+", text)
            else f"index {text!r} is not an integer")
    raise SymmergeError(f"{source}: {what}: the zoo holds {size} networks, pick one of 0 to "
                        f"{size - 1}")


def load_network(
    source: str | os.PathLike[str],
    spec: WeightSpaceSpec | None = None,
    hints: ArchitectureHints | None = None,
) -> Network:
    """Load ``FILE.pth``, ``FILE.safetensors`` or ``ZOO:index``.

    The architecture comes from the file (zoo or network metadata), else from ``spec``,
    else from the state dict's layers and ``hints`` (an ``nn.Sequential`` MLP or CNN),
    else it is inferred (SIRENs of our own keys only). A given ``spec`` must agree with
    the file's own; ``spec`` and ``hints`` exclude each other.
    """
    source = str(source)
    if spec is not None and hints is not None:
        raise SymmergeError("give either spec or the architecture hints (activation, w0, "
                            "stride, padding), not both",
                            params=("spec", "activation", "w0", "stride", "padding"))
    ref = split_zoo_ref(source)
    if ref is not None:
        zoo_path, text = ref
        zoo = load_zoo(zoo_path)
        index = _zoo_index(source, text, len(zoo))
        _check_same(spec, zoo.spec, source)
        _check_hints(hints, zoo.spec, source)
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
    file_spec = keys = None
    if meta is not None:
        if meta.get("format") == ZOO_FORMAT:
            raise SymmergeError(f"{path} is a zoo; pick one network with {path}:INDEX")
        from safetensors.torch import load_file

        state = load_file(str(path))
        try:
            file_spec = spec_from_json(meta["spec"]) if "spec" in meta else None
            keys = StateKeys.from_json(meta["state_keys"]) if "state_keys" in meta else None
        except SymmergeError as exc:
            raise SymmergeError(f"{path}: {exc}") from exc
    else:
        state = _unwrap(load_weights_only(path, "state dict"), str(path))
    if file_spec is not None:
        _check_same(spec, file_spec, source)
        _check_hints(hints, file_spec, source)
    try:
        if file_spec is not None:
            use = file_spec
            params = (keys.read(use, state) if keys is not None
                      else use.from_state_dict(state)).float()
        else:
            use, keys = _plain_architecture(state, spec, hints)
            params = keys.read(use, state).float()
    except SymmergeError as exc:
        raise SymmergeError(f"{source}: {exc}", params=exc.params) from exc
    require_finite(params, f"network {source}")  # float64 beyond float32's range too
    inferred = file_spec is None and spec is None and hints is None
    return Network(use, params, source, inferred=inferred, keys=keys)


def _check_hints(hints: ArchitectureHints | None, found: WeightSpaceSpec, source: str) -> None:
    """Hints given for a network that records its architecture must agree with it."""
    if hints is None:
        return
    act = getattr(found, "activation", None)
    if act is not None and hints.activation != act:
        raise SymmergeError(f"{source} holds {found.describe()}, but the activation given is "
                            f"{hints.activation}", params=("activation",))
    w0 = getattr(found, "w0", None)
    if hints.w0 is not None and w0 is not None and float(hints.w0) != float(w0):
        raise SymmergeError(f"{source} holds {found.describe()}, but the w0 given is "
                            f"{hints.w0:g}", params=("w0",))


def _check_same(given: WeightSpaceSpec | None, found: WeightSpaceSpec, source: str) -> None:
    if given is not None and given != found:
        raise SymmergeError(
            f"{source} holds {found.describe()}, but the spec given is {given.describe()}"
        )


def load_networks(
    sources: Sequence[str | os.PathLike[str]],
    spec: WeightSpaceSpec | None = None,
    hints: ArchitectureHints | None = None,
) -> tuple[WeightSpaceSpec, Tensor]:
    """Load several networks of one architecture; returns the spec and ``[N, P]``."""
    if not sources:
        raise SymmergeError("no networks given")
    return stack_networks([load_network(s, spec, hints) for s in sources])


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


def output_keys(nets: Sequence[Network]) -> StateKeys | None:
    """The layout to write a result of ``nets`` in: the first user state dict's keys
    (None: our own layout, when every input is a zoo network or one of our files)."""
    return next((n.keys for n in nets if n.keys is not None), None)


def save_network(
    path: str | os.PathLike[str],
    spec: WeightSpaceSpec,
    params: Tensor,
    provenance: Mapping[str, Any] | None = None,
    keys: StateKeys | None = None,
    quality: Mapping[str, Any] | None = None,
) -> Path:
    """Write one network ``[P]`` as a state dict, atomically (a directory is refused).

    ``keys`` (a user's layout, :attr:`Network.keys`): the user's keys and dtypes, so that
    ``module.load_state_dict`` takes the file on the user's own module; else our keys in
    float32. A ``.pth`` / ``.pt`` name gets a plain torch state dict, anything else a
    safetensors file with the spec (and ``keys``) in its metadata; ``quality`` (a merge's
    :meth:`~symmerge.evaluation.MergeQuality.to_dict`) goes into that metadata too (a torch
    state dict has no metadata: neither the spec nor ``quality`` is stored there, so
    reading it back needs the architecture: :func:`load_network`'s ``spec`` or ``hints``).
    """
    spec.check_params(params)
    if keys is not None:
        state = keys.write(spec, params)
    else:
        state = {k: v.detach().to("cpu", torch.float32).contiguous()
                 for k, v in spec.to_state_dict(params).items()}
    if Path(path).suffix.lower() in TORCH_SUFFIXES:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)
    meta = {"format": NETWORK_FORMAT, "spec": spec.to_json(),
            "provenance": json.dumps(dict(provenance or {}), default=str, sort_keys=True)}
    if quality is not None:
        meta["quality"] = json.dumps(dict(quality), sort_keys=True)
    if keys is not None:
        meta["state_keys"] = keys.to_json()
    save_safetensors(path, state, meta)
    return Path(path)


def load_module(
    path: str | os.PathLike[str],
    spec: WeightSpaceSpec | None = None,
    hints: ArchitectureHints | None = None,
) -> nn.Module:
    """An ``nn.Module`` loaded with a network written by :func:`save_network`. A
    safetensors file records its architecture; a ``.pth`` / ``.pt`` file does not, so
    for one that is not a SIREN give ``spec`` or ``hints`` (as :func:`load_network`:
    without them a plain state dict is read as a SIREN)."""
    net = load_network(path, spec, hints)
    return net.spec.module(net.params)
