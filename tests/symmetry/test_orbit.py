"""The orbit generator: transform types, returned elements, noise, seeding, errors."""

from __future__ import annotations

import pytest
import torch

from symmerge.errors import SymmergeError
from symmerge.specs import SirenSpec
from symmerge.symmetry import assert_function_preserved, function_error, make_orbit
from tests.devices import assert_on
from tests.symmetry.nets import SPECS, assert_params_close, random_params, spec_id


def _rows(spec, params, h):
    """Incoming rows (bias, weights) of hidden layer h: [B, n_h, 1 + fan_in]."""
    ws, bs = spec.unflatten(params)
    return torch.cat([bs[h].unsqueeze(-1), ws[h].flatten(2)], dim=-1)


@pytest.mark.parametrize("transform", ["P", "D", "PD"])
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_orbit_members(spec, transform, dtype, gen, device):
    base = random_params(spec, 1, dtype=dtype, generator=gen)[0].to(device)
    members, g = make_orbit(spec, base, 16, transform, scale_range=(1e-2, 1e2), generator=gen)
    assert_on((members, g.perms, g.mults), device)
    assert members.shape == (16, spec.num_params) and members.dtype == dtype
    assert g.batch_size == 16 and g.shifts is None
    assert torch.equal(members, g.apply(spec, base.expand(16, -1)))
    assert_function_preserved(spec, base.expand(16, -1), members)
    for h, (perm, mult) in enumerate(zip(g.perms, g.mults, strict=True)):
        identity = torch.arange(perm.shape[1], device=device).expand_as(perm)
        assert torch.equal(perm, identity) == ("P" not in transform)
        assert bool((mult == 1).all()) == ("D" not in transform)
        if h == 0:  # first layer rows are the base rows, permuted and multiplied
            expected = _rows(spec, base.unsqueeze(0), 0)[0][perm] * mult.unsqueeze(-1)
            assert torch.equal(_rows(spec, members, 0), expected)


@pytest.mark.parametrize("spec", [SPECS[1], SPECS[2]], ids=spec_id)
def test_phase_orbits(spec, dtype, gen):
    base = random_params(spec, 1, dtype=dtype, generator=gen)[0]
    members, g = make_orbit(spec, base, 16, "PD", phase=True, generator=gen)
    assert g.shifts is not None and any(bool(k.any()) for k in g.shifts)
    assert_function_preserved(spec, base.expand(16, -1), members)


def test_noise(dtype, gen, device):
    spec = SirenSpec()
    base = random_params(spec, 1, dtype=dtype, generator=gen)[0].to(device)
    members, g = make_orbit(spec, base, 64, "PD", noise_std=0.005, generator=gen)
    assert_on(members, device)
    noise = members - g.apply(spec, base.expand(64, -1))
    assert abs(float(noise.std()) - 0.005) < 2e-4 and abs(float(noise.mean())) < 1e-4
    assert function_error(spec, base.expand(64, -1), members) > 1e-3


def test_seeded_and_errors(gen):
    spec = SPECS[4]
    base = spec.init_params(1, generator=gen)[0]
    a, _ = make_orbit(spec, base, 8, noise_std=0.01, generator=torch.Generator().manual_seed(3))
    b, _ = make_orbit(spec, base, 8, noise_std=0.01, generator=torch.Generator().manual_seed(3))
    c, _ = make_orbit(spec, base, 8, noise_std=0.01, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert_params_close(make_orbit(spec, base, 1, "D")[0].abs()[0], base.abs())
    with pytest.raises(SymmergeError, match="unknown transform"):
        make_orbit(spec, base, 8, "Q")
    with pytest.raises(SymmergeError, match="positive"):
        make_orbit(spec, base, 0)
    with pytest.raises(SymmergeError, match="one network"):
        make_orbit(spec, base.expand(2, -1), 8)
