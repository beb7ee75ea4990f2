"""tinycc_nn/passes/requant_as_dense.py: a standalone requant becomes dense(x, identity)
with the same attributes, name and behaviour (the Padauk pipeline's last pass)."""
import numpy as np
import pytest

from onnx_cases import assert_same_behaviour, check_lines, pass_models, pass_snapshots, typed_ir
from tinycc_nn.ir import verify
from tinycc_nn.passes.requant_as_dense import RequantAsDense, is_identity
from tinycc_nn.printer import print_graph

MODELS = pass_models()

HEAD = '''graph @t {
  %x = input() {name = "x", dtype = "float32", shape = ["N", 3], qdtype = "int8", scale = 0.25, zero_point = 0} : i8[3] -128..127
  %w = const() {values = [[1, -1], [2, 0], [-3, 1]], valueset = [-3, -1, 0, 1, 2]}
'''


@pytest.mark.parametrize("name, model, x", MODELS, ids=[m[0] for m in MODELS])
def test_behaviour_is_unchanged(name, model, x):
    before = pass_snapshots(model, stop_after="pack-weights")["pack-weights"]
    after = before.copy()
    changed = RequantAsDense().apply(after)
    verify(after)
    vector_requants = [n for n in before.nodes_of("requant") if len(before.type(n).shape) == 1]
    assert changed == bool(vector_requants)
    # a map's requant stays (the Padauk backend refuses maps by name)
    assert all(len(after.type(n).shape) == 3 for n in after.nodes_of("requant"))
    assert_same_behaviour(before, after, x)
    assert RequantAsDense().apply(after.copy()) is False


def test_a_requant_becomes_an_identity_layer_with_its_name_and_attributes():
    g = typed_ir(HEAD + '''
  %c = requant(%x) {mult = [3, 1, 2], rnd = [1, 0, -4], shift = 2, rounding = "half_even", lo = 0, hi = 40}
  %acc = dense(%c, %w) {bias = 0, mult = 1, rnd = 0, shift = 0, rounding = "floor", lo = null, hi = null}
  %o = output(%acc) {name = "y", dtype = "int32", shape = ["N", 2], float_ops = []}
}
''')
    before = g.copy()
    assert RequantAsDense().apply(g)
    verify(g)
    x = np.random.default_rng(3).normal(0, 30, (200, 3)).astype(np.float32)
    assert_same_behaviour(before, g, x)
    text = print_graph(g)
    check_lines(text, ['%c = dense(%x, %c.identity) {bias = 0, mult = [3, 1, 2], rnd = [1, 0, -4], '
                       'shift = 2, rounding = "half_even", lo = 0, hi = 40} : u6[3] 0..40'])
    assert is_identity(g.attrs("c.identity")["values"]) and g.attrs("c.identity")["encoding"] == "uint"
    assert g.order().index("c") < g.order().index("acc")


def test_is_identity():
    assert is_identity(np.eye(4, dtype=np.int64)) and is_identity([[1]])
    assert not is_identity(np.eye(4, 3)) and not is_identity([[0, 1], [1, 0]]) and not is_identity([1])
