"""Concat of runtime tensors (handlers.concat): branches joined by channel (a flat IR
`concat`), by height (a concat, then a `gather` before the next conv), with equal or
different power-of-two scales and zero points; bit-exact on `python` and the CH32V003 C."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import qdq
import tinycc_nn
from qdq_conv import _G
from tinycc_nn.backends.ch32v003 import firmware
from tinycc_nn.parser import parse
from tinycc_nn.printer import print_graph


def _w(g, ints, exp=-3):
    return g.node("DequantizeLinear", [g.const(ints.astype(np.int8), "w"), g.const(np.float32(2.0 ** exp), "s"),
                                       g.const(np.int8(0), "z")])


def branchy_cnn(axis: int, exp_b: int, zp_b: int, seed: int = 0):
    """input 2x6x6 -> [conv 3x3 -> 3 ch] and [conv 1x1 -> 2 ch, its own scale and zero
    point] -> Concat(axis) (axis 2: the first branch twice) -> conv 3x3 -> Flatten -> MatMul."""
    rng, g = np.random.default_rng(seed), _G()
    x = g.qdq("input", -5, "uint8", 0)
    a = g.qdq(g.node("Relu", [g.node("Conv", [x, _w(g, rng.integers(-4, 4, (3, 2, 3, 3)))], pads=[1, 1, 1, 1])]),
              -3, "uint8", 0)
    b = g.qdq(g.node("Relu", [g.node("Conv", [x, _w(g, rng.integers(-4, 4, (2, 2, 1, 1)))])]), exp_b, "uint8", zp_b)
    c = g.node("Concat", [a, b] if axis == 1 else [a, a], axis=axis)
    cin, h = (5, 6) if axis == 1 else (3, 12)
    d = g.qdq(g.node("Relu", [g.node("Conv", [c, _w(g, rng.integers(-4, 4, (2, cin, 3, 3)))])]), -2, "uint8", 0)
    y = g.qdq(g.node("MatMul", [g.node("Flatten", [d]), _w(g, rng.integers(-4, 4, (2 * (h - 2) * 4, 4)))]),
              -1, "int8", 0)
    graph = helper.make_graph(g.nodes, "branchy", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 6, 6])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", 4])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


CASES = [(1, -3, 0), (1, -2, 0), (1, -4, 7), (2, -3, 0)]
X = np.random.default_rng(1).uniform(0, 4, (40, 2, 6, 6)).astype(np.float32)


def _exact(art, model, x):
    got, want = art.run(x), qdq.ort_run(model, x)
    return all(np.array_equal(a.reshape(len(x), -1), b.reshape(len(x), -1)) for a, b in zip(got.values(), want))


@pytest.mark.parametrize("axis, exp_b, zp_b", CASES)
def test_concat_of_branches_is_bit_exact(axis, exp_b, zp_b):
    model = branchy_cnn(axis, exp_b, zp_b)
    art = tinycc_nn.compile(model, "python")
    ops = [art.graph.op(n) for n in art.graph.order()]
    assert ops.count("concat") == 1 and ops.count("gather") == (axis == 2)
    assert print_graph(parse(print_graph(art.graph))) == print_graph(art.graph)
    assert _exact(art, model, X)


@pytest.mark.skipif(not firmware.have_cross_compiler(), reason="riscv64-unknown-elf-gcc not installed")
@pytest.mark.parametrize("axis, exp_b, zp_b", CASES)
def test_concat_on_the_ch32v003(axis, exp_b, zp_b):
    """The branches write straight into the concat's buffer (no copy); a tensor joined to
    itself (axis 2 here) is copied twice."""
    model = branchy_cnn(axis, exp_b, zp_b)
    art = tinycc_nn.compile(model, "ch32v003", executor="host")
    (note,) = [v for v in art.report["layers"].values() if v.startswith("concat")]
    assert note.startswith("concat: in place" if axis == 1 else "concat: two copies")
    assert _exact(art, model, X)
    assert _exact(tinycc_nn.compile(model, "ch32v003"), model, X[:3])

