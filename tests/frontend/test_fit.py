"""tinycc_nn/frontend/fit.py: the integer requantization fit is exact or refused.

The float chain (hostio.apply_float_ops, onnxruntime's float32 arithmetic) is the
specification.  Whenever fit_requant returns, ir.requant_values with its parameters
must equal the chain on every integer of the accumulator interval, enumerated.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tinycc_nn import hostio, ir
from tinycc_nn.frontend.fit import Fit, FitError, fit_requant, thresholds

POW2 = st.integers(-12, 2).map(lambda e: 2.0 ** e)
ANY_SCALE = st.floats(1e-3, 4.0).map(lambda v: float(np.float32(v)))
F32 = st.floats(-4, 4).map(lambda v: float(np.float32(v)))


def chain_fn(ops):
    """f for fit_requant: rows are channels, the chain's per-channel constants on the last axis."""
    return lambda a: hostio.apply_float_ops(np.asarray(a).T, ops).T.astype(np.int64)


def assert_exact(ops, a_lo, a_hi, fit: Fit):
    """requant_values(fit) == the float chain on every integer of every channel's interval."""
    for c, (lo, hi) in enumerate(zip(a_lo, a_hi)):
        a = np.arange(lo, hi + 1)
        want = hostio.apply_float_ops(a[:, None], ops)[:, c] if _per_channel(ops) else \
            hostio.apply_float_ops(a, ops)
        got = ir.requant_values(a, int(fit.mult[c]), int(fit.rnd[c]), int(fit.shift[c]),
                                fit.rounding, fit.lo, fit.hi)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"channel {c}: A={a[bad[0]]} gives {got[bad[0]]}, float chain "
                               f"{want[bad[0]]}; {fit}")
        assert fit.out_lo[c] == want[0] and fit.out_hi[c] == want[-1]


def _per_channel(ops):
    return any(isinstance(p, list) for op in ops for p in op[1:])


@st.composite
def float_chains(draw, pow2_only=False, channels=None):
    """dequantize -> [add bias] -> [relu | clip] -> quantize, as the importer builds it."""
    def per(strategy):
        if channels is None:
            return draw(strategy)
        return [draw(strategy) for _ in range(channels)]

    s_in = draw(POW2 if pow2_only else st.one_of(POW2, ANY_SCALE))
    ops = [["dequantize", s_in, 0]]
    if draw(st.booleans()):
        if pow2_only:       # a bias on the accumulator grid
            ops.append(["add", per(st.integers(-64, 64).map(lambda k: k * s_in))])
        else:
            ops.append(["add", per(F32)])
    act = draw(st.sampled_from(["none", "relu", "clip"]))
    if act == "relu":
        ops.append(["relu"])
    elif act == "clip":
        ops.append(["clip", draw(st.one_of(st.none(), st.floats(-2, 1))),
                    draw(st.one_of(st.none(), st.floats(1, 4)))])
    dtype = draw(st.sampled_from(["int8", "uint8"]))
    s_out = draw(POW2 if pow2_only else st.one_of(POW2, ANY_SCALE))
    if pow2_only:
        # mult == 1 needs the output scale no finer than the input's
        s_out = max(s_out, s_in)
    ops.append(["quantize", s_out, draw(st.integers(*hostio.QRANGE[dtype])), dtype])
    return ops


INTERVAL = st.tuples(st.integers(-1500, 1500), st.integers(0, 1200)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_chains(), INTERVAL)
def test_fit_is_exact_whenever_it_returns(ops, interval):
    lo, hi = interval
    try:
        fit = fit_requant(chain_fn(ops), [lo], [hi])
    except FitError:
        return
    assert_exact(ops, [lo], [hi], fit)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4).flatmap(lambda c: st.tuples(float_chains(channels=c),
                                                     st.lists(INTERVAL, min_size=c, max_size=c))))
def test_per_channel_fit_is_exact_whenever_it_returns(case):
    ops, intervals = case
    a_lo, a_hi = [i[0] for i in intervals], [i[1] for i in intervals]
    try:
        fit = fit_requant(chain_fn(ops), a_lo, a_hi)
    except FitError as e:
        assert 0 <= e.channel < len(intervals)
        return
    assert_exact(ops, a_lo, a_hi, fit)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_chains(pow2_only=True), INTERVAL)
def test_power_of_two_chains_are_exact_whenever_they_fit(ops, interval):
    lo, hi = interval
    try:
        fit = fit_requant(chain_fn(ops), [lo], [hi])
    except FitError:
        return      # must not happen: see the xfail tests below
    assert_exact(ops, [lo], [hi], fit)


def test_power_of_two_chain_on_a_wide_interval_is_a_shift():
    ops = [["dequantize", 2.0 ** -7, 0], ["add", 5 * 2.0 ** -7], ["relu"], ["quantize", 2.0 ** -3, 3, "uint8"]]
    fit = fit_requant(chain_fn(ops), [-3000], [3000])
    assert (fit.mult[0], fit.shift[0]) == (1, 4)
    assert_exact(ops, [-3000], [3000], fit)


# Known failing draws, found by the property below; hypothesis runs them first.
POW2_FAILURES = [
    # floor with mult=3 is preferred to half_even with mult=1 on a narrow interval
    ([["dequantize", 0.25, 0], ["quantize", 1.0, 0, "int8"]], [(0, 6)]),
    ([["dequantize", 2.0 ** -7, 0], ["quantize", 0.5, 0, "int8"]], [(0, 96)]),
    # a channel with a single threshold is refused (its slope estimate is 1.0)
    ([["dequantize", 2.0 ** -7, 0], ["quantize", 0.5, 0, "int8"]], [(0, 0), (33, 96)]),
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4).flatmap(lambda c: st.tuples(float_chains(pow2_only=True, channels=c),
                                                     st.lists(INTERVAL, min_size=c, max_size=c))))
@example(POW2_FAILURES[0])
@example(POW2_FAILURES[1])
@example(POW2_FAILURES[2])
def test_power_of_two_chains_always_fit_with_mult_1(case):
    ops, intervals = case
    a_lo, a_hi = [i[0] for i in intervals], [i[1] for i in intervals]
    fit = fit_requant(chain_fn(ops), a_lo, a_hi)          # never refused
    assert_exact(ops, a_lo, a_hi, fit)
    for c in range(len(intervals)):
        if fit.out_lo[c] == fit.out_hi[c]:
            # a constant channel: mult 0, or the layer's own multiplier (one per layer)
            assert fit.mult[c] in (0, 1)
        else:
            assert fit.mult[c] == 1
            # a few thresholds can be matched by a smaller shift (round(A/2) on 0..3 is
            # A - 1 there); four or more pin the shift to the scale ratio
            if fit.out_hi[c] - fit.out_lo[c] >= 4:
                assert 2.0 ** fit.shift[c] == ops[-1][1] / ops[0][1]


@pytest.mark.parametrize("case", POW2_FAILURES, ids=["mult3-narrow", "mult33", "one-threshold-refused"])
def test_known_power_of_two_fits_are_exact_when_returned(case):
    ops, intervals = case
    a_lo, a_hi = [i[0] for i in intervals], [i[1] for i in intervals]
    try:
        fit = fit_requant(chain_fn(ops), a_lo, a_hi)
    except FitError:
        return
    assert_exact(ops, a_lo, a_hi, fit)


@pytest.mark.parametrize("s_in, s_out, lo, hi", [(1.0, 0.125, 0, 3), (2.0 ** -5, 2.0 ** -8, -128, 127)])
def test_power_of_two_upscale_fits(s_in, s_out, lo, hi):
    ops = [["dequantize", s_in, 0], ["clip", 0.0, 3 * s_in], ["quantize", s_out, 0, "int8"]]
    fit = fit_requant(chain_fn(ops), [lo], [hi])
    assert_exact(ops, [lo], [hi], fit)


def test_fit_finds_an_existing_24_bit_multiplier():
    ops = [["dequantize", 0.6801573038101196, 0], ["quantize", 3.363826036453247, 33, "int8"]]
    lo, hi = -572, 118
    # the witness: this integer form is exact on the whole interval
    a = np.arange(lo, hi + 1)
    want = hostio.apply_float_ops(a, ops)
    assert np.array_equal(ir.requant_values(a, 3313, 548888, 14, "floor", -83, 57), want)
    fit = fit_requant(chain_fn(ops), [lo], [hi])
    assert_exact(ops, [lo], [hi], fit)


# direct cases -----------------------------------------------------------------------------

def test_constant_channel_is_mult_zero():
    ops = [["dequantize", 2.0 ** -8, 0], ["quantize", 1.0, 0, "int8"]]
    fit = fit_requant(chain_fn(ops), [-10], [10])      # everything rounds to 0
    assert (fit.mult[0], fit.rnd[0], fit.shift[0]) == (0, 0, 0)
    assert_exact(ops, [-10], [10], fit)


def test_clamp_only_chain():
    # same scale both sides, relu: the integer form is a clamp at 0
    ops = [["dequantize", 0.25, 0], ["relu"], ["quantize", 0.25, 0, "int8"]]
    fit = fit_requant(chain_fn(ops), [-50], [50])
    assert fit.is_clamp_only() and (fit.lo, fit.hi) == (0, 50)
    assert_exact(ops, [-50], [50], fit)


def test_ties_need_half_even():
    # A / 2 rounds half to even: floor(A/2 + rnd) cannot reproduce 0.5 -> 0, 1.5 -> 2
    ops = [["dequantize", 1.0, 0], ["quantize", 2.0, 0, "int8"]]
    fit = fit_requant(chain_fn(ops), [-20], [20])
    assert fit.rounding == "half_even" and (fit.mult[0], fit.shift[0]) == (1, 1)
    assert_exact(ops, [-20], [20], fit)


def test_odd_zero_point_ties_need_half_odd():
    # with an odd zero point the tie rule, seen from A, rounds to odd
    ops = [["dequantize", 1.0, 0], ["quantize", 2.0, 1, "int8"]]
    fit = fit_requant(chain_fn(ops), [-20], [20])
    assert_exact(ops, [-20], [20], fit)
    assert fit.rounding in ("half_odd", "half_even")
    # the half-steps A = 2k+1 must land on the even result of A/2 before the zero point
    a = np.arange(-19, 20, 2)
    assert np.array_equal(hostio.apply_float_ops(a, ops) - 1, np.rint(a / 2))


def test_saturation_is_the_clamp():
    ops = [["dequantize", 1.0, 0], ["quantize", 0.5, 0, "uint8"]]
    fit = fit_requant(chain_fn(ops), [-300], [300])
    assert (fit.lo, fit.hi) == (0, 255)
    assert_exact(ops, [-300], [300], fit)


def test_non_monotone_chain_is_refused():
    decreasing = [["dequantize", 1.0, 0], ["mul", -1.0], ["quantize", 1.0, 0, "int8"]]
    with pytest.raises(FitError, match="not monotone") as e:
        fit_requant(chain_fn(decreasing), [0], [10])
    assert e.value.channel == 0


def test_refusal_names_the_channel():
    # channel 1 has irregular float32 rounding (Mul by 0.3), channel 0 is a plain shift
    ops = [["dequantize", 2.0 ** -7, 0], ["mul", [1.0, 0.3]], ["quantize", 0.125, 0, "int8"]]
    with pytest.raises(FitError) as e:
        fit_requant(chain_fn(ops), [-800, -800], [800, 800])      # first irregular tie: A = 240
    assert e.value.channel == 1 and str(e.value).startswith("channel 1: ")


def test_thresholds_are_first_reaching_points():
    f = chain_fn([["dequantize", 1.0, 0], ["quantize", 4.0, 0, "int8"]])   # round(A / 4)
    t = thresholds(f, np.array([0]), np.array([12]), np.array([0]), np.array([3]))
    a = np.arange(0, 13)
    y = f(a[None, :])[0]
    for k, level in enumerate([1, 2, 3]):
        assert t[0, k] == a[np.argmax(y >= level)]


@pytest.mark.parametrize("relu", [False, True])
def test_constant_channel_keeps_a_small_rounding_offset(relu):
    ops = [["dequantize", 1.0, 0]] + ([["relu"]] if relu else []) + [["quantize", 4.0, 0, "int8"]]
    a_lo, a_hi = [-100, -2000], [100, -1000]        # channel 1 is constant
    fit = fit_requant(chain_fn(ops), a_lo, a_hi)
    assert_exact(ops, a_lo, a_hi, fit)
    for c in range(2):
        pre = np.array([a_lo[c], a_hi[c]]) * fit.mult[c] + fit.rnd[c]
        assert np.abs(pre).max() < 2 ** 31, (c, fit)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_SCALE, st.lists(st.integers(0, 4), min_size=2, max_size=4), ANY_SCALE,
       st.sampled_from(["none", "relu"]), INTERVAL)
def test_channels_scaled_by_powers_of_two_share_one_odd_multiplier(s_in, exps, s_out, act, interval):
    # per-channel weight scales 2**e times one activation scale: the real multipliers
    # differ by powers of two, and the fit keeps that (targets without a per-channel
    # multiply need it), exactly
    ops = [["dequantize", [float(np.float32(s_in * 2.0 ** e)) for e in exps], 0]]
    ops += [["relu"]] if act == "relu" else []
    ops.append(["quantize", s_out, 0, "int8"])
    lo, hi = interval
    try:
        fit = fit_requant(chain_fn(ops), [lo] * len(exps), [hi] * len(exps))
    except FitError:
        return
    assert_exact(ops, [lo] * len(exps), [hi] * len(exps), fit)
    odd = {int(m) >> ((int(m) & -int(m)).bit_length() - 1) for m in fit.mult if m}
    assert len(odd) <= 1, fit


def test_one_odd_multiplier_where_the_smallest_fits_differ():
    # each channel's own smallest exact multiplier has another odd part (e.g. 713 and
    # 11407 = 16 * 713 - 1); 713 * 16 is exact for the second channel too
    ops = [["dequantize", [0.0371, 0.0371 * 16], 0], ["quantize", 0.1, 0, "int8"]]
    fit = fit_requant(chain_fn(ops), [-200, -200], [200, 200])
    assert_exact(ops, [-200, -200], [200, 200], fit)
    a, b = (int(m) for m in fit.mult)
    assert a and b and max(a, b) % min(a, b) == 0 and (max(a, b) // min(a, b)) & (max(a, b) // min(a, b) - 1) == 0


_LIMITED_FIT = """
import resource, sys
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from tinycc_nn import hostio, ir
from tinycc_nn.frontend.fit import fit_requant
ops = {ops!r}
f = lambda a: hostio.apply_float_ops(np.asarray(a).T, ops).T.astype(np.int64)
fit = fit_requant(f, np.array([{lo}]), np.array([{hi}]))
a = np.arange({lo}, {hi} + 1)
got = ir.requant_values(a, int(fit.mult[0]), int(fit.rnd[0]), int(fit.shift[0]), fit.rounding,
                        fit.lo, fit.hi)
assert (got == hostio.apply_float_ops(a, ops)).all()
print(int(fit.mult[0]), int(fit.shift[0]))
"""


@pytest.mark.parametrize("ops, lo, hi, want", [
    # an int16 output finer than the accumulator unit: mult 2 over 65535 levels
    ([["mul", 2.0 ** -3], ["quantize", 2.0 ** -4, 0, "int16"]], -20000, 20000, "2 0"),
    ([["mul", 2.0 ** -3], ["add", 0.3], ["mul", 3.0], ["quantize", 2.0 ** -4 * 1.7, 3, "int16"]],
     -9000, 9000, None),
])
def test_a_16_bit_fit_runs_in_bounded_memory(ops, lo, hi, want):
    # the fit built a levels x levels array: 32 GiB for a 16-bit output with a multiplier
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _LIMITED_FIT.format(ops=ops, lo=lo, hi=hi)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    if want:
        assert r.stdout.strip() == want
