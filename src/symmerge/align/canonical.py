"""Exact, non-learned canonicalization: fix each hidden neuron's sign or scale, then sort.

The canonical form is a function of the orbit, not of the member: every exact
transform (permutations, signs or positive scales, and for SIRENs phase shifts
when ``phase=True``) of a network maps to the same parameters, up to rounding,
and the canonical network computes the input's function.
"""

from __future__ import annotations

import torch
from torch import Tensor

from symmerge.align._layers import as_batch, incoming, layer_element, outgoing, select
from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec
from symmerge.specs.siren import SirenSpec
from symmerge.symmetry.group import GroupElement
from symmerge.symmetry.phase import phase_element


def _unit_scale(vectors: Tensor) -> Tensor:
    """Positive multipliers ``[B, n]`` that give each ``[B, n, d]`` row unit norm (1 if zero)."""
    norm = torch.linalg.vector_norm(vectors, dim=-1)
    tiny = torch.finfo(vectors.dtype).tiny
    return torch.where(norm > tiny, 1.0 / norm.clamp_min(tiny), torch.ones_like(norm))


def _sign_fix(vectors: Tensor) -> Tensor:
    """Signs ``[B, n]`` that make each row's largest-magnitude entry positive.

    Ties go to the first such entry (the bias comes first); an all-zero row keeps +1.
    """
    idx = vectors.abs().argmax(dim=-1, keepdim=True)
    pivot = vectors.gather(-1, idx).squeeze(-1)
    return torch.where(pivot < 0, -1.0, 1.0).to(vectors.dtype)


def lexsort_rows(keys: Tensor) -> Tensor:
    """``[B, n]`` indices that sort the rows of ``keys [B, n, d]`` lexicographically
    (ascending, column 0 most significant; stable on exact ties)."""
    b, n, d = keys.shape
    first, order = torch.sort(keys[..., 0], dim=1, stable=True)
    if d == 1 or not bool((first[:, 1:] == first[:, :-1]).any()):
        return order  # no ties in the most significant key: it decides alone
    order = torch.arange(n, device=keys.device).expand(b, n)
    for k in range(d - 1, -1, -1):  # least significant key first, stable sorts
        vals = keys[..., k].gather(1, order)
        order = order.gather(1, torch.sort(vals, dim=1, stable=True).indices)
    return order


def scale_normalization(spec: WeightSpaceSpec, params: Tensor) -> GroupElement:
    """The positive-scale element that gives every hidden neuron unit incoming norm.

    Per hidden layer, in order, neuron ``i`` is scaled so that ``(b_h[i], W_h[i])``
    (incoming weights with the previous layer already normalized) has unit Euclidean
    norm; the inverse goes to its outgoing weights. Exact for ReLU networks only.
    """
    x = as_batch(spec, params)
    mults = []
    for h in range(spec.num_hidden):
        mult = _unit_scale(incoming(spec, x, h))
        ident = torch.arange(mult.shape[1], device=x.device).expand_as(mult)
        x = layer_element(spec, h, ident, mult).apply(spec, x)
        mults.append(mult)
    ident = GroupElement.identity(spec, x.shape[0], dtype=x.dtype, device=x.device)
    return GroupElement(ident.perms, tuple(mults))


def _scale_objective(s: Tensor, terms: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """``|a_in - s b_in|^2 + |a_out - b_out / s|^2`` up to a constant, for candidates
    ``s [B, n, k]`` and per-neuron ``(|b_in|^2, <a_in, b_in>, |b_out|^2, <a_out, b_out>)``."""
    al, be, ga, de = (t.unsqueeze(-1) for t in terms)
    return s * s * al - 2 * s * be + ga / (s * s) - 2 * de / s


def _descend_scales(
    spec: WeightSpaceSpec, a: Tensor, cur: Tensor, sweeps: int
) -> tuple[Tensor, list[Tensor]]:
    """Block coordinate descent on ``|a - D cur|^2`` over positive scales ``D``."""
    mults = [torch.ones(cur.shape[0], n, dtype=cur.dtype, device=cur.device)
             for n in spec.hidden_sizes]
    coarse = torch.logspace(-2, 2, 65, dtype=cur.dtype, device=cur.device)
    fine = torch.logspace(-1 / 16, 1 / 16, 33, dtype=cur.dtype, device=cur.device)
    tiny = torch.finfo(cur.dtype).tiny
    for _ in range(sweeps):
        for h in range(spec.num_hidden):
            ai, bi = incoming(spec, a, h), incoming(spec, cur, h)
            ao, bo = outgoing(spec, a, h), outgoing(spec, cur, h)
            terms = (bi.square().sum(-1), (ai * bi).sum(-1), bo.square().sum(-1),
                     (ao * bo).sum(-1))
            ratio = torch.linalg.vector_norm(ai, dim=-1) / torch.linalg.vector_norm(
                bi, dim=-1).clamp_min(tiny)
            ratio = torch.where(ratio > 0, ratio, torch.ones_like(ratio)).clamp(1e-6, 1e6)
            one = torch.ones_like(ratio).unsqueeze(-1)
            best = one
            for grid, center in ((coarse, ratio.unsqueeze(-1)), (fine, None)):
                base = center if center is not None else best
                cand = torch.cat([one, best, base * grid], dim=-1)
                g = _scale_objective(cand, terms)
                best = cand.gather(-1, g.argmin(-1, keepdim=True))
            mult = best.squeeze(-1)
            ident = torch.arange(mult.shape[1], device=cur.device).expand_as(mult)
            cur = layer_element(spec, h, ident, mult).apply(spec, cur)
            mults[h] = mults[h] * mult
    return cur, mults


def closest_scales(
    spec: WeightSpaceSpec, reference: Tensor, params: Tensor, *, sweeps: int = 2
) -> GroupElement:
    """The positive-scale element ``D`` that (approximately) minimizes
    ``|reference - D.apply(params)|^2``: the representative of ``params``' scale orbit
    nearest to ``reference``, a frame to interpolate in (ReLU networks).

    Two starts: ``params`` as given, and ``params`` with ``reference``'s incoming norms
    copied neuron by neuron, layer by layer (exact when ``params`` lies on
    ``reference``'s scale orbit). From each, block coordinate descent over hidden layers
    (``sweeps`` passes): within a layer the objective separates into one 1-d problem
    per neuron, solved on a log-spaced grid around the norm ratio and refined on a finer
    grid, always with the current scale as a candidate, so no step moves away. Per
    network the closer result wins: never farther than ``params``, and exact on orbits.
    """
    a = as_batch(spec, reference, "reference")
    x = as_batch(spec, params)
    a = a.to(x.dtype).expand(x.shape[0], -1)
    copy = scale_normalization(spec, a).inverse().compose(scale_normalization(spec, x))
    perms = GroupElement.identity(spec, x.shape[0], dtype=x.dtype, device=x.device).perms
    best_elem, best_dist = None, None
    for start in (None, copy):
        cur = x if start is None else start.apply(spec, x)
        cur, mults = _descend_scales(spec, a, cur, sweeps)
        elem = GroupElement(perms, tuple(mults))
        if start is not None:
            elem = elem.compose(start)
        dist = (a - cur).square().sum(-1)
        if best_elem is None or best_dist is None:
            best_elem, best_dist = elem, dist
        else:
            closer = dist < best_dist
            best_elem = select(closer, elem, best_elem)
            best_dist = torch.where(closer, dist, best_dist)
    assert best_elem is not None
    return best_elem


def sort_canonicalize(
    spec: WeightSpaceSpec, params: Tensor, *, phase: bool = False
) -> tuple[Tensor, GroupElement]:
    """Canonical parameters ``[B, P]`` (``[P]`` for ``[P]``) and the element that produces them.

    Hidden layers are processed in order, so each layer sees the canonical order
    and signs/scales of the previous one. For each neuron, with the incoming
    vector ``v = (b_h[i], W_h[i] flattened)``:

    * sign symmetry (sine, tanh): flip the neuron so that the entry of ``v`` with
      the largest magnitude is positive (first such entry on exact ties, so the
      bias wins a tie; an all-zero ``v`` is left as is). The pivot has magnitude at
      least ``|v| / sqrt(len(v))``, so the rule does not hinge on a near-zero
      number, unlike "make the bias positive", which fails for zero biases;
    * scale symmetry (ReLU): scale ``v`` to unit norm (zero ``v`` left as is);

    then sort the layer's neurons lexicographically by the fixed ``v`` (bias
    first). With ``phase=True`` (SIREN only) the phase canonicalization of
    :func:`symmerge.symmetry.canonicalize_phase` runs first, so members of an orbit
    that includes phase shifts map to the same parameters too.

    ``element.apply(spec, params)`` equals the returned parameters. Exactness can
    only fail on measure-zero sets: neurons with identical fixed incoming vectors
    (ordered by position), or, where orbit members differ by rounding (scales, phase
    shifts), two pivot candidates of nearly equal magnitude or two near-equal keys.
    """
    single = params.ndim == 1
    x = as_batch(spec, params)
    if phase and not isinstance(spec, SirenSpec):
        raise SymmergeError("phase canonicalization applies to SIREN networks only")
    pre = phase_element(spec, x) if phase else None  # type: ignore[arg-type]
    cur = pre.apply(spec, x) if pre is not None else x
    perms, mults = [], []
    for h in range(spec.num_hidden):
        v = incoming(spec, cur, h)
        mult = _unit_scale(v) if spec.symmetry == "scale" else _sign_fix(v)
        perm = lexsort_rows(v * mult.unsqueeze(-1))
        mult = mult.gather(1, perm)
        cur = layer_element(spec, h, perm, mult).apply(spec, cur)
        perms.append(perm)
        mults.append(mult)
    element = GroupElement(tuple(perms), tuple(mults))
    if pre is not None:
        element = element.compose(pre)
    out = element.apply(spec, x)
    return (out[0] if single else out), element
