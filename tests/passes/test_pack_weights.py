"""tinycc_nn/passes/pack_weights.py: each weight tensor's encoding from the values it uses."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import qdq
from onnx_cases import assert_same_behaviour, check_lines, pass_models, pass_snapshots, typed_ir
from tinycc_nn.ir import verify
from tinycc_nn.passes.pack_weights import PackWeights, choose_encoding, packed_bytes
from tinycc_nn.printer import print_graph

MODELS = pass_models()


@pytest.mark.parametrize("name, model, x", MODELS, ids=[m[0] for m in MODELS])
def test_behaviour_is_unchanged(name, model, x):
    before = pass_snapshots(model, stop_after="lower-elementwise")["lower-elementwise"]
    after = before.copy()
    assert PackWeights().apply(after) is True
    verify(after)
    assert_same_behaviour(before, after, x)
    for c in after.nodes_of("const"):
        a = after.attrs(c)
        assert (a["encoding"], a["code_bits"], a["codebook"]) == choose_encoding(set(a["values"].ravel().tolist()))
    assert PackWeights().apply(after) is False      # already packed


@pytest.mark.parametrize("values, encoding, bits, codebook", [
    (qdq.VALUE_SETS["binary"], "binary", 1, [-1, 1]),
    ([1, -1, 1], "binary", 1, [-1, 1]),
    (qdq.VALUE_SETS["ternary"], "ternary", 2, [-1, 0, 1]),
    ([-1, 0], "int", 1, [0, -1]),           # narrower than ternary
    (qdq.VALUE_SETS["pm2"], "pm2", 2, [1, 2, -1, -2]),
    ([-2, 2], "table", 1, [-2, 2]),
    ([-3, -1, 1, 3], "odd", 2, [-3, -1, 1, 3]),
    (qdq.VALUE_SETS["odd4"], "odd", 4, list(range(-15, 16, 2))),
    ([-7, -5, -3, 1, 5], "odd", 3, [-7, -5, -3, -1, 1, 3, 5, 7]),   # odd before an equal-width table
    ([-7, 5], "table", 1, [-7, 5]),
    (qdq.VALUE_SETS["int4"], "int", 4, [0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1]),
    (qdq.VALUE_SETS["int8"], "int", 8, list(range(128)) + list(range(-128, 0))),
    (list(range(16)), "uint", 4, list(range(16))),
    ([0, 1], "uint", 1, [0, 1]),
    ([0, 255], "table", 1, [0, 255]),
    ([-100, 3, 50], "table", 2, [-100, 3, 50]),
    ([7], "table", 0, [7]),
])
def test_choose_encoding(values, encoding, bits, codebook):
    assert choose_encoding(set(values)) == (encoding, bits, codebook)


def _code_of(encoding, bits, codebook, w):
    """The documented code of weight w (pack_weights' docstring)."""
    if encoding == "binary":
        return (w + 1) // 2
    if encoding == "ternary":
        return w + 1
    if encoding == "pm2":
        return (2 if w < 0 else 0) | (abs(w) - 1)
    if encoding == "odd":
        return (w + (1 << bits) - 1) // 2
    if encoding == "int":
        return w % (1 << bits)
    return codebook.index(w)


@given(st.sets(st.integers(-300, 300), min_size=1, max_size=40))
def test_encoding_decodes_every_value_and_is_never_wider_than_a_table(values):
    encoding, bits, codebook = choose_encoding(values)
    assert len(codebook) <= 1 << bits
    for w in values:
        code = _code_of(encoding, bits, codebook, w)
        assert 0 <= code < max(1 << bits, 1)
        assert codebook[code] == w
    table_bits = (len(values) - 1).bit_length()
    assert bits <= table_bits
    lo, hi = min(values), max(values)
    twos = max((-lo - 1).bit_length(), hi.bit_length()) + 1 if lo < 0 else max(hi.bit_length(), 1)
    assert bits <= twos


def test_encodings_of_the_value_sets_in_a_model(rng):
    # one layer per value set; each const's encoding follows from its recorded valueset
    for name, vals in qdq.VALUE_SETS.items():
        w = rng.choice(vals, size=(40, 7))
        w.ravel()[:len(vals)] = vals
        m = qdq.Model([qdq.Layer(w, relu=False, out_exp=0)], 40)
        g = pass_snapshots(qdq.build(m), stop_after="pack-weights")["pack-weights"]
        (c,) = g.nodes_of("const")
        a = g.attrs(c)
        assert a["valueset"] == vals
        expected = {"binary": "binary", "ternary": "ternary", "pm2": "pm2", "odd4": "odd",
                    "int4": "int", "int8": "int"}[name]
        assert a["encoding"] == expected


PACK = '''graph @t {
  %x = input() {name = "x", dtype = "float32", shape = ["N", 3], qdtype = "int8", scale = 0.25, zero_point = 0} : i8[3] -128..127
  %w1 = const() {values = [[1, -1, 1, 1, -1], [1, 1, -1, 1, 1], [-1, -1, -1, 1, 1]], valueset = [-1, 1]}
  %h = dense(%x, %w1) {bias = 0, mult = 1, rnd = 0, shift = 2, rounding = "floor", lo = -128, hi = 127}
  %w2 = const() {values = [[3, -5], [0, 7], [-8, 1], [2, 2], [-1, 0]], valueset = [-8, -5, -1, 0, 1, 2, 3, 7]}
  %y = dense(%h, %w2) {bias = 0, mult = 1, rnd = 0, shift = 3, rounding = "floor", lo = -128, hi = 127}
  %o = output(%y) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}
}
'''


def test_filecheck_and_packed_bytes():
    g = typed_ir(PACK)
    assert packed_bytes(g) == 15 + 10        # 8 bits per weight before packing
    PackWeights().apply(g)
    verify(g)
    check_lines(print_graph(g), [
        'valueset = [-1, 1], encoding = "binary", code_bits = 1, codebook = [-1, 1]} : i2[3, 5] -1..1',
        'valueset = [-8, -5, -1, 0, 1, 2, 3, 7], encoding = "table", code_bits = 3, '
        'codebook = [-8, -5, -1, 0, 1, 2, 3, 7]} : i4[5, 2] -8..7'])
    # 15 weights at 1 bit + 10 at 3 bits = 45 bits -> 6 bytes
    assert packed_bytes(g) == 6


@pytest.mark.parametrize("name, model, x", MODELS[:4], ids=[m[0] for m in MODELS[:4]])
def test_report_rom_is_packed_bytes(name, model, x):
    import tinycc_nn
    art = tinycc_nn.compile(model, "python")
    bits = sum(art.graph.attrs(c)["code_bits"] * art.graph.attrs(c)["values"].size
               for c in art.graph.nodes_of("const"))
    assert art.report["rom_used"] == packed_bytes(art.graph) == -(-bits // 8)
