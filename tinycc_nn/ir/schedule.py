"""Channel loops: the execution order the `channel_loop` attribute asks for, and the
lifetimes it gives every value (plan-ram and verify read the same rules).

Nodes with one `channel_loop` value form a chain, consecutive in graph order, that runs
one channel at a time: for channel c the first node computes its output channel c
(a group-1 conv reads every input channel, anything else reads channel c), and each
later node turns the previous node's plane c into its own plane c.  So only the last
node's map exists whole; the others are one plane (`loop_plane_values`), reused by
every channel; the loop's operand is read by every channel, so it lives until the
loop's last node, and the last node's map is written from the first node on.
"""
from __future__ import annotations

from .graph import Graph


def loops(graph: Graph) -> dict:
    """loop name -> its nodes in order."""
    out: dict = {}
    for n in graph.order():
        name = graph.attrs(n).get("channel_loop")
        if name is not None:
            out.setdefault(name, []).append(n)
    return out


def loop_plane_values(graph: Graph) -> set:
    """Values that hold one plane, not a whole map: every loop node but the last."""
    return {n for chain in loops(graph).values() for n in chain[:-1]}


def live_ranges(graph: Graph) -> dict:
    """name -> (first, last) positions in graph.order() during which the value is live."""
    order = graph.order()
    pos = {n: i for i, n in enumerate(order)}
    ranges = {n: (pos[n], max((pos[u] for u in graph.users(n)), default=pos[n])) for n in order}
    for chain in loops(graph).values():
        first, last = pos[chain[0]], pos[chain[-1]]
        for operand in graph.operands(chain[0]):
            start, end = ranges[operand]
            ranges[operand] = (start, max(end, last))
        start, end = ranges[chain[-1]]
        ranges[chain[-1]] = (min(start, first), end)
    return ranges
