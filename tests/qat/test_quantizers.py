"""tinycc_nn.qat quantizers: value sets, power-of-two scales, STE gradients, exact eval."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings, strategies as st  # noqa: E402

from tinycc_nn.qat import SCHEMES, ActQuant, QLinear, choose_widths, mlp, weight_bytes  # noqa: E402
from tinycc_nn.qat.budget import widths_bytes  # noqa: E402
from tinycc_nn.qat.quantizers import fake_quantize_weight, quantize_levels, weight_exponent  # noqa: E402

EXPECTED_LEVELS = {
    "binary": {-1, 1},
    "ternary": {-1, 0, 1},
    "pm2": {-2, -1, 1, 2},
    "odd2": {-3, -1, 1, 3},
    "odd4": set(range(-15, 16, 2)),
    "int4": set(range(-7, 8)),
    "int8": set(range(-127, 128)),
}


def test_scheme_table_matches_the_specification():
    assert {name: set(s.levels) for name, s in SCHEMES.items()} == EXPECTED_LEVELS
    assert {name: s.bits for name, s in SCHEMES.items()} == {
        "binary": 1, "ternary": 2, "pm2": 2, "odd2": 2, "odd4": 4, "int4": 4, "int8": 8}


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_weight_values_are_exactly_the_scheme_levels(name):
    scheme = SCHEMES[name]
    torch.manual_seed(0)
    w = torch.randn(64, 300) * 0.1
    e = weight_exponent(w, scheme)
    q = fake_quantize_weight(w, scheme, e) / 2.0**e
    assert set(q.unique().tolist()) <= EXPECTED_LEVELS[name]
    ramp = torch.linspace(-1.2 * scheme.max_level, 1.2 * scheme.max_level, 5000)
    assert set(quantize_levels(ramp, scheme.levels).tolist()) == EXPECTED_LEVELS[name]


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_weight_quantizer_picks_the_nearest_level(name):
    levels = torch.tensor(SCHEMES[name].levels, dtype=torch.float32)
    x = torch.randn(2000) * SCHEMES[name].max_level
    q = quantize_levels(x, SCHEMES[name].levels)
    best = (x[:, None] - levels[None]).abs().min(dim=1).values
    assert torch.equal((x - q).abs(), best)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_weight_scale_is_a_power_of_two_and_max_never_clips(name):
    scheme = SCHEMES[name]
    w = torch.randn(1000) * 0.37
    e_max, e_mse = weight_exponent(w, scheme, "max"), weight_exponent(w, scheme, "mse")
    assert isinstance(e_max, int) and isinstance(e_mse, int) and e_mse <= e_max
    assert float(w.abs().max()) <= scheme.max_level * 2.0**e_max < 2 * float(w.abs().max())


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_weight_ste_passes_the_gradient_through(name):
    w = (torch.randn(10, 7) * 0.2).requires_grad_()
    upstream = torch.randn(10, 7)
    fake_quantize_weight(w, SCHEMES[name], weight_exponent(w, SCHEMES[name])).backward(upstream)
    assert torch.equal(w.grad, upstream)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_activation_values_and_saturation(bits, signed):
    q = ActQuant(bits=bits, signed=signed, scale="fixed", log2_scale=-3).eval()
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    x = torch.linspace(-300, 300, 20001) / 8
    codes = q(x) * 8
    assert set(codes.unique().tolist()) == set(range(lo, hi + 1))
    assert float(q(torch.tensor(1e9))) == hi / 8 and float(q(torch.tensor(-1e9))) == lo / 8


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-40, 40, width=32) | st.integers(-80, 80).map(lambda k: k / 2 * 0.25),
                min_size=1, max_size=50),
       st.integers(-6, 2), st.booleans(), st.integers(2, 8))
def test_activation_eval_is_onnx_quantize_dequantize(values, e, signed, bits):
    """x/s, round half to even, saturate, times s: what QuantizeLinear/DequantizeLinear do."""
    q = ActQuant(bits=bits, signed=signed, scale="fixed", log2_scale=e).eval()
    x = np.array(values, np.float32)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    s = np.float32(2.0**e)
    want = np.clip(np.round(x / s), lo, hi).astype(np.float32) * s  # np.round: half to even
    assert np.array_equal(q(torch.from_numpy(x)).numpy(), want)


def test_activation_ste_is_identity_inside_and_zero_when_saturated():
    q = ActQuant(bits=4, scale="fixed", log2_scale=-2).train()
    x = torch.tensor([-1.0, 0.1, 0.3, 2.0, 3.7, 3.9, 10.0], requires_grad=True)  # range 0..3.75
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_running_max_calibration_and_learned_scale():
    torch.manual_seed(0)
    q = ActQuant(bits=8).train()
    with pytest.raises(RuntimeError, match="no scale yet"):
        q.exponent()
    for _ in range(50):
        q(torch.rand(64) * 6.0)
    assert q.exponent() == round(np.log2(6.0 / 255))  # batch max ~6 over 255 codes
    learned = ActQuant(bits=8, scale="learned").train()
    out = learned(torch.rand(64) * 6.0)
    out.sum().backward()
    assert learned.log2_s.grad is not None and learned.exponent() == round(np.log2(float(learned.running_max) / 255))


@pytest.mark.parametrize("bias", [True, False])
def test_qlinear_eval_equals_integer_arithmetic(bias):
    torch.manual_seed(1)
    layer = QLinear(20, 6, bias=bias, weight_scheme="odd4", act_bits=8).train()
    layer(torch.rand(32, 20) * 3)  # calibrate the input quantizer
    layer.eval()
    x = torch.rand(100, 20) * 4 - 0.5
    q = layer.quantized()
    s_in = 2.0**q.in_exponent
    codes = np.clip(np.round(x.numpy() / s_in), 0, 255).astype(np.int64)
    acc = codes @ q.weight.astype(np.int64).T + (q.bias.astype(np.int64) if bias else 0)
    want = (acc * 2.0 ** (q.in_exponent + q.weight_exponent)).astype(np.float32)
    assert np.array_equal(layer(x).detach().numpy(), want)
    assert set(np.unique(q.weight)) <= EXPECTED_LEVELS["odd4"]


def test_weight_bytes_and_choose_widths():
    model = mlp((64, 32, 16, 10), weight_schemes=("binary", "pm2", "int4"))
    assert weight_bytes(model) == 64 * 32 // 8 + 32 * 16 // 4 + 16 * 10 // 2
    widths = choose_widths(64, 10, 560, "pm2", max_widths=(32, 16))
    assert widths_bytes(widths, "pm2") <= 560 and widths[2] <= 16 and widths[1] <= 32
    for i in (1, 2):  # no hidden layer can grow by one and still fit
        grown = list(widths)
        grown[i] += 1
        assert widths_bytes(grown, "pm2") > 560 or grown[i] > (32, 16)[i - 1] or grown[2] > grown[1]


def test_scheme_table_and_package_import_without_torch():
    import subprocess
    import sys

    code = ("import sys, tinycc_nn, tinycc_nn.qat, tinycc_nn.qat.schemes, tinycc_nn.datasets; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_weight_exponent_offset_and_pinning():
    torch.manual_seed(2)
    plain = QLinear(30, 8, weight_scheme="pm2")
    halved = QLinear(30, 8, weight_scheme="pm2", weight_exponent_offset=-1)
    halved.load_state_dict(plain.state_dict())
    e = plain.weight_exponent()
    assert halved.weight_exponent() == e - 1
    assert "pinned_exponent" in halved.state_dict() and torch.isnan(halved.pinned_exponent)
    # snapping to the grid would move an offset exponent again; a pinned one stays
    assert halved.pin_weight_exponent() == e - 1
    with torch.no_grad():
        halved.weight.copy_(fake_quantize_weight(halved.weight, halved.scheme, e - 1))
    assert halved.weight_exponent() == e - 1
    reloaded = QLinear(30, 8, weight_scheme="pm2", weight_exponent_offset=-1)
    reloaded.load_state_dict(halved.state_dict())
    assert reloaded.weight_exponent() == e - 1
    old = {k: v for k, v in plain.state_dict().items() if k != "pinned_exponent"}
    fresh = QLinear(30, 8, weight_scheme="pm2")
    fresh.load_state_dict(old)  # a checkpoint from before pinning existed still loads
    assert fresh.weight_exponent() == e


def test_per_channel_qlinear_exponents_pinning_and_integer_arithmetic():
    torch.manual_seed(3)
    layer = QLinear(20, 6, weight_scheme="odd2", per_channel=True).train()
    with torch.no_grad():
        layer.weight.mul_(torch.tensor([0.1, 0.5, 1, 2, 4, 8])[:, None])
    expected = [weight_exponent(row, layer.scheme) for row in layer.weight]
    assert layer.weight_exponents().tolist() == expected and len(set(expected)) > 1
    with pytest.raises(ValueError, match="weight_exponents"):
        layer.weight_exponent()
    layer(torch.rand(32, 20) * 3)  # calibrate the input quantizer
    layer.eval()
    x = torch.rand(100, 20) * 4 - 0.5
    q = layer.quantized()
    assert q.weight_exponent.tolist() == expected
    codes = np.clip(np.round(x.numpy() / 2.0**q.in_exponent), 0, 255).astype(np.int64)
    acc = codes @ q.weight.astype(np.int64).T + q.bias.astype(np.int64)
    want = (acc * np.exp2(q.in_exponent + q.weight_exponent)).astype(np.float32)
    assert np.array_equal(layer(x).detach().numpy(), want)
    assert set(np.unique(q.weight)) <= EXPECTED_LEVELS["odd2"]
    pinned = layer.pin_weight_exponent()
    with torch.no_grad():
        layer.weight.mul_(16)  # would move every exponent by 4 if they were not pinned
    assert layer.weight_exponents().tolist() == pinned.tolist() == expected
    reloaded = QLinear(20, 6, weight_scheme="odd2", per_channel=True)
    reloaded.load_state_dict(layer.state_dict())
    assert reloaded.weight_exponents().tolist() == expected
