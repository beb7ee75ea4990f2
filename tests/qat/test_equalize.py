"""equalize_rows: the float function stays, the rows land on one power-of-two grid."""

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tinycc_nn.qat.equalize import equalize_rows, row_scales  # noqa: E402
from tinycc_nn.qat.quantizers import fake_quantize_weight, weight_exponent  # noqa: E402
from tinycc_nn.qat.schemes import get_scheme  # noqa: E402

ODD2 = get_scheme("odd2")


def _pair(seed=0, spread=3.0):
    """Linear 12 -> 16 -> 5 whose first layer's rows differ in norm by up to 2**spread."""
    torch.manual_seed(seed)
    first, second = nn.Linear(12, 16), nn.Linear(16, 5)
    with torch.no_grad():
        first.weight.mul_(torch.exp2(torch.linspace(-spread, 0, 16))[:, None])
    return first, second


def _forward(first, second, x):
    return second(torch.relu(first(x)))


def test_the_float_function_is_unchanged():
    first, second = _pair()
    x = torch.randn(64, 12)
    before = _forward(first, second, x)
    alpha = equalize_rows(first, second, ODD2)
    assert not torch.allclose(alpha, torch.ones_like(alpha))
    torch.testing.assert_close(_forward(first, second, x), before, rtol=1e-5, atol=1e-6)


def test_rows_land_on_one_power_of_two_unless_clamped():
    first, second = _pair(spread=1.5)  # every alpha within the default limits
    alpha = equalize_rows(first, second, ODD2)
    assert float(alpha.min()) > 0.25 and float(alpha.max()) < 4.0
    log_s = torch.log2(row_scales(first.weight, ODD2))
    assert torch.allclose(log_s, log_s.round(), atol=0.05)
    assert len(set(log_s.round().tolist())) == 1


def test_per_row_moves_each_row_less_than_half_an_octave():
    first, second = _pair(spread=4.0)
    alpha = equalize_rows(first, second, ODD2, per_row=True)
    assert float(alpha.min()) >= 2**-0.5 - 1e-3 and float(alpha.max()) <= 2**0.5 + 1e-3
    log_s = torch.log2(row_scales(first.weight, ODD2))
    assert torch.allclose(log_s, log_s.round(), atol=0.05)


def test_limits_bound_alpha():
    first, second = _pair(spread=6.0)
    alpha = equalize_rows(first, second, ODD2, limits=(0.5, 2.0))
    assert float(alpha.min()) >= 0.5 and float(alpha.max()) <= 2.0


def test_one_power_of_two_scale_then_quantizes_the_pair_better():
    """The point of it: with one 2-bit scale for the whole layer, the quantized pair is closer
    to the float pair after equalizing than before."""
    x = torch.rand(256, 12)

    def error(first, second):
        quantized = nn.Linear(12, 16)
        with torch.no_grad():
            quantized.weight.copy_(fake_quantize_weight(first.weight, ODD2, weight_exponent(first.weight, ODD2)))
            quantized.bias.copy_(first.bias)
        return float(((_forward(quantized, second, x) - _forward(first, second, x)) ** 2).mean())

    first, second = _pair(seed=1)
    before = error(first, second)
    equalize_rows(first, second, ODD2)
    assert error(first, second) < 0.5 * before


def test_zero_rows_are_left_alone():
    first, second = _pair()
    with torch.no_grad():
        first.weight[3] = 0.0
    alpha = equalize_rows(first, second, ODD2)
    assert alpha[3] == 1.0 and math.isfinite(float(second.weight.abs().max()))


def test_layers_that_do_not_chain_are_refused():
    with pytest.raises(ValueError, match="not two chained dense layers"):
        equalize_rows(nn.Linear(12, 16), nn.Linear(8, 5), ODD2)
