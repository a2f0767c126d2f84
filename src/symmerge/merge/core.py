"""Merging N networks of one architecture by a weighted average in an aligned frame.

The methods that merge (:func:`symmerge.methods.method_names` ``("merge")``) each bring
the networks into one frame (:mod:`symmerge.methods.frames`): the raw parameters, weight
matching to one network or (N > 2) to the iterated weighted mean (``wm_iters`` rounds,
``N`` matchings each, never ``O(N^2)``), or a canonicalizer applied to all networks in
one batch (lossy autoencoder reconstructions, or exact function-preserving
representatives).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from symmerge.align.matching import MatchOptions
from symmerge.canon import Canonicalizer
from symmerge.errors import SymmergeError
from symmerge.limits import MAX_ITER, check_range
from symmerge.methods import (
    Canonical,
    MethodInputs,
    default_method,
    get_method,
    load_models,
    weighted_mean,
)
from symmerge.models.runs import RunLike
from symmerge.specs import WeightSpaceSpec


@dataclass
class MergeResult:
    """The merged network ``params [P]``, the aligned inputs ``[N, P]`` it averages,
    the normalized weights ``[N]`` and bookkeeping (``info``; ``provenance``: what the
    method records in a merged network's file)."""

    params: Tensor
    aligned: Tensor
    weights: Tensor
    method: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def merge_weights(
    n: int, *, alpha: float | None = None, weights: Sequence[float] | None = None
) -> Tensor:
    """Normalized merge weights ``[n]``: uniform, ``(1 - alpha, alpha)`` for two
    networks, or the given finite non-negative ``weights`` (any scale: they are divided by
    their largest before their sum, so that huge weights do not overflow); float64, on the
    CPU (checked before anything is loaded; :func:`merge` moves them to its device)."""
    if n < 2:
        raise SymmergeError(f"merging needs at least 2 networks, got {n}")
    if alpha is not None and weights is not None:
        raise SymmergeError("give either alpha or weights, not both", params=("alpha", "weights"))
    if alpha is not None:
        if n != 2:
            raise SymmergeError(f"alpha is for two networks; use weights for {n}",
                                params=("alpha", "weights"))
        if not 0.0 <= alpha <= 1.0:
            raise SymmergeError(f"alpha must be in [0, 1], got {alpha}")
        return torch.tensor([1.0 - alpha, alpha], dtype=torch.float64, device="cpu")
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device="cpu")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64, device="cpu")
    if w.numel() != n:
        raise SymmergeError(f"weights must hold one number per network: got {w.numel()} for "
                            f"{n} networks")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.max()) <= 0:
        raise SymmergeError(
            f"weights must be finite and non-negative, not all zero; got {w.tolist()}"
        )
    w = w / w.max()
    return w / w.sum()


def check_merge_options(
    n: int,
    *,
    alpha: float | None = None,
    weights: Sequence[float] | None = None,
    wm_iters: int = 5,
) -> Tensor:
    """Validate :func:`merge`'s options for ``n`` networks before anything is loaded;
    returns the normalized weights (:func:`merge_weights`). (Weight-matching settings are
    checked when their :class:`~symmerge.align.MatchOptions` is made.)"""
    check_range(wm_iters, "wm_iters", 0, MAX_ITER)
    return merge_weights(n, alpha=alpha, weights=weights)


def merge(
    params: Tensor,
    spec: WeightSpaceSpec,
    method: str | None = None,
    *,
    weights: Tensor | Sequence[float] | None = None,
    alpha: float | None = None,
    run: RunLike | None = None,
    canonicalizer: Canonicalizer | None = None,
    wm_iters: int = 5,
    matching: MatchOptions = MatchOptions(),
    device: str | torch.device | None = None,
) -> MergeResult:
    """Merge networks ``params [N, P]`` with ``method``, one of
    :func:`symmerge.methods.method_names` ``("merge")`` (default: the registry's default,
    ``wm``, weight matching with the networks' own symmetry).

    Methods that need a trained autoencoder take ``run`` (or, for those that
    canonicalize, a ready ``canonicalizer``). ``matching`` sets the weight matching (of
    the matching methods, and of ``ae-lift`` to its template, whose default strategy is
    ``forward``); ``wm_iters`` the re-matching rounds of N > 2 networks. The work runs on
    ``device`` (default: where ``params`` are; an autoencoder run is loaded there); the
    result's tensors are on ``params``' device.
    """
    method = method or default_method("merge")
    entry = get_method(method, "merge")
    params = spec.check_params(params)  # refuses NaN and Inf
    if params.ndim != 2:
        raise SymmergeError(f"merge takes [N, P] networks, got {tuple(params.shape)}")
    entry.check_family(spec)
    if isinstance(weights, Tensor):
        weights = weights.tolist()
    w = check_merge_options(params.shape[0], alpha=alpha, weights=weights, wm_iters=wm_iters)
    home = params.device
    work = params.to(home if device is None else device)
    w = w.to(work.device)
    if canonicalizer is not None:
        if "canonicalize" not in entry.uses or canonicalizer.exact != entry.exact:
            raise SymmergeError(f"the canonicalizer given, a {type(canonicalizer).__name__}, "
                                f"does not canonicalize as method {method!r} does",
                                params=("canonicalizer",))
        frame = Canonical(canonicalizer)
    else:
        models, _ = load_models(entry, {"run": run}, spec)
        frame = entry.build(MethodInputs(spec, models, matching=matching, rounds=wm_iters,
                                         device=work.device))
    t0 = time.perf_counter()
    with torch.no_grad():
        aligned, info = frame.align(work, w)
        merged = weighted_mean(aligned, w)
    return MergeResult(merged.to(home), aligned.to(home), w.float().to(home), method,
                       time.perf_counter() - t0, info, frame.provenance())
