"""What a method is (:class:`Method`), what it is built from (:class:`MethodInputs`) and
the look-ups the consumers use (:func:`get_method`, :func:`method_names`, ...)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from symmerge.align.matching import MatchOptions
from symmerge.errors import SymmergeError
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec, WeightSpaceSpec

if TYPE_CHECKING:
    from symmerge.methods.frames import Frame
    from symmerge.models.runs import RunLike

#: what a method can be used for, and how messages name that use
USES = {"canonicalize": "canonicalization", "merge": "merge", "interpolate": "interpolation"}
ALL = frozenset(USES)
#: what a method may need beyond the networks: trained autoencoders (the keys are the
#: parameters that take their run directories)
RESOURCES = {"run": "a trained (ScaleGMN) autoencoder",
             "pna_run": "a trained permutation-only (PNA) autoencoder"}
#: the network families (``spec.family``)
FAMILIES = frozenset(s.family for s in (SirenSpec, MLPSpec, CNNSpec))


@dataclass(frozen=True)
class MethodInputs:
    """What a method is built from: the networks' spec, the loaded autoencoders it needs
    (by resource, e.g. ``{"run": model}``), the weight-matching settings, merge's
    re-matching ``rounds`` (N > 2 networks), the batch size, the device of its work and
    ``data``: inputs of the networks for methods that measure activations (repair;
    CNNs: training-split images ``[N, C, H, W]``)."""

    spec: WeightSpaceSpec
    models: Mapping[str, nn.Module] = field(default_factory=dict)
    matching: MatchOptions = MatchOptions()
    rounds: int = 5
    batch_size: int = 1024
    device: str | torch.device | None = None
    data: torch.Tensor | None = None

    def model(self, resource: str) -> nn.Module:
        """The loaded model of ``resource``; a missing one is a :class:`SymmergeError`."""
        if resource not in self.models:
            raise SymmergeError(f"{RESOURCES[resource]} is needed: pass {resource}=DIR",
                                params=(resource,))
        return self.models[resource]


@dataclass(frozen=True)
class Method:
    """One method: its name, a one-line summary, ``build`` (a :class:`MethodInputs` to its
    :class:`~symmerge.methods.frames.Frame`), whether its frame keeps the networks'
    functions exactly (``exact``: interpolation endpoints are the input networks), what
    it is used for (``uses``, of :data:`USES`), the resources it needs (``needs``, of
    :data:`RESOURCES`), the families it applies to, those whose experiments run it by
    default, its colour in plots, whether it is the reference that barriers are compared
    with, and the uses it is the default method of (``default_of``)."""

    name: str
    summary: str
    build: Callable[[MethodInputs], Frame]
    exact: bool
    uses: frozenset[str]
    needs: frozenset[str] = frozenset()
    families: frozenset[str] = FAMILIES
    default_for: frozenset[str] = FAMILIES
    color: str = "#333333"
    reference: bool = False
    default_of: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for what, given, known in (("uses", self.uses, ALL), ("needs", self.needs, RESOURCES),
                                   ("default_of", self.default_of, self.uses),
                                   ("families", self.families, FAMILIES),
                                   ("default_for", self.default_for, self.families)):
            if not set(given) <= set(known):
                raise ValueError(f"method {self.name!r}: {what} {sorted(given)} not within "
                                 f"{sorted(known)}")

    def check_family(self, spec: WeightSpaceSpec) -> None:
        """Refuse networks of a family this method does not apply to."""
        if spec.family not in self.families:
            raise SymmergeError(f"method {self.name!r} does not apply to {spec.family} "
                                f"networks ({', '.join(sorted(self.families))} only)")


def _registry() -> dict[str, Method]:
    from symmerge.methods.registry import REGISTRY

    return {m.name: m for m in REGISTRY}


def method_names(use: str | None = None) -> tuple[str, ...]:
    """The names of every method (in registry order), or of those used for ``use``."""
    return tuple(n for n, m in _registry().items() if use is None or use in m.uses)


def get_method(name: str, use: str | None = None) -> Method:
    """The method ``name``; an unknown one, or one not used for ``use``, is a
    :class:`SymmergeError` listing the choices."""
    registry = _registry()
    noun = f"{USES[use]} " if use is not None else ""
    choices = f"choose one of {', '.join(method_names(use))}"
    if name not in registry:
        raise SymmergeError(f"unknown {noun}method {name!r}; {choices}")
    if use is not None and use not in registry[name].uses:
        raise SymmergeError(f"method {name!r} is no {noun}method; {choices}")
    return registry[name]


def default_methods(family: str) -> tuple[str, ...]:
    """The interpolation methods the experiments on ``family`` networks run by default."""
    return tuple(n for n, m in _registry().items()
                 if "interpolate" in m.uses and family in m.default_for)


def default_method(use: str) -> str:
    """The default method for ``use`` (``merge``: weight matching with the networks' own
    symmetry, exact for every family; ``canonicalize``: the exact canonical form)."""
    return next(n for n, m in _registry().items() if use in m.default_of)


def reference_method() -> str:
    """The method other methods' barriers are compared with."""
    return next(n for n, m in _registry().items() if m.reference)


def methods_needing(resource: str, use: str | None = None) -> tuple[str, ...]:
    """The methods that need ``resource`` (for help texts), of those used for ``use``
    (None: all)."""
    return tuple(n for n, m in _registry().items()
                 if resource in m.needs and (use is None or use in m.uses))


def missing_resource(method: Method, available: Mapping[str, object]) -> str | None:
    """Why ``method`` cannot run with ``available`` resources (None: it can), naming the
    parameter that takes what is missing (``pass run=DIR``)."""
    for need in sorted(method.needs):
        if available.get(need) is None:
            return f"needs {RESOURCES[need]}: pass {need}=DIR (a finished training's directory)"
    return None


def load_models(
    method: Method,
    runs: Mapping[str, RunLike | None],
    spec: WeightSpaceSpec | None,
    *,
    holder: str = "the input",
) -> tuple[dict[str, nn.Module], WeightSpaceSpec | None]:
    """The autoencoders ``method`` needs, from ``runs`` (by resource: run directories or
    models trained in memory) and checked against ``spec``
    (:func:`symmerge.models.runs.as_run`); also the spec of the networks
    (the runs' where ``spec`` is None). A needed run that is missing is a
    :class:`SymmergeError` naming its parameter."""
    from symmerge.models.runs import as_run

    models: dict[str, nn.Module] = {}
    for need in sorted(method.needs):
        path = runs.get(need)
        if path is None:
            raise SymmergeError(f"method {method.name!r} {missing_resource(method, runs)}",
                                params=tuple(method.needs))
        models[need], spec, _ = as_run(path, spec, what=need, holder=holder)
    return models, spec
