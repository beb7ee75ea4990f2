"""handlers.pad: a Pad before a Conv or pool (torch's F.pad, tf2onnx's explicit padding).
reflect/edge/wrap move data; constant mode fills with the integer whose value is the
constant (an IR gather with fills).  Bit-exact on `python` and the CH32V003 C; a
constant off the quantization grid is refused by name."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import qdq
import tinycc_nn
from qdq_conv import _G
from tinycc_nn.backends.ch32v003 import firmware


def _w(g, ints, exp=-3):
    return g.node("DequantizeLinear", [g.const(ints.astype(np.int8), "w"), g.const(np.float32(2.0 ** exp), "s"),
                                       g.const(np.int8(0), "z")])


def padded_cnn(mode: str, value, zp: int, pool: bool, seed: int = 0):
    """2x6x6 -> Pad (top 1, left 2, bottom 2, right 1) -> MaxPool 2 or Conv 3x3 stride 2
    -> Flatten -> MatMul."""
    rng, g = np.random.default_rng(seed), _G()
    x = g.qdq("input", -5, "uint8", zp)
    ins = [x, g.const(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))]
    if value is not None:
        ins.append(g.const(np.float32(value)))
    p = g.node("Pad", ins, mode=mode)
    if pool:
        c, n = g.node("MaxPool", [p], kernel_shape=[2, 2], strides=[2, 2]), 2 * 4 * 4
    else:
        c = g.qdq(g.node("Relu", [g.node("Conv", [p, _w(g, rng.integers(-4, 4, (3, 2, 3, 3)))], strides=[2, 2])]),
                  -3, "uint8", 0)
        n = 3 * 4 * 4
    y = g.qdq(g.node("MatMul", [g.node("Flatten", [c]), _w(g, rng.integers(-4, 4, (n, 4)))]), -1, "int8", 0)
    graph = helper.make_graph(g.nodes, "padded", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 6, 6])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", 4])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


CASES = [("constant", None, 0, False), ("constant", 0.0, 10, False), ("constant", 1.0, 0, True),
         ("reflect", None, 0, False), ("edge", None, 0, True), ("wrap", None, 3, False)]
X = np.random.default_rng(1).uniform(-1, 4, (40, 2, 6, 6)).astype(np.float32)


def _exact(art, model, x):
    got, want = art.run(x), qdq.ort_run(model, x)
    return all(np.array_equal(a.reshape(len(x), -1), b.reshape(len(x), -1)) for a, b in zip(got.values(), want))


@pytest.mark.parametrize("mode, value, zp, pool", CASES)
def test_pad_then_a_window_op_is_bit_exact(mode, value, zp, pool):
    model = padded_cnn(mode, value, zp, pool)
    art = tinycc_nn.compile(model, "python")
    (gather,) = [n for n in art.graph.order() if art.graph.op(n) == "gather"]
    assert ("fill" in art.graph.attrs(gather)) == (mode == "constant")
    assert _exact(art, model, X)


@pytest.mark.skipif(not firmware.have_cross_compiler(), reason="riscv64-unknown-elf-gcc not installed")
@pytest.mark.parametrize("mode, value, zp, pool", [CASES[1], CASES[3]])
def test_pad_on_the_ch32v003(mode, value, zp, pool):
    model = padded_cnn(mode, value, zp, pool)
    assert _exact(tinycc_nn.compile(model, "ch32v003", executor="host"), model, X)
    assert _exact(tinycc_nn.compile(model, "ch32v003"), model, X[:3])


def test_a_constant_off_the_grid_is_refused():
    with pytest.raises(tinycc_nn.TinyccError, match="Pad '.*': the constant 0.00999.* is not a value"):
        tinycc_nn.compile(padded_cnn("constant", 0.01, 0, False), "python")
