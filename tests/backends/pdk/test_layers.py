"""backends/pdk/layers.py: the per-layer decisions made before any code."""
import numpy as np
import pytest

from tinycc_nn.backends.pdk.layers import one_multiplier
from tinycc_nn.ir import requant_values


@pytest.mark.parametrize("seed", range(40))
def test_one_multiplier_requantizes_every_accumulator_the_same(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    odd = int(rng.choice([1, 3, 5]))
    mults = odd << rng.integers(0, 4, n) if rng.random() < 0.7 else np.full(n, odd)
    shifts = rng.integers(0, 6, n)
    rnds = rng.integers(-20, 20, n)
    rounding = str(rng.choice(["floor", "half_even", "half_odd"]))
    mult, rnd, shift, up = one_multiplier(mults, rnds, shifts)
    acc = np.arange(-300, 300).reshape(-1, 1)        # every tie of these shifts, and more
    want = requant_values(acc, mults, rnds, shifts, rounding, None, None)
    got = requant_values(acc, mult, rnd, shift, rounding, None, None)
    assert np.array_equal(got, want)
    assert (shift == shifts + up).all() and (up >= 0).all()
    if (shift != shift[0]).any():        # counted down from the table row: never 0
        assert (shift > 0).all()


def test_multipliers_with_different_odd_parts_have_no_one_multiplier():
    assert one_multiplier([1, 3], [0, 0], [2, 2]) is None
    assert one_multiplier([2, 0], [0, 0], [2, 2]) is None
    assert one_multiplier([2, 2], [0, 0], [2, 2])[0] == 2
