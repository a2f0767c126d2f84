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

import os
import sys
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.limits import check_range
from symmerge.models.runs import encode, load_run
from symmerge.specs import WeightSpaceSpec
from symmerge.utils.device import module_device, reproducible

CANON_METHODS = ("sort", "ae", "ae-lift")
#: Methods that need a trained autoencoder run.
RUN_METHODS = frozenset({"ae", "ae-lift"})


def _chunks(params: Tensor, size: int) -> Iterator[Tensor]:
    yield from params.split(size)


class Canonicalizer:
    """Maps networks ``[B, P]`` (or one ``[P]``) to canonical representatives ``[B, P]``.

    ``exact`` is True when the output computes exactly the input's function. Batches
    are computed on ``device`` (default: where the inputs are; for ``ae`` and ``ae-lift``
    where the autoencoder is) and returned on the inputs' device.
    """

    name: ClassVar[str] = ""
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.describe()})"


class SortCanonicalizer(Canonicalizer):
    """Exact, learning-free canonical form: fixed signs / scales, sorted neurons."""

    name = "sort"
    exact = True

    def _canonicalize(self, params: Tensor) -> Tensor:
        from symmerge.align import sort_canonicalize

        canonical, _ = sort_canonicalize(self.spec, params)
        return canonical


class AECanonicalizer(Canonicalizer):
    """The autoencoder's reconstruction (lossy; one template per orbit), computed where
    the model is (moved to ``device`` if given)."""

    name = "ae"
    exact = False

    def __init__(self, spec: WeightSpaceSpec, model: nn.Module, *, batch_size: int = 1024,
                 device: str | torch.device | None = None) -> None:
        self.model = (model if device is None else model.to(device)).eval()
        super().__init__(spec, batch_size=batch_size, device=module_device(self.model))

    @torch.no_grad()
    def encode(self, params: Tensor) -> Tensor:
        """Latents ``[B, d]`` (on ``params``' device)."""
        return encode(self.model, self.spec.check_params(params), self.batch_size)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Decoded networks ``[B, P]`` of latents ``[B, d]`` (on ``latents``' device)."""
        self.model.eval()
        with reproducible(self.device):
            return torch.cat([self.model.decode(z.to(self.device, torch.float32))
                              .to(latents.device) for z in _chunks(latents, self.batch_size)])

    @torch.no_grad()
    def _canonicalize(self, params: Tensor) -> Tensor:
        with reproducible(self.device):
            out = self.model(params.to(self.device, torch.float32))
        return out.to(params.device, params.dtype)


class AELiftCanonicalizer(AECanonicalizer):
    """The original network aligned (by a group element) to its decoded template.

    ``strategy`` is the weight-matching strategy: ``"forward"`` (default; one in-order
    pass, a function of the network's orbit alone, and far less sensitive to small
    perturbations than the descent when the template is not close to the orbit) or
    ``"descent"`` (coordinate ascent from the sorted network, with ``restarts``).
    """

    name = "ae-lift"
    exact = True

    def __init__(
        self,
        spec: WeightSpaceSpec,
        model: nn.Module,
        *,
        mode: str = "auto",
        restarts: int = 0,
        max_iter: int = 100,
        seed: int = 0,
        presort: bool = True,
        strategy: str = "forward",
        batch_size: int = 1024,
        device: str | torch.device | None = None,
    ) -> None:
        from symmerge.align.matching import check_matching_options, check_strategy

        check_strategy(strategy)  # before any decoding
        check_matching_options(restarts, max_iter, seed)
        super().__init__(spec, model, batch_size=batch_size, device=device)
        self.mode, self.restarts, self.max_iter, self.seed = mode, restarts, max_iter, seed
        self.presort, self.strategy = presort, strategy

    def lift(self, params: Tensor, templates: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(lifted [B, P], templates [B, P])``; pass ``templates`` to skip decoding."""
        from symmerge.align import sort_canonicalize, weight_matching

        if templates is None:
            templates = super()._canonicalize(params)
        descent = self.strategy == "descent"
        start = sort_canonicalize(self.spec, params)[0] if self.presort and descent else params
        result = weight_matching(
            self.spec, templates.to(params.dtype), start, mode=self.mode,
            restarts=self.restarts, max_iter=self.max_iter, seed=self.seed,
            strategy=self.strategy,
        )
        return result.aligned, templates

    def _canonicalize(self, params: Tensor) -> Tensor:
        return self.lift(params)[0]


def make_canonicalizer(
    method: str,
    spec: WeightSpaceSpec | None = None,
    *,
    run: str | os.PathLike[str] | None = None,
    model: nn.Module | None = None,
    batch_size: int = 1024,
    mode: str = "auto",
    restarts: int = 0,
    max_iter: int = 100,
    seed: int = 0,
    presort: bool = True,
    strategy: str = "forward",
    holder: str = "the input",
    device: str | torch.device | None = None,
) -> Canonicalizer:
    """The canonicalizer ``method`` (sort | ae | ae-lift) for networks of ``spec``,
    computing on ``device`` (see :class:`Canonicalizer`).

    ``ae`` and ``ae-lift`` need a trained autoencoder: a ``run`` directory or a
    loaded ``model`` (then ``spec`` is required). The run's spec must equal ``spec``
    (``holder``: what the networks come from, for the error that says otherwise).
    """
    from symmerge.align.matching import check_matching_options

    if method not in CANON_METHODS:
        raise SymmergeError(
            f"unknown canonicalization method {method!r}; choose one of {', '.join(CANON_METHODS)}"
        )
    check_matching_options(restarts, max_iter, seed)  # before loading a run
    if method == "sort":
        if spec is None:
            raise SymmergeError("the sort canonicalizer needs the networks' spec")
        return SortCanonicalizer(spec, batch_size=batch_size, device=device)
    if model is None:
        if run is None:
            raise SymmergeError(
                f"method {method!r} needs a trained autoencoder: pass --run RUN (a training run "
                "directory)"
            )
        model, spec, _ = load_run(run, spec, holder=holder)
    elif spec is None:
        raise SymmergeError("pass the spec together with a loaded autoencoder model")
    if method == "ae":
        return AECanonicalizer(spec, model, batch_size=batch_size, device=device)
    return AELiftCanonicalizer(
        spec, model, mode=mode, restarts=restarts, max_iter=max_iter, seed=seed,
        presort=presort, strategy=strategy, batch_size=batch_size, device=device,
    )


def canonicalize(
    params: Tensor,
    spec: WeightSpaceSpec,
    method: str = "sort",
    *,
    run: str | os.PathLike[str] | None = None,
    **options,
) -> Tensor:
    """One-call canonicalization of ``params [B, P]`` (see :func:`make_canonicalizer`)."""
    return make_canonicalizer(method, spec, run=run, **options)(params)
