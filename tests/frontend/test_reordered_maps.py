"""tinycc_nn/frontend/window.py's map_input: a window op whose input is a reordered view
(an NHWC input transposed to NCHW as tf2onnx writes it, a crop by Slice) gets an IR
`gather` that copies the view into order; bit-exact on `python` and the CH32V003 C."""
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


def _model(g, y, in_shape, n_out):
    graph = helper.make_graph(g.nodes, "m", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, [in_shape[0], n_out])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def nhwc_cnn(transpose_first: bool, seed: int = 0):
    """NHWC input -> Transpose to NCHW (before or after its QuantizeLinear) -> Conv 3x3 ->
    Relu -> QDQ -> Transpose back to NHWC -> Reshape -> MatMul (tf2onnx's layout)."""
    rng, g = np.random.default_rng(seed), _G()
    if transpose_first:
        x = g.qdq(g.node("Transpose", ["input"], perm=[0, 3, 1, 2]), -5, "uint8", 0)
    else:
        x = g.node("Transpose", [g.qdq("input", -5, "uint8", 0)], perm=[0, 3, 1, 2])
    c = g.node("Conv", [x, _w(g, rng.integers(-4, 4, (4, 3, 3, 3)))], pads=[1, 1, 1, 1])
    c = g.qdq(g.node("Relu", [c]), -3, "uint8", 0)
    f = g.node("Reshape", [g.node("Transpose", [c], perm=[0, 2, 3, 1]), g.const(np.array([1, -1], np.int64))])
    y = g.qdq(g.node("MatMul", [f, _w(g, rng.integers(-4, 4, (6 * 5 * 4, 5)))]), -2, "int8", 0)
    return _model(g, y, [1, 6, 5, 3], 5)


def cropped_cnn(seed: int = 0):
    """Slice the centre 6x6 of a 2x10x10 input, then MaxPool 2 and a dense head."""
    rng, g = np.random.default_rng(seed), _G()
    x = g.qdq("input", -4, "int8", 3)
    s = g.node("Slice", [x, g.const(np.array([2, 2], np.int64)), g.const(np.array([8, 8], np.int64)),
                         g.const(np.array([2, 3], np.int64))])
    p = g.node("Flatten", [g.node("MaxPool", [s], kernel_shape=[2, 2], strides=[2, 2])])
    y = g.qdq(g.node("MatMul", [p, _w(g, rng.integers(-4, 4, (2 * 3 * 3, 4)))]), -2, "int8", 0)
    return _model(g, y, ["N", 2, 10, 10], 4)


def shuffled_cnn(seed: int = 0):
    """Gather with constant indices [2, 0, 1] on the channels (an order no strides give)."""
    rng, g = np.random.default_rng(seed), _G()
    x = g.qdq("input", -5, "uint8", 0)
    s = g.node("Gather", [x, g.const(np.array([2, 0, 1], np.int64))], axis=1)
    c = g.qdq(g.node("Relu", [g.node("Conv", [s, _w(g, rng.integers(-4, 4, (2, 3, 3, 3)))])]), -3, "uint8", 0)
    y = g.qdq(g.node("MatMul", [g.node("Flatten", [c]), _w(g, rng.integers(-4, 4, (2 * 3 * 3, 4)))]), -2, "int8", 0)
    return _model(g, y, ["N", 3, 5, 5], 4)


def _run_one_by_one(art, model, x):
    got = np.concatenate([art.run(x[i:i + 1])[model.graph.output[0].name] for i in range(len(x))])
    want = np.concatenate([qdq.ort_run(model, x[i:i + 1])[0] for i in range(len(x))])
    return got.reshape(want.shape), want


@pytest.mark.parametrize("transpose_first", [True, False])
def test_an_nhwc_input_transposed_to_nchw_is_gathered_into_order(transpose_first):
    model = nhwc_cnn(transpose_first)
    art = tinycc_nn.compile(model, "python")
    ops = [art.graph.op(n) for n in art.graph.order()]
    assert ops.count("gather") == 1
    assert print_graph(parse(print_graph(art.graph))) == print_graph(art.graph)
    x = np.random.default_rng(1).uniform(0, 4, (30, 6, 5, 3)).astype(np.float32)
    assert np.array_equal(*_run_one_by_one(art, model, x))


def test_a_cropped_map_is_gathered_into_order():
    model = cropped_cnn()
    art = tinycc_nn.compile(model, "python")
    x = np.random.default_rng(2).uniform(-3, 3, (40, 2, 10, 10)).astype(np.float32)
    assert np.array_equal(art.run(x)[model.graph.output[0].name].reshape(40, -1),
                          qdq.ort_run(model, x)[0].reshape(40, -1))


@pytest.mark.skipif(not firmware.have_cross_compiler(), reason="riscv64-unknown-elf-gcc not installed")
@pytest.mark.parametrize("target", ["ch32v003", "ch32v002"])
@pytest.mark.parametrize("make, shape, kind", [
    (lambda: nhwc_cnn(True, seed=3), (6, 5, 3), "gather: strided loops"),
    (cropped_cnn, (2, 10, 10), "gather: strided loops"),
    (shuffled_cnn, (3, 5, 5), "gather: an index table")])
def test_gather_on_the_ch32v003_emulator(target, make, shape, kind):
    """A transpose or a crop walks x by constant strides (no table in flash); an order
    no strides give reads an index table."""
    model = make()
    art = tinycc_nn.compile(model, target)
    assert art.report["layers"][next(n for n in art.graph.order() if art.graph.op(n) == "gather")] == kind
    x = np.random.default_rng(4).uniform(-1, 4, (4, *shape)).astype(np.float32)
    assert np.array_equal(*_run_one_by_one(art, model, x))


def test_padauk_refuses_a_gather_by_name():
    with pytest.raises(tinycc_nn.TinyccError, match="gather"):
        tinycc_nn.compile(nhwc_cnn(True), "pms150c")
