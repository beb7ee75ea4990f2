"""Hand-built QDQ CNNs for the CH32V003/CH32V002 conv tests and measurements.

`small_cnn()`: conv 3x3 (asymmetric pads, strides 1x2) -> ReLU -> maxpool (padded) ->
depthwise 3x3 with per-channel scales -> AveragePool -> Flatten on 12x12 inputs.
`bitnet_cnn()`: the shape of BitNetMCU's CNN: 16x16 input, conv 3x3 1->C valid,
depthwise 3x3, maxpool 2, depthwise 3x3, maxpool 2, FC 4C-96-64-10 (2-bit fc1,
4-bit after) and an ArgMax, random small weights (4-bit convs).
`mnist16_cnn()`: the same shape as the QAT toolkit exports it (examples/mnist16x16_cnn).
`wide_sum_cnn()`: a group-1 conv over 16 channels whose sums need more than 16 bits
(one pixel per packed element) between two small convs, on 8x8 inputs.

    python tests/backends/ch32v003/conv_models.py [ch32v003|ch32v002 ...]

prints flash, RAM and cycles of the three shapes on each target.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx import numpy_helper as nh

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # tests/ (qdq helpers)
from qdq_conv import _G  # noqa: E402


def small_cnn(seed: int = 1):
    """(model, inputs [200, 1, 12, 12])."""
    rng = np.random.default_rng(seed)
    g = _G()
    x = g.qdq("x", -7, "int8", 0)
    w1 = rng.integers(-3, 4, (4, 1, 3, 3)).astype(np.int8)
    wd = g.node("DequantizeLinear", [g.const(w1, "w"), g.const(np.float32(2.0 ** -3)), g.const(np.int8(0))])
    b = g.node("DequantizeLinear", [g.const(rng.integers(-50, 50, 4).astype(np.int32), "b"),
                                    g.const(np.float32(2.0 ** -10))])
    c = g.node("Conv", [x, wd, b], kernel_shape=[3, 3], pads=[1, 0, 2, 1], strides=[1, 2])
    a = g.qdq(g.node("Relu", [c]), -4, "uint8", 0)
    p = g.node("MaxPool", [a], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 0, 0])
    w2 = rng.integers(-2, 3, (4, 1, 3, 3)).astype(np.int8)
    wd2 = g.node("DequantizeLinear", [g.const(w2, "w"), g.const(np.float32([2 ** -2, 2 ** -3, 2 ** -2, 2 ** -4])),
                                      g.const(np.zeros(4, np.int8))], axis=0)
    c2 = g.qdq(g.node("Conv", [p, wd2], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4), -3, "int8", 3)
    ap = g.qdq(g.node("AveragePool", [c2], kernel_shape=[2, 2], strides=[1, 1]), -3, "int8", 0)
    f = g.node("Flatten", [ap])
    return _model(g, "small_cnn", [1, 12, 12], [(f, TensorProto.FLOAT, ["N", 48])]), \
        rng.uniform(-1, 1, (200, 1, 12, 12)).astype(np.float32)


def _model(g, name, shape, outputs):
    graph = helper.make_graph(g.nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(m)
    return m


def _conv(g, x, w, exp_w, group=1, bias=None, **attrs):
    wd = g.node("DequantizeLinear", [g.const(w.astype(np.int8), "w"), g.const(np.float32(2.0 ** exp_w))])
    ins = [x, wd]
    if bias is not None:
        ins.append(g.node("DequantizeLinear", [g.const(bias[0].astype(np.int32), "b"),
                                               g.const(np.float32(2.0 ** bias[1]))]))
    return g.node("Conv", ins, group=group, **attrs)


def _fc(g, x, w, exp_w):
    wd = g.node("DequantizeLinear", [g.const(w.astype(np.int8), "w"), g.const(np.float32(2.0 ** exp_w))])
    return g.node("MatMul", [x, wd])


def bitnet_cnn(channels: int = 64, seed: int = 0):
    """(model, inputs [n, 1, 16, 16]): BitNetMCU's CNN shape with random small weights."""
    rng = np.random.default_rng(seed)
    g = _G()
    c = channels
    x = g.qdq("x", -7, "int8", 0)                                      # x in [-1, 1)
    x = _conv(g, x, rng.integers(-8, 8, (c, 1, 3, 3)), -3, bias=(rng.integers(-64, 64, c), -10),
              kernel_shape=[3, 3])
    x = g.qdq(g.node("Relu", [x]), -4, "uint8", 0)
    x = _conv(g, x, rng.integers(-8, 8, (c, 1, 3, 3)), -3, group=c, kernel_shape=[3, 3], pads=[0, 0, 0, 0])
    x = g.qdq(g.node("Relu", [x]), -3, "uint8", 0)
    x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = _conv(g, x, rng.integers(-8, 8, (c, 1, 3, 3)), -3, group=c, kernel_shape=[3, 3])
    x = g.qdq(g.node("Relu", [x]), -2, "uint8", 0)
    x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Flatten", [x])
    x = g.qdq(g.node("Relu", [_fc(g, x, rng.choice([-2, -1, 1, 2], (4 * c, 96)), -2)]), -1, "uint8", 0)
    x = g.qdq(g.node("Relu", [_fc(g, x, rng.integers(-8, 8, (96, 64)), -3)]), -1, "uint8", 0)
    x = g.qdq(_fc(g, x, rng.integers(-8, 8, (64, 10)), -3), 0, "int8", 0)
    cls = g.node("ArgMax", [x], axis=1, keepdims=1)
    model = _model(g, f"bitnet_cnn{c}", [1, 16, 16], [(x, TensorProto.FLOAT, ["N", 10]),
                                                      (cls, TensorProto.INT64, ["N", 1])])
    return model, rng.uniform(-1, 1, (16, 1, 16, 16)).astype(np.float32)


def wide_sum_cnn(seed: int = 2):
    """(model, inputs [n, 1, 8, 8]): conv 1->16 3x3 pad 1 -> ReLU -> maxpool 2 -> conv
    16->16 3x3 pad 1 (int8 weights: 144 taps of up to 127 * 255) -> ReLU -> maxpool 2
    -> FC 64-10."""
    rng = np.random.default_rng(seed)
    g = _G()
    x = g.qdq("x", -7, "int8", 0)
    x = _conv(g, x, rng.integers(-8, 8, (16, 1, 3, 3)), -3, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = g.node("MaxPool", [g.qdq(g.node("Relu", [x]), -4, "uint8", 0)], kernel_shape=[2, 2], strides=[2, 2])
    x = _conv(g, x, rng.integers(-128, 128, (16, 16, 3, 3)), -9, bias=(rng.integers(-999, 999, 16), -13),
              kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = g.node("MaxPool", [g.qdq(g.node("Relu", [x]), -3, "uint8", 0)], kernel_shape=[2, 2], strides=[2, 2])
    x = g.qdq(_fc(g, g.node("Flatten", [x]), rng.integers(-8, 8, (64, 10)), -3), 0, "int8", 0)
    return (_model(g, "wide_sum_cnn", [1, 8, 8], [(x, TensorProto.FLOAT, ["N", 10])]),
            rng.uniform(-1, 1, (24, 1, 8, 8)).astype(np.float32))


def _conv_per_channel(g, x, w, exps, group=1, **attrs):
    """Conv with per-output-channel power-of-two weight scales (2^exps[c])."""
    wd = g.node("DequantizeLinear", [g.const(w.astype(np.int8), "w"),
                                     g.const((2.0 ** np.asarray(exps)).astype(np.float32)),
                                     g.const(np.zeros(len(exps), np.int8))], axis=0)
    return g.node("Conv", [x, wd], group=group, **attrs)


def mnist16_cnn(seed: int = 0):
    """(model, inputs [n, 1, 16, 16]): the shape tinycc_nn.qat exports for
    examples/mnist16x16_cnn: uint8 input, 4-bit conv weights with per-channel power-of-two
    scales (conv 3x3 1->64, depthwise, maxpool, depthwise, maxpool), FC 256-96-64-10 with
    2-bit odd fc1 {-3,-1,1,3} and 4-bit odd weights after, random weights."""
    rng = np.random.default_rng(seed)
    g = _G()
    c = 64
    x = g.qdq("x", -8, "uint8", 0)                                     # x in [0, 1)
    for k, (group, exp_out) in enumerate([(1, -4), (c, -3), (c, -2)]):
        w = rng.integers(-8, 8, (c, 1, 3, 3))
        x = _conv_per_channel(g, x, w, rng.integers(-5, -2, c), group=group, kernel_shape=[3, 3])
        x = g.qdq(g.node("Relu", [x]), exp_out, "uint8", 0)
        if k:
            x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Flatten", [x])
    odd4 = np.arange(-7, 8, 2)
    x = g.qdq(g.node("Relu", [_fc(g, x, rng.choice([-3, -1, 1, 3], (4 * c, 96)), -3)]), -1, "uint8", 0)
    x = g.qdq(g.node("Relu", [_fc(g, x, rng.choice(odd4, (96, 64)), -4)]), -1, "uint8", 0)
    x = g.qdq(_fc(g, x, rng.choice(odd4, (64, 10)), -4), 0, "int8", 0)
    cls = g.node("ArgMax", [x], axis=1, keepdims=1)
    model = _model(g, "mnist16_cnn", [1, 16, 16], [(x, TensorProto.FLOAT, ["N", 10]),
                                                  (cls, TensorProto.INT64, ["N", 1])])
    return model, rng.uniform(0, 1, (16, 1, 16, 16)).astype(np.float32)


if __name__ == "__main__":
    import tinycc_nn
    for target in sys.argv[1:] or ["ch32v003"]:
        for build in (bitnet_cnn, mnist16_cnn, wide_sum_cnn):
            model, _ = build()
            r = tinycc_nn.compile(model, target).report
            print(f"{target} {build.__name__}: flash {r['rom_used']} B (firmware {r['rom_firmware']}), "
                  f"RAM {r['ram_used']} B (stack {r['ram_stack']}, arena {r['arena_bytes']}), "
                  f"{r['cycles_per_inference']:,} cycles, {r['instructions_per_inference']:,} "
                  f"instructions; {r.get('kernel_note') or 'fastest layout'}")
