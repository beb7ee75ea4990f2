"""The IR's op table (operands and attributes of every op) and the exact integer
arithmetic of requantization, shared by interval analysis and the reference backend."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OpSpec:
    operands: int
    required: frozenset
    optional: frozenset = frozenset()
    has_result: bool = True


PLAN_ATTRS = ("ram_offset", "ram_bytes")   # set by the plan-ram pass
SCHEDULE_ATTRS = ("channel_loop",)          # set by the schedule-channels pass


def _spec(n, req, opt=(), result=True):
    extra = frozenset(PLAN_ATTRS + SCHEDULE_ATTRS) if result else frozenset()
    return OpSpec(n, frozenset(req), frozenset(opt) | extra, result)


REQUANT_ATTRS = ("mult", "rnd", "shift", "rounding", "lo", "hi")
ROUNDINGS = ("floor", "half_even", "half_odd")
WINDOW_ATTRS = ("in_shape", "strides", "pads")      # every 2-D window op
CONV_ATTRS = WINDOW_ATTRS + ("group", "pad_value")
OPS = {
    "input": _spec(0, ("name", "dtype", "shape", "qdtype"), ("scale", "zero_point", "reading")),
    "const": _spec(0, ("values",), ("valueset", "encoding", "codebook", "code_bits")),
    "matmul": _spec(2, ()),
    "bias_add": _spec(1, ("bias",)),
    "add": _spec(2, ("shifts", "bias")),       # (a << shifts[0]) + (b << shifts[1]) + bias
    "gather": _spec(1, ("index", "shape"), ("fill",)),   # y.flat[i] = x.flat[index[i]], or
                                                          # `fill` where index[i] is -1
    "concat": _spec(2, ("shape",)),             # y.flat = a.flat ++ b.flat, y of `shape`
    "requant": _spec(1, REQUANT_ATTRS),
    "clamp": _spec(1, ("lo", "hi")),
    "dense": _spec(2, ("bias",) + REQUANT_ATTRS),
    "conv": _spec(2, CONV_ATTRS),
    "qconv": _spec(2, CONV_ATTRS + ("bias",) + REQUANT_ATTRS),
    "maxpool": _spec(1, WINDOW_ATTRS + ("kernel",)),
    "sumpool": _spec(1, WINDOW_ATTRS + ("kernel", "pad_value")),
    "argmax": _spec(1, ("last",)),
    "output": _spec(1, ("name", "dtype", "shape", "float_ops"), ("index",), False),
}
WEIGHTED = ("matmul", "dense", "conv", "qconv")     # ops whose second operand is a const
WINDOWED = ("conv", "qconv", "maxpool", "sumpool")  # ops reading a [C, H, W] map


def per_channel(value, n: int) -> np.ndarray:
    """An attr that is an int or a per-channel list, as an int64 vector of length n."""
    arr = np.asarray(value, dtype=np.int64)
    return np.full(n, int(arr), np.int64) if arr.ndim == 0 else arr


def shift_round(t, shift, rounding):
    """t / 2**shift rounded down ("floor"), or to nearest with ties to even/odd."""
    t = np.asarray(t, np.int64)
    q = t >> shift
    if rounding != "floor":
        rem = t - (q << shift)
        half = np.where(shift > 0, np.left_shift(1, np.maximum(shift, 1) - 1), 1)
        tie_up = (q & 1) == (1 if rounding == "half_even" else 0)
        q = q + ((rem > half) | ((rem == half) & tie_up))
    return q


def requant_values(x, mult, rnd, shift, rounding, lo, hi):
    """clamp(round((x*mult + rnd) / 2**shift), lo, hi) on int64 arrays (channels last)."""
    y = shift_round(np.asarray(x, np.int64) * mult + rnd, shift, rounding)
    if lo is not None or hi is not None:
        y = np.clip(y, lo, hi)
    return y
