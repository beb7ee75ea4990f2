"""Random small QDQ CNNs (onnx.helper), the whole conv family the compiler claims.

`random_cnn(rng)` draws 1-3 stages of Conv (kernel 1-4 per axis, strides 1-2, pads
0-2 per side and asymmetric, auto_pad now and then, group 1 / depthwise / another
divisor, every weight value set, per-tensor or per-channel power-of-two scales,
bias or not) -> [Relu] -> QDQ [-> Add of the stage's input -> QDQ, when the conv keeps
its shape: a residual connection] -> [MaxPool | AveragePool -> QDQ], then a head:
Flatten -> [MatMul -> QDQ] [-> ArgMax], or GlobalAveragePool -> QDQ -> Flatten, or
GlobalMaxPool -> Flatten.
Activations int8/uint8 with or without zero points; batch symbolic or 1.
Returns (model, input_shape_without_batch, input_scale).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qdq import VALUE_SETS, random_weights

NP = {"int8": np.int8, "uint8": np.uint8}


class _G:
    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, base):
        self.k += 1
        return f"{base}{self.k}"

    def const(self, arr, base="c"):
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(self, op, ins, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, ins, [out], name=out + "_n", **attrs))
        return out

    def qdq(self, x, exp, dtype, zp):
        s, z = self.const(np.float32(2.0 ** exp), "s"), self.const(np.array(zp, NP[dtype]), "z")
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, s, z]), s, z])


def _act(rng):
    dtype = str(rng.choice(["int8", "uint8"]))
    if rng.random() < 0.5:
        return dtype, 0
    return dtype, int(rng.integers(-20, 20) if dtype == "int8" else rng.integers(0, 60))


def _out_exp(x_exp, taps, vs, w_exp, rng):
    typical = np.sqrt(taps) * max(np.abs(VALUE_SETS[vs]).mean(), 1) * 32
    return int(np.round(np.log2(typical) + x_exp + w_exp - 7 + rng.integers(-1, 2)))


def _pads(rng, k):
    return [int(rng.integers(0, min(k, 3))) if rng.random() < 0.7 else 0 for _ in range(4)]


def random_cnn(rng):
    g = _G()
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(4, 13)), int(rng.integers(4, 13))
    shape0 = (c, h, w)
    batch = "N" if rng.random() < 0.7 else 1
    in_dtype, in_zp = _act(rng)
    x_exp = in_exp = int(rng.integers(-8, -3))
    x = g.qdq("input", x_exp, in_dtype, in_zp)
    for _ in range(int(rng.integers(1, 4))):
        skip, skip_shape = x, (c, h, w)
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        kh, kw = min(kh, h), min(kw, w)
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        pads = [min(p, k - 1) for p, k in zip(_pads(rng, max(kh, kw)), (kh, kw, kh, kw))]
        kind = rng.random()
        if kind < 0.35 and c > 1:
            group, m = c, c                                    # depthwise
        elif kind < 0.5 and c > 1 and c % 2 == 0:
            group, m = 2, 2 * int(rng.integers(1, 3))
        else:
            group, m = 1, int(rng.integers(1, 7))
        vs = str(rng.choice(list(VALUE_SETS)))
        ints = random_weights(rng, (m, c // group, kh, kw), vs)
        per_channel = rng.random() < 0.4
        w_exp = rng.integers(-6, 0, m) if per_channel else np.array(int(rng.integers(-6, 0)))
        ws = g.const(np.float32(2.0 ** w_exp), "ws")
        wq = g.const(ints.astype(np.int8), "w")
        wz = g.const(np.zeros(m, np.int8) if per_channel else np.int8(0), "wz")
        wd = g.node("DequantizeLinear", [wq, ws, wz], **({"axis": 0} if per_channel else {}))
        ins = [x, wd]
        if rng.random() < 0.6:
            acc_exp = x_exp + w_exp
            b = g.const(rng.integers(-300, 300, m).astype(np.int32), "b")
            bs = g.const(np.float32(2.0 ** acc_exp), "bs")
            ins.append(g.node("DequantizeLinear", [b, bs], **({"axis": 0} if per_channel else {})))
        attrs = {"kernel_shape": [kh, kw], "strides": [sh, sw], "group": group}
        if rng.random() < 0.15:
            attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        else:
            attrs["pads"] = pads
        x = g.node("Conv", ins, **attrs)
        if rng.random() < 0.7:
            x = g.node("Relu", [x])
        taps = (c // group) * kh * kw
        x_exp = _out_exp(x_exp, taps, vs, int(np.max(w_exp)), rng)
        x = g.qdq(x, x_exp, *_act(rng))
        c = m
        h, w = _conv_hw(h, w, attrs, kh, kw, sh, sw)
        if (c, h, w) == skip_shape and rng.random() < 0.4:
            x_exp += int(rng.integers(0, 2))
            x = g.qdq(g.node("Add", [x, skip] if rng.random() < 0.5 else [skip, x]), x_exp, *_act(rng))
        pool = rng.random()
        if pool < 0.35 and min(h, w) >= 2:
            k = int(rng.integers(1, min(h, w, 3) + 1))
            s = int(rng.integers(1, 3))
            p = [int(rng.integers(0, k)) for _ in range(4)] if rng.random() < 0.4 else [0] * 4
            x = g.node("MaxPool", [x], kernel_shape=[k, k], strides=[s, s], pads=p)
            h, w = (h + p[0] + p[2] - k) // s + 1, (w + p[1] + p[3] - k) // s + 1
        elif pool < 0.5 and min(h, w) >= 2:
            k = int(rng.integers(1, min(h, w, 3) + 1))
            p = [int(rng.integers(0, k)) for _ in range(4)] if rng.random() < 0.3 else [0] * 4
            x = g.node("AveragePool", [x], kernel_shape=[k, k], strides=[1, 1], pads=p,
                       count_include_pad=1)
            h, w = h + p[0] + p[2] - k + 1, w + p[1] + p[3] - k + 1
            x = g.qdq(x, x_exp + int(rng.integers(-1, 1)), *_act(rng))
        if h < 1 or w < 1:
            return random_cnn(rng)
    outputs = []
    head = rng.random()
    if head < 0.25:
        x = g.qdq(g.node("GlobalAveragePool", [x]), x_exp, *_act(rng))
        x = g.node("Flatten", [x])
        n_out = c
    elif head < 0.35:
        x = g.node("Flatten", [g.node("GlobalMaxPool", [x])])
        n_out = c
    else:
        x = g.node("Flatten", [x])
        n_out = c * h * w
        if rng.random() < 0.6:
            k_out = int(rng.integers(1, 11))
            vs = str(rng.choice(list(VALUE_SETS)))
            ints = random_weights(rng, (n_out, k_out), vs)
            w_exp = int(rng.integers(-6, 0))
            wd = g.node("DequantizeLinear", [g.const(ints.astype(np.int8), "w"),
                                             g.const(np.float32(2.0 ** w_exp), "ws")])
            x = g.node("MatMul", [x, wd])
            x_exp = _out_exp(x_exp, n_out, vs, w_exp, rng)
            x = g.qdq(x, x_exp, *_act(rng))
            n_out = k_out
    outputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, n_out]))
    if rng.random() < 0.3:
        cls = g.node("ArgMax", [x], axis=1, keepdims=1)
        outputs.append(helper.make_tensor_value_info(cls, TensorProto.INT64, [batch, 1]))
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, *shape0])
    graph = helper.make_graph(g.nodes, "qdq_cnn", [inp], outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model, shape0, 2.0 ** in_exp


def random_residual_cnn(rng):
    """A stem conv, then 1-2 residual blocks: [conv (1x1 or 3x3 "same", group 1 or
    depthwise) -> [Relu] -> QDQ] x 1-2 -> Add of the block's input (either operand order,
    scales a power of two apart or equal) -> [Relu] -> QDQ; then MaxPool 2 or not, and
    Flatten -> MatMul -> QDQ.  The first block may add the model input itself (no stem).
    Returns (model, input_shape_without_batch, input_scale)."""
    g = _G()
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 9)), int(rng.integers(3, 9))
    shape0 = (c, h, w)
    in_dtype, in_zp = _act(rng)
    x_exp = in_exp = int(rng.integers(-8, -3))
    x = g.qdq("input", x_exp, in_dtype, in_zp)

    def conv(x, x_exp, c_in, m, k, group):
        vs = str(rng.choice(["int4", "ternary", "pm2", "odd4"]))
        w_exp = int(rng.integers(-5, -1))
        wd = g.node("DequantizeLinear", [g.const(random_weights(rng, (m, c_in // group, k, k), vs)
                                                 .astype(np.int8), "w"),
                                         g.const(np.float32(2.0 ** w_exp), "ws")])
        y = g.node("Conv", [x, wd], kernel_shape=[k, k], pads=[k // 2] * 4, group=group)
        if rng.random() < 0.7:
            y = g.node("Relu", [y])
        y_exp = _out_exp(x_exp, (c_in // group) * k * k, vs, w_exp, rng)
        return g.qdq(y, y_exp, *_act(rng)), y_exp

    if rng.random() < 0.7:
        m = int(rng.integers(1, 5))
        x, x_exp = conv(x, x_exp, c, m, int(rng.choice([1, 3])), 1)
        c = m
    for _ in range(int(rng.integers(1, 3))):
        skip, skip_exp = x, x_exp
        for _ in range(int(rng.integers(1, 3))):
            depthwise = c > 1 and rng.random() < 0.4
            x, x_exp = conv(x, x_exp, c, c, int(rng.choice([1, 3])), c if depthwise else 1)
        x = g.node("Add", [x, skip] if rng.random() < 0.5 else [skip, x])
        if rng.random() < 0.5:
            x = g.node("Relu", [x])
        x_exp = max(x_exp, skip_exp) + int(rng.integers(0, 2))
        x = g.qdq(x, x_exp, *_act(rng))
    if rng.random() < 0.5 and min(h, w) >= 2:
        x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        h, w = h // 2, w // 2
    return _dense_head(g, rng, x, x_exp, c * h * w, int(rng.integers(2, 8)), "residual_cnn",
                       shape0), shape0, 2.0 ** in_exp


def random_branchy_cnn(rng):
    """Graph shapes beyond a chain: an NHWC input transposed to NCHW (or not), then 1-2
    stages of [Pad (constant 0, reflect or edge) ->] two conv branches (3x3 "same" and
    1x1, each -> [Relu] -> QDQ with its own power-of-two scale and zero point) ->
    Concat on channels -> [QDQ] -> [MaxPool 2], then Flatten -> MatMul -> QDQ.
    Returns (model, input_shape_without_batch, input_scale)."""
    g = _G()
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(4, 9)), int(rng.integers(4, 9))
    nhwc = rng.random() < 0.4
    shape0 = (h, w, c) if nhwc else (c, h, w)
    in_exp = int(rng.integers(-8, -3))
    x = g.qdq("input", in_exp, *_act(rng))
    if nhwc:
        x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    x_exp = in_exp
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.4:
            p = [int(v) for v in rng.integers(0, 2, 4)]
            mode = str(rng.choice(["constant", "reflect", "edge"]))
            x = g.node("Pad", [x, g.const(np.array([0, 0, p[0], p[1], 0, 0, p[2], p[3]], np.int64))],
                       mode=mode)
            h, w = h + p[0] + p[2], w + p[1] + p[3]
        branches, exps, m_total = [], [], 0
        for k in (3, 1):
            m = int(rng.integers(1, 4))
            vs = str(rng.choice(["int4", "ternary", "pm2"]))
            w_exp = int(rng.integers(-5, -1))
            wd = g.node("DequantizeLinear", [g.const(random_weights(rng, (m, c, k, k), vs).astype(np.int8), "w"),
                                             g.const(np.float32(2.0 ** w_exp), "ws")])
            y = g.node("Conv", [x, wd], kernel_shape=[k, k], pads=[k // 2] * 4)
            if rng.random() < 0.7:
                y = g.node("Relu", [y])
            y_exp = _out_exp(x_exp, c * k * k, vs, w_exp, rng)
            branches.append(g.qdq(y, y_exp, *_act(rng)))
            exps.append(y_exp)
            m_total += m
        x = g.node("Concat", branches if rng.random() < 0.5 else branches[::-1], axis=1)
        c, x_exp = m_total, max(exps)
        if rng.random() < 0.5:
            x = g.qdq(x, x_exp, *_act(rng))
        if rng.random() < 0.4 and min(h, w) >= 2:
            x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            h, w = h // 2, w // 2
    return _dense_head(g, rng, x, x_exp, c * h * w, int(rng.integers(2, 6)), "branchy_cnn",
                       shape0), shape0, 2.0 ** in_exp


def _dense_head(g, rng, x, x_exp, n_in, n_out, name, shape0):
    """Flatten -> MatMul (int4, 2^-4) -> QDQ, and the model around g's nodes."""
    wd = g.node("DequantizeLinear", [g.const(random_weights(rng, (n_in, n_out), "int4").astype(np.int8), "w"),
                                     g.const(np.float32(2.0 ** -4), "ws")])
    y = g.qdq(g.node("MatMul", [g.node("Flatten", [x]), wd]), _out_exp(x_exp, n_in, "int4", -4, rng), *_act(rng))
    graph = helper.make_graph(g.nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *shape0])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", n_out])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def _conv_hw(h, w, attrs, kh, kw, sh, sw):
    auto = attrs.get("auto_pad")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return -(-h // sh), -(-w // sw)
    p = attrs.get("pads", [0, 0, 0, 0])
    return (h + p[0] + p[2] - kh) // sh + 1, (w + p[1] + p[3] - kw) // sw + 1


def random_map_inputs(rng, shape, scale: float, n: int) -> np.ndarray:
    x = rng.normal(0, 48 * scale, (n, *shape)).astype(np.float32)
    x[: max(n // 10, 1)] *= 8
    return x


def sequential_depthwise_cnn(rng, channels: int = 8, size: int = 16, fc=(16, 10),
                             conv_set: str = "int4", fc_set: str = "pm2"):
    """BitNetMCU's "sequential depthwise" shape with random weights: conv 3x3 (1 -> C,
    valid) -> depthwise 3x3 -> maxpool 2 -> depthwise 3x3 -> maxpool 2 -> Flatten ->
    dense layers `fc` (the last one the logits) -> ArgMax.  uint8 activations."""
    g = _G()
    x = g.qdq("input", -8, "uint8", 0)
    x_exp, c, hw = -8, 1, size
    for k, (group, pool) in enumerate([(1, False), (channels, True), (channels, True)]):
        ints = random_weights(rng, (channels, c // group, 3, 3), conv_set)
        w_exp = -3
        wd = g.node("DequantizeLinear", [g.const(ints.astype(np.int8), "w"),
                                         g.const(np.float32(2.0 ** w_exp), "ws")])
        b = g.const(rng.integers(-200, 200, channels).astype(np.int32), "b")
        bd = g.node("DequantizeLinear", [b, g.const(np.float32(2.0 ** (x_exp + w_exp)), "bs")])
        x = g.node("Relu", [g.node("Conv", [x, wd, bd], kernel_shape=[3, 3], group=group)])
        x_exp = _out_exp(x_exp, (c // group) * 9, conv_set, w_exp, rng)
        x = g.qdq(x, x_exp, "uint8", 0)
        c, hw = channels, hw - 2
        if pool:
            x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            hw //= 2
    x = g.node("Flatten", [x])
    width = c * hw * hw
    for k, n_out in enumerate(fc):
        ints = random_weights(rng, (width, n_out), fc_set)
        wd = g.node("DequantizeLinear", [g.const(ints.astype(np.int8), "w"),
                                         g.const(np.float32(2.0 ** -2), "ws")])
        x = g.node("MatMul", [x, wd])
        if k < len(fc) - 1:
            x = g.node("Relu", [x])
        x_exp = _out_exp(x_exp, width, fc_set, -2, rng)
        x = g.qdq(x, x_exp, "uint8" if k < len(fc) - 1 else "int8", 0)
        width = n_out
    cls = g.node("ArgMax", [x], axis=1, keepdims=1)
    outputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", width]),
               helper.make_tensor_value_info(cls, TensorProto.INT64, ["N", 1])]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, size, size])
    graph = helper.make_graph(g.nodes, "seq_dw_cnn", [inp], outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model
