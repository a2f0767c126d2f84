"""Exact, non-learned canonicalization: fix each hidden neuron's sign or scale, then sort.

The canonical form is a function of the orbit, not of the member: every exact
transform (permutations, signs or positive scales, and for SIRENs phase shifts
when ``phase=True``) of a network maps to the same parameters, up to rounding,
and the canonical network computes the input's function.
"""

from __future__ import annotations

import torch
from torch import Tensor

from symmerge.align._layers import as_batch, incoming, layer_element
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
    perms = tuple(torch.arange(n, device=x.device).expand(x.shape[0], n) for n in spec.hidden_sizes)
    return GroupElement(perms, tuple(mults))


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
