"""Build QDQ ONNX models by hand (onnx.helper), the way the tests need them.

`mlp(...)` makes the canonical shape (QuantizeLinear input, DequantizeLinear'd
integer weights, MatMul or Gemm, bias, Relu, QuantizeLinear/DequantizeLinear
between layers, optional ArgMax); `random_mlp(rng)` draws one from the whole family
the compiler claims to support.  `ort_run` runs onnxruntime the way `verify` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VALUE_SETS = {
    "binary": [-1, 1],
    "ternary": [-1, 0, 1],
    "pm2": [-2, -1, 1, 2],
    "odd4": list(range(-15, 16, 2)),
    "int4": list(range(-8, 8)),
    "int8": list(range(-128, 128)),
}
NP = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32, "int16": np.int16}


@dataclass
class Layer:
    weights: np.ndarray               # integer [in, out]
    w_exp: int = -2                   # weight scale 2**w_exp (an array: one per output channel)
    bias: np.ndarray | None = None    # integer, in accumulator units (scale_x * scale_w)
    relu: bool = True
    out_exp: int = -4                 # output scale 2**out_exp
    out_dtype: str = "int8"
    out_zp: int = 0
    bias_float: np.ndarray | None = None   # a float bias instead (may be off the grid)


@dataclass
class Model:
    layers: list
    in_features: int
    in_exp: int = -6
    in_dtype: str = "int8"
    in_zp: int = 0
    gemm: bool = False
    argmax: bool = False
    batch: object = "N"
    opset: int = 17
    names: dict = field(default_factory=dict)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _f32(x):
    return np.array(x, np.float32)


def build(m: Model) -> onnx.ModelProto:
    nodes, inits = [], []
    inits += [_init("in_s", _f32(2.0 ** m.in_exp)), _init("in_z", np.array(m.in_zp, NP[m.in_dtype]))]
    nodes += [helper.make_node("QuantizeLinear", ["input", "in_s", "in_z"], ["x_q"]),
              helper.make_node("DequantizeLinear", ["x_q", "in_s", "in_z"], ["x0"])]
    x, x_exp = "x0", m.in_exp
    for k, L in enumerate(m.layers):
        w = np.asarray(L.weights)
        p = f"l{k}_"
        wt = w.T.copy() if m.gemm else w
        inits += [_init(p + "w", wt.astype(np.int8)), _init(p + "ws", _f32(2.0 ** np.asarray(L.w_exp)))]
        per_ch = {"axis": 0 if m.gemm else 1} if np.ndim(L.w_exp) else {}   # a scale per output
        nodes.append(helper.make_node("DequantizeLinear", [p + "w", p + "ws"], [p + "wd"], **per_ch))
        bias_name = None
        if L.bias is not None:
            inits += [_init(p + "b", np.asarray(L.bias, np.int32)),
                      _init(p + "bs", _f32(2.0 ** (x_exp + np.asarray(L.w_exp))))]
            nodes.append(helper.make_node("DequantizeLinear", [p + "b", p + "bs"], [p + "bd"],
                                          **({"axis": 0} if per_ch else {})))
            bias_name = p + "bd"
        elif L.bias_float is not None:
            inits.append(_init(p + "bd", _f32(L.bias_float)))
            bias_name = p + "bd"
        if m.gemm:
            ins = [x, p + "wd"] + ([bias_name] if bias_name and L.bias is not None else [])
            nodes.append(helper.make_node("Gemm", ins, [p + "mm"], transB=1))
            y = p + "mm"
            if bias_name and L.bias is None:
                nodes.append(helper.make_node("Add", [y, bias_name], [p + "add"]))
                y = p + "add"
        else:
            nodes.append(helper.make_node("MatMul", [x, p + "wd"], [p + "mm"]))
            y = p + "mm"
            if bias_name:
                nodes.append(helper.make_node("Add", [y, bias_name], [p + "add"]))
                y = p + "add"
        if L.relu:
            nodes.append(helper.make_node("Relu", [y], [p + "relu"]))
            y = p + "relu"
        inits += [_init(p + "os", _f32(2.0 ** L.out_exp)), _init(p + "oz", np.array(L.out_zp, NP[L.out_dtype]))]
        out = "logits" if k == len(m.layers) - 1 else p + "out"
        nodes += [helper.make_node("QuantizeLinear", [y, p + "os", p + "oz"], [p + "q"]),
                  helper.make_node("DequantizeLinear", [p + "q", p + "os", p + "oz"], [out])]
        x, x_exp = out, L.out_exp
    n_out = m.layers[-1].weights.shape[1]
    batch = [m.batch] if m.batch is not None else []
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, batch + [n_out])]
    if m.argmax:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["class"], axis=-1, keepdims=0))
        outputs.append(helper.make_tensor_value_info("class", TensorProto.INT64, batch))
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, batch + [m.in_features])]
    graph = helper.make_graph(nodes, "qdq_mlp", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", m.opset)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def random_weights(rng, shape, value_set: str) -> np.ndarray:
    return rng.choice(VALUE_SETS[value_set], size=shape).astype(np.int64)


def random_mlp(rng, *, max_width=64, max_depth=4) -> Model:
    depth = int(rng.integers(1, max_depth + 1))
    widths = [int(rng.integers(1, max_width + 1)) for _ in range(depth + 1)]
    in_dtype = str(rng.choice(["int8", "uint8"]))
    in_zp = 0 if in_dtype == "int8" or rng.random() < 0.5 else int(rng.integers(0, 256))
    m = Model([], widths[0], in_exp=int(rng.integers(-8, 0)), in_dtype=in_dtype, in_zp=in_zp,
              gemm=bool(rng.random() < 0.3), argmax=bool(rng.random() < 0.5),
              batch="N" if rng.random() < 0.7 else 1)
    x_exp = m.in_exp
    for k in range(depth):
        vs = str(rng.choice(list(VALUE_SETS)))
        w = random_weights(rng, (widths[k], widths[k + 1]), vs)
        w_exp = int(rng.integers(-7, 1))
        bias = rng.integers(-2000, 2000, widths[k + 1]) if rng.random() < 0.6 else None
        out_dtype = str(rng.choice(["int8", "uint8"]))
        out_zp = 0 if rng.random() < 0.5 else int(rng.integers(-20, 20) if out_dtype == "int8" else rng.integers(0, 40))
        # a scale that keeps the outputs in a useful range: about sqrt(width) * typical products
        typical = np.sqrt(widths[k]) * max(np.abs(VALUE_SETS[vs]).mean(), 1) * 32
        out_exp = int(np.round(np.log2(typical) + x_exp + w_exp - 7 + rng.integers(-1, 2)))
        m.layers.append(Layer(w, w_exp, bias, relu=bool(k < depth - 1 or rng.random() < 0.3),
                              out_exp=out_exp, out_dtype=out_dtype, out_zp=out_zp))
        x_exp = out_exp
    return m


def random_inputs(rng, m: Model, n: int) -> np.ndarray:
    scale = 2.0 ** m.in_exp
    x = rng.normal(0, 48 * scale, (n, m.in_features)).astype(np.float32)
    x[: max(n // 10, 1)] *= 8      # some saturate
    return x


def ort_run(model: onnx.ModelProto, x: np.ndarray, optimized: bool = False) -> list:
    import onnxruntime as ort
    so = ort.SessionOptions()
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    shape = sess.get_inputs()[0].shape
    if isinstance(shape[0], str) or shape[0] is None:
        return sess.run(None, {name: x})
    outs = [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def assert_outputs_equal(outs: dict, ref: list, n: int, seed) -> None:
    """Every compiled output (Artifact.run's dict) equals onnxruntime's, dtype and bits."""
    for (name, got), want in zip(outs.items(), ref):
        got, want = got.reshape(n, -1), want.reshape(n, -1)
        assert got.dtype == want.dtype, name
        assert np.array_equal(got, want), f"seed {seed}, output {name}"


def unseen_reference_shape(rng, *, bias: bool = True, widths=(64, 16, 16, 16, 10)) -> Model:
    """The reference shape (64-16-16-16-10, {-2,-1,+1,+2}) built the way other tools write
    it: a signed int8 input at scale 2^-7, int8 activations after each Relu (0..127), a
    weight scale of its own per layer, biases on the accumulator grid (or none)."""
    m = Model([], widths[0], in_exp=-7, in_dtype="int8", argmax=True)
    x_exp = m.in_exp
    for k in range(len(widths) - 1):
        w = random_weights(rng, (widths[k], widths[k + 1]), "pm2")
        w_exp = int(rng.integers(-5, 0))
        b = rng.integers(-600, 600, widths[k + 1]) if bias else None
        typical = np.sqrt(widths[k]) * 1.5 * 32
        out_exp = int(np.round(np.log2(typical) + x_exp + w_exp - 7 + rng.integers(-1, 2)))
        m.layers.append(Layer(w, w_exp, b, relu=k < len(widths) - 2, out_exp=out_exp, out_dtype="int8"))
        x_exp = out_exp
    return m
