"""Plain PyTorch state dicts: the architecture they hold and where their tensors live.

A state dict shows the layers' weights, not what lies between them. It is read as one
``nn.Sequential`` (or ``nn.ModuleList``): keys ``<prefix><index>.weight`` and
``<prefix><index>.bias`` under one common prefix (``""``, ``"net."``, ``"model.layers."``
...), layers ordered by index. Supported:

* MLPs: ``nn.Linear`` layers, the activation between them;
* CNNs: ``nn.Conv2d`` layers (square kernels, no groups), then global average pooling
  (which holds no weights: it is recognised by the first ``nn.Linear`` taking exactly the
  last convolution's channels), then ``nn.Linear`` layers.

What the weights cannot show comes from the user (:class:`ArchitectureHints`): the
activation (``relu``, ``tanh``, ``sine``), the sine frequency and the convolutions'
stride and padding. A layer without a bias reads as a zero bias; :meth:`StateKeys.write`
gives the user's keys, shapes and dtypes back (and refuses to drop a bias a merge made
non-zero).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec, WeightSpaceSpec
from symmerge.specs.base import ACTIVATIONS

#: what the supported layouts are, for error messages
SUPPORTED = ("supported: one nn.Sequential of Linear layers (an MLP), or of Conv2d layers, "
             "global average pooling and Linear layers (a CNN), with an activation between "
             "layers")
_KEY = re.compile(r"^(?P<prefix>(?:.+\.)?)(?P<index>\d+)\.(?P<name>[^.]+)$")
#: buffers of normalization layers
_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class ArchitectureHints:
    """What a plain state dict does not say: the hidden ``activation`` (``relu``, ``tanh``
    or ``sine``), the sine frequency ``w0`` (sine only; default: :class:`SirenSpec`'s) and
    the convolutions' ``stride`` and ``padding`` (CNNs only: one integer, or one per
    convolution; default 1 and 0, as ``nn.Conv2d``'s). Stride and padding matter wherever
    a CNN is run (evaluation, REPAIR's statistics), not for aligning its weights."""

    activation: str
    w0: float | None = None
    stride: int | tuple[int, ...] | None = None
    padding: int | tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise SymmergeError(f"activation must be one of {', '.join(ACTIVATIONS)}, got "
                                f"{self.activation!r}")
        if self.w0 is not None and self.activation != "sine":
            raise SymmergeError(f"w0 is the frequency of sine networks; the activation given "
                                f"is {self.activation}", params=("w0", "activation"))
        for name in ("stride", "padding"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))


@dataclass(frozen=True)
class StateKeys:
    """Where one network's tensors live in its user's state dict: ``keys[i]`` holds
    tensor ``i`` of the spec's flat order (:attr:`WeightSpaceSpec.param_shapes`: weight,
    bias, layer by layer), ``None`` for the bias of a layer without one (read as zeros);
    ``dtypes[i]`` is its dtype there. Shapes are the spec's (PyTorch's own)."""

    keys: tuple[str | None, ...]
    dtypes: tuple[torch.dtype, ...]

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.dtypes) or not self.keys:
            raise SymmergeError("state keys need one key and one dtype per tensor")
        if any(k is None for k in self.keys[0::2]):
            raise SymmergeError("every layer needs a weight key")
        named = [k for k in self.keys if k is not None]
        if len(set(named)) != len(named):
            raise SymmergeError(f"state keys repeat a key: {named}")

    def bias_free_layers(self) -> list[int]:
        """The layers (0-based) whose bias the user's layout lacks (read as zeros)."""
        return [i // 2 for i, k in enumerate(self.keys) if i % 2 and k is None]

    def check(self, spec: WeightSpaceSpec) -> None:
        """Refuse keys that do not hold ``spec``'s tensors (one per tensor)."""
        if len(self.keys) != len(spec.param_shapes):
            raise SymmergeError(f"{len(self.keys)} state keys for the "
                                f"{len(spec.param_shapes)} tensors of {spec.describe()}")

    def read(self, spec: WeightSpaceSpec, state: Mapping[str, Tensor]) -> Tensor:
        """The flat ``[P]`` parameters of ``spec`` from ``state`` (the user's state dict)."""
        self.check(spec)
        ours: dict[str, Tensor] = {}
        device = next(iter(state.values())).device if state else torch.device("cpu")
        for (name, shape), key in zip(spec.param_shapes, self.keys, strict=True):
            if key is None:
                ours[name] = torch.zeros(shape, dtype=torch.float32, device=device)
            elif key not in state:
                raise SymmergeError(f"state dict has no entry {key!r}")
            else:
                t = state[key]
                if t.is_complex():
                    raise SymmergeError(f"state dict entry {key!r} is {t.dtype} (complex); "
                                        "expected real weights")
                if tuple(t.shape) != shape:
                    raise SymmergeError(f"state dict entry {key!r} has shape "
                                        f"{tuple(t.shape)}, expected {shape}")
                ours[name] = t
        extra = sorted(set(state) - {k for k in self.keys if k is not None})
        if extra:
            raise SymmergeError(f"state dict entries {extra} belong to no layer of "
                                f"{spec.describe()}")
        return spec.from_state_dict(ours)

    def write(self, spec: WeightSpaceSpec, params: Tensor) -> dict[str, Tensor]:
        """The user's state dict of one network ``params [P]``: their keys, in their
        dtypes, on the CPU. A layer without a bias must have kept a zero bias."""
        self.check(spec)
        out = {}
        for (name, t), key, dtype in zip(spec.to_state_dict(params.detach()).items(),
                                         self.keys, self.dtypes, strict=True):
            if key is None:
                if bool(t.ne(0).any()):
                    raise SymmergeError(
                        f"the merged network has a non-zero bias {name} where the inputs' "
                        "layer has none; use a method that keeps zero biases (naive, wm, sort)")
                continue
            out[key] = t.to("cpu", dtype).contiguous()
        return out

    def to_json(self) -> str:
        return json.dumps({"keys": list(self.keys),
                           "dtypes": [str(d).removeprefix("torch.") for d in self.dtypes]})

    @staticmethod
    def from_json(text: str) -> StateKeys:
        """Rebuild from :meth:`to_json`; anything else is a :class:`SymmergeError`."""
        try:
            d = json.loads(text)
            keys = tuple(d["keys"])
            dtypes = tuple(getattr(torch, name) for name in d["dtypes"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SymmergeError(f"invalid state keys metadata: {exc}") from exc
        if not all(k is None or isinstance(k, str) for k in keys) or not all(
                isinstance(t, torch.dtype) and t.is_floating_point for t in dtypes):
            raise SymmergeError("invalid state keys metadata: keys must be strings or null, "
                                "dtypes floating-point")
        return StateKeys(keys, dtypes)

    @staticmethod
    def of(spec: WeightSpaceSpec, state: Mapping[str, Tensor]) -> StateKeys:
        """The keys of a state dict written with ``spec``'s own keys."""
        return StateKeys(tuple(k for k, _ in spec.param_shapes),
                         tuple(_dtype(state[k]) for k, _ in spec.param_shapes))


def _dtype(t: Tensor) -> torch.dtype:
    """The dtype to write a tensor back in: its own if floating (and real), else float32."""
    return t.dtype if t.is_floating_point() else torch.float32


@dataclass(frozen=True)
class _Layer:
    """One weight layer of a Sequential state dict."""

    name: str  # "<prefix><index>"
    weight: str
    bias: str | None
    shape: tuple[int, ...]

    @property
    def conv(self) -> bool:
        return len(self.shape) == 4


def _fail(found: str) -> SymmergeError:
    return SymmergeError(f"unsupported layout: {found}; {SUPPORTED}")


def _layers(state: Mapping[str, Tensor]) -> list[_Layer]:
    """The weight layers of a Sequential state dict, in index order; what does not fit is a
    :class:`SymmergeError` saying what was found."""
    for key in state:
        if key.rsplit(".", 1)[-1] in _NORM_BUFFERS:
            raise _fail(f"{key!r} is a normalization layer's statistic (BatchNorm); "
                        "normalization layers are not supported")
    groups: dict[int, dict[str, str]] = {}
    prefixes = set()
    for key in state:
        m = _KEY.match(key)
        if m is None:
            raise _fail(f"key {key!r} is not <prefix><index>.weight or .bias of an "
                        "nn.Sequential (nested modules, e.g. residual blocks, are not)")
        prefixes.add(m["prefix"])
        groups.setdefault(int(m["index"]), {})[m["name"]] = key
    if len(prefixes) > 1:
        raise _fail(f"keys under several prefixes {sorted(prefixes)}, not one nn.Sequential")
    prefix = prefixes.pop() if prefixes else ""
    layers = []
    for index in sorted(groups):
        names, name = groups[index], f"{prefix}{index}"
        if "weight" not in names or set(names) - {"weight", "bias"}:
            raise _fail(f"layer {name} holds {sorted(names)}, not a weight and a bias")
        shape = tuple(state[names["weight"]].shape)
        bias = names.get("bias")
        if len(shape) == 1:
            raise _fail(f"layer {name} has a 1-D weight {shape}: a normalization layer "
                        "(BatchNorm, LayerNorm), which is not supported")
        if len(shape) not in (2, 4):
            kind = {3: "a Conv1d", 5: "a Conv3d"}.get(len(shape), f"a {len(shape)}-D weight")
            raise _fail(f"layer {name} is {kind} ({shape})")
        if bias is not None and tuple(state[bias].shape) != shape[:1]:
            raise _fail(f"layer {name} has weight {shape} and bias "
                        f"{tuple(state[bias].shape)}")
        layers.append(_Layer(name, names["weight"], bias, shape))
    if not layers:
        raise _fail("no layers")
    return layers


def _layout(layers: list[_Layer]) -> tuple[list[int], tuple[int, ...], int]:
    """``(layout, conv kernel sizes, dense layer count)`` of checked layers."""
    first_dense = next((i for i, la in enumerate(layers) if not la.conv), len(layers))
    convs, dense = layers[:first_dense], layers[first_dense:]
    if any(la.conv for la in dense):
        after = next(la for la in dense if la.conv)
        raise _fail(f"conv layer {after.name} comes after linear layer {dense[0].name}")
    if not dense:
        raise _fail(f"no Linear layer after the convolutions (last: {convs[-1].name})")
    layout = [layers[0].shape[1]]
    kernels = []
    for la in convs:
        cout, cin, kh, kw = la.shape
        if kh != kw:
            raise _fail(f"conv layer {la.name} has a non-square kernel {kh}x{kw}")
        if cin != layout[-1]:
            if cin < layout[-1] and layout[-1] % cin == 0:
                raise _fail(f"conv layer {la.name} takes {cin} of the previous layer's "
                            f"{layout[-1]} channels per group: a grouped convolution "
                            f"(groups={layout[-1] // cin})")
            raise _fail(f"conv layer {la.name} takes {cin} channels, the previous layer "
                        f"gives {layout[-1]}")
        layout.append(cout)
        kernels.append(kh)
    for i, la in enumerate(dense):
        out, fan_in = la.shape
        if fan_in != layout[-1]:
            if i == 0 and convs and fan_in % layout[-1] == 0:
                raise _fail(
                    f"linear layer {la.name} takes {fan_in} = {layout[-1]} channels x "
                    f"{fan_in // layout[-1]} positions: a flattened feature map, where global "
                    f"average pooling (in_features = the last conv's {layout[-1]} channels) "
                    "is supported")
            raise _fail(f"linear layer {la.name} takes {fan_in} inputs, the previous layer "
                        f"gives {layout[-1]}")
        layout.append(out)
    return layout, tuple(kernels), len(dense)


def _keys(layers: list[_Layer], state: Mapping[str, Tensor]) -> StateKeys:
    keys: list[str | None] = []
    dtypes = []
    for la in layers:
        keys += [la.weight, la.bias]
        dtypes += [_dtype(state[la.weight]),
                   _dtype(state[la.bias]) if la.bias is not None else _dtype(state[la.weight])]
    return StateKeys(tuple(keys), tuple(dtypes))


def infer_architecture(
    state: Mapping[str, Tensor], hints: ArchitectureHints
) -> tuple[WeightSpaceSpec, StateKeys]:
    """The spec of a plain ``nn.Sequential`` state dict (see the module docstring) with the
    activation and options of ``hints``, and where its tensors live. MLPs are
    :class:`MLPSpec` (relu, tanh) or :class:`SirenSpec` without output offset (sine); CNNs
    :class:`CNNSpec`."""
    layers = _layers(state)
    layout, kernels, dense = _layout(layers)
    keys = _keys(layers, state)
    if not kernels:
        given = [n for n in ("stride", "padding") if getattr(hints, n) is not None]
        if given:
            raise SymmergeError(f"{' and '.join(given)}: for convolutions only, and the "
                                "network has none (an MLP)", params=tuple(given))
        if hints.activation == "sine":
            w0 = {} if hints.w0 is None else {"w0": hints.w0}
            return _spec(SirenSpec, tuple(layout), output_offset=0.0, **w0), keys
        return _spec(MLPSpec, tuple(layout), hints.activation), keys
    if hints.activation not in CNNSpec.allowed_activations():
        raise SymmergeError(f"activation {hints.activation!r} is supported for MLPs only; "
                            f"CNNs take {' or '.join(CNNSpec.allowed_activations())}",
                            params=("activation",))
    spec = _spec(CNNSpec, tuple(layout), hints.activation, kernel_size=kernels,
                 stride=1 if hints.stride is None else hints.stride,
                 padding=0 if hints.padding is None else hints.padding, dense_layers=dense)
    return spec, keys


def _spec(cls: type[WeightSpaceSpec], *args: Any, **kwargs: Any) -> WeightSpaceSpec:
    """``cls(*args, **kwargs)``; its errors name the hints they are about (``w0 must be
    ...``), also once a caller puts the file's name before them."""
    try:
        return cls(*args, **kwargs)
    except SymmergeError as exc:
        raise SymmergeError(str(exc), params=("w0", "stride", "padding")) from exc


def match_architecture(state: Mapping[str, Tensor], spec: WeightSpaceSpec) -> StateKeys:
    """Where the tensors of a ``spec`` network live in ``state``: the spec's own keys, or
    the layers of an ``nn.Sequential`` state dict in order, their shapes checked."""
    if set(state) == {k for k, _ in spec.param_shapes}:
        return StateKeys.of(spec, state)
    try:
        layers = _layers(state)
    except SymmergeError as exc:
        raise SymmergeError(f"state dict does not match {spec.describe()}: {exc}") from exc
    shapes = [tuple(la.shape) for la in layers]
    expected = [spec.weight_shape(layer) for layer in range(spec.num_layers)]
    if shapes != expected:
        raise SymmergeError(f"state dict does not match {spec.describe()}: its layers' weights "
                            f"are {shapes}, the spec's {expected}")
    return _keys(layers, state)
