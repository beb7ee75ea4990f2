"""tinycc_nn/passes/fuse_dense.py: matmul (conv) -> [bias_add] -> [requant] -> [clamp]* becomes one
dense (qconv)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onnx_cases import (assert_same_behaviour, check_lines, pass_models, pass_snapshots, typed_ir)
from tinycc_nn.ir import verify
from tinycc_nn.passes.fuse_dense import FuseDense, compose_clamp
from tinycc_nn.printer import print_graph

MODELS = pass_models()


@pytest.mark.parametrize("name, model, x", MODELS, ids=[m[0] for m in MODELS])
def test_behaviour_is_unchanged(name, model, x):
    before = pass_snapshots(model, stop_after="import")["import"]
    after = before.copy()
    assert FuseDense().apply(after) is True
    verify(after)
    assert not after.nodes_of("matmul") and not after.nodes_of("conv")
    assert_same_behaviour(before, after, x)
    # and the pipeline's own snapshot is the same graph
    assert pass_snapshots(model, stop_after="fuse-dense")["fuse-dense"] == after


@pytest.mark.parametrize("name, model, x", MODELS[:3], ids=[m[0] for m in MODELS[:3]])
def test_second_application_changes_nothing(name, model, x):
    g = pass_snapshots(model, stop_after="fuse-dense")["fuse-dense"]
    again = g.copy()
    assert FuseDense().apply(again) is False
    assert again == g


HEAD = '''graph @t {
  %x = input() {name = "x", dtype = "float32", shape = ["N", 3], qdtype = "int8", scale = 0.25, zero_point = 0} : i8[3] -128..127
  %w = const() {values = [[1, -1], [2, 0], [-3, 1]], valueset = [-3, -1, 0, 1, 2]}
'''


def fused(body: str):
    g = typed_ir(HEAD + body + "\n}\n")
    before = g.copy()
    FuseDense().apply(g)
    verify(g)
    x = np.random.default_rng(0).normal(0, 20, (50, 3)).astype(np.float32)
    x[:5] *= 50
    assert_same_behaviour(before, g, x)
    return print_graph(g)


def test_full_chain_becomes_one_dense_keeping_the_matmul_name():
    text = fused('''
  %acc = matmul(%x, %w)
  %b = bias_add(%acc) {bias = [5, -7]}
  %q = requant(%b) {mult = 3, rnd = 2, shift = 4, rounding = "half_even", lo = -128, hi = 127}
  %c = clamp(%q) {lo = 0, hi = null}
  %o = output(%c) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, [
        '%acc = dense(%x, %w) {bias = [5, -7], mult = 3, rnd = 2, shift = 4, rounding = "half_even", '
        'lo = 0, hi = 127} : u7[2] 0..127',
        '%o = output(%acc) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}'])
    for gone in ("%b =", "%q =", "%c =", "matmul("):
        assert gone not in text


def test_matmul_alone_becomes_a_raw_dense():
    text = fused('''
  %acc = matmul(%x, %w)
  %o = output(%acc) {name = "y", dtype = "int32", shape = ["N", 2], float_ops = []}''')
    check_lines(text, ['%acc = dense(%x, %w) {bias = 0, mult = 1, rnd = 0, shift = 0, rounding = "floor", '
                       'lo = null, hi = null} : i11[2] -765..765'])


def test_requant_without_bias():
    text = fused('''
  %acc = matmul(%x, %w)
  %q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -10, hi = 10}
  %o = output(%q) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, ['%acc = dense(%x, %w) {bias = 0, mult = 1, rnd = 0, shift = 2, rounding = "floor", '
                       'lo = -10, hi = 10} : i5[2] -10..10'])


def test_two_clamps_compose():
    text = fused('''
  %acc = matmul(%x, %w)
  %q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -100, hi = 100}
  %c1 = clamp(%q) {lo = -50, hi = null}
  %c2 = clamp(%c1) {lo = null, hi = 20}
  %o = output(%c2) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, ['%acc = dense(%x, %w) {bias = 0, mult = 1, rnd = 0, shift = 2, rounding = "floor", '
                       'lo = -50, hi = 20} : i7[2] -50..20'])


def test_value_with_two_users_stops_the_chain():
    # %b is both an output and the requant's operand: the requant cannot be fused
    text = fused('''
  %acc = matmul(%x, %w)
  %b = bias_add(%acc) {bias = 1}
  %q = requant(%b) {mult = 1, rnd = 0, shift = 3, rounding = "floor", lo = -128, hi = 127}
  %o1 = output(%b) {name = "raw", dtype = "int32", shape = ["N", 2], float_ops = []}
  %o2 = output(%q) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, [
        '%acc = dense(%x, %w) {bias = 1, mult = 1, rnd = 0, shift = 0, rounding = "floor", lo = null, hi = null}'
        ' : i11[2] -764..766',
        '%q = requant(%acc) {mult = 1, rnd = 0, shift = 3, rounding = "floor", lo = -128, hi = 127} : i8[2] -96..95',
        '%o1 = output(%acc) {name = "raw", dtype = "int32", shape = ["N", 2], float_ops = []}'])


def test_clamp_between_accumulator_and_requant_is_not_moved():
    text = fused('''
  %acc = matmul(%x, %w)
  %c = clamp(%acc) {lo = 0, hi = null}
  %q = requant(%c) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127}
  %o = output(%q) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, [
        '%acc = dense(%x, %w) {bias = 0, mult = 1, rnd = 0, shift = 0, rounding = "floor", lo = 0, hi = null}'
        ' : u10[2] 0..765',
        '%q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127} : u7[2] 0..127'])


def test_argmax_user_keeps_working():
    text = fused('''
  %acc = matmul(%x, %w)
  %q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127}
  %k = argmax(%q) {last = true}
  %o = output(%k) {name = "k", dtype = "int64", shape = ["N"], float_ops = []}''')
    check_lines(text, ['%k = argmax(%acc) {last = true} : u1[] 0..1'])


def test_bias_adds_in_a_row_fuse():
    # the importer emits a zero-point correction, then the layer's bias
    text = fused('''
  %acc = matmul(%x, %w)
  %b1 = bias_add(%acc) {bias = [5, -7]}
  %b2 = bias_add(%b1) {bias = 3}
  %q = requant(%b2) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127}
  %o = output(%q) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, ['%acc = dense(%x, %w) {bias = [8, -4], mult = 1, rnd = 0, shift = 2, rounding = "floor", '
                       'lo = -128, hi = 127} : i8[2] -128..127'])


def _output_names(graph):
    return [graph.attrs(o)["name"] for o in graph.outputs()]


def test_outputs_keep_their_onnx_order():
    name, model, x = next(m for m in MODELS if m[0] == "two-users")
    snaps = pass_snapshots(model)
    onnx_order = [o.name for o in model.graph.output]
    assert _output_names(snaps["import"]) == onnx_order
    assert _output_names(snaps["fuse-dense"]) == onnx_order


# compose_clamp against clamping twice --------------------------------------------------------

BOUND = st.one_of(st.none(), st.integers(-20, 20))


@given(BOUND, BOUND, BOUND, BOUND)
def test_compose_clamp_equals_clamping_twice(lo1, hi1, lo2, hi2):
    if lo1 is not None and hi1 is not None and lo1 > hi1:
        lo1, hi1 = hi1, lo1
    if lo2 is not None and hi2 is not None and lo2 > hi2:
        lo2, hi2 = hi2, lo2
    v = np.arange(-40, 41)
    want = np.clip(np.clip(v, lo1, hi1) if (lo1, hi1) != (None, None) else v, lo2, hi2) \
        if (lo2, hi2) != (None, None) else (np.clip(v, lo1, hi1) if (lo1, hi1) != (None, None) else v)
    lo, hi = compose_clamp(lo1, hi1, lo2, hi2)
    got = np.clip(v, lo, hi) if (lo, hi) != (None, None) else v
    assert np.array_equal(got, want)
    assert lo is None or hi is None or lo <= hi
