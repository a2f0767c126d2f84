"""Merging N networks of one architecture by a weighted average in an aligned frame.

* ``naive``: average the raw parameters.
* ``wm``: weight matching (Git Re-Basin with signs / scales). Two networks:
  align the second to the first. ``N > 2``: align every network to the first,
  then repeatedly re-align every network to the current weighted mean
  (``wm_iters`` rounds, stopping early once nothing changes). Each round costs
  ``N`` matchings, never ``O(N^2)``.
* ``sort`` / ``ae`` / ``ae-lift``: canonicalize all networks in one batch and
  average in canonical space (``N`` canonicalizations, no pairwise matching).
  ``ae`` averages the autoencoder reconstructions (lossy endpoints); ``sort``
  and ``ae-lift`` average exact function-preserving representatives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from symmerge.canon import Canonicalizer, make_canonicalizer
from symmerge.errors import SymmergeError
from symmerge.limits import MAX_ITER, check_range
from symmerge.specs import WeightSpaceSpec

MERGE_METHODS = ("naive", "wm", "sort", "ae", "ae-lift")


@dataclass
class MergeResult:
    """The merged network ``params [P]``, the aligned inputs ``[N, P]`` it averages,
    the normalized weights ``[N]`` and bookkeeping."""

    params: Tensor
    aligned: Tensor
    weights: Tensor
    method: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


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
        raise SymmergeError("give either --alpha or --weights, not both")
    if alpha is not None:
        if n != 2:
            raise SymmergeError(f"--alpha is for two networks; use --weights for {n}")
        if not 0.0 <= alpha <= 1.0:
            raise SymmergeError(f"--alpha must be in [0, 1], got {alpha}")
        return torch.tensor([1.0 - alpha, alpha], dtype=torch.float64, device="cpu")
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device="cpu")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64, device="cpu")
    if w.numel() != n:
        raise SymmergeError(f"got {w.numel()} weights for {n} networks")
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
    restarts: int = 0,
    max_iter: int = 100,
    seed: int = 0,
) -> Tensor:
    """Validate :func:`merge`'s options for ``n`` networks before anything is loaded;
    returns the normalized weights (:func:`merge_weights`)."""
    from symmerge.align import check_matching_options

    check_range(wm_iters, "wm_iters", 0, MAX_ITER)
    check_matching_options(restarts, max_iter, seed)
    return merge_weights(n, alpha=alpha, weights=weights)


def _weighted_mean(params: Tensor, weights: Tensor) -> Tensor:
    return (weights.to(params).unsqueeze(1) * params).sum(0)


def align_networks(
    spec: WeightSpaceSpec,
    params: Tensor,
    weights: Tensor,
    *,
    iters: int = 5,
    restarts: int = 0,
    max_iter: int = 100,
    seed: int = 0,
    mode: str = "auto",
) -> tuple[Tensor, dict[str, Any]]:
    """Weight-match ``params [N, P]`` into one frame (see the module docstring)."""
    from symmerge.align import weight_matching

    def match(target: Tensor, nets: Tensor) -> Tensor:
        return weight_matching(spec, target, nets, mode=mode, restarts=restarts,
                               max_iter=max_iter, seed=seed).aligned

    aligned = torch.cat([params[:1], match(params[0], params[1:])])
    rounds = 0
    if params.shape[0] > 2:
        for _ in range(iters):
            new = match(_weighted_mean(aligned, weights), params)
            rounds += 1
            if torch.equal(new, aligned):
                break
            aligned = new
    return aligned, {"wm_rounds": rounds}


def merge(
    params: Tensor,
    spec: WeightSpaceSpec,
    method: str = "naive",
    *,
    weights: Tensor | Sequence[float] | None = None,
    alpha: float | None = None,
    run: str | os.PathLike[str] | None = None,
    canonicalizer: Canonicalizer | None = None,
    wm_iters: int = 5,
    restarts: int = 0,
    max_iter: int = 100,
    seed: int = 0,
    strategy: str = "forward",
    device: str | torch.device | None = None,
) -> MergeResult:
    """Merge networks ``params [N, P]`` with ``method`` (naive | wm | sort | ae | ae-lift).

    ``ae`` / ``ae-lift`` need ``run`` (or a ready ``canonicalizer``); ``strategy`` is
    ``ae-lift``'s weight matching to the template (``restarts``, ``max_iter`` and ``seed``
    apply to ``wm`` and to the ``descent`` strategy). The work runs on ``device``
    (default: where ``params`` are; an autoencoder run is loaded there); the result's
    tensors are on ``params``' device.
    """
    if method not in MERGE_METHODS:
        raise SymmergeError(
            f"unknown merge method {method!r}; choose one of {', '.join(MERGE_METHODS)}"
        )
    params = spec.check_params(params)  # refuses NaN and Inf
    if params.ndim != 2:
        raise SymmergeError(f"merge takes [N, P] networks, got {tuple(params.shape)}")
    if isinstance(weights, Tensor):
        weights = weights.tolist()
    w = check_merge_options(params.shape[0], alpha=alpha, weights=weights, wm_iters=wm_iters,
                            restarts=restarts, max_iter=max_iter, seed=seed)
    info: dict[str, Any] = {}
    home = params.device
    work = params.to(home if device is None else device)
    w = w.to(work.device)
    t0 = time.perf_counter()
    with torch.no_grad():
        if method == "naive":
            aligned = work.clone()
        elif method == "wm":
            aligned, info = align_networks(spec, work, w, iters=wm_iters, restarts=restarts,
                                           max_iter=max_iter, seed=seed)
        else:
            canon = canonicalizer or make_canonicalizer(
                method, spec, run=run, restarts=restarts, max_iter=max_iter, seed=seed,
                strategy=strategy, device=work.device,
            )
            if canon.name != method:
                raise SymmergeError(f"canonicalizer {canon.name!r} given for method {method!r}")
            aligned = canon(work)
        merged = _weighted_mean(aligned, w)
    return MergeResult(merged.to(home), aligned.to(home), w.float().to(home), method,
                       time.perf_counter() - t0, info)
