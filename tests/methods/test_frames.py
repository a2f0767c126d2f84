"""Frames: the repaired paths (:class:`symmerge.methods.Repaired`) are the inner frame's
interpolants, each repaired with its own alpha's targets."""

from __future__ import annotations

import pytest
import torch

from symmerge import CNNSpec, SymmergeError
from symmerge.align import MatchOptions
from symmerge.merge import repair
from symmerge.methods import Matched, Repaired
from tests.devices import assert_on

SPEC = CNNSpec((1, 4, 5, 10), "relu")


def test_repaired_paths_repair_each_interpolant_with_its_alpha(device):
    gen = torch.Generator().manual_seed(0)
    a, b = SPEC.init_params(4, generator=gen, dtype=torch.float64).to(device).split(2)
    x = SPEC.probe_inputs(12, generator=gen, dtype=torch.float64, device=device)
    inner = Matched(SPEC, MatchOptions())
    alphas = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=torch.float64)
    plain = inner.paths(a, b, alphas)
    paths = Repaired(inner, SPEC, x, batch_size=3).paths(a, b, alphas)
    assert paths.shape == plain.shape
    assert_on(paths, device)
    for i in range(2):
        ends = (plain[i, 0], plain[i, -1])  # the aligned endpoints
        for t, alpha in enumerate(alphas.tolist()):
            want = repair(SPEC, plain[i, t], ends, x, alpha=alpha)
            torch.testing.assert_close(paths[i, t], want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(paths[:, [0, -1]], plain[:, [0, -1]], rtol=1e-9, atol=1e-9)
    assert not torch.allclose(paths[:, 1], plain[:, 1])  # sensitivity: repair did something
    # alphas without the endpoints: the targets still come from the endpoints
    inside = Repaired(inner, SPEC, x).paths(a, b, alphas[1:3])
    torch.testing.assert_close(inside, paths[:, 1:3], rtol=1e-10, atol=1e-10)


def test_repaired_paths_need_data():
    a, b = SPEC.init_params(2, generator=torch.Generator().manual_seed(1)).split(1)
    with pytest.raises(SymmergeError, match="need data"):
        Repaired(Matched(SPEC, MatchOptions()), SPEC, None).paths(a, b, torch.tensor([0.5]))
