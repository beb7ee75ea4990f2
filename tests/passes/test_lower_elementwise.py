"""tinycc_nn/passes/lower_elementwise.py: bias_add and clamp become requant; a clamp after a
requant/dense with one user narrows its bounds."""
import numpy as np
import pytest

from onnx_cases import assert_same_behaviour, check_lines, pass_models, pass_snapshots, typed_ir
from tinycc_nn.ir import verify
from tinycc_nn.passes.lower_elementwise import LowerElementwise
from tinycc_nn.printer import print_graph

MODELS = pass_models()


@pytest.mark.parametrize("name, model, x", MODELS, ids=[m[0] for m in MODELS])
def test_behaviour_is_unchanged(name, model, x):
    before = pass_snapshots(model, stop_after="fuse-dense")["fuse-dense"]
    after = before.copy()
    LowerElementwise().apply(after)
    verify(after)
    assert not after.nodes_of("clamp") and not after.nodes_of("bias_add")
    assert_same_behaviour(before, after, x)
    assert pass_snapshots(model, stop_after="lower-elementwise")["lower-elementwise"] == after
    assert LowerElementwise().apply(after.copy()) is False       # nothing left to lower


@pytest.mark.parametrize("name, model, x", MODELS[:4], ids=[m[0] for m in MODELS[:4]])
def test_also_equivalent_directly_on_the_imported_graph(name, model, x):
    # without fuse-dense first: every bias_add and clamp of the import is lowered
    before = pass_snapshots(model, stop_after="import")["import"]
    after = before.copy()
    LowerElementwise().apply(after)
    verify(after)
    assert_same_behaviour(before, after, x)


HEAD = '''graph @t {
  %x = input() {name = "x", dtype = "float32", shape = ["N", 3], qdtype = "int8", scale = 0.25, zero_point = 0} : i8[3] -128..127
  %w = const() {values = [[1, -1], [2, 0], [-3, 1]], valueset = [-3, -1, 0, 1, 2]}
'''


def lowered(body: str, expect_changed=True):
    g = typed_ir(HEAD + body + "\n}\n")
    before = g.copy()
    assert LowerElementwise().apply(g) is expect_changed
    verify(g)
    x = np.random.default_rng(1).normal(0, 20, (50, 3)).astype(np.float32)
    x[:5] *= 50
    assert_same_behaviour(before, g, x)
    return print_graph(g)


def test_bias_add_becomes_requant_with_rnd():
    text = lowered('''
  %acc = matmul(%x, %w)
  %b = bias_add(%acc) {bias = [5, -7]}
  %o = output(%b) {name = "y", dtype = "int32", shape = ["N", 2], float_ops = []}''')
    check_lines(text, ['%b = requant(%acc) {mult = 1, rnd = [5, -7], shift = 0, rounding = "floor", '
                       'lo = null, hi = null} : i11[2] -760..770'])


def test_clamp_of_an_input_becomes_requant():
    text = lowered('''
  %c = clamp(%x) {lo = 0, hi = null}
  %acc = matmul(%c, %w)
  %o = output(%acc) {name = "y", dtype = "int32", shape = ["N", 2], float_ops = []}''')
    check_lines(text, [
        '%c = requant(%x) {mult = 1, rnd = 0, shift = 0, rounding = "floor", lo = 0, hi = null} : u7[3] 0..127',
        '%acc = matmul(%c, %w) : i10[2] -381..381'])


def test_clamp_after_dense_narrows_its_bounds():
    text = lowered('''
  %acc = dense(%x, %w) {bias = 0, mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127}
  %c = clamp(%acc) {lo = 0, hi = 100}
  %o = output(%c) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, [
        '%acc = dense(%x, %w) {bias = 0, mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = 0, hi = 100} '
        ': u7[2] 0..100',
        '%o = output(%acc) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}'])
    assert "%c =" not in text


def test_clamp_after_requant_narrows_its_bounds_and_downstream_types():
    text = lowered('''
  %acc = matmul(%x, %w)
  %q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "half_even", lo = -128, hi = 127}
  %c = clamp(%q) {lo = null, hi = 3}
  %w2 = const() {values = [[1], [1]], valueset = [1]}
  %acc2 = matmul(%c, %w2)
  %o = output(%acc2) {name = "y", dtype = "int32", shape = ["N", 1], float_ops = []}''')
    check_lines(text, [
        '%q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "half_even", lo = -128, hi = 3} : i8[2] -128..3',
        '%acc2 = matmul(%q, %w2) : i9[1] -192..6'])


def test_clamp_after_a_shared_requant_stays_separate():
    # %q has two users: its bounds cannot narrow, the clamp becomes its own requant
    text = lowered('''
  %acc = matmul(%x, %w)
  %q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127}
  %c = clamp(%q) {lo = 0, hi = null}
  %o1 = output(%q) {name = "q", dtype = "int8", shape = ["N", 2], float_ops = []}
  %o2 = output(%c) {name = "c", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, [
        '%q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127} : i8[2] -128..127',
        '%c = requant(%q) {mult = 1, rnd = 0, shift = 0, rounding = "floor", lo = 0, hi = null} : u7[2] 0..127'])


def test_disjoint_clamp_after_requant():
    # the clamp's interval lies above the requant's: every value becomes the clamp's lo
    text = lowered('''
  %acc = matmul(%x, %w)
  %q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -10, hi = 10}
  %c = clamp(%q) {lo = 20, hi = 30}
  %o = output(%c) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''')
    check_lines(text, ['%q = requant(%acc) {mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = 20, hi = 20} '
                       ': u5[2] 20..20'])


def test_nothing_to_lower():
    lowered('''
  %acc = dense(%x, %w) {bias = 0, mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127}
  %o = output(%acc) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}''', expect_changed=False)
