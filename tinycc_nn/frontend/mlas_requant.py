"""MLAS's requantization of an int32 accumulator, as exact IR requants.

onnxruntime's integer kernels end in MlasRequantizeOutput (mlas/lib/quantize.cpp):
saturate(round_half_even(float32(acc) * scale) + zero_point), scale a float32 per column.
That is a monotone function of acc per channel, so the requantization fit reproduces it
with one multiplier and shift, or, where the float32 product's own rounding defeats every
multiplier, with two requants in a row (a fixed grid, then the output), each channel
checked value by value; otherwise the model is refused saying what to change.
"""
from __future__ import annotations

import numpy as np

from ..errors import TinyccError
from ..ir import channel_range
from .values import Act, compact


def _show(v) -> str:
    v = np.asarray(v, np.float32).reshape(-1)
    return f"{v[0].item():.9g}" if v.size == 1 else f"scale[c] ({v.size} channels)"


def requantize(imp, acc: Act, scale, y_zp, y_dtype: str, where: str) -> Act:
    """MlasRequantizeOutput: saturate(round_half_even(float32(acc) * scale) + y_zp)."""
    ops = [["dequantize", compact(np.asarray(scale, np.float32)), 0],
           ["quantize", 1.0, int(y_zp), y_dtype]]
    try:
        return imp.requantize(acc, ops, y_dtype, where)
    except TinyccError as e:
        two = _double_rounding(imp, acc, scale, int(y_zp), y_dtype, ops)
        if two is not None:
            return two
        raise TinyccError(
            f"{e} (onnxruntime rounds twice here, float32(acc) * {_show(scale)} to float32 "
            "and then to an integer, and for this channel no multiplier-and-shift gives the "
            "same steps); to compile it, change that scale: quantize again with other "
            "calibration data, or train with power-of-two scales (tinycc_nn.qat)") from None


MAX_SPAN = 1 << 22      # accumulator values per channel checked one by one


def _double_rounding(imp, acc: Act, scale, y_zp: int, y_dtype: str, ops) -> Act | None:
    """The requantization as two IR requants, or None: onnxruntime's float32 product rounds
    to 24 significant bits before the rounding to an integer, and where that double
    rounding matches no single multiplier-and-shift it often matches a double rounding
    on a fixed grid: y1 = round_half_even(acc * M / 2^(E - j)) with scale = M / 2^E
    exactly (M the float32's 24-bit significand), then round_half_even(y1 / 2^j) + zero
    point, saturated.  Each channel takes the first j that reproduces onnxruntime on every
    accumulator value of its proven range (checked one by one, so ranges up to 2^22)."""
    from .. import hostio
    from ..ir import requant_values
    a_lo, a_hi = channel_range(imp.ir, acc.ir)
    if (a_hi - a_lo).max() >= MAX_SPAN:
        return None
    n = a_lo.size
    s = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1), (n,))
    lo, hi = hostio.QRANGE[y_dtype]
    rounding = "half_even" if y_zp % 2 == 0 else "half_odd"   # the zero point folded into rnd
    mult, shift1, shift2, y1_lo, y1_hi = [], [], [], [], []
    for c in range(n):
        a = np.arange(a_lo[c], a_hi[c] + 1)
        want = hostio.apply_float_ops(a, [["dequantize", float(s[c]), 0], ops[1]])
        sig, exp = np.frexp(s[c])
        m, e = int(sig * (1 << 24)), 24 - int(exp)        # s[c] == m / 2^e exactly
        for j in range(4, e):
            y1 = requant_values(a, m, 0, e - j, "half_even", None, None)
            got = requant_values(y1, 1, y_zp << j, j, rounding, lo, hi)
            if np.array_equal(got, want):
                break
        else:
            return None
        mult.append(m)
        shift1.append(e - j)
        shift2.append(j)
        y1_lo.append(int(y1.min()))
        y1_hi.append(int(y1.max()))
    first = imp.emit("requant", acc.ir + ".q1", [acc.ir],
                     {"mult": compact(mult), "rnd": 0, "shift": compact(shift1),
                      "rounding": "half_even", "lo": min(y1_lo), "hi": max(y1_hi)})
    shift2 = np.asarray(shift2, np.int64)
    second = imp.emit("requant", acc.ir + ".q2", [first],
                      {"mult": 1, "rnd": compact(y_zp * (1 << shift2)), "shift": compact(shift2),
                       "rounding": rounding, "lo": lo, "hi": hi})
    return Act(second, acc.index, y_dtype)
