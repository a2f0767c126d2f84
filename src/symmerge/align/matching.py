"""Weight matching (Git Re-Basin, Ainsworth et al. 2023), symmetry-aware and any depth.

Network B is aligned to the reference A by maximizing the sum over layers of the
Frobenius inner products of weights (whole kernels for CNNs) and biases, i.e. the
flat dot product ``<A, g.B>``, over group elements ``g``. Coordinate ascent visits
the hidden layers in random order; each step is a linear assignment problem on

    C[i, j] = <in_A[i], in_B'[j]> + <out_A[i], out_B'[j]>

(``in``: bias and incoming weights, ``out``: outgoing weights of hidden neuron ``i``
of A and ``j`` of the current aligned B'), computed for all B pairs at once, on the
networks' device. The LAP itself runs per pair on CPU (``scipy.optimize.linear_sum_assignment``):
each step copies its cost matrices to the host once and the solutions back. Modes:

* ``"permutation"``: permutations only (the paper's baseline), ``max sum_i C[i, pi(i)]``;
* ``"sign"`` (sine, tanh): signed permutations, the LAP on ``|C|`` and
  ``s_i = sign(C[i, pi(i)])`` with ``sign(0) = +1`` (METHOD.md 6.2);
* ``"scale"`` (ReLU): both networks are first brought to unit incoming norm per
  hidden neuron (:func:`scale_normalization`, an exact group element), then
  permutations are matched on those forms, so the match does not depend on B's
  scales; finally B's neurons get the positive scales that bring it nearest to A
  (:func:`closest_scales`), so the returned element is ``D o n_A^-1 o P o n_B``.
  Copying A's incoming norms instead (``D = 1``) recovers exact orbits too, but on
  independently trained CNNs it inflates the outgoing weights and the barrier.

A step is only taken if it increases the objective, so every sweep is monotone
and the loop stops once a full sweep changes nothing (or after ``max_iter``).

Strategies: ``"descent"`` is the coordinate ascent above, from the identity (and
from random restarts). Its result depends on B's arbitrary neuron order through
that start. ``"forward"`` is one pass over the hidden layers in order (as in
layer-wise OT fusion, Singh & Jaggi 2020): layer ``h`` is matched once, on the
incoming weights in the frame already fixed for layer ``h - 1``, plus the outgoing
weights for the last hidden layer (the output layer has no symmetry). Each cost
matrix is then a function of B's orbit alone, so every member of an orbit is
mapped to the same network (up to LAP ties); it does not climb as high on
``<A, g.B>``. Aligning a network to a *far* reference (the ``ae-lift`` template),
it is much less sensitive to small perturbations of B than the descent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from symmerge.align._layers import as_batch, incoming, layer_element, outgoing, select
from symmerge.align.canonical import closest_scales, scale_normalization
from symmerge.errors import SymmergeError
from symmerge.limits import MAX_ITER, MAX_RESTARTS, MAX_SEED, check_range
from symmerge.specs.base import WeightSpaceSpec
from symmerge.symmetry.group import GroupElement, sample_group_elements

MODES = ("auto", "permutation", "sign", "scale")
STRATEGIES = ("descent", "forward")

#: A LAP step must beat the current assignment by this fraction of sum |C|.
_REL_IMPROVEMENT = 1e-10


@dataclass(frozen=True)
class MatchOptions:
    """The settings of weight matching, checked when made (numbers within
    :mod:`symmerge.limits`, known ``mode`` and ``strategy``).

    ``mode``: ``"auto"`` (the networks' own symmetry: ``"sign"`` for sine/tanh, ``"scale"``
    for ReLU), ``"permutation"``, ``"sign"`` or ``"scale"``. ``strategy``: ``"descent"``
    (coordinate ascent from the identity and ``restarts`` random elements, at most
    ``max_iter`` sweeps, layer orders and restarts drawn from ``seed``) or ``"forward"``
    (one in-order pass, to which ``restarts``, ``max_iter`` and ``seed`` do not apply);
    ``None`` leaves it to the caller: ``descent`` for :func:`weight_matching` and the
    weight-matching methods, ``forward`` for ``ae-lift``'s matching to its template.
    """

    restarts: int = 0
    max_iter: int = 100
    seed: int = 0
    mode: str = "auto"
    strategy: str | None = None

    def __post_init__(self) -> None:
        check_range(self.restarts, "restarts", 0, MAX_RESTARTS)
        check_range(self.max_iter, "max_iter", 1, MAX_ITER)
        check_range(self.seed, "seed", 0, MAX_SEED)
        if self.mode not in MODES:
            raise SymmergeError(
                f"mode must be one of {', '.join(MODES)}; got {self.mode!r}"
            )
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise SymmergeError(
                f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}"
            )

    def strategy_or(self, default: str) -> str:
        """``strategy``, or ``default`` where it is None."""
        return self.strategy or default

    def mode_for(self, spec: WeightSpaceSpec) -> str:
        """The mode for networks of ``spec``: ``"auto"`` is their symmetry; a mode that
        would change their function is refused."""
        if self.mode == "auto":
            return spec.symmetry
        if self.mode != "permutation" and self.mode != spec.symmetry:
            raise SymmergeError(
                f"matching mode {self.mode!r} does not preserve {spec.activation} networks; "
                f"use {spec.symmetry!r} or 'permutation'"
            )
        return self.mode


@dataclass(frozen=True)
class MatchResult:
    """``element.apply(spec, params_b) == aligned``; ``objective [B]`` (float64) is the
    maximized ``<A, aligned>`` (in ``"scale"`` mode: between the unit-norm forms)."""

    element: GroupElement
    aligned: Tensor
    objective: Tensor


def _solve(cost: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """One LAP on ``cost [n, n]``: (perm, signs, improved over the identity)."""
    from scipy.optimize import linear_sum_assignment  # here: the CLI starts without scipy

    n = cost.shape[0]
    gain = np.abs(cost) if signed else cost
    _, cols = linear_sum_assignment(gain, maximize=True)
    new, cur = gain[np.arange(n), cols].sum(), np.trace(cost)
    if not new > cur + _REL_IMPROVEMENT * np.abs(cost).sum():
        return np.arange(n), np.ones(n), False
    signs = np.where(cost[np.arange(n), cols] < 0, -1.0, 1.0) if signed else np.ones(n)
    return cols, signs, True


def _descend(
    spec: WeightSpaceSpec,
    a: Tensor,
    b: Tensor,
    start: GroupElement,
    signed: bool,
    orders: list[list[int]],
) -> GroupElement:
    """Coordinate ascent from ``start``, sweep ``k`` visiting the hidden layers in
    ``orders[k]``; returns the element in the frame of ``b``."""
    batch, hidden = b.shape[0], spec.num_hidden
    element, cur = start, start.apply(spec, b)
    wide = torch.float64
    rows_a = [incoming(spec, a, h).to(wide) for h in range(hidden)]
    cols_a = [outgoing(spec, a, h).to(wide) for h in range(hidden)]
    active = np.ones(batch, dtype=bool)  # host bookkeeping of the LAPs (which run on the CPU)
    for order in orders:
        changed = np.zeros(batch, dtype=bool)
        for h in order:
            # C[b, i, j] = <in_A[i], in_B'[j]> + <out_A[i], out_B'[j]>, all pairs at once
            cost = torch.bmm(rows_a[h], incoming(spec, cur, h).to(wide).mT)
            cost += torch.bmm(cols_a[h], outgoing(spec, cur, h).to(wide).mT)
            cost_np = cost.cpu().numpy()
            n = cost_np.shape[-1]
            perm, sign = np.tile(np.arange(n), (batch, 1)), np.ones((batch, n))
            for i in np.flatnonzero(active):
                perm[i], sign[i], improved = _solve(cost_np[i], signed)
                changed[i] |= improved
            step = layer_element(
                spec, h,
                torch.from_numpy(perm).to(b.device, torch.long),
                torch.from_numpy(sign).to(device=b.device, dtype=b.dtype),
            )
            cur = step.apply(spec, cur)
            element = step.compose(element)
        active &= changed
        if not active.any():
            break
    return element


def _forward(spec: WeightSpaceSpec, a: Tensor, b: Tensor, signed: bool) -> GroupElement:
    """One pass over the hidden layers in order; returns the element in the frame of ``b``."""
    batch, hidden = b.shape[0], spec.num_hidden
    element = GroupElement.identity(spec, batch, dtype=b.dtype, device=b.device)
    cur, wide = b, torch.float64
    for h in range(hidden):
        cost = torch.bmm(incoming(spec, a, h).to(wide), incoming(spec, cur, h).to(wide).mT)
        if h == hidden - 1:  # its outgoing weights meet the unpermuted output layer
            cost += torch.bmm(outgoing(spec, a, h).to(wide), outgoing(spec, cur, h).to(wide).mT)
        solved = [_solve(c, signed)[:2] for c in cost.cpu().numpy()]
        step = layer_element(
            spec, h,
            torch.from_numpy(np.stack([p for p, _ in solved])).to(b.device, torch.long),
            torch.from_numpy(np.stack([s for _, s in solved])).to(device=b.device, dtype=b.dtype),
        )
        cur = step.apply(spec, cur)
        element = step.compose(element)
    return element


def _objective(spec: WeightSpaceSpec, a: Tensor, b: Tensor, element: GroupElement) -> Tensor:
    """``<A, element.B>`` per pair, in float64."""
    return (a.to(torch.float64) * element.apply(spec, b).to(torch.float64)).sum(-1)


def _descend_with_restarts(
    spec: WeightSpaceSpec,
    a: Tensor,
    b: Tensor,
    signed: bool,
    restarts: int,
    max_iter: int,
    seed: int,
) -> tuple[GroupElement, Tensor]:
    """Descent from the identity and from ``restarts`` random elements; per pair the best
    (element, objective).

    The layer orders of the sweeps and the restart elements are drawn from ``seed`` alone,
    the same for every pair, so a pair's result does not depend on the batch it is in.
    """
    batch = b.shape[0]
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on every device
    orders = [torch.randperm(spec.num_hidden, generator=gen, device=gen.device).tolist()
              for _ in range(max_iter)]
    best = GroupElement.identity(spec, batch, dtype=b.dtype, device=b.device)
    best = _descend(spec, a, b, best, signed, orders)
    best_obj = _objective(spec, a, b, best)
    for _ in range(restarts):
        one = sample_group_elements(spec, 1, diagonal=signed, generator=gen, dtype=b.dtype,
                                    device=b.device)
        start = GroupElement(tuple(p.expand(batch, -1) for p in one.perms),
                             tuple(q.expand(batch, -1) for q in one.mults))
        element = _descend(spec, a, b, start, signed, orders)
        obj = _objective(spec, a, b, element)
        better = obj > best_obj
        best, best_obj = select(better, element, best), torch.where(better, obj, best_obj)
    return best, best_obj


def weight_matching(
    spec: WeightSpaceSpec,
    params_a: Tensor,
    params_b: Tensor,
    matching: MatchOptions = MatchOptions(),
) -> MatchResult:
    """Align each network of ``params_b [B, P]`` (or ``[P]``) to ``params_a`` (``[P]`` or
    ``[B, P]``); ``result.element.apply(spec, params_b) == result.aligned``.

    ``matching`` (:class:`MatchOptions`): ``mode`` ``"auto"`` is the spec's symmetry
    (``"sign"`` for sine/tanh, ``"scale"`` for ReLU). ``max_iter`` bounds the sweeps over
    all hidden layers. ``restarts`` extra runs start from random permutations (random
    signed ones in ``"sign"`` mode); per pair the run with the highest objective wins,
    and the first run (from the identity) is the same for any ``restarts``, so restarts
    never lower the objective. ``seed`` fixes the layer orders and the restart elements,
    the same for every pair, so a pair gets the same result alone or in any batch.
    ``strategy="forward"`` runs the single in-order pass instead (see the module
    docstring); ``restarts``, ``max_iter`` and ``seed`` do not apply to it. The default
    strategy is ``"descent"``.
    """
    mode = matching.mode_for(spec)
    strategy = matching.strategy_or("descent")
    b = b_orig = as_batch(spec, params_b, "params_b")
    a = as_batch(spec, params_a, "params_a").to(device=b.device, dtype=b.dtype)
    if a.shape[0] not in (1, b.shape[0]):
        raise SymmergeError(f"params_a has {a.shape[0]} networks, params_b {b.shape[0]}")
    a = a.expand(b.shape[0], -1)
    signed = mode == "sign"
    norm_a = norm_b = None
    if mode == "scale":
        norm_a, norm_b = scale_normalization(spec, a), scale_normalization(spec, b)
        a, b = norm_a.apply(spec, a), norm_b.apply(spec, b)
    if strategy == "forward":
        best = _forward(spec, a, b, signed)
        best_obj = _objective(spec, a, b, best)
    else:
        best, best_obj = _descend_with_restarts(spec, a, b, signed, matching.restarts,
                                                matching.max_iter, matching.seed)
    if norm_a is not None and norm_b is not None:
        best = norm_a.inverse().compose(best.compose(norm_b))
        # interpolation frame: B's scales nearest to A, not A's norms copied neuron by neuron
        a_orig = as_batch(spec, params_a, "params_a").to(device=b.device, dtype=b.dtype)
        best = closest_scales(spec, a_orig, best.apply(spec, b_orig)).compose(best)
    return MatchResult(best, best.apply(spec, b_orig), best_obj)
