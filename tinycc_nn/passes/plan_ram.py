"""plan-ram: give every vector in RAM an offset, from lifetimes.

A value lives from the op that defines it to its last user, both included (so an
op's result never overlaps its operands); a channel loop keeps its input and output
alive through the whole loop and its inner values take one plane (ir/schedule.py).  Lifetimes become sorted open/close
events; each opened buffer takes the lowest offset that fits beside the buffers
still open (first fit).  Records `ram_offset` and `ram_bytes` on each planned
value and the peak on the graph (`graph.ram_peak`).  Constants live in ROM; the
input is planned only when the target keeps it in RAM; argmax results and outputs
are returned in registers and not planned.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from ..ir.schedule import live_ranges, loop_plane_values
from . import Pass


def storage_bytes(bits: int) -> int:
    return 1 if bits <= 8 else 2 if bits <= 16 else 4


def plan(intervals: dict, pinned: dict | None = None) -> tuple[dict, int] | None:
    """intervals: name -> (start, end, size). Returns (name -> offset, peak), or None when
    a pinned block would overlap a buffer opened before it (the pins cannot hold).

    `pinned` names keep the offset given (they open before anything else starting at the
    same time, so the others are placed around them).  With pins, first fit can strand
    space below a pinned block, so fitting from the top of every bound between the
    lower bound (most bytes live at once) and the first-fit peak is tried as well."""
    placed = _place(intervals, pinned or {}, None)
    if placed is None:
        return None
    offsets, peak = placed
    if pinned:
        times = {s for s, _, _ in intervals.values()}
        low = max(sum(size for s, e, size in intervals.values() if s <= t <= e) for t in times)
        for bound in range(low, peak):
            placed = _place(intervals, pinned, bound)
            if placed is not None:
                return placed
    return offsets, peak


def _place(intervals: dict, pinned: dict, bound: int | None):
    """First fit from offset 0 (bound None), or from the top of `bound` (None if it fails)."""
    events = sorted((s, n not in pinned, n) for n, (s, e, size) in intervals.items())
    offsets, open_, peak = {}, {}, 0
    for start, _, name in events:
        for other in [o for o in open_ if intervals[o][1] < start]:
            del open_[other]
        size = intervals[name][2]
        taken = sorted((offsets[o], offsets[o] + intervals[o][2]) for o in open_)
        if name in pinned:
            offset = pinned[name]
            if any(offset < hi and lo < offset + size for lo, hi in taken):
                return None
        elif bound is None:
            offset = 0
            for lo, hi in taken:
                if offset + size <= lo:
                    break
                offset = max(offset, hi)
        else:
            free = [o for o in range(bound - size, -1, -1)
                    if all(o + size <= lo or o >= hi for lo, hi in taken)]
            if not free:
                return None
            offset = free[0]
        offsets[name] = offset
        open_[name] = True
        peak = max(peak, offset + size)
    return offsets, peak


def value_bytes(graph: Graph, n: str, planes: set | None = None) -> int:
    """RAM bytes of value n: its elements (one plane of them inside a channel loop)."""
    t = graph.type(n)
    planes = loop_plane_values(graph) if planes is None else planes
    count = t.size // t.channels if n in planes else t.size
    return count * storage_bytes(t.bits)


def value_intervals(graph: Graph, input_in_ram: bool = True) -> dict:
    """name -> (start, end, bytes) of every value that lives in RAM."""
    ranges, planes = live_ranges(graph), loop_plane_values(graph)
    out = {}
    for n in graph.order():
        op = graph.op(n)
        if op in ("const", "output", "argmax") or (op == "input" and not input_in_ram):
            continue
        out[n] = ranges[n] + (value_bytes(graph, n, planes),)
    return out


@dataclass(frozen=True)
class PlanRam(Pass):
    name = "plan-ram"
    input_in_ram: bool = True

    def apply(self, graph: Graph) -> bool:
        intervals = value_intervals(graph, self.input_in_ram)
        offsets, peak = plan(intervals)
        changed = False
        for n, off in offsets.items():
            a = graph.attrs(n)
            if (a.get("ram_offset"), a.get("ram_bytes")) != (off, intervals[n][2]):
                a["ram_offset"], a["ram_bytes"] = off, intervals[n][2]
                changed = True
        graph.ram_peak = peak
        return changed
