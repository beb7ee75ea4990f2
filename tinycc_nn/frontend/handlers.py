"""One function per ONNX operator on runtime tensors: (importer, node, args, where, attrs)
-> list of result values.  Constant-only nodes never get here (the importer folds them)."""
from __future__ import annotations

import numpy as np
from onnx.reference import ReferenceEvaluator

from .. import hostio
from ..errors import TinyccError
from ..ir import channel_range
from . import joins, kernels, linear, window
from .values import DATA_MOVEMENT
from .values import QDTYPES, Act, Const, by_channel, per_element, varies_by_channel
from .values import arg_act as _act, arg_const as _const, runtime_act as _float_act

ONNX_QDTYPE = {3: "int8", 2: "uint8", 5: "int16", 4: "uint16", 22: "int4", 21: "uint4"}


def _quant_params(imp, x: Act, args, attrs, where):
    scale = _const(args, 1, where, "scale").value
    axis = attrs.get("axis", 1) % max(len(x.shape), 1)
    if x.ir is None:
        n = x.index.size
    else:
        x, n = by_channel(x, imp.ir.type(x.ir))
    if attrs.get("block_size", 0):
        raise TinyccError(f"{where}: blocked quantization is not supported")
    s = per_element(scale.astype(np.float32), x, axis, n)
    zp_arr = args[2].value if len(args) > 2 and args[2] is not None else None
    z = 0 if zp_arr is None else per_element(zp_arr.astype(np.int64), x, axis, n)
    if s is None or z is None:
        raise TinyccError(f"{where}: per-axis parameters disagree after data movement, or vary "
                          "within one channel of a feature map")
    if not np.all(np.isfinite(s)) or np.any(np.asarray(s) <= 0):
        raise TinyccError(f"{where}: scale {_show(s)} must be a positive finite number")
    return s, z, zp_arr


def quantize_linear(imp, node, args, where, attrs):
    x = _act(args, 0, where)
    if x.dtype != "float32":
        raise TinyccError(f"{where}: quantizes a {x.dtype} tensor (need float32)")
    s, z, zp_arr = _quant_params(imp, x, args, attrs, where)
    if zp_arr is not None:
        dtype = zp_arr.dtype.name
    else:
        dtype = ONNX_QDTYPE.get(attrs.get("output_dtype", 2), "?")
    if dtype not in QDTYPES:
        raise TinyccError(f"{where}: quantizes to {dtype}; supported: {', '.join(sorted(QDTYPES))}")
    if x.ir is None:
        if imp.quantized_input is not None:
            raise TinyccError(f"{where}: the model input is already quantized by "
                              f"'{imp.quantized_input}'")
        imp.quantized_input = node.name or node.output[0]
        order = x.index.ravel()
        if not (np.sort(order) == np.arange(order.size)).all():
            raise TinyccError(f"{where}: the input must be quantized whole")
        ir = imp._make_input(dtype, s, z, order.size)
        return [Act(ir, x.index, dtype)]
    return [imp.requantize(x, [["quantize", s, z, dtype]], dtype, where)]


def dequantize_linear(imp, node, args, where, attrs):
    x = _act(args, 0, where)
    if x.ops or x.dtype not in QDTYPES | {"int32"}:
        raise TinyccError(f"{where}: dequantizes a {x.dtype} tensor (need an integer tensor)")
    s, z, _ = _quant_params(imp, x, args, attrs, where)
    return [Act(x.ir, x.index, "float32", [["dequantize", s, z]])]


def _show(v) -> str:
    v = np.asarray(v)
    bad = v[~np.isfinite(v) | (v <= 0)] if v.size > 1 else v.reshape(-1)
    return str((bad if bad.size else v).reshape(-1)[0].item())


def _elementwise_const(imp, x: Act, c: Const, where, what):
    if not np.isfinite(c.value).all():
        raise TinyccError(f"{where}: {what} holds {c.value[~np.isfinite(c.value)].flat[0]}; "
                          "only finite constants are supported")
    full = np.broadcast_to(c.value, np.broadcast_shapes(c.value.shape, x.shape))
    if full.shape != x.shape:
        raise TinyccError(f"{where}: {what} of shape {list(c.value.shape)} broadcasts the "
                          f"tensor {list(x.shape)} to {list(full.shape)}")
    xc, n = by_channel(x.with_index(x.index.reshape(-1)), imp.ir.type(x.ir))
    v = per_element(full.reshape(-1), xc, 0, n)
    if v is None:
        raise TinyccError(f"{where}: {what} differs between copies of one element, or "
                          "within one channel of a feature map")
    return v


def concat(imp, node, args, where, attrs):
    """Concat of runtime tensors (branches of a network): joins.concat_acts."""
    acts = [_act(args, k, where) for k in range(len(args))]
    return [joins.concat_acts(imp, acts, int(attrs.get("axis", 0)), node.output[0], where)]


def add(imp, node, args, where, attrs, sign=1.0):
    acts = [a for a in args if isinstance(a, Act)]
    if len(acts) == 2 and sign > 0:
        return [joins.add_tensors(imp, acts[0], acts[1], where)]
    if len(acts) != 1:
        raise TinyccError(f"{where}: subtracts two runtime tensors; only a constant can be "
                          "subtracted (Add takes two)")
    x = _float_act(acts, where)
    c = args[1] if isinstance(args[0], Act) else args[0]
    if node.op_type == "Sub" and isinstance(args[1], Act):
        raise TinyccError(f"{where}: subtracting a tensor from a constant is not monotone")
    if x.dtype != "float32":
        raise TinyccError(f"{where}: integer {node.op_type} is not supported")
    b = np.asarray(_elementwise_const(imp, x, Const(c.value.astype(np.float32) * np.float32(sign)),
                                      where, "the constant"), np.float32)
    ops = x.ops
    if len(ops) == 1 and ops[0][0] == "dequantize" and linear.is_pow2(ops[0][1]):
        # (q - z) * s + b == (q + k - z) * s in float32 only when nothing rounds: a power
        # of two s, b = k * s, and every |q - z| and |q + k - z| below 2**24 units
        unit = np.asarray(ops[0][1], np.float64)
        k = b.astype(np.float64) / unit
        lo, hi = channel_range(imp.ir, x.ir)
        z = np.asarray(ops[0][2], np.int64)
        span = np.maximum(np.abs(lo - z), np.abs(hi - z))
        if ((np.floor(k) == k).all() and np.abs(k).max() < linear.EXACT_LIMIT
                and (span + np.abs(k)).max() < linear.EXACT_LIMIT):
            bias = k.astype(np.int64)
            bias_attr = int(bias.flat[0]) if (bias == bias.flat[0]).all() else bias.ravel().tolist()
            ir = imp.emit("bias_add", x.ir + ".bias", [x.ir], {"bias": bias_attr})
            return [Act(ir, x.index, x.dtype, ops)]
    return [Act(x.ir, x.index, x.dtype, ops + [["add", _scalar_or_list(b)]])]


def sub(imp, node, args, where, attrs):
    return add(imp, node, args, where, attrs, sign=-1.0)


def mul(imp, node, args, where, attrs):
    acts = [a for a in args if isinstance(a, Act)]
    if len(acts) != 1:
        raise TinyccError(f"{where}: multiplies two runtime tensors; only a constant factor is supported")
    x = _float_act(acts, where)
    c = args[1] if isinstance(args[0], Act) else args[0]
    m = np.asarray(_elementwise_const(imp, x, c, where, "the factor"), np.float32)
    if (m < 0).any() or x.dtype != "float32":
        raise TinyccError(f"{where}: only a non-negative float factor is supported")
    return [Act(x.ir, x.index, x.dtype, x.ops + [["mul", _scalar_or_list(m)]])]


def _scalar_or_list(a):
    a = np.asarray(a)
    return float(a.flat[0]) if (a == a.flat[0]).all() else [float(v) for v in a.ravel()]


def relu(imp, node, args, where, attrs):
    x = _float_act(args, where)
    if x.dtype == "float32":
        return [Act(x.ir, x.index, x.dtype, x.ops + [["relu"]])]
    return [_int_clamp(imp, x, 0, None)]


def clip(imp, node, args, where, attrs):
    x = _float_act(args, where)
    bounds = []
    for k, unbounded in ((1, -np.inf), (2, np.inf)):
        c = args[k] if k < len(args) else None
        if c is not None and not isinstance(c, Const):
            raise TinyccError(f"{where}: bounds must be constants")
        b = None if c is None else float(c.value.reshape(-1)[0])
        if b == unbounded:         # Clip(x, -inf, +inf) is the documented "no bound"
            b = None
        elif b is not None and not np.isfinite(b):
            raise TinyccError(f"{where}: {('min', 'max')[k - 1]} bound {b} is not supported "
                              "(a finite number, or -inf/+inf for no bound)")
        bounds.append(b)
    if x.dtype == "float32":
        return [Act(x.ir, x.index, x.dtype, x.ops + [["clip", bounds[0], bounds[1]]])]
    lo = None if bounds[0] is None else int(np.ceil(bounds[0]))
    hi = None if bounds[1] is None else int(np.floor(bounds[1]))
    return [_int_clamp(imp, x, lo, hi)]


def _int_clamp(imp, x: Act, lo, hi) -> Act:
    rlo, rhi = channel_range(imp.ir, x.ir)
    lo = lo if lo is not None and lo > rlo.min() else None
    hi = hi if hi is not None and hi < rhi.max() else None
    if lo is None and hi is None:
        return x
    return Act(imp.emit("clamp", x.ir + ".clamp", [x.ir], {"lo": lo, "hi": hi}), x.index, x.dtype)


def cast(imp, node, args, where, attrs):
    x = _float_act(args, where)
    to = {1: "float32"}.get(attrs.get("to"))
    if to != "float32" or x.ops or x.dtype == "float32":
        raise TinyccError(f"{where}: only Cast of an integer tensor to float32 is supported")
    return [Act(x.ir, x.index, "float32", [["dequantize", 1.0, 0]])]


def data_movement(imp, node, args, where, attrs):
    x = _act(args, 0, where)
    ins = {node.input[0]: x.index}
    for name, a in zip(node.input[1:], args[1:]):
        if name:
            if not isinstance(a, Const):
                raise TinyccError(f"{where}: input '{name}' must be a constant")
            ins[name] = a.value
    if node.op_type == "Dropout":
        ratio, training = (ins.get(n) for n in (list(node.input[1:]) + ["", ""])[:2])
        ratio = 0.5 if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
        if training is not None and np.asarray(training).any() and ratio > 0:
            raise TinyccError(f"{where}: training_mode is true, so onnxruntime drops random "
                              "elements; export the model in inference mode")
        return [x]
    try:
        index = ReferenceEvaluator(node).run(None, ins)[0]
    except Exception as e:  # the reference evaluator raises anything
        raise TinyccError(f"{where}: {e}") from None
    return [x.with_index(np.asarray(index))]


def pad(imp, node, args, where, attrs):
    """Pad.  reflect, edge and wrap only move data (the index); constant mode fills with
    the integer whose value is the constant (a copy: an IR gather whose index is -1 at
    the fills), so that it equals onnxruntime's element for element."""
    x = _act(args, 0, where)
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode != "constant":
        return data_movement(imp, node, args, where, attrs)
    if x.ir is None:
        raise TinyccError(f"{where}: pads the unquantized model input; quantize it first")
    given = len(args) > 2 and args[2] is not None
    c = np.asarray(_const(args, 2, where, "constant_value").value).reshape(-1) if given else np.zeros(1)
    if varies_by_channel(x.ops):
        raise TinyccError(f"{where}: pads a tensor with per-channel scales; only one scale "
                          "per tensor gives one fill value")
    if x.ops and x.ops[0][0] == "dequantize":
        fill = int(np.rint(float(c[0]) / float(x.ops[0][1]) + float(x.ops[0][2])))
    else:
        fill = int(np.rint(float(c[0])))
    got = hostio.apply_float_ops(np.array([fill]), x.ops) if x.ops else np.array([fill])
    if np.asarray(got, np.float64).reshape(-1)[0] != float(np.float32(c[0])):
        raise TinyccError(f"{where}: the constant {float(c[0])} is not a value of the tensor's "
                          "quantization grid, so no integer can stand for it")
    # pad the index + 1 with 0: the fills come out as -1
    marked = [x.with_index(x.index + 1), *args[1:]]
    if given:
        marked[2] = Const(np.array(0, np.int64))
    index = data_movement(imp, node, marked, where, attrs)[0].index - 1
    shape = list(index.shape[1:]) if index.ndim == 4 and index.shape[0] == 1 else [index.size]
    ir = imp.emit("gather", node.output[0], [x.ir],
                  {"index": index.ravel().tolist(), "shape": shape, "fill": fill})
    return [Act(ir, np.arange(index.size).reshape(index.shape), x.dtype, x.ops)]


def matmul(imp, node, args, where, attrs):
    a, b = args
    if isinstance(a, Act) and isinstance(b, Const):
        k = b.value.shape[0]
        rows = linear.gemm_like_shape(_float_act([a], where), k, where, column=False)
        out_shape = a.shape[:-1] + (b.value.shape[-1],)
        return [linear.emit_matmul(imp, a, b, rows, out_shape, where, node.output[0])]
    if isinstance(a, Const) and isinstance(b, Act):
        if a.value.ndim != 2:
            raise TinyccError(f"{where}: weight has shape {list(a.value.shape)}, need 2-D")
        k = a.value.shape[1]
        rows = linear.gemm_like_shape(_float_act([b], where), k, where, column=True)
        out_shape = b.shape[:-2] + (a.value.shape[0], 1) if len(b.shape) >= 2 else (a.value.shape[0],)
        return [linear.emit_matmul(imp, b, a.map(np.transpose), rows, out_shape, where, node.output[0])]
    raise TinyccError(f"{where}: multiplies two runtime tensors; one side must be constant weights")


def gemm(imp, node, args, where, attrs):
    x = _float_act(args, where)
    w = _const(args, 1, where, "B (the weight)")
    if len(x.shape) != 2:
        raise TinyccError(f"{where}: A must be 2-D")
    if attrs.get("transB", 0):
        w = w.map(np.transpose)
    index = x.index.T if attrs.get("transA", 0) else x.index
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0 and not linear.is_pow2(alpha):
        raise TinyccError(f"{where}: alpha={alpha} is not a power of two")
    # beta only scales the bias: 0, or +-2^k, keeps beta * C exact (whatever order
    # onnxruntime adds it in); the bias must then lie on the accumulator grid
    if beta != 0.0 and not linear.is_pow2(abs(beta)):
        raise TinyccError(f"{where}: beta={beta} is neither 0 nor a power of two (or its negative)")
    xt = x.with_index(index)
    rows = linear.gemm_like_shape(xt, w.value.shape[0], where, column=False)
    bias = None
    if len(args) > 2 and args[2] is not None:
        c = _const(args, 2, where, "C (the bias)")
        bias = np.broadcast_to(c.value.astype(np.float32) * np.float32(beta),
                               (1, w.value.shape[1])).reshape(-1)
    if bias is not None and not linear.on_accumulator_grid(imp, xt, w, bias, alpha):
        if rows.size > linear.SGEMM_STRIDE_K:
            raise TinyccError(f"{where}: its float bias is not on the accumulator grid "
                              f"(scale_x * scale_w) and K = {rows.size} > "
                              f"{linear.SGEMM_STRIDE_K}, where onnxruntime adds partial sums "
                              "to it block by block, rounding each time; quantize the bias to "
                              "int32 with DequantizeLinear(scale = scale_x * scale_w), or "
                              "export MatMul + Add")
        # onnxruntime's sgemm adds C once to the exact product sum of one K block
        acc = linear.emit_matmul(imp, xt, w, rows, (1, w.value.shape[1]), where, node.output[0],
                                 alpha=alpha)
        return [Act(acc.ir, acc.index, acc.dtype, acc.ops + [["add", _scalar_or_list(bias)]])]
    return [linear.emit_matmul(imp, xt, w, rows, (1, w.value.shape[1]), where, node.output[0],
                               bias=bias, alpha=alpha)]


def argmax(imp, node, args, where, attrs):
    x = _float_act(args, where)
    axis = attrs.get("axis", 0) % len(x.shape)
    if int(np.prod(x.shape)) != x.shape[axis]:
        raise TinyccError(f"{where}: ArgMax over axis {axis} of {list(x.shape)} gives several "
                          "results; only one vector per inference is supported")
    n = imp.ir.type(x.ir).size
    if (x.index.reshape(-1) != np.arange(n)).any():
        raise TinyccError(f"{where}: ArgMax over a reordered tensor is not supported")
    ir = _argmax_key(imp, x, where)
    out = imp.emit("argmax", node.output[0], [ir], {"last": bool(attrs.get("select_last_index", 0))})
    shape = list(x.shape)
    if attrs.get("keepdims", 1):
        shape[axis] = 1
    else:
        del shape[axis]
    return [Act(out, np.zeros(shape, np.int64), "int64")]


def _argmax_key(imp, x: Act, where) -> str:
    """An integer vector ordered (ties included) exactly like x's float values."""
    if not x.ops:
        return x.ir
    if varies_by_channel(x.ops):
        raise TinyccError(f"{where}: elements have different scales; ArgMax would compare "
                          "floats that no integer order reproduces")
    lo, hi = channel_range(imp.ir, x.ir)
    lo, hi = int(lo.min()), int(hi.max())
    if hi - lo > 1 << 22:
        raise TinyccError(f"{where}: input range {lo}..{hi} too wide to prove the ArgMax order")
    q = np.arange(lo, hi + 1)
    v = hostio.apply_float_ops(q, x.ops)
    flat_lo = int(q[v == v[0]].max())
    flat_hi = int(q[v == v[-1]].min())
    mid = v[flat_lo - lo: flat_hi - lo + 1]
    if flat_hi > flat_lo and not (np.diff(mid) > 0).all():
        raise TinyccError(f"{where}: the float values tie inside the range; ArgMax order cannot be "
                          "reproduced on integers")
    return _int_clamp(imp, Act(x.ir, x.index, "int"), flat_lo if flat_lo > lo else None,
                      flat_hi if flat_hi < hi else None).ir


HANDLERS = {
    "QuantizeLinear": quantize_linear,
    "DequantizeLinear": dequantize_linear,
    "MatMul": matmul,
    "Gemm": gemm,
    "Add": add,
    "Sub": sub,
    "Mul": mul,
    "Relu": relu,
    "Clip": clip,
    "Cast": cast,
    "ArgMax": argmax,
    "Conv": window.conv,
    "MaxPool": window.max_pool,
    "GlobalMaxPool": window.max_pool,
    "AveragePool": window.average_pool,
    "GlobalAveragePool": window.average_pool,
    "ReduceMean": window.reduce_mean,
    "Concat": concat,
    "Pad": pad,
    **{op: data_movement for op in DATA_MOVEMENT},
    **kernels.HANDLERS,
}
MS_HANDLERS = kernels.MS_HANDLERS     # com.microsoft operators
