"""Frames: how a method brings networks into one frame, for merging (:meth:`Frame.align`),
interpolating (:meth:`Frame.paths`) and canonicalizing (:attr:`Frame.canonicalizer`).

* :class:`Raw`: the networks as they are;
* :class:`Matched`: weight matching (:func:`symmerge.align.weight_matching`) to a
  reference (one network, or the weighted mean of N);
* :class:`Canonical`: a :class:`~symmerge.canon.Canonicalizer`'s representatives;
* :class:`Latent`: the autoencoder's latent space (interpolation only: paths are decoded
  latent interpolants);
* :class:`Repaired`: another frame's straight paths with REPAIR at every alpha
  (:mod:`symmerge.merge.repair`; interpolation only).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from symmerge.align.matching import MatchOptions, weight_matching
from symmerge.canon.core import AECanonicalizer, AELiftCanonicalizer, Canonicalizer
from symmerge.errors import SymmergeError
from symmerge.specs import WeightSpaceSpec


def lerp(a: Tensor, b: Tensor, alphas: Tensor) -> Tensor:
    """Paths ``[n, T, ...]`` from ``a``, ``b`` ``[n, ...]``: ``(1 - alpha) a + alpha b``."""
    al = alphas.to(a).reshape(1, -1, *([1] * (a.ndim - 1)))
    return (1 - al) * a.unsqueeze(1) + al * b.unsqueeze(1)


def weighted_mean(params: Tensor, weights: Tensor) -> Tensor:
    """``sum_i weights[i] params[i]`` of ``params [N, P]``."""
    return (weights.to(params).unsqueeze(1) * params).sum(0)


def align_networks(
    spec: WeightSpaceSpec,
    params: Tensor,
    weights: Tensor,
    *,
    iters: int = 5,
    matching: MatchOptions = MatchOptions(),
) -> tuple[Tensor, dict[str, Any]]:
    """Weight-match ``params [N, P]`` into one frame. Two networks: the second is aligned to
    the first. ``N > 2``: every network is aligned to the first, then all are re-aligned
    to the current weighted mean (``iters`` rounds, stopping early once nothing changes),
    ``N`` matchings per round, never ``O(N^2)``."""

    def match(target: Tensor, nets: Tensor) -> Tensor:
        return weight_matching(spec, target, nets, matching).aligned

    aligned = torch.cat([params[:1], match(params[0], params[1:])])
    rounds = 0
    if params.shape[0] > 2:
        for _ in range(iters):
            new = match(weighted_mean(aligned, weights), params)
            rounds += 1
            if torch.equal(new, aligned):
                break
            aligned = new
    return aligned, {"wm_rounds": rounds}


class Frame:
    """A method's frame. ``exact``: networks in it compute exactly their inputs' functions
    (so interpolation paths start and end at the input networks' functions)."""

    exact: bool = True
    #: the canonicalizer, for frames that map each network on its own to a representative
    canonicalizer: Canonicalizer | None = None

    def align(self, params: Tensor, weights: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """``params [N, P]`` in this frame (and bookkeeping), for a ``weights``-weighted
        merge."""
        raise SymmergeError(f"{type(self).__name__} frames do not merge networks")

    def paths(self, a: Tensor, b: Tensor, alphas: Tensor,
              extras: dict[str, Tensor] | None = None) -> Tensor:
        """Interpolation paths ``[n, T, P]`` between ``a`` and ``b`` (``[n, P]``) at
        ``alphas [T]``; ``extras`` receives per-pair diagnostics (``template_distance`` of
        the ``2n`` endpoints, ``a`` then ``b``, where the frame lifts onto templates)."""
        raise NotImplementedError  # pragma: no cover - every frame interpolates

    def provenance(self) -> dict[str, Any]:
        """What a file made in this frame records about it."""
        return self.canonicalizer.provenance() if self.canonicalizer is not None else {}


class Raw(Frame):
    """The networks as they are: the plain average and the straight line."""

    def align(self, params: Tensor, weights: Tensor) -> tuple[Tensor, dict[str, Any]]:
        return params.clone(), {}

    def paths(self, a: Tensor, b: Tensor, alphas: Tensor,
              extras: dict[str, Tensor] | None = None) -> Tensor:
        return lerp(a, b, alphas)


class Matched(Frame):
    """Weight matching: ``b`` aligned to ``a``; N networks to their mean (``rounds``)."""

    def __init__(self, spec: WeightSpaceSpec, matching: MatchOptions, rounds: int = 5) -> None:
        self.spec, self.matching, self.rounds = spec, matching, rounds

    def align(self, params: Tensor, weights: Tensor) -> tuple[Tensor, dict[str, Any]]:
        return align_networks(self.spec, params, weights, iters=self.rounds,
                              matching=self.matching)

    def paths(self, a: Tensor, b: Tensor, alphas: Tensor,
              extras: dict[str, Tensor] | None = None) -> Tensor:
        res = weight_matching(self.spec, a, b, self.matching)
        return lerp(a, res.aligned.to(a.dtype), alphas)


class Canonical(Frame):
    """A canonicalizer's representatives, all networks in one batch."""

    def __init__(self, canonicalizer: Canonicalizer) -> None:
        self.canonicalizer = canonicalizer
        self.exact = canonicalizer.exact

    def align(self, params: Tensor, weights: Tensor) -> tuple[Tensor, dict[str, Any]]:
        assert self.canonicalizer is not None
        return self.canonicalizer(params), {}

    def paths(self, a: Tensor, b: Tensor, alphas: Tensor,
              extras: dict[str, Tensor] | None = None) -> Tensor:
        n, both, canon = a.shape[0], torch.cat([a, b]), self.canonicalizer
        if isinstance(canon, AELiftCanonicalizer):
            c, templates = canon.lift(both)
            if extras is not None:
                extras["template_distance"] = canon.template_distance(c, templates)
        else:
            assert canon is not None
            c = canon(both)
        return lerp(c[:n], c[n:], alphas)


class Latent(Frame):
    """The autoencoder's latent space: latents interpolated, then decoded."""

    exact = False

    def __init__(self, autoencoder: AECanonicalizer) -> None:
        self.autoencoder = autoencoder

    def paths(self, a: Tensor, b: Tensor, alphas: Tensor,
              extras: dict[str, Tensor] | None = None) -> Tensor:
        n, ae = a.shape[0], self.autoencoder
        z = ae.encode(torch.cat([a, b]))
        zt = lerp(z[:n], z[n:], alphas)
        return ae.decode(zt.reshape(n * alphas.numel(), -1)).reshape(n, alphas.numel(), -1)


class Repaired(Frame):
    """``inner``'s straight paths with every interpolant repaired
    (:func:`symmerge.merge.repair.repair_to`): at each alpha, each hidden neuron's
    pre-activation mean and std on ``data`` are reset to the ``(1 - alpha, alpha)`` mix of
    the two endpoints' (the ``inner`` frame's endpoints, aligned to each other)."""

    def __init__(self, inner: Frame, spec: WeightSpaceSpec, data: Tensor | None,
                 batch_size: int = 16) -> None:
        self.inner, self.spec, self.data, self.batch_size = inner, spec, data, batch_size
        self.exact = inner.exact

    def paths(self, a: Tensor, b: Tensor, alphas: Tensor,
              extras: dict[str, Tensor] | None = None) -> Tensor:
        from symmerge.merge.repair import LayerStats, preactivation_stats, repair_to

        if self.data is None:
            raise SymmergeError("repaired paths need data to measure activations on: "
                                "pass data (MethodInputs)", params=("data",))
        ends = torch.tensor([0.0, 1.0], dtype=alphas.dtype, device=alphas.device)
        both = self.inner.paths(a, b, torch.cat([alphas, ends]), extras)
        paths = both[:, :-2]
        stats = preactivation_stats(self.spec, both[:, -2:].transpose(0, 1), self.data,
                                    batch_size=self.batch_size)
        first = LayerStats(tuple(m[0] for m in stats.mean), tuple(s[0] for s in stats.std))
        last = LayerStats(tuple(m[1] for m in stats.mean), tuple(s[1] for s in stats.std))
        return repair_to(self.spec, paths, LayerStats.lerp(first, last, alphas), self.data,
                         batch_size=self.batch_size)

    def provenance(self) -> dict[str, Any]:
        return self.inner.provenance()
