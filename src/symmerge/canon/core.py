"""Canonicalizers: one batched interface, ``[B, P]`` in, ``[B, P]`` out.

* ``sort`` (exact, no learning): fix each hidden neuron's sign (sine/tanh) or
  scale (ReLU) by an invariant rule, then order every hidden layer by an
  invariant key (:func:`symmerge.align.sort_canonicalize`). Every member of an
  exact orbit maps to the same parameters; the function is unchanged.
* ``ae``: the autoencoder's reconstruction ``Dec(Enc(x))`` (the paper's method).
  The encoder is invariant, so an orbit maps to one template, but the output
  only approximates the input's function.
* ``ae-lift``: weight-match the *original* network to its decoded template
  (after ``sort``, so that every orbit member starts the matching from the
  same point). The output is the input transformed by a group element: it
  computes exactly the input's function and sits near the canonical template.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from symmerge.align.matching import MatchOptions
from symmerge.errors import SymmergeError
from symmerge.limits import check_range
from symmerge.models.runs import RunLike, decode, encode, reconstruct
from symmerge.specs import WeightSpaceSpec
from symmerge.utils.device import module_device


def _chunks(params: Tensor, size: int) -> Iterator[Tensor]:
    yield from params.split(size)


class Canonicalizer:
    """Maps networks ``[B, P]`` (or one ``[P]``) to canonical representatives ``[B, P]``.

    ``exact`` is True when the output computes exactly the input's function. Batches
    are computed on ``device`` (default: where the inputs are; for ``ae`` and ``ae-lift``
    where the autoencoder is) and returned on the inputs' device.
    """

    exact: ClassVar[bool] = True

    def __init__(self, spec: WeightSpaceSpec, *, batch_size: int = 1024,
                 device: str | torch.device | None = None) -> None:
        check_range(batch_size, "batch_size", 1, sys.maxsize)
        self.spec = spec
        self.batch_size = batch_size
        self.device = None if device is None else torch.device(device)

    def __call__(self, params: Tensor) -> Tensor:
        single = params.ndim == 1
        batch = params.unsqueeze(0) if single else params
        self.spec.check_params(batch)
        if batch.ndim != 2:
            raise SymmergeError(f"canonicalize takes [B, P] or [P], got {tuple(params.shape)}")
        if batch.shape[0] == 0:
            return batch.clone()
        dev = self.device or batch.device
        out = torch.cat([self._canonicalize(c.to(dev)).to(batch.device)
                         for c in _chunks(batch, self.batch_size)])
        return out[0] if single else out

    def _canonicalize(self, params: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        """What a file of canonical networks records about how they were made."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.describe()})"


class SortCanonicalizer(Canonicalizer):
    """Exact, learning-free canonical form: fixed signs / scales, sorted neurons."""

    exact = True

    def _canonicalize(self, params: Tensor) -> Tensor:
        from symmerge.align import sort_canonicalize

        canonical, _ = sort_canonicalize(self.spec, params)
        return canonical


class AECanonicalizer(Canonicalizer):
    """The autoencoder's reconstruction (lossy; one template per orbit), computed where
    the model is (moved to ``device`` if given)."""

    exact = False

    def __init__(self, spec: WeightSpaceSpec, model: nn.Module, *, batch_size: int = 1024,
                 device: str | torch.device | None = None) -> None:
        self.model = (model if device is None else model.to(device)).eval()
        super().__init__(spec, batch_size=batch_size, device=module_device(self.model))

    @torch.no_grad()
    def encode(self, params: Tensor) -> Tensor:
        """Latents ``[B, d]`` (on ``params``' device)."""
        return encode(self.model, self.spec.check_params(params), self.batch_size)

    def decode(self, latents: Tensor) -> Tensor:
        """Decoded networks ``[B, P]`` of latents ``[B, d]`` (on ``latents``' device)."""
        return decode(self.model, latents, self.batch_size)

    def _canonicalize(self, params: Tensor) -> Tensor:
        return reconstruct(self.model, params, self.batch_size).to(params.dtype)


class AELiftCanonicalizer(AECanonicalizer):
    """The original network aligned (by a group element) to its decoded template.

    ``matching`` sets the weight matching (:class:`~symmerge.align.MatchOptions`); its
    ``strategy`` defaults to ``"forward"`` here (one in-order pass, a function of the
    network's orbit alone, and far less sensitive to small perturbations than the descent
    when the template is not close to the orbit); ``"descent"`` is coordinate ascent from
    the sorted network (``presort``), with ``restarts``.
    """

    exact = True

    def __init__(
        self,
        spec: WeightSpaceSpec,
        model: nn.Module,
        *,
        matching: MatchOptions = MatchOptions(),
        presort: bool = True,
        batch_size: int = 1024,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(spec, model, batch_size=batch_size, device=device)
        self.strategy = matching.strategy_or("forward")
        self.matching = replace(matching, strategy=self.strategy)
        self.presort = presort

    def lift(self, params: Tensor, templates: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(lifted [B, P], templates [B, P])``; pass ``templates`` to skip decoding."""
        from symmerge.align import sort_canonicalize, weight_matching

        if templates is None:
            templates = super()._canonicalize(params)
        descent = self.strategy == "descent"
        start = sort_canonicalize(self.spec, params)[0] if self.presort and descent else params
        result = weight_matching(self.spec, templates.to(params.dtype), start, self.matching)
        return result.aligned, templates

    def template_distance(self, lifted: Tensor, templates: Tensor) -> Tensor:
        """``[B]`` RMS distance (float64) between lifted networks and their templates, each
        entry in units of its tensor's zoo RMS (the autoencoder's ``param_scale``)."""
        scale = self.model.param_scale.to(lifted)
        return ((lifted - templates.to(lifted.dtype)) / scale).square().mean(-1).sqrt().double()

    def _canonicalize(self, params: Tensor) -> Tensor:
        return self.lift(params)[0]

    def provenance(self) -> dict[str, Any]:
        return {"lift_strategy": self.strategy}


def make_canonicalizer(
    method: str,
    spec: WeightSpaceSpec | None = None,
    *,
    run: RunLike | None = None,
    model: nn.Module | None = None,
    batch_size: int = 1024,
    matching: MatchOptions = MatchOptions(),
    holder: str = "the input",
    device: str | torch.device | None = None,
) -> Canonicalizer:
    """The canonicalizer of ``method`` (a method of :mod:`symmerge.methods` that
    canonicalizes) for networks of ``spec``, computing on ``device`` (see
    :class:`Canonicalizer`).

    A method that needs a trained autoencoder takes a ``run`` (a directory, or a model
    trained in memory: the ``TrainResult`` of ``train``) or a loaded ``model`` (then
    ``spec`` is required); the run's spec must equal ``spec`` (``holder``:
    what the networks come from, for the error that says otherwise). ``matching`` sets
    the weight matching of the methods that match (``ae-lift``).
    """
    from symmerge.methods import MethodInputs, get_method, load_models

    entry = get_method(method, "canonicalize")
    if model is not None:
        if spec is None:
            raise SymmergeError("pass spec together with a loaded autoencoder model",
                                params=("spec", "model"))
        models = {need: model for need in entry.needs}
    else:
        models, loaded = load_models(entry, {"run": run}, spec, holder=holder)
        spec = loaded or spec
    if spec is None:
        raise SymmergeError(f"the {method} canonicalizer needs the networks' spec",
                            params=("spec",))
    inputs = MethodInputs(spec, models, matching=matching, batch_size=batch_size, device=device)
    canonicalizer = entry.build(inputs).canonicalizer
    assert canonicalizer is not None  # the registry's canonicalize methods have one
    return canonicalizer


def canonicalize(
    params: Tensor,
    spec: WeightSpaceSpec,
    method: str | None = None,
    *,
    run: RunLike | None = None,
    **options: Any,
) -> Tensor:
    """One-call canonicalization of ``params [B, P]`` with ``method`` (default: the
    registry's default, the exact ``sort``; see :func:`make_canonicalizer`)."""
    from symmerge.methods import default_method

    return make_canonicalizer(method or default_method("canonicalize"), spec, run=run,
                              **options)(params)
