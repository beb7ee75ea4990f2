"""MatMul and Gemm: from float32 ONNX arithmetic to an exact integer matmul.

onnxruntime multiplies dequantized float32 tensors.  With power-of-two scales every
product is exact, and so is every partial sum while it stays below 2**24 units of
the accumulator's scale, in any summation order.  Under that condition (checked by
interval analysis; a warning says when it cannot be proven) the float MatMul equals
the integer matmul times scale_x * scale_w[j] exactly, which is what we emit.
"""
from __future__ import annotations

import numpy as np

from ..errors import TinyccError
from ..ir import channel_range
from .values import Act, Const, FloatScales, compact, is_pow2

EXACT_LIMIT = 1 << 24
SGEMM_STRIDE_K = 128   # MLAS's sgemm sums K in blocks of 128 (mlasi.h MLAS_SGEMM_STRIDEK)
TINIEST = 2.0 ** -149          # float32's smallest denormal
LARGEST = 2.0 ** 128           # every float32 below it with 24 significant bits is exact


def integerize(imp, act: Act, where: str):
    """Express act's float value as (clamp(q, lo, hi) + offset[c]) * unit exactly.

    Returns (ir value to use, offset vector per IR channel, unit).  Materializes an IR
    clamp when a Relu/Clip sits between the quantizer and the matmul.
    """
    n = imp.ir.type(act.ir).channels
    unit, offset, lo, hi = None, np.zeros(n, np.int64), None, None
    for op in act.ops:
        kind = op[0]
        if kind == "dequantize" and unit is None:
            scale = np.asarray(op[1], np.float64)
            if not is_pow2(scale) or scale.size > 1 and not (scale == scale.flat[0]).all():
                raise FloatScales(f"{where}: the input's scale {_show(op[1])} is not one power of two; "
                                  "onnxruntime's float32 products would round, so no integer program "
                                  "can match them bit-exactly")
            unit = float(scale.flat[0])
            offset = offset - np.broadcast_to(np.asarray(op[2], np.int64), (n,))
        elif kind == "add" and unit is not None:
            b = np.broadcast_to(np.asarray(op[1], np.float64), (n,)) / unit
            if not (np.floor(b) == b).all() or np.abs(b).max() >= EXACT_LIMIT:
                raise TinyccError(f"{where}: an Add before it puts the input off the "
                                  f"quantization grid (scale {unit})")
            offset = offset + b.astype(np.int64)
        elif kind == "mul" and unit is not None and is_pow2(op[1]) and np.asarray(op[1]).size == 1:
            unit *= float(op[1])
        elif kind in ("relu", "clip") and unit is not None:
            # clamp(v + offset) == clamp(v, bound - offset) + offset; bounds must be one number
            bounds = [0.0, None] if kind == "relu" else [op[1], op[2]]
            new = []
            for b in bounds:
                if b is None:
                    new.append(None)
                    continue
                k = float(b) / unit - offset
                if not (k == np.floor(k)).all() or not (k == k[0]).all():
                    raise TinyccError(f"{where}: a {kind} bound {b} before it is off the "
                                      f"quantization grid (scale {unit})")
                new.append(int(k[0]))
            lo = new[0] if lo is None else (lo if new[0] is None else max(lo, new[0]))
            hi = new[1] if hi is None else (hi if new[1] is None else min(hi, new[1]))
        else:
            raise TinyccError(f"{where}: its input is not an exactly quantized tensor "
                              f"(float op {kind!r} on it cannot be computed on integers)")
    if unit is None:
        unit = 1.0   # an integer tensor used directly (e.g. Cast-free int input)
    ir = act.ir
    rlo, rhi = channel_range(imp.ir, ir)
    if (lo is not None and lo > rlo.min()) or (hi is not None and hi < rhi.max()):
        ir = imp.emit("clamp", act.ir + ".clamp", [act.ir], {"lo": lo, "hi": hi})
    return ir, offset, unit


def _show(v):
    v = np.asarray(v)
    return str(v.item()) if v.size == 1 else f"[{v.flat[0]}, ...]"


def weight_integers(w: Const, where: str):
    """Integer weights [K, N] and per-column power-of-two units of a 2-D weight."""
    if w.qint is None:
        raise TinyccError(f"{where}: weight is a float tensor; weights must be constant "
                          "integers behind a DequantizeLinear")
    if w.value.ndim != 2:
        raise TinyccError(f"{where}: weight has shape {list(w.value.shape)}, need 2-D")
    scale = np.asarray(w.qscale, np.float64)
    if not (scale == scale[:1, :]).all():
        raise TinyccError(f"{where}: weight scale varies along the input axis "
                          f"(DequantizeLinear '{w.dq_node}')")
    units = scale[0]
    if not is_pow2(units):
        raise FloatScales(f"DequantizeLinear '{w.dq_node}': weight scale {_show(units)} is not a "
                          "power of two; onnxruntime's float32 products would round, so no "
                          "integer program can match them bit-exactly")
    ints = np.asarray(w.qint, np.int64) - np.asarray(w.qzp, np.int64)
    return ints, units


def on_accumulator_grid(imp, x: Act, w: Const, bias, alpha: float) -> bool:
    """Whether a float bias is an integer number of accumulator units (scale_x * scale_w)."""
    units = weight_integers(w, "")[1]
    unit = next((float(np.asarray(op[1]).flat[0]) for op in x.ops if op[0] == "dequantize"), 1.0)
    b = np.broadcast_to(np.asarray(bias, np.float64), units.shape) / (unit * units * alpha)
    return bool((np.floor(b) == b).all() and np.abs(b).max() < EXACT_LIMIT)


def emit_matmul(imp, x: Act, w: Const, rows: np.ndarray, out_shape, where: str, name: str,
                bias: np.ndarray | None = None, alpha: float = 1.0) -> Act:
    """x's IR elements `rows` (ONNX contraction order) times weight w [K, N]."""
    ints, units = weight_integers(w, where)
    if ints.shape[0] != rows.size:
        raise TinyccError(f"{where}: contraction size {rows.size} does not match weight {list(ints.shape)}")
    ir_x, offset, unit = integerize(imp, x, where)
    n_in = imp.ir.type(ir_x).size
    offset = np.repeat(offset, n_in // offset.size)      # a map's channel offsets per element
    weights = np.zeros((n_in, ints.shape[1]), np.int64)
    np.add.at(weights, rows, ints)
    acc_bias = offset[rows] @ ints
    out_units = unit * units * alpha
    if bias is not None:
        acc_bias = acc_bias + bias_in_units(bias, out_units, where)
    check_float32_range(imp, ir_x, offset, unit, ints, units, alpha, acc_bias, where)
    wname = imp.emit_const(w.dq_node or name + ".w", weights)
    acc = imp.emit("matmul", name, [ir_x, wname], {})
    if acc_bias.any():
        acc = imp.emit("bias_add", name + ".bias", [acc], {"bias": compact(acc_bias)})
    warn_inexact(imp, acc, where)
    index = np.arange(ints.shape[1]).reshape(out_shape)
    return Act(acc, index, "float32", [["dequantize", compact(out_units), 0]])


def bias_in_units(bias, out_units: np.ndarray, where: str) -> np.ndarray:
    """A float bias as integers of the accumulator's unit per output channel; refused
    unless every value is an integer number of units below 2**24 (then the float add is
    exact in onnxruntime, whatever order it adds in)."""
    b = np.broadcast_to(np.asarray(bias, np.float64), out_units.shape) / out_units
    if not (np.floor(b) == b).all() or np.abs(b).max() >= EXACT_LIMIT:
        raise TinyccError(f"{where}: bias is not on the accumulator grid (scale_x * scale_w); "
                          "quantize it to int32 with DequantizeLinear(scale = scale_x * scale_w)")
    return b.astype(np.int64)


def warn_inexact(imp, value: str, where: str) -> None:
    """Warn when the sum computed as `value` can leave float32's exact integers."""
    lo, hi = channel_range(imp.ir, value)
    bound = int(np.maximum(np.abs(lo), np.abs(hi)).max())
    if bound >= EXACT_LIMIT:
        imp.warn(f"{where}: partial sums can reach {bound} >= 2^24 units; onnxruntime's float32 "
                 "accumulation may round there, so bit-exactness is not proven")


def check_float32_range(imp, ir_x, offset, unit, ints, units, alpha, acc_bias, where):
    """Refuse scales whose float32 products or sums leave float32's exact range.

    The exactness argument above holds for integers times powers of two that float32
    represents: the accumulator unit must be at least the smallest denormal, 2^-149
    (below it onnxruntime's products round to a denormal or to zero), and every value
    on the way (dequantized inputs and weights, products, partial sums, the bias) must
    stay below 2^128 (above it onnxruntime computes inf, and inf - inf = NaN).  `ints` is
    [taps, outputs]: a conv passes its weights as [C/group * kh * kw, M]."""
    steps = [("the products' scale", unit * units)]
    if alpha != 1.0:
        steps.append(("the scale after alpha", unit * units * alpha))
    for what, scale in steps:
        low = float(np.min(scale))
        if low < TINIEST:
            raise TinyccError(f"{where}: {what} is 2^{int(np.log2(low))} (input {unit} x weight "
                              f"{_show(units)}), below float32's smallest denormal 2^-149; "
                              "onnxruntime's products round there, so no integer program can "
                              "match them bit-exactly")
    rlo, rhi = channel_range(imp.ir, ir_x)
    xmax = int(max(np.abs(rlo).max(), np.abs(rhi).max())) + int(np.abs(offset).max(initial=0))
    wmax = np.abs(ints).max(axis=0, initial=0)
    sums = xmax * np.abs(ints).sum(axis=0) + np.abs(acc_bias)
    worst = max(float(xmax * unit), float((wmax * units).max(initial=0)),
                float((sums * unit * units * max(alpha, 1.0)).max(initial=0)))
    if worst >= LARGEST:
        raise TinyccError(f"{where}: float32 values can reach {worst:.3g} (input scale {unit}, "
                          f"weight scale {_show(units)}), beyond float32's range; onnxruntime "
                          "computes inf or NaN there, which no integer program reproduces")


def gemm_like_shape(x: Act, k: int, where: str, column: bool) -> np.ndarray:
    """IR element numbers of x along the contraction axis (x must be a vector)."""
    shape = x.shape
    if column:
        ok = len(shape) >= 2 and shape[-2] == k and shape[-1] == 1 or shape == (k,)
    else:
        ok = len(shape) >= 1 and shape[-1] == k
    if not ok or int(np.prod(shape)) != k:
        raise TinyccError(f"{where}: activation of shape {list(shape)} is not a single vector of "
                          f"{k} (only batch size 1 per inference is compiled)")
    return x.index.reshape(k)
