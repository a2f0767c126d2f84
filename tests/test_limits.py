"""Option bounds: one clear error for anything outside them."""

import pytest

from symmerge.errors import SymmergeError
from symmerge.limits import MAX_SEED, check_range


def test_check_range_accepts_values_within_bounds():
    assert check_range(0, "seed", 0, MAX_SEED) == 0
    assert check_range(MAX_SEED, "seed", 0, MAX_SEED) == MAX_SEED
    assert check_range(0.5, "perturbation", 0.0, 10.0) == 0.5
    assert check_range(3, "perturbation", 0.0, 10.0) == 3  # an int where floats go


@pytest.mark.parametrize(("value", "lo", "hi", "match"), [
    (-1, 0, MAX_SEED, r"seed must be an integer in \[0, 4294967295\], got -1"),
    (2**64, 0, MAX_SEED, "got 18446744073709551616"),
    (1.0, 0, 10, "an integer"),
    (True, 0, 10, "an integer"),
    (float("nan"), 0.0, 1.0, r"a finite number in \[0, 1\], got nan"),
    (float("inf"), 0.0, 1e3, "got inf"),
    (-0.5, 0.0, 1.0, "got -0.5"),
    ("1", 0, 10, "got '1'"),
])
def test_check_range_refuses_the_rest(value, lo, hi, match):
    with pytest.raises(SymmergeError, match=match):
        check_range(value, "seed" if isinstance(lo, int) else "x", lo, hi)
