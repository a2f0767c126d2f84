"""The hidden-neuron group: function preservation, group laws, semantics, sensitivity."""

from __future__ import annotations

import math

import pytest
import torch

from symmerge.errors import SymmergeError
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec
from symmerge.symmetry import (
    GroupElement,
    assert_function_preserved,
    function_error,
    invariance_error,
    sample_group_elements,
    tolerance,
)
from tests.devices import assert_on
from tests.symmetry.nets import (
    SCALE_SPECS,
    SIGN_SPECS,
    SIRENS,
    SPECS,
    assert_params_close,
    random_params,
    relative_diff,
    spec_id,
)

#: A perturbation "changes the function clearly" if the relative error exceeds this
#: (1000x the float32 tolerance; the measured changes are 0.09 to 0.9).
CLEAR_CHANGE = 1e-2
SCALES = (1e-2, 1e2)


def _shifts(e: GroupElement) -> tuple[torch.Tensor, ...]:
    return e.shifts if e.shifts is not None else tuple(torch.zeros_like(p) for p in e.perms)


def _sample(spec, batch, dtype, gen, *, transform="PD", phase=False, max_shift=1, device=None):
    return sample_group_elements(
        spec, batch, permute="P" in transform, diagonal="D" in transform, phase=phase,
        scale_range=SCALES, max_shift=max_shift, generator=gen, dtype=dtype, device=device,
    )


@pytest.mark.parametrize("transform", ["P", "D", "PD"])
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_transforms_preserve_function(spec, transform, dtype, gen, device):
    params = random_params(spec, 8, dtype=dtype, generator=gen).to(device)
    g = _sample(spec, 8, dtype, gen, transform=transform, device=device)
    moved = g.apply(spec, params)
    assert_on((g.perms, g.mults, moved), device)
    assert relative_diff(moved, params) > 0.1  # the parameters really moved
    assert_function_preserved(spec, params, moved)


def test_seeded_elements_are_the_same_on_every_device(device):
    """Drawn on the (CPU) generator's device, then moved: the same elements anywhere."""
    spec = SPECS[2]
    here = _sample(spec, 5, torch.float64, torch.Generator().manual_seed(7), phase=True,
                   device=device)
    cpu = _sample(spec, 5, torch.float64, torch.Generator().manual_seed(7), phase=True)
    assert_on((here.perms, here.mults, here.shifts), device)
    for a, b in zip(here.perms + here.mults + here.shifts, cpu.perms + cpu.mults + cpu.shifts,
                    strict=True):
        assert torch.equal(a.cpu(), b)


@pytest.mark.parametrize("max_shift", [1, 3])
@pytest.mark.parametrize("spec", SIRENS, ids=spec_id)
def test_phase_shifts_preserve_function(spec, max_shift, dtype, gen, device):
    params = random_params(spec, 8, dtype=dtype, generator=gen).to(device)
    for transform in ("", "PD"):
        g = _sample(spec, 8, dtype, gen, transform=transform, phase=True, max_shift=max_shift,
                    device=device)
        assert_function_preserved(spec, params, g.apply(spec, params))


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_composition_law(spec, dtype, gen, device):
    phase = isinstance(spec, SirenSpec)
    params = random_params(spec, 6, dtype=dtype, generator=gen).to(device)
    g1 = _sample(spec, 6, dtype, gen, phase=phase, max_shift=2, device=device)
    g2 = _sample(spec, 6, dtype, gen, phase=phase, max_shift=2, device=device)
    assert_params_close(g2.compose(g1).apply(spec, params), g2.apply(spec, g1.apply(spec, params)))
    g3 = _sample(spec, 6, dtype, gen, phase=phase, device=device)
    left, right = g3.compose(g2).compose(g1), g3.compose(g2.compose(g1))
    assert_on((left.perms, left.mults, left.shifts), device)
    for a, b in zip(left.perms + _shifts(left), right.perms + _shifts(right), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(left.mults, right.mults, strict=True):
        assert_params_close(a, b)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_inverse_and_identity(spec, dtype, gen, device):
    phase = isinstance(spec, SirenSpec)
    params = random_params(spec, 6, dtype=dtype, generator=gen).to(device)
    g = _sample(spec, 6, dtype, gen, phase=phase, max_shift=2, device=device)
    ident = GroupElement.identity(spec, 6, dtype=dtype, phase=phase, device=device)
    assert torch.equal(ident.apply(spec, params), params)
    assert_params_close(g.inverse().apply(spec, g.apply(spec, params)), params)
    assert_params_close(g.apply(spec, g.inverse().apply(spec, params)), params)
    for e in (g.inverse().compose(g), g.compose(g.inverse())):
        assert_on((e.perms, e.mults, e.shifts), device)
        for perm, mult, shift in zip(e.perms, e.mults, _shifts(e), strict=True):
            assert torch.equal(perm.cpu(), torch.arange(perm.shape[1]).expand_as(perm))
            assert_params_close(mult, torch.ones_like(mult))
            assert not shift.any()
    for e in (ident.compose(g), g.compose(ident)):
        assert all(torch.equal(a, b) for a, b in zip(e.perms, g.perms, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(e.mults, g.mults, strict=True))


def test_element_semantics_match_docstring(dtype, gen):
    """New neuron i is old neuron j = perm[i]: W'[i] = q W[j], b'[i] = q (b[j] + k pi / w0),
    W_next'[:, i] = W_next[:, j] (-1)^k / q."""
    spec = SirenSpec(layout=(2, 3, 2), w0=7.0)
    params = random_params(spec, 1, dtype=dtype, generator=gen)[0]
    perm, mult, shift = [2, 0, 1], [-1.0, 1.0, -1.0], [1, -2, 3]
    g = GroupElement(
        (torch.tensor([perm]),), (torch.tensor([mult], dtype=dtype),), (torch.tensor([shift]),)
    )
    (w0, w1), (b0, b1) = spec.unflatten(params)
    (v0, v1), (c0, c1) = spec.unflatten(g.apply(spec, params))
    for i, (j, q, k) in enumerate(zip(perm, mult, shift, strict=True)):
        assert torch.equal(v0[i], q * w0[j])
        assert abs(float(c0[i]) - q * (float(b0[j]) + k * math.pi / 7.0)) <= 4 * tolerance(dtype)
        assert torch.equal(v1[:, i], w1[:, j] * (-1) ** k / q)
    assert torch.equal(c1, b1)


def test_batch_of_one_broadcasts(dtype, gen):
    spec = MLPSpec(layout=(2, 5, 4, 1), activation="relu")
    params = random_params(spec, 4, dtype=dtype, generator=gen)
    g = _sample(spec, 1, dtype, gen)
    many = GroupElement(
        tuple(p.expand(4, -1) for p in g.perms), tuple(q.expand(4, -1) for q in g.mults)
    )
    h = _sample(spec, 4, dtype, gen)
    assert torch.equal(g.apply(spec, params), many.apply(spec, params))
    assert torch.equal(h.compose(g).apply(spec, params), h.compose(many).apply(spec, params))
    assert torch.equal(g.compose(h).apply(spec, params), many.compose(h).apply(spec, params))
    assert torch.equal(g.apply(spec, params[2]), g.apply(spec, params[2:3])[0])


def test_element_errors(gen):
    relu = MLPSpec(layout=(2, 4, 4, 1), activation="relu")
    params = relu.init_params(3, generator=gen)
    g = sample_group_elements(relu, 2, generator=gen)
    with pytest.raises(SymmergeError, match="does not fit"):
        g.apply(relu, params)  # batch 2 for 3 networks
    with pytest.raises(SymmergeError, match="does not fit"):
        g.apply(MLPSpec(layout=(2, 4, 1)), MLPSpec(layout=(2, 4, 1)).init_params(2))
    with pytest.raises(SymmergeError, match="hidden sizes"):
        g.apply(MLPSpec(layout=(2, 4, 5, 1)), MLPSpec(layout=(2, 4, 5, 1)).init_params(2))
    with pytest.raises(SymmergeError, match="compose"):
        g.compose(sample_group_elements(relu, 3, generator=gen))
    with pytest.raises(SymmergeError, match="SIREN"):
        sample_group_elements(relu, 2, phase=True)
    siren = SirenSpec(layout=(2, 4, 4, 1))
    shifted = sample_group_elements(siren, 3, phase=True, generator=gen)
    with pytest.raises(SymmergeError, match="phase shifts"):
        shifted.apply(relu, params)


def test_no_hidden_layer_is_trivial(dtype, gen):
    spec = MLPSpec(layout=(3, 2))
    params = random_params(spec, 2, dtype=dtype, generator=gen)
    ident = GroupElement.identity(spec, 2, dtype=dtype)
    assert torch.equal(ident.compose(ident).apply(spec, params), params)


@pytest.mark.parametrize("spec", [SPECS[1], SPECS[5]], ids=spec_id)
def test_sample_group_elements_distribution(spec, dtype, gen):
    n = 4000
    g = sample_group_elements(
        spec, n, phase=spec.activation == "sine", max_shift=2, scale_range=SCALES,
        generator=gen, dtype=dtype,
    )
    for perm, mult, shift in zip(g.perms, g.mults, _shifts(g), strict=True):
        width = perm.shape[1]
        assert torch.equal(perm.sort(dim=1).values, torch.arange(width).expand(n, width))
        # uniform permutations: each neuron lands in each slot with frequency 1 / width
        freq = (perm == 0).double().mean(0)
        assert (freq - 1 / width).abs().max() < 0.05
        assert mult.dtype == dtype
        if spec.symmetry == "sign":
            assert set(mult.unique().tolist()) == {-1.0, 1.0}
            assert set(shift.unique().tolist()) == {-2, -1, 0, 1, 2}
        else:
            logs = mult.double().log10()
            assert logs.min() >= -2 - 1e-6 and logs.max() <= 2 + 1e-6
            assert abs(float(logs.mean())) < 0.1 and abs(float(logs.std()) - 4 / 12**0.5) < 0.1
            assert not shift.any()
    plain = sample_group_elements(spec, 3, permute=False, diagonal=False, generator=gen)
    for perm, mult in zip(plain.perms, plain.mults, strict=True):
        assert torch.equal(perm, torch.arange(perm.shape[1]).expand_as(perm))
        assert torch.equal(mult, torch.ones_like(mult))


# ------------------------------------------------------------------ sensitivity
def _with_layer(spec, h, perm=None, mult=None, shift=None):
    """Edit hidden layer h of an identity element (batch 1)."""
    e = GroupElement.identity(spec, 1, dtype=torch.float64, phase=shift is not None)
    perms, mults = list(e.perms), list(e.mults)
    shifts = list(e.shifts) if e.shifts is not None else None
    if perm is not None:
        perms[h] = torch.tensor([perm])
    if mult is not None:
        mults[h] = torch.tensor([mult], dtype=torch.float64)
    if shift is not None:
        shifts[h] = torch.tensor([shift])
    return GroupElement(tuple(perms), tuple(mults), tuple(shifts) if shifts else None)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_swapping_incoming_weights_only_changes_function(spec, dtype, gen):
    params = random_params(spec, 4, dtype=dtype, generator=gen)
    for h in range(spec.num_hidden):
        ws, bs = spec.unflatten(params.clone())
        broken = params.clone()
        wb, bb = spec.unflatten(broken)
        wb[h][:, [0, 1]] = ws[h][:, [1, 0]]  # rows of layer h, not the columns of layer h + 1
        bb[h][:, [0, 1]] = bs[h][:, [1, 0]]
        assert function_error(spec, params, broken) > CLEAR_CHANGE


@pytest.mark.parametrize("spec", SIGN_SPECS, ids=spec_id)
def test_uncompensated_sign_flip_changes_function(spec, dtype, gen):
    params = random_params(spec, 4, dtype=dtype, generator=gen)
    for h in range(spec.num_hidden):
        broken = params.clone()
        wb, bb = spec.unflatten(broken)
        wb[h][:, 0] *= -1  # flip neuron 0 of layer h but not its outgoing weights
        bb[h][:, 0] *= -1
        assert function_error(spec, params, broken) > CLEAR_CHANGE


@pytest.mark.parametrize("spec", SCALE_SPECS, ids=spec_id)
def test_non_positive_relu_scale_changes_function(spec, dtype, gen):
    params = random_params(spec, 4, dtype=dtype, generator=gen)
    for h in range(spec.num_hidden):
        width = spec.hidden_sizes[h]
        for q in (-1.0, -3.0):
            g = _with_layer(spec, h, mult=[q] + [1.0] * (width - 1))
            assert function_error(spec, params, g.apply(spec, params)) > CLEAR_CHANGE
        # a positive scale of the same neuron is a symmetry
        assert_function_preserved(
            spec, params, _with_layer(spec, h, mult=[3.0] + [1.0] * (width - 1)).apply(spec, params)
        )


@pytest.mark.parametrize("spec", SIRENS, ids=spec_id)
def test_phase_shift_needs_its_sign(spec, dtype, gen):
    """b -> b + pi / w0 needs the outgoing column negated; b -> b + 2 pi / w0 needs nothing."""
    params = random_params(spec, 4, dtype=dtype, generator=gen)
    for h in range(spec.num_hidden):
        width = spec.hidden_sizes[h]
        broken = params.clone()
        _, bb = spec.unflatten(broken)
        bb[h][:, 0] += math.pi / spec.w0
        assert function_error(spec, params, broken) > CLEAR_CHANGE
        full_turn = params.clone()
        _, bb = spec.unflatten(full_turn)
        bb[h][:, 0] += 2 * math.pi / spec.w0
        assert_function_preserved(spec, params, full_turn)
        g = _with_layer(spec, h, shift=[1] + [0] * (width - 1))
        assert_function_preserved(spec, params, g.apply(spec, params))


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_invariance_error(spec, dtype, gen):
    params = random_params(spec, 4, dtype=dtype, generator=gen)
    g = _sample(spec, 4, dtype, gen)
    x = spec.probe_inputs(dtype=dtype, generator=gen)

    def outputs(p):
        return spec.forward(p, x)

    assert invariance_error(outputs, spec, params, g) <= tolerance(dtype)
    assert invariance_error(lambda p: p, spec, params, g) > 0.1
    # biases in sorted order are permutation-invariant, but not sign/scale-invariant
    first_bias = spec.offsets[1], spec.offsets[2]

    def sorted_bias(p):
        return p[:, first_bias[0] : first_bias[1]].sort(-1).values

    perm_only = _sample(spec, 4, dtype, gen, transform="P")
    assert invariance_error(sorted_bias, spec, params, perm_only) == 0.0
    assert invariance_error(sorted_bias, spec, params, g) > 0.1


def test_assert_function_preserved_fails_on_change(dtype, gen):
    spec = CNNSpec(layout=(1, 4, 4, 10), activation="tanh")
    params = random_params(spec, 2, dtype=dtype, generator=gen)
    with pytest.raises(AssertionError, match="function changed"):
        assert_function_preserved(spec, params, params * 1.01)
    assert assert_function_preserved(spec, params, params.clone()) == 0.0
