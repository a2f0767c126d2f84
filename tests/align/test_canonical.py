"""Exact ``sort`` canonicalization and scale normalization."""

from __future__ import annotations

import pytest
import torch

from symmerge.align import closest_scales, scale_normalization, sort_canonicalize
from symmerge.align._layers import layer_element
from symmerge.align.canonical import lexsort_rows
from symmerge.errors import SymmergeError
from symmerge.specs import MLPSpec, SirenSpec
from symmerge.symmetry import assert_function_preserved, make_orbit
from tests.devices import assert_on
from tests.symmetry.nets import (
    SCALE_SPECS,
    SPECS,
    assert_params_close,
    random_params,
    relative_diff,
    spec_id,
)


def _incoming(spec, params, h):
    ws, bs = spec.unflatten(params)
    return torch.cat([bs[h].unsqueeze(-1), ws[h].flatten(2)], dim=-1)


@pytest.mark.parametrize("transform", ["P", "D", "PD"])
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_orbit_members_share_one_canonical_form(spec, transform, dtype, gen, device):
    base = random_params(spec, 1, dtype=dtype, generator=gen)[0].to(device)
    members, _ = make_orbit(spec, base, 32, transform, scale_range=(1e-2, 1e2), generator=gen)
    canon, element = sort_canonicalize(spec, members)
    assert_on((canon, element.perms, element.mults), device)
    ref, _ = sort_canonicalize(spec, base)
    assert_params_close(canon, ref.expand_as(canon))
    assert_function_preserved(spec, members, canon)
    assert element.batch_size == 32 and element.shifts is None


@pytest.mark.parametrize("spec", [s for s in SPECS if isinstance(s, SirenSpec)], ids=spec_id)
def test_siren_orbits_with_phase_shifts(spec, dtype, gen):
    base = random_params(spec, 1, dtype=dtype, generator=gen, bias_phase=10.0)[0]
    members, _ = make_orbit(spec, base, 32, "PD", phase=True, generator=gen)
    canon, element = sort_canonicalize(spec, members, phase=True)
    assert_params_close(canon, sort_canonicalize(spec, base, phase=True)[0].expand_as(canon))
    assert element.shifts is not None
    assert_params_close(element.apply(spec, members), canon)
    assert_function_preserved(spec, members, canon)
    # without the phase step, shifted members generally stay apart
    plain, _ = sort_canonicalize(spec, members)
    assert relative_diff(plain, plain[:1].expand_as(plain)) > 1e-2


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_canonical_form_properties(spec, dtype, gen):
    """Fixed neurons (unit norm, or positive largest entry) in lexicographic order; idempotent."""
    params = random_params(spec, 8, dtype=dtype, generator=gen)
    canon, _ = sort_canonicalize(spec, params)
    for h in range(spec.num_hidden):
        v = _incoming(spec, canon, h)
        if spec.symmetry == "scale":
            norms = torch.linalg.vector_norm(v, dim=-1)
            assert_params_close(norms, torch.ones_like(norms), factor=2)
        else:
            pivot = v.gather(-1, v.abs().argmax(-1, keepdim=True))
            assert bool((pivot > 0).all())
        # generic networks: the first key (the bias) already decides the order
        assert bool((v[..., 1:, 0] > v[..., :-1, 0]).all())
    again, e = sort_canonicalize(spec, canon)
    assert_params_close(again, canon)
    for perm in e.perms:
        assert torch.equal(perm, torch.arange(perm.shape[1]).expand_as(perm))


def test_zero_biases_fall_back_to_weights(dtype, gen):
    """The zoo's SIREN init has zero hidden biases: sign and order come from the weights."""
    spec = SirenSpec()
    base = spec.init_params(1, generator=gen, dtype=dtype)[0]
    members, _ = make_orbit(spec, base, 16, "PD", generator=gen)
    canon, _ = sort_canonicalize(spec, members)
    assert_params_close(canon, sort_canonicalize(spec, base)[0].expand_as(canon))


def test_dead_neuron_is_left_alone(dtype, gen):
    spec = MLPSpec(layout=(2, 4, 3, 1), activation="relu")
    params = random_params(spec, 2, dtype=dtype, generator=gen)
    ws, bs = spec.unflatten(params)
    ws[0][:, 1], bs[0][:, 1] = 0.0, 0.0
    canon, element = sort_canonicalize(spec, params)
    assert bool(torch.isfinite(canon).all())
    assert_function_preserved(spec, params, canon)
    mult = element.mults[0].gather(1, element.perms[0].argsort(1))[:, 1]
    assert torch.equal(mult, torch.ones_like(mult))


@pytest.mark.parametrize("spec", SCALE_SPECS, ids=spec_id)
def test_scale_normalization(spec, dtype, gen):
    params = random_params(spec, 4, dtype=dtype, generator=gen)
    members, _ = make_orbit(spec, params[0], 4, "D", scale_range=(1e-2, 1e2), generator=gen)
    e = scale_normalization(spec, members)
    normed = e.apply(spec, members)
    assert_function_preserved(spec, members, normed)
    for h in range(spec.num_hidden):
        norms = torch.linalg.vector_norm(_incoming(spec, normed, h), dim=-1)
        assert_params_close(norms, torch.ones_like(norms), factor=2)
        assert torch.equal(e.perms[h], torch.arange(spec.hidden_sizes[h]).expand(4, -1))
        assert bool((e.mults[h] > 0).all())
    assert_params_close(normed, normed[:1].expand_as(normed))  # exact on scale orbits


@pytest.mark.parametrize("spec", SCALE_SPECS, ids=spec_id)
def test_closest_scales(spec, dtype, gen):
    ref = random_params(spec, 4, dtype=dtype, generator=gen)
    # a member of ref's scale orbit is brought back to ref exactly
    members, _ = make_orbit(spec, ref[0], 4, "D", scale_range=(1e-1, 1e1), generator=gen)
    e = closest_scales(spec, ref[0], members)
    assert_function_preserved(spec, members, e.apply(spec, members))
    assert_params_close(e.apply(spec, members), ref[:1].expand_as(members), factor=4)
    # other networks: a function-preserving element that never moves them farther from ref
    other = random_params(spec, 4, dtype=dtype, generator=gen)
    e = closest_scales(spec, ref, other)
    moved = e.apply(spec, other)
    assert_function_preserved(spec, other, moved)
    assert bool((e.mults[0] > 0).all())
    before = (ref - other).norm(dim=-1)
    after = (ref - moved).norm(dim=-1)
    assert bool((after <= before * (1 + 1e-6)).all()) and bool((after < 0.99 * before).any())
    # near a block optimum: nudging one neuron's scale does not bring it closer
    h, i = spec.num_hidden - 1, 0
    for f in (0.97, 1.03):
        mult = torch.ones(4, spec.hidden_sizes[h], dtype=dtype)
        mult[:, i] = f
        ident = torch.arange(spec.hidden_sizes[h]).expand(4, -1)
        nudged = layer_element(spec, h, ident, mult).apply(spec, moved)
        assert bool(((ref - nudged).norm(dim=-1) >= after * (1 - 1e-3)).all())


def test_lexsort_rows():
    keys = torch.tensor([[[1.0, 2.0], [0.0, 5.0], [1.0, -1.0], [0.0, 5.0]]])
    assert lexsort_rows(keys).tolist() == [[1, 3, 2, 0]]


def test_errors(gen):
    spec = MLPSpec(layout=(2, 4, 1), activation="tanh")
    with pytest.raises(SymmergeError, match="SIREN"):
        sort_canonicalize(spec, spec.init_params(2, generator=gen), phase=True)
    with pytest.raises(SymmergeError, match="parameters"):
        sort_canonicalize(spec, torch.zeros(2, 3))
    with pytest.raises(SymmergeError, match="NaN"):
        sort_canonicalize(spec, torch.full((2, spec.num_params), float("nan")))
