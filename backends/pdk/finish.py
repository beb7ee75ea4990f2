"""The finish of a neuron: combine its plane sums, shift, round, clamp, store.

A finish routine is a *head* (acc += u + sum_k coef_k * P_k, then the multiply when the
layer multiplier is not a power of two), one per plane structure, and a *tail* (shift,
tie fix, clamp, store, zero the sums for the next neuron) that heads with the same
output shape share by jumping into it.  `Tail` is everything the tail's code depends on;
`plan_tails` gives every layer its tail, so that layers which differ only in incidental
choices (a shift of 0 or of 3, floor or half-even rounding, ReLU to 0..127 or 0..255)
share one routine, told apart by the byte they pass in A:

* `--opt speed` writes the shift count into the code (a tail per layer shape);
* otherwise the count arrives in A.  When the layers sharing a tail all shift, all
  round alike and all clamp to one bound, A is just the count.  Otherwise A is a
  *parameter byte*: bit 0 presets "not a tie" (a layer that shifts nothing, or rounds
  down), bits 1-6 hold the count + 1 (the loop tests before it shifts, so 0 shifts
  nothing), bit 7 picks the second of two upper bounds.  The head moves it to `ptr`
  (whose bit 0 is the tie record, bit 7 the bound choice) and the count to `wb`.

No flag is read whose value the references disagree on (see `flaglint`): a zero test
after a load is a compare-and-skip (`ceqsn a, #0`), Z is read only after `or`.
"""
from __future__ import annotations

from dataclasses import dataclass

from tinycc_nn.errors import TinyccError

from .asm import h
from .layers import DensePlan
from .routines import muladd

FLAG = 0x00
Z, C = 0, 1
COUNT_MAX = 62            # count + 1 in bits 1-6 of the parameter byte


@dataclass(frozen=True)
class Tail:
    acc_bytes: int
    out_bytes: int
    shift: int | None     # the count in the code (--opt speed); None: it arrives in A
    tie: str | None       # "even" / "odd": the tie fix of half-even / half-odd; None: floor
    param: bool           # A is the parameter byte (see the module docstring)
    low: bool             # clamp below at 0
    bounds: tuple         # upper clamps: (), (hi,), or (hi, hi when bit 7 is set)

    @property
    def loop(self) -> bool:
        """Whether the shift is a loop over a count that arrives at run time."""
        return self.shift is None


def _tie(p: DensePlan) -> str | None:
    if p.shift == 0 or p.rounding == "floor":
        return None
    return "odd" if p.rounding == "half_odd" else "even"


def _bound(p: DensePlan) -> int:
    """The upper bound a layer clamps to in a tail that clamps: its own, or, when its
    clamp is proven inactive, any bound at or above its range: its span."""
    return p.clamp_high if p.clamp_high is not None else p.span


def plan_tails(plans, speed: bool) -> dict:
    """Layer name -> its Tail.  With the count at run time, layers of one output shape
    and tie kind form a family that shares a tail (at most two upper bounds each)."""
    tails, families = {}, {}
    for p in plans:
        own = Tail(p.acc_bytes, p.out_bytes, p.shift if speed and p.shifts is None else None,
                   _tie(p), False, p.clamp_low, () if p.clamp_high is None else (p.clamp_high,))
        if (speed and p.shifts is None) or p.shifts is not None or p.shift > COUNT_MAX:
            tails[p.name] = own      # (per-neuron counts come from the rows as they are)
            continue
        odd = _tie(p) == "odd"
        families.setdefault((p.acc_bytes, p.out_bytes, odd), []).append(p)
    for (n, out, odd), members in families.items():
        low = any(p.clamp_low for p in members)
        clamped = any(p.clamp_high is not None for p in members)
        bound = {p.name: _bound(p) if clamped else None for p in members}
        distinct = sorted({b for b in bound.values() if b is not None})
        pairs = [tuple(distinct[i:i + 2]) for i in range(0, len(distinct), 2)] or [()]
        for pair in pairs:
            group = [p for p in members if bound[p.name] is None or bound[p.name] in pair]
            ties = {_tie(p) for p in group}
            tie = "odd" if odd else ("even" if "even" in ties else None)
            param = len(pair) == 2 or any(p.shift == 0 for p in group) and \
                any(p.shift > 0 for p in group) or len(ties) > 1
            tail = Tail(n, out, None, tie, param, low, pair)
            for p in group:
                tails[p.name] = tail
    return tails


def parameter(p: DensePlan, tail: Tail) -> int | None:
    """What the layer passes in A: the parameter byte, the count, or None (nothing)."""
    if tail.param:
        preset = 1 if _tie(p) is None else 0
        high = 0x80 if len(tail.bounds) == 2 and _bound(p) == tail.bounds[1] else 0
        return high | (p.shift + 1) << 1 | preset
    if tail.loop and p.shifts is None and p.shift:
        return p.shift
    return None


def head_key(p: DensePlan, tail: Tail) -> tuple:
    """Layers whose finish routines are identical share one."""
    return (p.planes.coefs, tuple(p.pb), p.has_u, p.post_mult, tail)


def emit(gen, p: DensePlan, tail: Tail) -> None:
    """acc (= P0 when aliased) += u + sum_k coef_k * P_k (mod 2^(8n): the result fits,
    so the order of the terms does not matter); then the tail."""
    n = p.acc_bytes
    if tail.param:
        gen.op(f"mov {gen.r('ptr')}, a", "bit 0: not a tie; bit 7: the bound")
        gen.op("sr a")
        if len(tail.bounds) == 2:
            gen.op("and a, #0x3f")
        gen.op(f"mov {gen.r('wb')}, a", "shift count + 1")
    elif tail.loop and p.shift > 0:
        gen.op(f"mov {gen.r('wb')}, a", "shift count")
    gen.asm.comment("acc += u + sum_k coef_k * P_k")
    if p.has_u:
        for b in range(n):
            gen.op(f"mov a, {gen.r('u', b)}")
            gen.op(f"{'add' if b == 0 else 'addc'} {gen.r('acc', b)}, a")
    for k, coef in enumerate(p.planes.coefs):
        if k == 0 and gen.acc_alias:
            continue
        muladd(gen, "acc", n, f"p{k}", gen.layout.regs[f"p{k}"][1], coef)
    if p.post_mult != 1:
        post_multiply(gen, n, p.post_mult)
    if tail in gen.tails:         # another plane structure already wrote this tail
        gen.op(f"goto {gen.tails[tail]}", "shift, round, clamp, store")
        return
    gen.tails[tail] = gen.fresh("finish_tail")
    gen.asm.label(gen.tails[tail], "shared by every finish with this output shape")
    emit_tail(gen, tail, p.shift > 0)


def emit_tail(gen, t: Tail, shifts: bool) -> None:
    if t.param or (t.loop and shifts) or (t.shift or 0) > 0:
        _shift(gen, t)
    after = _clamp(gen, t)
    for b in range(t.out_bytes):
        gen.op(f"mov a, {gen.r('oidx')}")
        gen.op(f"mov {gen.r('ptr')}, a")
        gen.op(f"mov a, {gen.r('acc', b)}")
        gen.op(f"idxm {gen.r('ptr')}, a", "store")
        gen.op(f"inc {gen.r('oidx')}")
    gen.clear_sums()
    gen.op("ret")
    if after:
        after()


def _shift(gen, t: Tail) -> None:
    """Arithmetic shift right (the rounding is in the constant: a floor), recording in
    ptr.0 whether a tie was shifted out, then the tie fix."""
    n = t.acc_bytes
    tie = t.tie is not None
    gen.asm.comment(f"arithmetic shift right by {t.shift if not t.loop else 'wb'}"
                    + (", ptr.0 = not a tie" if tie else ""))
    if tie and not t.param:
        gen.op(f"clear {gen.r('ptr')}")
    head = gen.fresh("shr") if t.loop else None
    test = gen.fresh("shr_test") if t.param else None
    if test:
        gen.op(f"goto {test}", "the count may be 0")
    if head:
        gen.asm.label(head)
    for _ in range(1 if t.loop else t.shift):
        gen.op(f"mov a, {gen.r('acc', n - 1)}")
        gen.op("sl a", "C = sign")
        for b in reversed(range(n)):
            gen.op(f"src {gen.r('acc', b)}")
        if tie:   # a tie shifts out all zeros (half to even) or all ones (to odd)
            gen.op(f"{'t0sn' if t.tie == 'even' else 't1sn'}.io {h(FLAG)}, #{C}")
            gen.op(f"set1 {gen.r('ptr')}, #0")
    if test:
        gen.asm.label(test)
    if head:
        gen.op(f"dzsn {gen.r('wb')}")
        gen.op(f"goto {head}")
    if tie:
        gen.op(f"t1sn {gen.r('ptr')}, #0", f"a tie: round to {t.tie}")
        gen.op(f"{'set0' if t.tie == 'even' else 'set1'} {gen.r('acc')}, #0")


def _clamp(gen, t: Tail):
    """Clamp acc to [0, hi] (the stored range); returns a callable that writes code
    placed after the tail's ret, or None."""
    n = t.acc_bytes
    if t.bounds and t.out_bytes > 1:
        raise TinyccError("a saturating multi-byte output is not supported by the pdk backend")
    if t.low and t.bounds == (255,) and t.out_bytes == 1 and n > 1:
        return _byte_clamp(gen, n)
    if t.low:
        ok = gen.fresh("nonneg")
        gen.op(f"t1sn {gen.r('acc', n - 1)}, #7", "clamp below")
        gen.op(f"goto {ok}")
        for b in range(n):
            gen.op(f"clear {gen.r('acc', b)}")
        gen.asm.label(ok)
    if not t.bounds:
        return None
    if n > 1:       # acc >= 0 here: upper bytes not zero -> the low byte to 0xff
        _unless_upper_zero(gen, n, "clamp above")
        gen.op("mov a, #0xff")
        gen.op(f"or {gen.r('acc', 0)}, a", "(A is 0 when in range)" if n == 2 else "")
    if t.bounds == (255,):
        return None
    gen.op(f"mov a, #{h(t.bounds[0])}", "then acc0 = min(acc0, bound)")
    if len(t.bounds) == 2:        # the bound the layer picked with bit 7
        gen.op(f"t0sn {gen.r('ptr')}, #7")
        gen.op(f"mov a, #{h(t.bounds[1])}")
    gen.op(f"sub a, {gen.r('acc', 0)}", "bound - acc0, C when acc0 > bound")
    gen.op(f"t0sn.io {h(FLAG)}, #{C}")
    gen.op(f"add {gen.r('acc', 0)}, a", "acc0 + (bound - acc0)")
    return None


def _unless_upper_zero(gen, n: int, comment: str) -> None:
    """A test that skips the next instruction when acc's bytes above the first are all
    zero (A is then 0; otherwise their top byte, or their OR)."""
    gen.op(f"mov a, {gen.r('acc', n - 1)}", comment)
    if n == 2:
        gen.op("ceqsn a, #0x00")
    else:
        for b in range(1, n - 1):
            gen.op(f"or a, {gen.r('acc', b)}")
        gen.op(f"t1sn.io {h(FLAG)}, #{Z}", "Z from or")


def _byte_clamp(gen, n: int):
    """[0, 255] in one test: upper bytes zero -> in range; else the sign picks 0 or
    255 (out of line, after the ret, so the in-range path falls through)."""
    ok, clip = gen.fresh("inrange"), gen.fresh("clip")
    _unless_upper_zero(gen, n, "clamp to [0, 255]")
    gen.op(f"goto {clip}")
    gen.asm.label(ok)

    def out_of_line():
        gen.asm.label(clip)
        if n > 2:     # (A holds the top byte after ceqsn)
            gen.op(f"mov a, {gen.r('acc', n - 1)}")
        gen.op("sl a", "C = sign")
        gen.op("mov a, #0xff")
        gen.op("addc a", "0xff + C: 255, or 0 when negative")
        gen.op(f"mov {gen.r('acc', 0)}, a")
        gen.op(f"goto {ok}")
    return out_of_line


def post_multiply(gen, n: int, mult: int) -> None:
    """acc = mtmp + acc * mult: the combined sums S swap places with the constant that
    finish_group left in mtmp, then shifted copies of S are added for mult's bits
    (two's complement, modulo 2^(8n): the result and every partial one fit).  --opt
    speed unrolls them; else a loop shifts mult out of `mreg` (inline: a call here
    would need a stack level the RAM plan does not have)."""
    gen.asm.comment(f"acc = constant + S * {mult}")
    for b in range(n):
        gen.op(f"mov a, {gen.r('acc', b)}")
        gen.op(f"xch {gen.r('mtmp', b)}", "S <-> the constant")
        gen.op(f"mov {gen.r('acc', b)}, a")
    if gen.opt == "speed":
        muladd(gen, "acc", n, "mtmp", n, mult)
        return
    m = gen.layout.regs["mreg"][1]
    for b in range(m):
        gen.movi("mreg", mult >> (8 * b), byte=b)
    loop, skip = gen.fresh("mul"), gen.fresh("mul_skip")
    gen.asm.label(loop)
    gen.op(f"sr {gen.r('mreg', m - 1)}", "C = the multiplier's next bit")
    for b in reversed(range(m - 1)):
        gen.op(f"src {gen.r('mreg', b)}")
    gen.op(f"t1sn.io {h(FLAG)}, #{C}")
    gen.op(f"goto {skip}")
    for b in range(n):
        gen.op(f"mov a, {gen.r('mtmp', b)}")
        gen.op(f"{'add' if b == 0 else 'addc'} {gen.r('acc', b)}, a")
    gen.asm.label(skip)
    gen.op(f"sl {gen.r('mtmp', 0)}")
    for b in range(1, n):
        gen.op(f"slc {gen.r('mtmp', b)}")
    gen.op(f"mov a, {gen.r('mreg', 0)}")
    if m == 1:
        gen.op("ceqsn a, #0x00", "bits left?")
        gen.op(f"goto {loop}")
        return
    for b in range(1, m):
        gen.op(f"or a, {gen.r('mreg', b)}")
    gen.op(f"t1sn.io {h(FLAG)}, #{Z}", "bits left? (Z from or)")
    gen.op(f"goto {loop}")
