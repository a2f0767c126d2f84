"""The weight-space spec base class and the family registry."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from symmerge.errors import SymmergeError

_FAMILIES: dict[str, type[WeightSpaceSpec]] = {}

ACTIVATIONS = ("sine", "relu", "tanh")


@dataclass(frozen=True)
class WeightSpaceSpec:
    """Weight space of a feed-forward network with layout ``[n_0, ..., n_L]``.

    Weight layer ``l`` maps neuron layer ``l`` to ``l + 1`` with weight shape
    ``(n_{l+1}, n_l, *kernel)`` and bias ``(n_{l+1},)``. Neuron layers
    ``1 .. L-1`` are hidden; the symmetry group acts on them (hidden layer
    ``h`` is the output of weight layer ``h``, for ``h`` in ``0 .. L-2``).
    """

    layout: tuple[int, ...]
    activation: str

    family: ClassVar[str] = ""
    key_prefix: ClassVar[str] = "seq"
    #: fields left out of :meth:`to_dict` and :meth:`describe` while they hold their default
    #: (fields added to a family later, so that its older specs keep their JSON)
    optional_fields: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            _FAMILIES[cls.family] = cls

    def __post_init__(self) -> None:
        if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) for n in self.layout):
            raise SymmergeError(f"layout entries must be integers, got {list(self.layout)}")
        layout = tuple(int(n) for n in self.layout)
        object.__setattr__(self, "layout", layout)
        if len(layout) < 2:
            raise SymmergeError(f"layout needs at least 2 entries, got {list(layout)}")
        if any(n <= 0 for n in layout):
            raise SymmergeError(f"layout entries must be positive, got {list(layout)}")
        if self.activation not in self.allowed_activations():
            raise SymmergeError(
                f"{self.family} does not support activation {self.activation!r}; "
                f"choose one of {', '.join(self.allowed_activations())}"
            )

    # ----------------------------------------------------------------- shapes
    @classmethod
    def allowed_activations(cls) -> tuple[str, ...]:
        return ACTIVATIONS

    @property
    def num_layers(self) -> int:
        """Number of weight layers L."""
        return len(self.layout) - 1

    @property
    def num_hidden(self) -> int:
        """Number of hidden neuron layers (L - 1)."""
        return len(self.layout) - 2

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return self.layout[1:-1]

    def kernel_shape(self, layer: int) -> tuple[int, ...]:
        """Trailing kernel dims of weight layer ``layer`` (``()`` for dense layers)."""
        return ()

    def weight_shape(self, layer: int) -> tuple[int, ...]:
        return (self.layout[layer + 1], self.layout[layer], *self.kernel_shape(layer))

    def bias_shape(self, layer: int) -> tuple[int, ...]:
        return (self.layout[layer + 1],)

    @cached_property
    def param_shapes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(state-dict key, shape) in flat order: weight then bias, layer by layer."""
        out = []
        for layer in range(self.num_layers):
            out.append((f"{self.key_prefix}.{layer}.weight", self.weight_shape(layer)))
            out.append((f"{self.key_prefix}.{layer}.bias", self.bias_shape(layer)))
        return tuple(out)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Start offset of each tensor of ``param_shapes`` in the flat vector (plus the end)."""
        offs = [0]
        for _, shape in self.param_shapes:
            offs.append(offs[-1] + math.prod(shape))
        return tuple(offs)

    @property
    def num_params(self) -> int:
        return self.offsets[-1]

    @property
    def symmetry(self) -> str:
        """``"sign"`` for odd activations (sine, tanh), ``"scale"`` for ReLU."""
        return "scale" if self.activation == "relu" else "sign"

    # ------------------------------------------------------------ flat views
    def check_params(self, params: Tensor, *, finite: bool = True) -> Tensor:
        """Validate a ``[..., P]`` parameter tensor; raise SymmergeError if it is unusable."""
        if not isinstance(params, Tensor):
            raise SymmergeError(f"expected a tensor of parameters, got {type(params).__name__}")
        if params.ndim == 0 or params.shape[-1] != self.num_params:
            raise SymmergeError(
                f"parameters have shape {tuple(params.shape)}, but {self.describe()} "
                f"has {self.num_params} parameters"
            )
        if finite and not bool(torch.isfinite(params).all()):
            raise SymmergeError("parameters contain NaN or infinite values")
        return params

    def unflatten(self, params: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Split ``[..., P]`` into per-layer weight and bias views ``[..., *shape]``."""
        self.check_params(params, finite=False)
        lead = params.shape[:-1]
        tensors = [
            params[..., a:b].reshape(*lead, *shape)
            for a, b, (_, shape) in zip(
                self.offsets[:-1], self.offsets[1:], self.param_shapes, strict=True
            )
        ]
        return tensors[0::2], tensors[1::2]

    def flatten(self, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> Tensor:
        """Inverse of :meth:`unflatten`: concatenate per-layer tensors into ``[..., P]``."""
        if len(weights) != self.num_layers or len(biases) != self.num_layers:
            raise SymmergeError(f"expected {self.num_layers} weight and bias tensors")
        parts = []
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
            ws, bs = self.weight_shape(layer), self.bias_shape(layer)
            lead = w.shape[: w.ndim - len(ws)]
            if tuple(w.shape[len(lead):]) != ws or tuple(b.shape[len(lead):]) != bs:
                raise SymmergeError(
                    f"layer {layer}: expected weight {ws} and bias {bs}, "
                    f"got {tuple(w.shape[len(lead):])} and {tuple(b.shape[len(lead):])}"
                )
            parts.append(w.reshape(*lead, -1))
            parts.append(b.reshape(*lead, -1))
        return torch.cat(parts, dim=-1)

    # ------------------------------------------------------------ state dicts
    def to_state_dict(self, params: Tensor) -> dict[str, Tensor]:
        """A state dict (fresh, contiguous tensors) for one flat parameter vector ``[P]``."""
        self.check_params(params, finite=False)
        if params.ndim != 1:
            raise SymmergeError(f"to_state_dict takes one network [P], got {tuple(params.shape)}")
        return {
            key: params[a:b].reshape(shape).clone()
            for (key, shape), a, b in zip(
                self.param_shapes, self.offsets[:-1], self.offsets[1:], strict=True
            )
        }

    def from_state_dict(self, state_dict: Mapping[str, Tensor]) -> Tensor:
        """Flat ``[P]`` vector from a state dict; keys and shapes are checked."""
        expected = dict(self.param_shapes)
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise SymmergeError(f"state dict does not match {self.describe()}: {'; '.join(parts)}")
        flat = []
        for key, shape in self.param_shapes:
            t = state_dict[key]
            if not isinstance(t, Tensor):
                t = torch.as_tensor(t, device="cpu")
            if t.is_complex():
                raise SymmergeError(
                    f"state dict entry {key!r} is {t.dtype} (complex); expected real weights"
                )
            if tuple(t.shape) != shape:
                raise SymmergeError(
                    f"state dict entry {key!r} has shape {tuple(t.shape)}, expected {shape}"
                )
            flat.append(t.detach().reshape(-1))
        dtype = torch.promote_types(flat[0].dtype, torch.float32)
        return torch.cat([f.to(device=flat[0].device, dtype=dtype) for f in flat])

    # --------------------------------------------------------------- modules
    def build_module(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def module(self, params: Tensor | None = None) -> nn.Module:
        """An ``nn.Module`` of this architecture, loaded with ``params [P]`` if given (then
        on their device, in their dtype)."""
        m = self.build_module()
        if params is not None:
            m = m.to(device=params.device, dtype=params.dtype)
            m.load_state_dict(self.to_state_dict(params))
        return m

    def from_module(self, module: nn.Module) -> Tensor:
        """Flat ``[P]`` parameters of a module of this architecture."""
        return self.from_state_dict(module.state_dict())

    # --------------------------------------------------------------- forward
    def forward(self, params: Tensor, inputs: Tensor) -> Tensor:  # pragma: no cover
        """Evaluate B networks ``params [B, P]`` at once; returns ``[B, N, n_L]``."""
        raise NotImplementedError

    def neuron_values(self, params: Tensor, inputs: Tensor) -> list[Tensor]:  # pragma: no cover
        """Every neuron's value on ``inputs`` (N of them), level by level, for ``params
        [B, P]``: ``[v_0, ..., v_L]``, ``v_l [B, N, n_l]``. Level 0 holds the inputs, hidden
        levels their activations, level L the outputs (CNNs: channels' spatial means).
        Hidden values are equivariant: they permute with their neurons, flip sign with
        them (odd activations) and scale with them (ReLU)."""
        raise NotImplementedError

    def probe_inputs(
        self,
        n: int = 64,
        *,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:  # pragma: no cover
        """Random inputs on which to compare functions (e.g. in symmetry tests), on
        ``device`` (default: the generator's, else the CPU); drawn on the generator's
        device, so a seeded CPU generator gives the same inputs on every device."""
        raise NotImplementedError

    # ------------------------------------------------------------ serialization
    def _shown_fields(self) -> dict[str, Any]:
        """Field values, without the :attr:`optional_fields` that hold their defaults."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in self.optional_fields or getattr(self, f.name) != f.default}

    def to_dict(self) -> dict[str, Any]:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in self._shown_fields().items()}
        return {"family": self.family, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        extra = ", ".join(
            f"{k}={list(v) if isinstance(v, tuple) else v}"
            for k, v in self._shown_fields().items() if k != "layout"
        )
        return f"{self.family} {list(self.layout)} ({extra})"


def spec_from_dict(d: Mapping[str, Any]) -> WeightSpaceSpec:
    """Rebuild a spec from :meth:`WeightSpaceSpec.to_dict` output."""
    if not isinstance(d, Mapping):
        raise SymmergeError(f"a spec must be a JSON object, got {type(d).__name__}")
    d = dict(d)
    family = d.pop("family", None)
    if family not in _FAMILIES:
        known = ", ".join(sorted(_FAMILIES))
        raise SymmergeError(f"unknown architecture family {family!r}; known: {known}")
    cls = _FAMILIES[family]
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise SymmergeError(f"unknown {family} spec fields: {sorted(unknown)}")
    try:
        if "layout" in d:
            d["layout"] = tuple(d["layout"])
        return cls(**d)
    except (TypeError, ValueError) as exc:
        raise SymmergeError(f"invalid {family} spec: {exc}") from exc


def spec_from_json(text: str) -> WeightSpaceSpec:
    try:
        return spec_from_dict(json.loads(text))
    except json.JSONDecodeError as exc:
        raise SymmergeError(f"invalid architecture spec JSON: {exc}") from exc


def activation_fn(name: str, w0: float = 1.0):
    """Elementwise activation by name (sine multiplies the pre-activation by w0)."""
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    if name == "sine":
        return lambda z: torch.sin(w0 * z)
    raise SymmergeError(f"unknown activation {name!r}")
