"""tinycc_nn/ir.py: types from intervals, the integer rounding primitives, and verify()."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycc_nn import TinyccError
from tinycc_nn.ir import (Graph, TensorType, channel_range, requant_values, shift_round,
                          verify)
from tinycc_nn.parser import parse

SMALL = '''graph @small {
  %x = input() {name = "x", dtype = "float32", shape = ["N", 3], qdtype = "int8", scale = 0.25, zero_point = 0} : i8[3] -128..127
  %w = const() {values = [[1, -1], [0, 2], [-2, 1]], valueset = [-2, -1, 0, 1, 2]} : i3[3, 2] -2..2
  %acc = matmul(%x, %w) : i10[2] -511..509
  %acc.b = bias_add(%acc) {bias = [3, -5]} : i11[2] -516..504
  %y = requant(%acc.b) {mult = 1, rnd = 0, shift = 2, rounding = "half_even", lo = 0, hi = 127} : u7[2] 0..126
  %c = clamp(%y) {lo = null, hi = 100} : u7[2] 0..100
  %k = argmax(%c) {last = false} : u1[] 0..1
  %out.y = output(%c) {name = "y", dtype = "float32", shape = ["N", 2], float_ops = [["dequantize", 0.25, 0]]}
  %out.k = output(%k) {name = "k", dtype = "int64", shape = ["N"], float_ops = []}
}
'''


@pytest.fixture
def small():
    g = parse(SMALL)
    verify(g)       # the fixture itself is valid, so each test's mutation is what fails
    return g


# TensorType.for_range ------------------------------------------------------------------

@pytest.mark.parametrize("lo, hi, signed, bits", [
    (-128, 127, True, 8), (0, 255, False, 8), (-129, 0, True, 9), (-128, 128, True, 9),
    (0, 256, False, 9), (0, 0, False, 1), (0, 1, False, 1), (-1, 0, True, 1), (-1, 1, True, 2),
    (-2, 1, True, 2), (-32768, 32767, True, 16), (0, 65535, False, 16), (-32769, 0, True, 17),
    (-2**31, 2**31 - 1, True, 32), (5, 5, False, 3), (-5, -3, True, 4),
])
def test_for_range_width_at_boundaries(lo, hi, signed, bits):
    t = TensorType.for_range(lo, hi, (4,))
    assert (t.signed, t.bits, t.lo, t.hi, t.shape) == (signed, bits, lo, hi, (4,))


@given(st.integers(-2**40, 2**40), st.integers(0, 2**40))
def test_for_range_is_the_narrowest_width_holding_the_interval(lo, width):
    hi = lo + width
    t = TensorType.for_range(lo, hi, ())

    def holds(bits):
        if t.signed:
            return -(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1
        return 0 <= lo and hi <= (1 << bits) - 1
    assert t.signed == (lo < 0)
    assert holds(t.bits)
    if hi >= 0:     # all-negative intervals: see the xfail below
        assert t.bits == 1 or not holds(t.bits - 1)


@pytest.mark.parametrize("lo, hi, bits", [(-128, -128, 8), (-1, -1, 1), (-256, -256, 9)])
def test_for_range_all_negative_interval_is_narrowest(lo, hi, bits):
    assert TensorType.for_range(lo, hi, ()).bits == bits


def test_type_text_and_size():
    t = TensorType.for_range(-3, 9, (2, 5))
    assert str(t) == "i5[2, 5] -3..9"
    assert t.size == 10
    assert TensorType.for_range(0, 3, ()).size == 1


# shift_round / requant_values against exact rationals ---------------------------------

def exact_round(t: int, shift: int, rounding: str) -> int:
    x = Fraction(t, 1 << shift)
    fl = math.floor(x)
    if rounding == "floor":
        return fl
    rem = x - fl
    if rem != Fraction(1, 2):
        return fl + (rem > Fraction(1, 2))
    want_parity = 0 if rounding == "half_even" else 1
    return fl if fl % 2 == want_parity else fl + 1


ROUNDINGS = ["floor", "half_even", "half_odd"]


@settings(max_examples=400)
@given(st.integers(-2**40, 2**40), st.integers(0, 20), st.sampled_from(ROUNDINGS))
def test_shift_round_matches_exact_rational(t, shift, rounding):
    assert int(shift_round(t, shift, rounding)) == exact_round(t, shift, rounding)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(-2**30, 2**30), st.integers(0, 20)), min_size=1, max_size=16),
       st.sampled_from(ROUNDINGS))
def test_shift_round_vectorized_with_per_element_shifts(pairs, rounding):
    t = np.array([p[0] for p in pairs], np.int64)
    s = np.array([p[1] for p in pairs], np.int64)
    got = shift_round(t, s, rounding)
    assert got.tolist() == [exact_round(a, b, rounding) for a, b in pairs]


@pytest.mark.parametrize("rounding, expected", [
    # t = -6..6 over 4: -1.5, -1.25, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5
    ("floor", [-2, -2, -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1]),
    ("half_even", [-2, -1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1, 2]),
    ("half_odd", [-1, -1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 1, 1]),
])
def test_shift_round_ties_by_hand(rounding, expected):
    assert shift_round(np.arange(-6, 7), 2, rounding).tolist() == expected


@settings(max_examples=200)
@given(st.integers(-2**20, 2**20), st.integers(0, 2**12), st.integers(-2**16, 2**16),
       st.integers(0, 20), st.sampled_from(ROUNDINGS),
       st.one_of(st.none(), st.integers(-300, 0)), st.one_of(st.none(), st.integers(0, 300)))
def test_requant_values_matches_exact_rational(x, mult, rnd, shift, rounding, lo, hi):
    want = exact_round(x * mult + rnd, shift, rounding)
    if lo is not None:
        want = max(want, lo)
    if hi is not None:
        want = min(want, hi)
    assert int(requant_values(x, mult, rnd, shift, rounding, lo, hi)) == want


def test_channel_range_of_the_small_graph(small):
    lo, hi = channel_range(small, "acc")
    # column 0 = x0 - 2*x2, column 1 = -x0 + 2*x1 + x2 over x in [-128, 127]
    assert lo.tolist() == [-128 - 2 * 127, -127 - 256 - 128]
    assert hi.tolist() == [127 + 256, 128 + 254 + 127]


# verify --------------------------------------------------------------------------------

def _verify_fails(graph, *fragments):
    with pytest.raises(TinyccError) as e:
        verify(graph)
    for f in fragments:
        assert f in str(e.value), str(e.value)
    return str(e.value)


def test_verify_wrong_recorded_type(small):
    small.node("acc")["type"] = TensorType.for_range(-640, 640, (2,))
    _verify_fails(small, "%acc", "type is i11[2] -640..640", "i10[2] -511..509")


def test_verify_wrong_shape_in_type(small):
    small.node("y")["type"] = TensorType.for_range(0, 126, (3,))
    _verify_fails(small, "%y")


def test_verify_unknown_op(small):
    small.node("c")["op"] = "sigmoid"
    _verify_fails(small, "%c", "unknown op")


def test_verify_missing_attribute(small):
    del small.attrs("y")["rounding"]
    _verify_fails(small, "%y", "missing attribute", "rounding")


def test_verify_unknown_attribute(small):
    small.attrs("c")["colour"] = "red"
    _verify_fails(small, "%c", "unknown attribute", "colour")


def test_verify_clamp_lo_above_hi(small):
    small.attrs("c")["lo"] = 101
    _verify_fails(small, "%c", "101 > 100")


def test_verify_requant_bounds_lo_above_hi(small):
    small.attrs("y")["lo"], small.attrs("y")["hi"] = 5, 4
    _verify_fails(small, "%y", "5 > 4")


def test_verify_negative_mult(small):
    small.attrs("y")["mult"] = [1, -1]
    _verify_fails(small, "%y", "mult must not be negative")


def test_verify_negative_shift(small):
    small.attrs("y")["shift"] = -1
    _verify_fails(small, "%y", "shift must not be negative")


def test_verify_per_channel_list_of_wrong_length(small):
    small.attrs("acc.b")["bias"] = [1, 2, 3]
    _verify_fails(small, "%acc.b", "bias")


def test_verify_bad_rounding_name(small):
    small.attrs("y")["rounding"] = "half_up"
    _verify_fails(small, "%y", "rounding must be one of")


def test_verify_operand_removed_from_under_its_user(small):
    small.remove("y")
    _verify_fails(small, "%c", "operand %y is not defined")


def test_verify_operand_never_defined():
    g = Graph("g")
    g.add("x", "input", [], {"name": "x", "dtype": "float32", "shape": [4], "qdtype": "int8"},
          TensorType.for_range(-128, 127, (4,)))
    g.add("c", "clamp", ["nothere"], {"lo": 0, "hi": None}, TensorType.for_range(0, 127, (4,)))
    g.add("o", "output", ["c"], {"name": "y", "dtype": "int8", "shape": [4], "float_ops": []})
    _verify_fails(g, "%c", "nothere")


def test_verify_wrong_operand_count(small):
    small.node("c")["operands"] = ["y", "y"]
    _verify_fails(small, "%c", "takes 1 operands, has 2")


def test_verify_const_must_be_a_weight(small):
    small.set_operands("c", ["w"])
    _verify_fails(small, "%c", "constant %w")


def test_verify_valueset_must_match_values(small):
    small.attrs("w")["valueset"] = [-1, 0, 1]
    _verify_fails(small, "%w", "valueset")


def test_verify_matmul_shape_mismatch(small):
    small.attrs("w")["values"] = np.ones((4, 2), np.int64)
    small.attrs("w")["valueset"] = [1]
    small.node("w")["type"] = TensorType.for_range(1, 1, (4, 2))
    _verify_fails(small, "%acc", "shapes do not match")


def test_verify_argmax_of_a_scalar(small):
    small.add("k2", "argmax", ["k"], {"last": True}, TensorType.for_range(0, 0, ()))
    _verify_fails(small, "%k2", "argmax takes a vector")


def test_verify_graph_without_output(small):
    for o in small.outputs():
        small.remove(o)
    _verify_fails(small, "has no output")


def _plan(graph, offsets):
    for name, (off, size) in offsets.items():
        graph.attrs(name)["ram_offset"], graph.attrs(name)["ram_bytes"] = off, size


def test_verify_ram_plan_disjoint_is_accepted(small):
    _plan(small, {"x": (0, 3), "acc": (3, 4), "acc.b": (7, 4), "y": (0, 2), "c": (2, 1)})
    verify(small)


def test_verify_ram_plan_overlap_of_live_values(small):
    # %x is live until %acc is computed: %acc must not reuse its bytes
    _plan(small, {"x": (0, 3), "acc": (2, 4)})
    _verify_fails(small, "%x and %acc are live together but share RAM")


def test_verify_ram_plan_reuse_after_death_is_accepted(small):
    # %x dies at %acc (position 2); %y (from position 4) may take its bytes
    _plan(small, {"x": (0, 3), "acc": (3, 4), "acc.b": (7, 4), "y": (0, 2)})
    verify(small)


def test_graph_equality_and_copy(small):
    other = small.copy()
    assert other == small
    other.attrs("y")["shift"] = 3
    assert other != small
    assert small.attrs("y")["shift"] == 2      # the copy does not share attrs
    third = small.copy()
    third.attrs("w")["values"][0, 0] = 7
    assert small.attrs("w")["values"][0, 0] == 1


# add (two runtime values) --------------------------------------------------------------

ADD = '''graph @res {
  %x = input() {name = "x", dtype = "float32", shape = ["N", 2, 1, 2], qdtype = "int8", scale = 0.25, zero_point = 0} : i8[4] -128..127
  %m = requant(%x) {mult = 1, rnd = 0, shift = 1, rounding = "floor", lo = 0, hi = 63} : u6[4] 0..63
  %s = add(%m, %x) {shifts = [2, 0], bias = [5, -5, 1, 0]} : i10[4] -133..384
  %out.s = output(%s) {name = "s", dtype = "float32", shape = ["N", 4], float_ops = []}
}
'''


def test_add_shifts_each_operand_and_adds_the_bias_per_channel():
    g = parse(ADD)
    verify(g)
    lo, hi = channel_range(g, "s")
    assert lo.tolist() == [-128 + 5, -128 - 5, -128 + 1, -128]
    assert hi.tolist() == [63 * 4 + 127 + 5, 63 * 4 + 127 - 5, 63 * 4 + 127 + 1, 63 * 4 + 127]


def test_verify_add_of_values_of_different_sizes():
    g = parse(ADD.replace(
        "  %s = add(%m, %x) {shifts = [2, 0], bias = [5, -5, 1, 0]} : i10[4] -133..384",
        "  %w = const() {values = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]} : u1[4, 3] 0..1\n"
        "  %p = matmul(%x, %w) : i8[3] -128..127\n"
        "  %s = add(%m, %p) {shifts = [2, 0], bias = 0} : i10[4] -128..379"))
    _verify_fails(g, "%s = add", "operand sizes differ")


def test_verify_add_shifts_must_be_two_non_negative_ints():
    g = parse(ADD)
    g.attrs("s")["shifts"] = [2, -1]
    _verify_fails(g, "%s = add", "shifts must be two non-negative ints")


def test_gather_permutes_element_ranges_and_checks_its_index():
    g = parse(ADD.replace(
        "  %s = add(%m, %x) {shifts = [2, 0], bias = [5, -5, 1, 0]} : i10[4] -133..384",
        "  %s = gather(%m) {index = [3, 2, 1, 0], shape = [2, 1, 2]} : u6[2, 1, 2] 0..63"))
    verify(g)
    assert [v.tolist() for v in channel_range(g, "s")] == [[0, 0], [63, 63]]
    g.attrs("s")["index"] = [3, 2, 1, 4]
    _verify_fails(g, "%s = gather", "outside the operand's 4 elements")
    g.attrs("s")["index"] = [3, 2, 1]
    _verify_fails(g, "%s = gather", "index must be 4 ints")
