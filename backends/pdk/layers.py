"""What each dense layer needs on a Padauk core, decided in Python before any code.

Vectors live in RAM as unsigned bytes u = x - lo(x) (offset binary), so the kernel
only ever adds unsigned bytes; lo(x) * sum_i w[i, j] goes into the per-neuron
constant.  The output is stored the same way: its offset times 2**shift is folded
into the constant too, which flips half-even to half-odd rounding when the offset is
odd.  Clamps that interval analysis proves inactive are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tinycc_nn.errors import TinyccError
from tinycc_nn.ir import accumulator_range, channel_range, per_channel, shift_round
from tinycc_nn.passes.requant_as_dense import is_identity

from .planes import Planes, decompose, group_shape, pack_groups

TABLE_MAX = 255           # entries reachable by one pcadd table (index 1..255)


def unsigned_bytes(maximum: int) -> int:
    return max((int(maximum).bit_length() + 7) // 8, 1)


def signed_bytes(bound: int) -> int:
    """Bytes of a two's complement value in [-bound - 1, bound]."""
    return (max(int(bound), 0).bit_length() + 1 + 7) // 8


@dataclass
class DensePlan:
    name: str
    x: str
    k: int
    n: int
    groups: int
    group: int             # inputs per kernel call (and per table fetch)
    wbytes: int            # table bytes per group
    planes: Planes
    pb_raw: int            # bytes the kernel accumulates each plane sum in
    pb: list               # bytes per plane once shifted for its coefficient
    acc_bytes: int
    consts: list           # per neuron constant
    shift: int
    rounding: str
    clamp_low: bool
    clamp_high: int | None  # stored-unit upper bound, when it can be exceeded
    out_lo: int
    out_bytes: int
    rows: np.ndarray       # [N, row bytes]: plane bytes per group, then the constant
    per_segment: int
    uniform_const: bool    # one constant for every neuron: an immediate, not a table column
    ways: int = 1          # neurons per input read (rows per group of them)
    diag: bool = False     # identity weights (a standalone requant): neuron j reads x[j]
    post_mult: int = 1     # a multiplier that is not a power of two: applied once, after
                           # the plane sums are combined with their own small coefficients
    const_base: int = 0    # per-neuron constants = const_base (in u) + a signed delta of
    const_bytes: int = 0   # const_bytes table bytes (0: acc_bytes, no base)
    shifts: tuple | None = None  # per neuron, when they differ (shift is then their max)
    span: int = 255        # stored values lie in [0, span]

    @property
    def units(self) -> int:
        """Table rows: neurons, or groups of `ways` of them."""
        return self.n // self.ways

    @property
    def padded_k(self) -> int:
        """Inputs the kernels read (the last group is padded with zero weight bits)."""
        return self.groups * self.group

    @property
    def uniform_value(self) -> int:
        return self.consts[0] if self.uniform_const else 0

    @property
    def u_value(self) -> int:
        """What u starts from before the input sum: the uniform constant (or the base
        of narrow per-neuron deltas), unless it is added after the multiply (then it
        is the multiply's starting value)."""
        if self.post_mult != 1:
            return 0
        return self.uniform_value if self.uniform_const else self.const_base

    def const_rows(self) -> np.ndarray:
        """The per-neuron constant bytes of the table rows, [n, bytes], little-endian:
        the deltas from const_base, sign-extended by the code that adds them."""
        width = self.const_bytes or self.acc_bytes
        return np.array([[((int(c) - self.const_base) >> (8 * b)) & 0xFF for b in range(width)]
                         for c in self.consts], np.int64).reshape(self.n, width)

    @property
    def has_u(self) -> bool:
        """Whether the finish adds u (the layer's constant and offset * input sum)."""
        return bool(self.planes.offset) or self.u_value != 0


def one_multiplier(mults, rnds, shifts):
    """Per-channel requantization (t = acc * mult + rnd, shifted right by shift) as one
    multiplier for every neuron, which the kernels fold into the plane coefficients:
    channel j's t and shift are both scaled up by 2**up[j], which changes neither the
    floor nor a tie, so mult[j] = m * 2**e[j] becomes m * 2**max(e) everywhere.  Shift
    counts that differ per neuron come from the table rows and are counted down, so
    none may be 0: then everything goes up one more place.  Returns the multiplier and
    the per-channel rnd, shift and up (int64 arrays), or None when the multipliers'
    odd parts differ."""
    mults, rnds, shifts = (np.asarray(v, np.int64) for v in (mults, rnds, shifts))
    if (mults == mults[0]).all():
        up = np.zeros_like(shifts)
    elif (mults <= 0).any():
        return None
    else:
        twos = np.array([(int(v) & -int(v)).bit_length() - 1 for v in mults], np.int64)
        if len(set((mults >> twos).tolist())) > 1:
            return None
        up = twos.max() - twos
    if (shifts + up != shifts[0] + up[0]).any() and (shifts + up == 0).any():
        up = up + 1
    return int(mults[0] << up[0]), rnds << up, shifts + up, up


def plan_dense(graph, name: str, where: str) -> DensePlan:
    x, w_name = graph.operands(name)
    a = graph.attrs(name)
    w = np.asarray(graph.attrs(w_name)["values"], np.int64)
    k, n = w.shape
    xt, yt = graph.type(x), graph.type(name)
    if xt.hi - xt.lo > 255:
        raise TinyccError(f"{where}: its input %{x} spans {xt.lo}..{xt.hi}, more than a byte")
    scaled = one_multiplier(per_channel(a["mult"], n), per_channel(a["rnd"], n),
                            per_channel(a["shift"], n))
    if scaled is None:
        mults = sorted(set(per_channel(a["mult"], n).tolist()))
        raise TinyccError(f"{where}: per-channel multipliers {mults[:4]} are not one "
                          "multiplier times powers of two, which the pdk backend needs "
                          "(it has no per-neuron multiply); quantize the weights per tensor "
                          "(onnxruntime's quantize_static(per_channel=False)), or with "
                          "per-channel scales that differ by powers of two")
    mult, rnd, shifts, up = scaled
    varied = bool((shifts != shifts[0]).any())   # per-channel weight scales: each neuron's
    assert not (varied and (shifts <= 0).any())  # shift count comes from its table row
    shift = int(shifts.max())
    one = np.int64(1)
    xlo, xhi = channel_range(graph, x)
    umax = xhi - xt.lo
    planes = decompose(w)
    # t = acc * mult + rnd.  A power of two scales every plane coefficient (a shift);
    # any other multiplier would make each coefficient's shift-and-add long, so the
    # plane sums are combined with their own coefficients and the sum multiplied once
    post_mult = mult if mult & (mult - 1) else 1
    if post_mult == 1:
        planes = Planes(tuple(c * mult for c in planes.coefs), planes.offset * mult, planes.bits)
    pmax = np.einsum("i,pij->pj", umax, planes.bits.astype(np.int64)) if planes.count else \
        np.zeros((0, n), np.int64)
    pb_raw = unsigned_bytes(pmax.max()) if planes.count else 1
    pb = [max(unsigned_bytes(pmax[p].max() * abs(c)), pb_raw) for p, c in enumerate(planes.coefs)]
    u_max = int(umax.sum())
    consts = ((per_channel(a["bias"], n) + xt.lo * w.sum(axis=0)) * mult
              + rnd - yt.lo * (one << shifts))
    rounding = a["rounding"]
    if rounding != "floor" and yt.lo % 2:
        rounding = "half_odd" if rounding == "half_even" else "half_even"
    if shift == 0:
        rounding = "floor"                 # nothing is shifted out: exact
    elif rounding != "floor":
        consts = consts + (one << (shifts - 1)) - (1 if rounding == "half_odd" else 0)
    (_, _), (t_lo, t_hi) = accumulator_range(graph, name)
    t_lo, t_hi = t_lo << up, t_hi << up
    # the stored value's proven range (rounding is monotone: the ends come from the ends)
    q_lo = shift_round(t_lo - yt.lo * (one << shifts), shifts, rounding)
    q_hi = shift_round(t_hi - yt.lo * (one << shifts), shifts, rounding)
    span = yt.hi - yt.lo
    clamp_low = a["lo"] is not None and bool((q_lo < 0).any())
    clamp_high = span if a["hi"] is not None and bool((q_hi > span).any()) else None
    # Every add into acc is modulo 2^(8n), so only the value the shift sees must fit
    # (signed: its sign drives the shift and the clamps): t less the output offset, plus
    # the rounding constant.  The input sum U is summed in acc before u = offset * U.
    pre_lo = int((t_lo - yt.lo * (one << shifts)).min())
    pre_hi = int((t_hi - yt.lo * (one << shifts)).max()) + (1 << shift)
    acc_bytes = max(signed_bytes(max(-pre_lo - 1, pre_hi)), 1)
    if planes.offset:
        acc_bytes = max(acc_bytes, unsigned_bytes(u_max))
    group, wbytes = group_shape(planes.count)
    groups = -(-k // group)
    # identity weights: no table, neuron j loads x[j] as its plane sum (found from its
    # output address, so one output byte per neuron)
    diag = planes.count == 1 and span <= 255 and is_identity(w)
    plane_bytes = pack_groups(planes.bits, group).reshape(n, -1) if planes.count and not diag \
        else np.zeros((n, 0), np.int64)
    uniform = bool((consts == consts[0]).all())   # e.g. no bias and unsigned inputs
    base, narrow = 0, 0
    if not uniform and post_mult == 1:   # a base in u, narrower deltas in the rows
        lo, hi = int(consts.min()), int(consts.max())
        mid = (lo + hi) // 2
        width = signed_bytes(max(mid - lo - 1, hi - mid))
        if width < acc_bytes:
            base, narrow = mid, width
    plan = DensePlan(name, x, k, n, groups if planes.count and not diag else 0, group, wbytes,
                     planes, pb_raw, pb, acc_bytes,
                     [int(c) for c in consts], shift, rounding, clamp_low, clamp_high,
                     yt.lo, unsigned_bytes(span), plane_bytes, 0, uniform,
                     shifts=tuple(int(v) for v in shifts) if varied else None, diag=diag,
                     post_mult=post_mult, const_base=base, const_bytes=narrow, span=span)
    rows = plane_bytes if uniform else np.concatenate([plane_bytes, plan.const_rows()], axis=1)
    if varied:
        rows = np.concatenate([rows, shifts.reshape(n, 1)], axis=1)
    per_segment = TABLE_MAX // max(rows.shape[1], 1)
    if per_segment == 0:
        raise TinyccError(f"{where}: one neuron needs {rows.shape[1]} table bytes, more than "
                          f"one table holds ({TABLE_MAX})")
    return replace(plan, rows=rows, per_segment=per_segment)


def widened(p: DensePlan, ways: int) -> DensePlan | None:
    """`p` with its neurons taken `ways` (2 or 4) at a time, or None when they do not pack.

    A streamed input costs a call per read, so a streaming layer reads each input once
    for several neurons: one table byte holds their plane bits for 8 / (ways * planes)
    inputs (neuron ways*j + s at bits s * planes * group and up), and each row is one
    group of neurons' bytes followed by their constants when they differ."""
    planes = p.planes.count
    if planes == 0 or 8 % (ways * planes) or p.n % ways or p.shifts is not None or p.diag:
        return None
    group = 8 // (ways * planes)
    bits = np.concatenate([p.planes.bits[:, :, s::ways] for s in range(ways)], axis=0)
    rows = pack_groups(bits, group).reshape(p.n // ways, -1)
    if not p.uniform_const:
        rows = np.concatenate([rows, p.const_rows().reshape(p.n // ways, -1)], axis=1)
    per_segment = TABLE_MAX // rows.shape[1]
    if per_segment == 0:
        return None
    return replace(p, groups=-(-p.k // group), group=group, wbytes=1, rows=rows,
                   per_segment=per_segment, ways=ways)
