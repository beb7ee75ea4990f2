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
MAX_SHIFT = 40
CHUNK = 1 << 20        # thresholds searched at once (channels x levels)
ROUNDINGS = ("floor", "half_even", "half_odd")


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
    step = max(1, CHUNK // y_lo.size)      # a bounded working set, however many levels
    if count > step:
        return np.concatenate([_thresholds(f, a_lo, a_hi, y_lo + k, min(step, count - k))
                               for k in range(0, count, step)], axis=1)
    return _thresholds(f, a_lo, a_hi, y_lo, count)


def _thresholds(f, a_lo, a_hi, y_lo, count):
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


def _constraints(t, v, shift, rounding, a_lo, a_hi, y_lo, y_hi, lo, hi):
    """The fit as linear constraints on (mult, rnd): rnd >= d - mult*f (lower) and
    rnd <= c - mult*e (upper), as arrays (d, f) and (c, e): int64 while every
    c - mult*e stays inside it for mult < MAX_MULT, Python ints (object) beyond."""
    small = (max(abs(y_lo), abs(y_hi)) < 1 << 20 and max(abs(a_lo), abs(a_hi)) < 1 << 37)
    dtype = np.int64 if small else object      # t and v lie inside those bounds
    t = np.asarray(t, np.int64).astype(dtype)
    b = _boundary(np.asarray(v, np.int64).astype(dtype), shift, rounding)
    d, f, c, e = [b], [t], [b - 1], [t - 1]     # g(T) reaches v, g(T - 1) does not
    if y_lo > lo:      # the bottom is not saturated by the clamp: g(a_lo) must reach y_lo
        d.append(np.array([_boundary(y_lo, shift, rounding)], dtype))
        f.append(np.array([a_lo], dtype))
    if y_hi < hi:      # nor the top: g(a_hi) must stay below y_hi + 1
        c.append(np.array([_boundary(y_hi + 1, shift, rounding) - 1], dtype))
        e.append(np.array([a_hi], dtype))
    return tuple(np.concatenate(x).astype(dtype) for x in (d, f, c, e))


def _rnd_for(mult, cons):
    """The rnd closest to 0 satisfying the constraints for `mult`, or None."""
    d, f, c, e = cons
    r_min = int((d - mult * f).max()) if d.size else None
    r_max = int((c - mult * e).min()) if c.size else None
    if r_min is not None and r_max is not None and r_min > r_max:
        return None
    r = 0 if r_min is None else max(r_min, 0)
    return r if r_max is None else min(r, r_max)


def _mult_interval(cons):
    """All mult in [1, MAX_MULT) satisfying every lower/upper pair, as (m_lo, m_hi)
    (empty: m_lo > m_hi).

    For a given mult the rnd room is h(mult) = min_j(c_j - mult*e_j) - max_i(d_i - mult*f_i):
    a minimum of linear functions minus a maximum of linear functions, so concave, and the
    mults with h >= 0 form one interval.  A ternary search finds h's peak and two binary
    searches its ends, each step one pass over the constraints: memory linear in the
    levels (every pair at once took levels x levels, 32 GiB for a 16-bit output)."""
    m_lo, m_hi = 1, MAX_MULT - 1
    d, f, c, e = cons
    if not d.size or not c.size:
        return m_lo, m_hi

    def room(m):
        return (c - m * e).min() - (d - m * f).max()

    lo, hi = m_lo, m_hi
    while hi - lo > 2:                 # the peak of a concave function (plateaus only on top)
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if room(m1) < room(m2):
            lo = m1 + 1
        else:
            hi = m2
    peak = max(range(lo, hi + 1), key=room)
    if room(peak) < 0:
        return 1, 0
    lo, hi = m_lo, peak                # the first mult with room >= 0
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if room(mid) >= 0 else (mid + 1, hi)
    first = lo
    lo, hi = peak, m_hi                # the last
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if room(mid) >= 0 else (lo, mid - 1)
    return first, lo


def _fit_channel(t, v, a_lo, a_hi, y_lo, y_hi, lo, hi, hint=None, roundings=ROUNDINGS,
                 mult_one=False):
    """(mult, rnd, shift, rounding) reproducing one channel exactly (mult_one: only 1)."""
    def cons(shift, rounding):
        return _constraints(t, v, shift, rounding, a_lo, a_hi, y_lo, y_hi, lo, hi)

    if hint is not None and hint[3] in roundings:
        # the hint's multiplier at its shift, then at nearby shifts: channels whose
        # scales differ by powers of two then share one multiplier up to a power of
        # two, which targets without a per-channel multiply need (Padauk)
        for shift in sorted(range(MAX_SHIFT + 1), key=lambda s: abs(s - hint[2])):
            r = _rnd_for(hint[0], cons(shift, hint[3]))
            if r is not None:
                return hint[0], r, shift, hint[3]
            if hint[0] == 1:      # a pure shift: the search below tries every shift
                break
    if y_lo == y_hi:
        return 0, y_lo, 0, roundings[0]
    for rounding in roundings:          # cheapest first: no multiplier at all
        for shift in range(MAX_SHIFT + 1):
            r = _rnd_for(1, cons(shift, rounding))
            if r is not None:
                return 1, r, shift, rounding
    if mult_one:
        raise FitError(-1, "no shift alone reproduces it")
    for rounding in roundings:          # then the smallest shift that admits a multiplier
        for shift in range(MAX_SHIFT + 1):
            cs = cons(shift, rounding)
            m_lo, m_hi = _mult_interval(cs)
            if m_lo > m_hi:
                continue
            pow2 = 1 << max(m_lo - 1, 0).bit_length()
            mult = pow2 if pow2 <= m_hi else m_lo
            r = _rnd_for(mult, cs)
            if r is not None:
                return mult, r, shift, rounding
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
    n = a_lo.size
    levels = []
    for c in range(n):
        k = int(y_hi[c] - y_lo[c])
        levels.append((t[c, :k], int(y_lo[c]) + 1 + np.arange(k, dtype=np.int64)))

    def channel(c, hint=None, roundings=ROUNDINGS, mult_one=False):
        tc, vc = levels[c]
        return _fit_channel(tc, vc, int(a_lo[c]), int(a_hi[c]), int(y_lo[c]), int(y_hi[c]),
                            lo, hi, hint, roundings, mult_one)

    # The op has one rounding rule.  The channel with the most levels pins the shift
    # down best, so it goes first and the others try its (mult, shift) before anything
    # else; constant channels go last and reuse it too.  A pure shift in any rounding
    # beats a multiplier in any rounding.
    order = sorted(range(n), key=lambda c: -int(y_hi[c] - y_lo[c]))
    for mult_one in (True, False):
        for rounding in ROUNDINGS:
            try:
                params, hint = {}, None
                for c in order:
                    params[c] = channel(c, hint, (rounding,), mult_one and y_hi[c] > y_lo[c])
                    if params[c][0]:
                        hint = params[c]
            except FitError:
                continue
            if not mult_one:
                params = _one_odd_part(params, levels, a_lo, a_hi, y_lo, y_hi, lo, hi,
                                       rounding, order)
            mult, rnd, shift = (np.array([params[c][i] for c in range(n)], np.int64)
                                for i in range(3))
            return Fit(mult, rnd, shift, rounding, lo, hi, y_lo, y_hi)
    for c in order:        # name a channel that no rounding can reproduce
        try:
            channel(c)
        except FitError as e:
            raise FitError(c, str(e).split(": ", 1)[1]) from None
    raise FitError(order[0], "the channels need different rounding rules")


def _odd(m: int) -> int:
    return m >> ((m & -m).bit_length() - 1) if m else 0


def _one_odd_part(params, levels, a_lo, a_hi, y_lo, y_hi, lo, hi, rounding, order):
    """`params` with every channel's multiplier one odd number times a power of two,
    when the channels' exact intervals allow it (else `params` as it is).

    Channels whose scales differ by powers of two (per-channel weight scales) have real
    multipliers that do too, but each channel's own smallest fit need not keep that:
    71 and 569 where 71 and 568 would also be exact.  A target without a multiply per
    channel (Padauk) needs one odd part, so each candidate (the channels' own odd parts,
    then those of the widest channel's exact intervals, shift by shift) is tried: every
    channel must reach it, times a power of two, inside its exact interval at some
    shift."""
    if len({_odd(p[0]) for p in params.values()}) <= 1:
        return params
    cache = {}

    def fit_at(c, shift):
        if (c, shift) not in cache:
            t, v = levels[c]
            cons = _constraints(t, v, shift, rounding, int(a_lo[c]), int(a_hi[c]),
                                int(y_lo[c]), int(y_hi[c]), lo, hi)
            cache[c, shift] = (cons, _mult_interval(cons))
        return cache[c, shift]

    def with_odd(c, odd):
        for shift in range(MAX_SHIFT + 1):
            cons, (m_lo, m_hi) = fit_at(c, shift)
            if m_lo > m_hi:
                continue
            m = odd << (-(-m_lo // odd) - 1).bit_length()     # the first odd*2^k >= m_lo
            r = _rnd_for(m, cons) if m <= m_hi else None
            if r is not None:
                return m, r, shift, rounding
        return None

    def candidates():
        yield from sorted({_odd(p[0]) for p in params.values()} - {0})   # the channels' own
        for shift in range(MAX_SHIFT + 1):                             # then the widest's
            _, (m_lo, m_hi) = fit_at(order[0], shift)
            for m in range(m_lo, min(m_hi, m_lo + 8) + 1):
                yield _odd(m)

    tried = set()
    for odd in candidates():
        if odd in tried:
            continue
        tried.add(odd)
        found = {}
        for c in order:
            found[c] = with_odd(c, odd)
            if found[c] is None:
                break
        else:
            return found
    return params
