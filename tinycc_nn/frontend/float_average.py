"""QLinearAveragePool (com.microsoft): onnxruntime's float32 window average, compiled where
it is a function of the integer window sum, and refused by name where it is not.

onnxruntime's CPU kernel (contrib_ops/cpu/quantization/qlinear_pool.cc) dequantizes
every input element to float32, t = x_scale * (x - x_zp) (one rounding), adds a window's
in-bounds t in float32 one by one, divides by the element count, then computes
nearbyintf(avg / y_scale + y_zp) (three more roundings) and saturates.  A window whose
kernel covers the whole unpadded map goes to the global average pool instead (kernels.py).

The integer program computes S = sum(x - x_zp) exactly (a sumpool padded with x_zp, so
padded taps add nothing) and maps S to the output.  That is exact only if onnxruntime's
output depends on S alone, not on how the window's values make it up.  For every S of
the proven range, each rounding above is bounded (relative 2^-24), giving an interval
around the exact value x_scale * S / (count * y_scale) + y_zp; where the interval holds
no rounding boundary (or both sides saturate alike) the output is that of S, and the
requantization fit turns the table into an IR requant.  An S whose interval straddles a
boundary is a window where two inputs with the same sum can round differently in
onnxruntime: the model is refused naming the node and that sum.  This happens when the
average lands exactly on a half, e.g. equal input and output scales and a 2x2 window
(a sum of 4k + 2 averages to k + 0.5): the QDQ graphs onnxruntime's quantizer writes
share the scale across an AveragePool, so those are refused; QOperator models, which
calibrate the output scale, usually compile.
"""
from __future__ import annotations

import numpy as np

from ..errors import TinyccError
from ..hostio import QRANGE
from ..ir import channel_range
from . import window

U = 2.0 ** -24              # float32's unit roundoff
MAX_TABLE = 1 << 22         # window sums per model checked one by one
MIN_SCALE = 2.0 ** -100     # relative error bounds need normal float32 products


def qlinear_average_pool(imp, node, args, where, attrs, operands, global_pool):
    """`operands` = (x Act, x_scale, x_zp, y_scale, y_zp, y_dtype) read by kernels.py;
    `global_pool` is its QLinearGlobalAveragePool, which onnxruntime falls back to."""
    x, x_s, x_zp, y_s, y_zp, y_dtype = operands
    if attrs.get("channels_last", 0):
        raise TinyccError(f"{where}: channels_last=1 is not supported (NCHW maps only)")
    if y_dtype != x.dtype:
        raise TinyccError(f"{where}: output {y_dtype} differs from input {x.dtype}")
    x, (c, h, w) = window.map_input(imp, x, where, node.op_type)
    kernel, strides, pads = window.pool_window(node, attrs, where, h, w)
    if kernel == [h, w] and not any(pads):
        return global_pool(imp, node, args, where, attrs)
    if min(float(x_s), float(y_s)) < MIN_SCALE:
        raise TinyccError(f"{where}: scales {float(x_s):.9g}, {float(y_s):.9g} below 2^-100 make "
                          "float32 products lose precision in ways no bound covers")
    taps = kernel[0] * kernel[1]
    name = node.output[0]
    acc = imp.emit("sumpool", name, [x.ir], {"in_shape": [c, h, w], "kernel": kernel,
                                             "strides": strides, "pads": pads,
                                             "pad_value": int(x_zp)})
    if x_zp:
        acc = imp.emit("bias_add", name + ".bias", [acc], {"bias": -int(x_zp) * taps})
    imp.reading = "integer"
    q_lo, q_hi = channel_range(imp.ir, x.ir)
    s_lo, s_hi = channel_range(imp.ir, acc)
    if int((s_hi - s_lo + 1).sum()) > MAX_TABLE:
        raise TinyccError(f"{where}: window sums span more than {MAX_TABLE} values to check")
    table = [_outputs(np.arange(s_lo[k], s_hi[k] + 1), taps, int(q_lo[k]) - x_zp,
                      int(q_hi[k]) - x_zp, float(x_s), float(y_s), y_zp, y_dtype, where)
             for k in range(len(s_lo))]

    def f(a):           # a: [channels, n] window sums, row k of channel k
        return np.stack([table[k][a[k] - s_lo[k]] for k in range(a.shape[0])])

    return [imp.requantize_fn(window._map_act(acc, imp, [], "int32"), f, y_dtype, where)]


def _outputs(s: np.ndarray, taps: int, d_lo: int, d_hi: int, x_s: float, y_s: float,
             y_zp: int, y_dtype: str, where: str) -> np.ndarray:
    """onnxruntime's output for each window sum s (d = x - x_zp in [d_lo, d_hi]), or
    TinyccError when some s can round two ways."""
    if x_s == y_s:
        hint = ("; its input and output scales are equal, as onnxruntime's quantizer writes "
                "an AveragePool in QDQ format (its QOperator format calibrates the output "
                "scale, which usually compiles), or use MaxPool or GlobalAveragePool")
    else:
        hint = "; use MaxPool, GlobalAveragePool or power-of-two scales"
    s = s.astype(np.float64)
    # sum |d_i|: |s| when all d_i have one sign, at most taps * max |d| otherwise
    mag = np.abs(s) if d_lo >= 0 or d_hi <= 0 else np.full_like(s, taps * max(-d_lo, d_hi))
    # t_i = x_s d_i (1 + e_i), then taps - 1 additions, each off by u * (sum of |t|)
    sum_err = x_s * mag * (U + (taps - 1) * U * (1 + U))
    b = x_s * s / (taps * y_s)
    e1 = sum_err / (taps * y_s)
    e2 = e1 * (1 + U) ** 2 + np.abs(b) * (2 * U + U * U)      # the two divisions
    err = (e2 + U * (np.abs(b) + e2 + abs(y_zp))) * 1.01 + 8 * 2.0 ** -53 * (np.abs(b) + abs(y_zp))
    exact = b + y_zp
    lo, hi = QRANGE[y_dtype]
    below = np.clip(np.rint(exact - err), lo, hi)
    above = np.clip(np.rint(exact + err), lo, hi)
    split = np.flatnonzero(below != above)
    if split.size:
        k = int(split[0])
        raise TinyccError(
            f"{where}: onnxruntime averages the window in float32, and a window sum of "
            f"{int(s[k])} gives {float(exact[k]):.9g} before rounding, within float32's error "
            "of a rounding boundary: two windows with that sum can round differently, so no "
            f"integer program reproduces it{hint}")
    return below.astype(np.int64)
