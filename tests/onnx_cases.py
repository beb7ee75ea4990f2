"""Small hand-built ONNX graphs for frontend tests, and a strict comparison with onnxruntime.

qdq.py builds whole MLPs; the tests of single operators and forms need graphs
assembled node by node.  `Net` collects nodes and initializers; its helpers add
the usual QDQ fragments (quantized input, DequantizeLinear'd integer weights,
requantization).  `assert_bit_exact` compiles for the reference backend and
compares every output with onnxruntime, graph optimizations off and on.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import tinycc_nn

ONNX_TYPE = {"float32": TensorProto.FLOAT, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
             "int16": TensorProto.INT16, "int32": TensorProto.INT32, "int64": TensorProto.INT64,
             "int4": TensorProto.INT4, "uint4": TensorProto.UINT4}
NP_TYPE = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32}


def f32(x) -> np.ndarray:
    return np.asarray(x, np.float32)


class Net:
    """An ONNX graph under construction: `add` nodes, `const` initializers, then `model()`."""

    def __init__(self, name: str = "case"):
        self.name = name
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self._k = 0

    def fresh(self, base: str) -> str:
        self._k += 1
        return f"{base}{self._k}"

    def const(self, arr, base: str = "c") -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def const_typed(self, values, dtype: str, base: str = "c") -> str:
        """An initializer of an ONNX element type numpy has no array type for (int4/uint4)."""
        name = self.fresh(base)
        arr = np.asarray(values)
        self.inits.append(helper.make_tensor(name, ONNX_TYPE[dtype], list(arr.shape),
                                             arr.ravel().tolist()))
        return name

    def add(self, op: str, inputs, out: str | None = None, **attrs) -> str:
        out = out or self.fresh(op.lower() + "_")
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out + "_node", **attrs))
        return out

    def input(self, name: str, shape, dtype: str = "float32") -> str:
        self.inputs.append(helper.make_tensor_value_info(name, ONNX_TYPE[dtype], list(shape)))
        return name

    def output(self, name: str, shape, dtype: str = "float32") -> str:
        self.outputs.append(helper.make_tensor_value_info(name, ONNX_TYPE[dtype], shape))
        return name

    # QDQ fragments ---------------------------------------------------------------------
    def quant(self, x: str, scale, zp=None, dtype: str = "int8", dequant: bool = True) -> str:
        """QuantizeLinear (and by default DequantizeLinear back), per-tensor."""
        ins = [x, self.const(f32(scale), "s")]
        if zp is not None:
            ins.append(self.const(np.array(zp, NP_TYPE[dtype]), "z"))
        elif dtype != "uint8":
            # without a zero point QuantizeLinear makes uint8; other types need one
            ins.append(self.const(np.array(0, NP_TYPE[dtype]), "z"))
        q = self.add("QuantizeLinear", ins, self.fresh("q_"))
        return self.add("DequantizeLinear", [q] + ins[1:], self.fresh("dq_")) if dequant else q

    def weight(self, ints, scale, zp=None, dtype: str = "int8", axis: int | None = None,
               name: str | None = None) -> str:
        """DequantizeLinear of an integer initializer (per-tensor, or per-axis if scale is a vector)."""
        ints = np.asarray(ints)
        if dtype in ("int4", "uint4"):
            w = self.const_typed(ints, dtype, "w")
            zpn = None if zp is None else self.const_typed(np.asarray(zp), dtype, "wz")
        else:
            w = self.const(ints.astype(NP_TYPE[dtype]), "w")
            zpn = None if zp is None else self.const(np.asarray(zp, NP_TYPE[dtype]), "wz")
        ins = [w, self.const(f32(scale), "ws")] + ([zpn] if zpn else [])
        kw = {} if axis is None else {"axis": axis}
        return self.add("DequantizeLinear", ins, name or self.fresh("wd_"), **kw)

    def matmul(self, x: str, ints, w_exp: int = -2, **kw) -> str:
        """x @ DequantizeLinear(ints, 2**w_exp)."""
        return self.add("MatMul", [x, self.weight(ints, 2.0 ** w_exp, **kw)])

    def model(self, opset: int = 17) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                 ir_version=10)


# running ---------------------------------------------------------------------------------

def ort_outputs(model: onnx.ModelProto, x: np.ndarray, optimized: bool = False) -> list:
    """onnxruntime's outputs per sample, [n, ...]: a symbolic batch runs at once, a fixed
    input shape runs sample by sample (x[i] reshaped to the declared shape)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if inp.shape and (isinstance(inp.shape[0], str) or inp.shape[0] is None):
        outs = sess.run(None, {inp.name: x.reshape([len(x)] + list(inp.shape[1:]))})
        return [o.reshape(len(x), -1) for o in outs]
    per = [sess.run(None, {inp.name: x[i].reshape(inp.shape)}) for i in range(len(x))]
    return [np.stack([p[k].reshape(-1) for p in per]) for k in range(len(per[0]))]


def float_inputs(rng, n: int, shape, scale: float, spread: float = 48.0) -> np.ndarray:
    """Normal floats around the quantization grid; every fifth sample saturates, and some
    values sit exactly on half-steps (ties for QuantizeLinear's rounding)."""
    x = rng.normal(0, spread * scale, (n, *shape)).astype(np.float32)
    x[::5] *= 16
    flat = x.reshape(n, -1)
    ties = rng.random(flat.shape) < 0.1
    flat[ties] = (np.round(flat[ties] / scale) + 0.5) * scale
    return flat.reshape(x.shape).astype(np.float32)


def assert_bit_exact(model: onnx.ModelProto, x: np.ndarray, target: str = "python",
                     optimized=(False, True), **kw):
    """Compile, run on x, and compare every output with onnxruntime, with graph optimizations
    off (the ONNX semantics) and on (its fused QDQ kernels).  Returns the artifact."""
    onnx.checker.check_model(model)
    art = tinycc_nn.compile(model, target, **kw)
    ours = art.run(x)
    names = [o.name for o in model.graph.output]
    assert sorted(ours) == sorted(names)    # the order: see test_fuse_dense's output-order test
    for optimized in optimized:
        ref = ort_outputs(model, x, optimized=optimized)
        for name, want in zip(names, ref):
            got = ours[name].reshape(len(x), -1)
            assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
            bad = np.flatnonzero((got != want).any(axis=1))
            assert bad.size == 0, (f"output {name} (optimized={optimized}) differs on "
                                   f"{bad.size}/{len(x)} samples; first {bad[0]}: got "
                                   f"{got[bad[0]].tolist()}, onnxruntime {want[bad[0]].tolist()}")
    return art


def ir_consts(art) -> list:
    """(name, attrs) of every const in the artifact's IR."""
    g = art.graph
    return [(n, g.attrs(n)) for n in g.nodes_of("const")]


# IR-level helpers for pass tests ----------------------------------------------------------

PASSES = ["import", "fuse-dense", "lower-elementwise", "pack-weights", "schedule-channels",
          "plan-ram"]


def pass_snapshots(model, **kw) -> dict:
    """Copies of the IR after the import and after every pass of the python pipeline."""
    seen = {}
    tinycc_nn.compile(model, "python", on_pass=lambda name, g: seen.__setitem__(name, g.copy()), **kw)
    return seen


def run_graph(graph, x) -> dict:
    """Execute any verified IR graph (fused or not) with the reference backend's renderer:
    {output name: (integer program values [n, size], finished ONNX output [n, ...])}."""
    from tinycc_nn import hostio
    from tinycc_nn.backends.python import PythonProgram, render
    xq = hostio.prepare_input(x, graph.attrs(graph.inputs()[0]))
    values, _ = PythonProgram(render(graph)).run(xq)
    outs = {}
    for node, v in zip(graph.outputs(), values):
        attrs = graph.attrs(node)
        outs[attrs["name"]] = (v, hostio.finish_output(v, attrs))
    return outs


def assert_same_behaviour(before, after, x):
    """The reference backend gives exactly the same integers and outputs on both graphs."""
    a, b = run_graph(before, x), run_graph(after, x)
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name][0], b[name][0]), name
        assert a[name][1].dtype == b[name][1].dtype and np.array_equal(a[name][1], b[name][1]), name


def typed_ir(text: str):
    """Parse .tir text whose non-input values may omit their types; fill them by interval
    analysis (ir.infer_type) and verify.  Saves hand-computing ranges in FileCheck tests."""
    from tinycc_nn.ir import infer_type, verify
    from tinycc_nn.parser import parse
    g = parse(text)
    for n in g.order():
        if g.op(n) != "input" and g.op(n) != "output":
            g.node(n)["type"] = infer_type(g, n)
    verify(g)
    return g


def check_lines(text: str, expected) -> None:
    """FileCheck-style CHECK lines: each expected string occurs within a line of `text`,
    on lines in this order."""
    lines = text.splitlines()
    pos = 0
    for want in expected:
        want = want.strip()
        hit = next((i for i in range(pos, len(lines)) if want in lines[i]), None)
        if hit is None:
            raise AssertionError(f"expected line not found (in order):\n  {want}\nin:\n{text}")
        pos = hit + 1


def pass_models():
    """(id, model, inputs): random MLPs plus the shapes that exercise each pass's corners
    (clamps between layers, raw accumulator outputs, values with two users, ArgMax)."""
    import qdq
    cases = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        m = qdq.random_mlp(rng, max_width=16, max_depth=3)
        cases.append((f"mlp{seed}", qdq.build(m), qdq.random_inputs(rng, m, 40)))
    rng = np.random.default_rng(100)
    k, n = 6, 5

    def start(shape=("N", k)):
        net = Net("corner")
        return net, net.quant(net.input("x", list(shape)), 2 ** -5, 0, "int8")

    x = float_inputs(rng, 40, [k], 2 ** -5)
    # activation clamps before a matmul, then ArgMax of the logits
    net, xd = start()
    h = net.matmul(net.add("Clip", [xd, net.const(f32(-0.25)), net.const(f32(0.5))]), rng.integers(-8, 8, (k, n)))
    h = net.quant(net.add("Relu", [h]), 2 ** -3)
    y = net.quant(net.matmul(net.add("Relu", [h]), rng.integers(-8, 8, (n, 4))), 2 ** -2)
    net.output(y, ["N", 4])
    net.output(net.add("ArgMax", [y], axis=1, keepdims=0), ["N"], "int64")
    cases.append(("clamps-argmax", net.model(), x))
    # an off-grid float bias (requant without bias_add) and a raw float output (no requant)
    net, xd = start()
    y = net.matmul(xd, rng.integers(-8, 8, (k, n)))
    net.output(net.quant(net.add("Add", [y, net.const(f32(rng.normal(0, 1, n)))]), 0.1, 3, "int8"), ["N", n])
    net.output(net.add("Relu", [net.matmul(xd, rng.integers(-8, 8, (k, 3)))]), ["N", 3])
    cases.append(("offgrid-raw", net.model(), x))
    # a hidden layer that is also an output (two users), with a clamp after its requant
    net, xd = start()
    h = net.quant(net.add("Relu", [net.matmul(xd, rng.integers(-8, 8, (k, n)))]), 2 ** -3, 5, "int8")
    h2 = net.add("Clip", [h, net.const(f32(0.0)), net.const(f32(1.0))])
    net.output(net.quant(net.matmul(h2, rng.integers(-8, 8, (n, 3))), 2 ** -2), ["N", 3])
    net.output(h, ["N", n])
    cases.append(("two-users", net.model(), x))
    # CNNs: conv/pool chains (fused to qconv, scheduled channel by channel) and dense heads
    import qdq_conv
    found, seed = 0, 0
    while found < 3:
        rng = np.random.default_rng(1000 + seed)
        model, shape, scale = qdq_conv.random_cnn(rng)
        seed += 1
        try:
            tinycc_nn.compile(model, "python", stop_after="import", warn=lambda m: None)
        except tinycc_nn.TinyccError:
            continue
        cases.append((f"cnn{seed - 1}", model, qdq_conv.random_map_inputs(rng, shape, scale, 40)))
        found += 1
    rng = np.random.default_rng(7)
    cases.append(("seq-dw-cnn", qdq_conv.sequential_depthwise_cnn(rng, channels=4),
                  rng.uniform(0, 1, (40, 1, 16, 16)).astype(np.float32)))
    return cases
