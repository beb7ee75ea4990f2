"""onnxruntime's integer kernels: QLinearMatMul, MatMulInteger, QGemm, QLinearConv,
ConvInteger (ONNX) and QGemm, MatMulIntegerToFloat, QLinearAdd, QLinearConcat,
QLinearGlobalAveragePool, QLinearAveragePool (com.microsoft; its float32 average is
float_average.py's), with
exactly the arithmetic of its CPU kernels (MLAS, onnxruntime 1.3x; the file names below
are in its source tree).

These are what onnxruntime's quantizer writes in QOperator format, and what onnxruntime
fuses a QDQ graph into at its default optimization level (ort_graph.py), so they define
the *integer reading* of a model with float scales.

* Matmuls and convs accumulate sum((x - x_zp) * (w - w_zp)) (+ an int32 bias) exactly in
  int32 (MlasGemm, MlasConvSym).  Here: an IR matmul/conv of the raw quantized input with
  weights w - w_zp, and the input zero point folded into the bias (a conv pads with the
  zero point, so padded taps contribute nothing, as in onnxruntime).
* Requantization (MlasRequantizeOutput, mlas/lib/quantize.cpp; the QGemm/QLinearMatMul
  output processors and the ConvSym kernels do the same): float32(acc) * scale, clamped to
  the output range minus the zero point, rounded half to even (cvtps2dq), plus the zero
  point (mlas_requant.py).  scale is a float32 computed once per column: (a_scale * b_scale) / y_scale for
  QLinearMatMul (quantize_linear_matmul.cc) and QLinearConv (qlinearconv.cc), and
  ((alpha * a_scale) * b_scale) / y_scale for QGemm (contrib_ops/cpu/quantization/
  quant_gemm.cc; without y_scale its float output is float32(acc) * (alpha * a_scale *
  b_scale)).  That is a monotone function of acc per channel, so the requantization fit
  (fit.py) reproduces it exactly or refuses.
* QLinearAdd (mlas/lib/intrinsics/avx2/qladd_avx2.cpp, what onnxruntime picks on x86 with
  AVX2 and FMA3): ratios r_a = float32(a_scale / c_scale), r_b likewise, a fixed part
  F = c_zp - fma(r_a, a_zp, r_b * b_zp) (the compiler contracts it to a fused multiply-add,
  measured), then per element fma(a, r_a, fma(b, r_b, F)), rounded half to even and
  saturated; a one-element runtime operand takes the scalar path, fma(b, r_b, fma(a, r_a, F)).
  Without AVX2 (qladd.cpp, SSE2): ((F + a * r_a) + b * r_b) with separate roundings.  With
  a constant b either is a monotone function of a per channel.
"""
from __future__ import annotations

import numpy as np

from ..errors import TinyccError
from ..ir import channel_range
from . import float_average, joins, linear, window
from .mlas_requant import requantize
from .values import QDTYPES, Act, Const, by_channel, compact, per_element

INT32 = 1 << 31


def _int_act(args, k, where, what) -> Act:
    a = args[k] if k < len(args) else None
    if not isinstance(a, Act) or a.ir is None:
        raise TinyccError(f"{where}: {what} must be a quantized runtime tensor")
    if a.ops or a.dtype not in QDTYPES:
        raise TinyccError(f"{where}: {what} is a {a.dtype} tensor; the kernel takes the "
                          "8-bit integers of a QuantizeLinear or of another integer kernel")
    return a


def _const(args, k, where, what, default=None) -> np.ndarray:
    a = args[k] if k < len(args) else None
    if a is None:
        if default is None:
            raise TinyccError(f"{where}: {what} is missing")
        return np.asarray(default)
    if not isinstance(a, Const):
        raise TinyccError(f"{where}: {what} must be a constant")
    return np.asarray(a.value)


def _scalar(arr, where, what):
    arr = np.asarray(arr)
    if arr.size != 1:
        raise TinyccError(f"{where}: {what} has {arr.size} values; onnxruntime's kernel takes one")
    return arr.reshape(())


def _scale(arr, where, what) -> np.ndarray:
    s = np.asarray(arr, np.float32)
    if not np.isfinite(s).all() or (s <= 0).any():
        raise TinyccError(f"{where}: {what} {s.reshape(-1)[0]} must be positive and finite")
    return s


def _one_scale(args, k, where, what) -> np.ndarray:
    """Operand k: one positive finite float32 scale."""
    return _scale(_scalar(_const(args, k, where, what), where, what), where, what)


def _one_zero_point(args, k, where, what, default=None) -> int:
    """Operand k: one integer zero point (`default` when the optional operand is absent)."""
    return int(_scalar(_const(args, k, where, what, default), where, what))


def _check_int32(imp, acc: str, where: str) -> None:
    lo, hi = channel_range(imp.ir, acc)
    if lo.min() < -INT32 or hi.max() >= INT32:
        raise TinyccError(f"{where}: the int32 accumulator can reach {max(-lo.min(), hi.max())}, "
                          "beyond 2^31, where onnxruntime's wraps around; no integer program "
                          "promises its results")


def integer_matmul(imp, x: Act, x_zp: int, w: np.ndarray, bias, rows, out_shape,
                   where: str, name: str) -> Act:
    """The int32 accumulator sum_k (x[rows[k]] - x_zp) * w[k, n] + bias[n], w already minus
    its zero point.  Returns an integer Act (dtype int32, no float ops)."""
    n_in = imp.ir.type(x.ir).size
    weights = np.zeros((n_in, w.shape[1]), np.int64)
    np.add.at(weights, rows, w)
    acc_bias = -int(x_zp) * w.sum(axis=0)
    if bias is not None:
        acc_bias = acc_bias + np.broadcast_to(np.asarray(bias, np.int64).reshape(-1), acc_bias.shape)
    acc = imp.emit("matmul", name, [x.ir, imp.emit_const(name + ".w", weights)], {})
    if acc_bias.any():
        acc = imp.emit("bias_add", name + ".bias", [acc], {"bias": compact(acc_bias)})
    _check_int32(imp, acc, where)
    imp.reading = "integer"
    return Act(acc, np.arange(w.shape[1]).reshape(out_shape), "int32")


def _out_type(args, k, where) -> tuple:
    zp = _const(args, k, where, "the output zero point")
    if zp.dtype.name not in ("int8", "uint8"):
        raise TinyccError(f"{where}: output type {zp.dtype.name}; the kernel makes int8 or uint8")
    return int(_scalar(zp, where, "the output zero point")), zp.dtype.name


def _weights(args, k_w, k_zp, where, n_axis: int) -> np.ndarray:
    """Integer weights minus their zero point (scalar, or one per output on n_axis)."""
    w = _const(args, k_w, where, "the weight")
    if w.dtype.kind not in "iu":
        raise TinyccError(f"{where}: weight is {w.dtype}; the kernel takes 8-bit integers")
    zp = np.asarray(_const(args, k_zp, where, "the weight zero point", 0), np.int64)
    if zp.size > 1:
        shape = [1] * w.ndim
        shape[n_axis] = zp.size
        zp = zp.reshape(shape)
    return w.astype(np.int64) - zp


def _per_output(scale, n, where, what) -> np.ndarray:
    s = np.asarray(scale, np.float32).reshape(-1)
    if s.size not in (1, n):
        raise TinyccError(f"{where}: {what} has {s.size} values for {n} outputs")
    return np.broadcast_to(s, (n,))


def _matmul_accumulator(imp, node, args, where, k_w: int, k_wzp: int, k_xzp: int = 2):
    """A @ (B - B's zero point) in int32, A's zero point folded in: QLinearMatMul,
    MatMulInteger and MatMulIntegerToFloat share it (A at 0, its zero point at k_xzp, the
    constant B at k_w).  Returns (accumulator, number of output columns)."""
    x = _int_act(args, 0, where, "A")
    if not isinstance(args[k_w], Const):
        raise TinyccError(f"{where}: B must be constant weights (A the runtime tensor)")
    w = _weights(args, k_w, k_wzp, where, 1)
    if w.ndim != 2:
        raise TinyccError(f"{where}: weight has shape {list(w.shape)}, need 2-D")
    x_zp = _one_zero_point(args, k_xzp, where, "A's zero point", 0)
    rows = linear.gemm_like_shape(x, w.shape[0], where, column=False)
    acc = integer_matmul(imp, x, x_zp, w, None, rows, x.shape[:-1] + (w.shape[1],), where,
                         node.output[0])
    return acc, w.shape[1]


def qlinear_matmul(imp, node, args, where, attrs):
    acc, n = _matmul_accumulator(imp, node, args, where, 3, 5)
    y_zp, y_dtype = _out_type(args, 7, where)
    a_s = _one_scale(args, 1, where, "A's scale")
    b_s = _per_output(_scale(_const(args, 4, where, "B's scale"), where, "B's scale"), n, where, "B's scale")
    y_s = _one_scale(args, 6, where, "Y's scale")
    return [requantize(imp, acc, (a_s * b_s) / y_s, y_zp, y_dtype, where)]


def matmul_integer(imp, node, args, where, attrs):
    return [_matmul_accumulator(imp, node, args, where, 1, 3)[0]]


def matmul_integer_to_float(imp, node, args, where, attrs):
    """What onnxruntime fuses a static QDQ MatMul into when no QuantizeLinear follows it
    (its float output feeds a float op or the graph output): float32(acc) * (a_scale *
    b_scale) + bias, a multiply and an add in float32 (MLAS's scale-bias output
    processor).  With a runtime A scale it is dynamic quantization, refused."""
    if not isinstance(args[2], Const) or not isinstance(args[0], Act) or args[0].dtype == "float32":
        return dynamic_quantization(imp, node, args, where, attrs)
    acc, n = _matmul_accumulator(imp, node, args, where, 1, 5, k_xzp=4)
    a_s = _one_scale(args, 2, where, "A's scale")
    b_s = _one_scale(args, 3, where, "B's scale")
    ops = [["dequantize", compact(a_s * b_s), 0]]
    if len(args) > 6 and args[6] is not None:
        bias = _const(args, 6, where, "the bias")
        if bias.size not in (1, n) or bias.dtype != np.float32:
            raise TinyccError(f"{where}: the bias must be float32 with 1 or {n} values")
        ops.append(["add", compact(np.broadcast_to(bias.reshape(-1), (n,)))])
    return [Act(acc.ir, acc.index, "float32", ops)]


def qgemm(imp, node, args, where, attrs):
    x = _int_act(args, 0, where, "A")
    if len(x.shape) != 2:
        raise TinyccError(f"{where}: A must be 2-D")
    if not isinstance(args[3], Const):
        raise TinyccError(f"{where}: B must be constant weights")
    w = _weights(args, 3, 5, where, 0 if attrs.get("transB", 0) else 1)
    if attrs.get("transB", 0):
        w = w.T
    xt = x.with_index(x.index.T) if attrs.get("transA", 0) else x
    n = w.shape[1]
    x_zp = _one_zero_point(args, 2, where, "A's zero point")
    bias = None
    if len(args) > 6 and args[6] is not None:
        c = _const(args, 6, where, "C (the bias)")
        if c.size not in (1, n) or c.dtype != np.int32:
            raise TinyccError(f"{where}: C must be int32 with 1 or {n} values")
        bias = np.broadcast_to(c.reshape(-1).astype(np.int64), (n,))
    alpha = np.float32(attrs.get("alpha", 1.0))
    a_s = _one_scale(args, 1, where, "A's scale")
    b_s = _per_output(_scale(_const(args, 4, where, "B's scale"), where, "B's scale"), n, where, "B's scale")
    if alpha <= 0 or not np.isfinite(alpha):
        raise TinyccError(f"{where}: alpha={float(alpha)} must be positive")
    rows = linear.gemm_like_shape(xt, w.shape[0], where, column=False)
    acc = integer_matmul(imp, xt, x_zp, w, bias, rows, (1, n), where, node.output[0])
    scale = (alpha * a_s) * b_s
    if len(args) > 7 and args[7] is not None:
        y_s = _one_scale(args, 7, where, "Y's scale")
        y_zp, y_dtype = _out_type(args, 8, where)
        return [requantize(imp, acc, scale / y_s, y_zp, y_dtype, where)]
    return [Act(acc.ir, acc.index, "float32", [["dequantize", compact(scale), 0]])]


def _conv(imp, node, args, where, attrs, x, x_zp, w, bias):
    x, (c, h, wd) = window.map_input(imp, x, where, node.op_type)
    if w.ndim != 4:
        raise TinyccError(f"{where}: weight has shape {list(w.shape)}; only 2-D convolutions")
    m, cg, kh, kw = (int(d) for d in w.shape)
    group = int(attrs.get("group", 1))
    if group < 1 or c % group or m % group or cg * group != c:
        raise TinyccError(f"{where}: group {group} with {c} input channels does not match "
                          f"weights {list(w.shape)}")
    strides, pads = window._window_attrs(attrs, where, (kh, kw), (h, wd), node.op_type)
    acc_bias = -int(x_zp) * w.sum(axis=(1, 2, 3))
    if bias is not None:
        acc_bias = acc_bias + bias
    name = node.output[0]
    acc = imp.emit("conv", name, [x.ir, imp.emit_const(name + ".w", w)],
                   {"in_shape": [c, h, wd], "strides": strides, "pads": pads, "group": group,
                    "pad_value": int(x_zp)})
    if acc_bias.any():
        acc = imp.emit("bias_add", name + ".bias", [acc], {"bias": compact(acc_bias)})
    _check_int32(imp, acc, where)
    imp.reading = "integer"
    return window._map_act(acc, imp, [], "int32")


def qlinear_conv(imp, node, args, where, attrs):
    x = _int_act(args, 0, where, "x")
    w = _weights(args, 3, 5, where, 0)
    m = w.shape[0]
    bias = None
    if len(args) > 8 and args[8] is not None:
        b = _const(args, 8, where, "B (the bias)")
        if b.size != m:
            raise TinyccError(f"{where}: bias has {b.size} values for {m} output channels")
        bias = b.reshape(-1).astype(np.int64)
    x_zp = _one_zero_point(args, 2, where, "x's zero point")
    acc = _conv(imp, node, args, where, attrs, x, x_zp, w, bias)
    x_s = _one_scale(args, 1, where, "x's scale")
    w_s = _per_output(_scale(_const(args, 4, where, "w's scale"), where, "w's scale"), m, where, "w's scale")
    y_s = _one_scale(args, 6, where, "y's scale")
    y_zp, y_dtype = _out_type(args, 7, where)
    return [requantize(imp, acc, (x_s * w_s) / y_s, y_zp, y_dtype, where)]


def conv_integer(imp, node, args, where, attrs):
    x = _int_act(args, 0, where, "x")
    w = _weights(args, 1, 3, where, 0)
    x_zp = _one_zero_point(args, 2, where, "x's zero point", 0)
    return [_conv(imp, node, args, where, attrs, x, x_zp, w, None)]


def qlinear_global_average_pool(imp, node, args, where, attrs):
    """MlasQLinearGlobalAveragePool: acc = sum(x) - x_zp * H*W in int32, requantized with
    scale = x_scale / (y_scale * float32(H*W))."""
    if attrs.get("channels_last", 0):
        raise TinyccError(f"{where}: channels_last=1 is not supported (NCHW maps only)")
    x = _int_act(args, 0, where, "X")
    x, (c, h, w) = window.map_input(imp, x, where, node.op_type)
    x_s = _one_scale(args, 1, where, "x_scale")
    x_zp = _one_zero_point(args, 2, where, "x_zero_point")
    y_s = _one_scale(args, 3, where, "y_scale")
    y_zp, y_dtype = _out_type(args, 4, where)
    name = node.output[0]
    acc = imp.emit("sumpool", name, [x.ir], {"in_shape": [c, h, w], "kernel": [h, w],
                                             "strides": [1, 1], "pads": [0, 0, 0, 0],
                                             "pad_value": int(x_zp)})
    if x_zp:
        acc = imp.emit("bias_add", name + ".bias", [acc], {"bias": -x_zp * h * w})
    imp.reading = "integer"
    scale = x_s / (y_s * np.float32(h * w))
    return [requantize(imp, window._map_act(acc, imp, [], "int32"), scale, y_zp, y_dtype, where)]


def qlinear_average_pool(imp, node, args, where, attrs):
    """float_average.py: onnxruntime's float32 window average of dequantized values."""
    x = _int_act(args, 0, where, "X")
    y = _out_type(args, 4, where) if len(args) > 4 and args[4] is not None else (0, x.dtype)
    operands = (x, _one_scale(args, 1, where, "x_scale"),
                _one_zero_point(args, 2, where, "x_zero_point", 0),
                _one_scale(args, 3, where, "y_scale"), *y)
    return float_average.qlinear_average_pool(imp, node, args, where, attrs, operands,
                                              qlinear_global_average_pool)


def qlinear_concat(imp, node, args, where, attrs):
    """QLinearConcat (contrib_ops/cpu/quantization/qlinear_concat.cc): an input quantized
    like the output is copied; another goes through a 256-entry table of
    QuantizeLinear(x_scale * (x - x_zp)) (MlasQuantizeLinear: divide, round half to even,
    add the zero point, saturate), a monotone function of x that the requantization fit
    reproduces or refuses; then the tensors are joined (joins.concat_acts)."""
    y_s = _one_scale(args, 0, where, "Y's scale")
    y_zp, y_dtype = _out_type(args, 1, where)
    if (len(args) - 2) % 3 or len(args) < 5:
        raise TinyccError(f"{where}: takes (tensor, scale, zero point) triples after Y's scale and zero point")
    acts = []
    for k in range(2, len(args), 3):
        x = _int_act(args, k, where, f"input {(k - 2) // 3}")
        x_s = _one_scale(args, k + 1, where, "its scale")
        x_zp = _one_zero_point(args, k + 2, where, "its zero point")
        if x.dtype != y_dtype:
            raise TinyccError(f"{where}: input {(k - 2) // 3} is {x.dtype}, the output {y_dtype}")
        if not (x_s == y_s and x_zp == y_zp):
            x = imp.requantize(Act(x.ir, x.index, "float32", [["dequantize", float(x_s), x_zp]]),
                               [["quantize", float(y_s), y_zp, y_dtype]], y_dtype, where)
        acts.append(Act(x.ir, x.index, y_dtype))
    imp.reading = "integer"
    return [joins.concat_acts(imp, acts, int(attrs.get("axis", 0)), node.output[0], where)]


def _cpu_has_avx2() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:   # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return bool(features.get("AVX2") and features.get("FMA3"))


def qlinear_add(imp, node, args, where, attrs):
    acts = [k for k in (0, 3) if isinstance(args[k], Act)]
    if len(acts) != 1:
        raise TinyccError(f"{where}: adds two runtime tensors, rounding a * r_a + b * r_b in "
                          "float32 with scale ratios that are not powers of two, which no integer "
                          "program reproduces; only a constant operand can be added here (with "
                          "power-of-two scales a residual Add compiles)")
    ka = acts[0]
    kb = 3 - ka
    x = _int_act(args, ka, where, "the runtime operand")
    b = _const(args, kb, where, "the constant operand")
    s_a = _scale(_scalar(_const(args, ka + 1, where, "its scale"), where, "scale"), where, "scale")
    s_b = _scale(_scalar(_const(args, kb + 1, where, "its scale"), where, "scale"), where, "scale")
    z_a = _one_zero_point(args, ka + 2, where, "zero point", 0)
    z_b = _one_zero_point(args, kb + 2, where, "zero point", 0)
    s_c = _one_scale(args, 6, where, "C's scale")
    z_c, dtype = _out_type(args, 7, where)
    if dtype != x.dtype:
        raise TinyccError(f"{where}: output {dtype} differs from input {x.dtype}")
    full = np.broadcast_to(b, np.broadcast_shapes(b.shape, x.shape))
    if full.shape != x.shape:
        raise TinyccError(f"{where}: the constant of shape {list(b.shape)} broadcasts the "
                          f"tensor {list(x.shape)} to {list(full.shape)}")
    xc, n = by_channel(x.with_index(x.index.reshape(-1)), imp.ir.type(x.ir))
    bv = per_element(full.reshape(-1).astype(np.int64), xc, 0, n)
    if bv is None:
        raise TinyccError(f"{where}: the constant differs within one channel of a feature map")
    bv = np.asarray(bv, np.int64)
    r_a, r_b = s_a / s_c, s_b / s_c
    if max(r_a, r_b) * 512 >= INT32:
        raise TinyccError(f"{where}: scale ratios {float(r_a)}, {float(r_b)} take sums beyond "
                          "int32, where onnxruntime's conversion gives the wrong end of the range")
    imp.reading = "integer"
    from ..hostio import fma
    if _cpu_has_avx2():
        fixed = np.float32(z_c) - fma(r_a, np.float32(z_a), r_b * np.float32(z_b))
        if x.index.size == 1:       # MlasQLinearAdd's scalar-A path
            ops = [["fma", float(r_a), float(fixed)],
                   ["add_product", compact(bv.astype(np.float32)), float(r_b)]]
        else:
            ops = [["fma", float(r_a), compact(fma(bv.astype(np.float32), r_b, fixed))]]
    else:
        fixed = np.float32(z_c) - (r_a * np.float32(z_a) + r_b * np.float32(z_b))
        ops = [["dequantize", float(r_a), 0], ["add", float(fixed)],
               ["add", compact(bv.astype(np.float32) * r_b)]]
    ops.append(["quantize", 1.0, 0, dtype])
    return [imp.requantize(Act(x.ir, x.index, "int32"), ops, dtype, where)]


def dynamic_quantization(imp, node, args, where, attrs):
    raise TinyccError(f"{where}: dynamic quantization computes the input's scale at run time "
                      "from its values, which no fixed integer program does; quantize the float "
                      "model with onnxruntime's quantize_static (calibrated, fixed scales)")


HANDLERS = {
    "QLinearMatMul": qlinear_matmul,
    "MatMulInteger": matmul_integer,
    "QLinearConv": qlinear_conv,
    "ConvInteger": conv_integer,
    "DynamicQuantizeLinear": dynamic_quantization,
}
MS_HANDLERS = {
    "QGemm": qgemm,
    "QLinearAdd": qlinear_add,
    "QLinearGlobalAveragePool": qlinear_global_average_pool,
    "QLinearAveragePool": qlinear_average_pool,
    "QLinearConcat": qlinear_concat,
    "QLinearConv": qlinear_conv,
    "DynamicQuantizeMatMul": dynamic_quantization,
    "MatMulIntegerToFloat": matmul_integer_to_float,
}
