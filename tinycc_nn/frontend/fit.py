"""Fit integer requantization to a float32 computation, exactly.

Between two quantized tensors onnxruntime computes in float32: the accumulator times
its scale, plus a float bias, through Relu/Clip, divided by the output scale, rounded
half to even, plus the zero point, saturated.  Per output channel that whole chain is
a monotone non-decreasing function f from the integer accumulator A to an integer.

We replace f by the integer form

    g(A) = clamp(round((A * mult + rnd) / 2**shift), lo, hi)

with round either floor or to nearest with ties to even or odd (ir.shift_round);
floor is tried first because it is cheaper on the targets; exact ties need
half-to-even, or half-to-odd when an odd zero point is folded into rnd.
and prove g == f on the whole proven interval [A_lo, A_hi] of A: a monotone step
function is fixed by its thresholds T_v = min{A : f(A) >= v}, one per output level v,
which we find by a vectorized binary search over f itself; g has the same thresholds
exactly when rnd satisfies a pair of linear inequalities per level.  So the fit is
exact (zero error, double rounding included) or it is refused; there is no error
bound to state.  With power-of-two scales mult == 1 and shift is the scale ratio; for
other ratios we search the smallest shift whose mult (< 2**24) makes the thresholds
line up, which fails only when f's steps are irregular beyond a 24-bit multiplier.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_MULT = 1 << 24
MAX_SHIFT = 46


@dataclass
class Fit:
    mult: np.ndarray
    rnd: np.ndarray
    shift: np.ndarray
    rounding: str
    lo: int          # clamp bounds applied after the shift
    hi: int
    out_lo: np.ndarray   # per-channel f(A_lo), f(A_hi)
    out_hi: np.ndarray

    def is_clamp_only(self) -> bool:
        return bool((self.mult == 1).all() and (self.rnd == 0).all() and (self.shift == 0).all())


class FitError(Exception):
    def __init__(self, channel: int, detail: str):
        super().__init__(f"channel {channel}: {detail}")
        self.channel = channel


def thresholds(f, a_lo, a_hi, y_lo, y_hi):
    """T[c, k] = min{A in (a_lo, a_hi] : f(A)[c] >= y_lo[c] + 1 + k}; invalid k give junk."""
    count = int((y_hi - y_lo).max()) if y_lo.size else 0
    if count <= 0:
        return np.zeros((y_lo.size, 0), np.int64)
    levels = y_lo[:, None] + 1 + np.arange(count)[None, :]
    left = np.broadcast_to(a_lo[:, None], levels.shape).copy()
    right = np.broadcast_to(a_hi[:, None], levels.shape).copy()
    while True:
        open_ = right - left > 1
        if not open_.any():
            return right
        mid = left + (right - left) // 2
        hit = f(mid) >= levels
        right = np.where(open_ & hit, mid, right)
        left = np.where(open_ & ~hit, mid, left)


def _boundary(v, shift, rounding):
    """Smallest t with round(t / 2**shift) >= v (works on ints and object arrays)."""
    if rounding == "floor" or shift == 0:
        return v * (1 << shift)
    parity = 0 if rounding == "half_even" else 1
    return v * (1 << shift) - (1 << (shift - 1)) + ((v + parity) % 2)


def _bits(a) -> int:
    return max(abs(int(a.min())), abs(int(a.max())) + 1).bit_length() if a.size else 0


def _rnd_interval(t, v, mult, shift, rounding, a_lo, a_hi, y_lo, y_hi, lo, hi):
    """Range [r_min, r_max] of rnd making g match thresholds t of levels v (Python ints)."""
    r_min, r_max = -(1 << 62), 1 << 62
    if t.size:
        if shift + _bits(v) < 61 and mult.bit_length() + _bits(t) < 61:
            t, v = t.astype(np.int64), v.astype(np.int64)     # no overflow: fast path
        b = _boundary(v, shift, rounding)
        r_min = int((b - mult * t).max())
        r_max = int((b - mult * (t - 1)).min()) - 1
    if y_lo > lo:   # the bottom is not saturated by the clamp: g(a_lo) must reach y_lo
        r_min = max(r_min, _boundary(y_lo, shift, rounding) - mult * a_lo)
    if y_hi < hi:   # nor the top: g(a_hi) must stay below y_hi + 1
        r_max = min(r_max, _boundary(y_hi + 1, shift, rounding) - mult * a_hi - 1)
    return r_min, r_max


def _fit_channel(t, v, rounding, a_lo, a_hi, y_lo, y_hi, lo, hi, hint=None):
    if y_lo == y_hi:
        # a constant channel: keep the layer's multiplier and shift when some rnd
        # works (backends then need no special case), else mult = 0
        if hint is not None:
            r_min, r_max = _rnd_interval(t, v, hint[0], hint[1], rounding, a_lo, a_hi,
                                         y_lo, y_hi, lo, hi)
            if r_min <= r_max:
                return hint[0], r_min, hint[1]
        return 0, y_lo, 0
    if t.size >= 2 and t[-1] > t[0]:
        ratio = float(v[-1] - v[0]) / float(t[-1] - t[0])
    else:
        ratio = float(max(v.size, 1))
    tried = set()

    def attempt(mult, shift):
        if (mult, shift) in tried or not 1 <= mult < MAX_MULT or not 0 <= shift <= MAX_SHIFT:
            return None
        tried.add((mult, shift))
        r_min, r_max = _rnd_interval(t, v, mult, shift, rounding, a_lo, a_hi, y_lo, y_hi, lo, hi)
        return (mult, r_min, shift) if r_min <= r_max else None

    if hint is not None and (found := attempt(*hint)):
        return found
    # with mult near 1 the shift is about -log2(ratio); larger shifts buy mult precision
    start = max(0, int(np.floor(-np.log2(ratio))) - 1)
    for shift in range(start, MAX_SHIFT + 1):
        guess = ratio * (1 << shift)
        if guess >= MAX_MULT:
            break
        base = int(np.floor(guess))
        for mult in (base, base + 1, base - 1, base + 2):
            if (found := attempt(mult, shift)):
                return found
    raise FitError(-1, f"no multiplier below {MAX_MULT} and shift up to {MAX_SHIFT} "
                       "reproduces onnxruntime's rounding on the whole accumulator range")


def fit_requant(f, a_lo, a_hi) -> Fit:
    """Fit g to the monotone per-channel function f on [a_lo[c], a_hi[c]].

    f maps an int64 array shaped [C, n] (row c holds accumulator values of channel c)
    to the int64 results, row-wise.
    """
    a_lo = np.asarray(a_lo, np.int64)
    a_hi = np.asarray(a_hi, np.int64)
    y_lo = f(a_lo[:, None])[:, 0].astype(np.int64)
    y_hi = f(a_hi[:, None])[:, 0].astype(np.int64)
    if (y_lo > y_hi).any():
        c = int(np.argmax(y_lo > y_hi))
        raise FitError(c, "the float computation is not monotone in the accumulator")
    lo, hi = int(y_lo.min()), int(y_hi.max())
    t = thresholds(f, a_lo, a_hi, y_lo, y_hi)
    error = None
    for rounding in ("floor", "half_even", "half_odd"):
        try:
            return Fit(*_fit_all(t, rounding, a_lo, a_hi, y_lo, y_hi, lo, hi), rounding,
                       lo, hi, y_lo, y_hi)
        except FitError as e:
            error = e
    raise error


def _fit_all(t, rounding, a_lo, a_hi, y_lo, y_hi, lo, hi):
    n = a_lo.size
    mult, rnd, shift = (np.zeros(n, np.int64) for _ in range(3))
    hint = None
    # constant channels last, so they can take the multiplier the others agreed on
    for c in sorted(range(n), key=lambda c: bool(y_hi[c] == y_lo[c])):
        k = int(y_hi[c] - y_lo[c])
        tc = np.array([int(x) for x in t[c, :k]], dtype=object)
        vc = np.array([int(y_lo[c]) + 1 + i for i in range(k)], dtype=object)
        try:
            mult[c], rnd[c], shift[c] = _fit_channel(tc, vc, rounding, int(a_lo[c]), int(a_hi[c]),
                                                     int(y_lo[c]), int(y_hi[c]), lo, hi, hint)
        except FitError as e:
            raise FitError(c, str(e).split(": ", 1)[1]) from None
        if mult[c]:
            hint = (int(mult[c]), int(shift[c]))    # neighbours usually share the scale ratio
    return mult, rnd, shift
