"""schedule-channels: run chains of per-channel ops one channel at a time, in place.

Matches chains  head -> op -> ... -> op  over [C, H, W] maps where every later op is
channel-local (its output channel c reads only input channel c: maxpool, sumpool, a
requant on a map, a conv/qconv whose group equals its input and output channel count,
i.e. depthwise) and every value but the last has the next op as its only user.  The
head is any window op or requant on a map; a group-1 conv head reads every input
channel for each output channel, which is fine: the loop reads its input whole.

Tagging a chain with `channel_loop` (see ir/schedule.py) makes every value but the
last one plane instead of a map: peak RAM becomes one channel's maps plus the loop's
input and output, not every channel's maps.  Each maximal chain may be tagged or not;
the pass plans RAM for every choice (at most 2**MAX_SEARCH of them, greedily beyond)
and keeps the one whose plan peaks lowest, ties going to the longer loops.
Does not: split a chain, reorder independent branches, or tile by rows (patches).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from ..ir import Graph
from . import Pass
from .plan_ram import plan, value_intervals

MAX_SEARCH = 8


def _is_map(graph: Graph, n: str) -> bool:
    t = graph.type(n)
    return t is not None and len(t.shape) == 3


def _channel_local(graph: Graph, n: str) -> bool:
    op = graph.op(n)
    if op in ("maxpool", "sumpool"):
        return True
    if op in ("requant", "clamp", "bias_add"):
        return _is_map(graph, graph.operands(n)[0])
    if op in ("conv", "qconv"):
        c = graph.attrs(n)["in_shape"][0]
        w = np.asarray(graph.attrs(graph.operands(n)[1])["values"])
        return graph.attrs(n)["group"] == c == w.shape[0]
    return False


def _can_head(graph: Graph, n: str) -> bool:
    return _is_map(graph, n) and (graph.op(n) in ("conv", "qconv") or _channel_local(graph, n))


def _reads_map_as_is(graph: Graph, n: str) -> bool:
    """n reads its operand as the map it is (no reinterpretation through in_shape)."""
    x = graph.operands(n)[0]
    shape = graph.attrs(n).get("in_shape")
    return _is_map(graph, x) and (shape is None or tuple(shape) == graph.type(x).shape)


def channel_chains(graph: Graph) -> list:
    """The maximal chains that may run channel by channel (two nodes or more)."""
    chains, taken = [], set()
    for n in graph.order():
        if n in taken or not _can_head(graph, n):
            continue
        chain = [n]
        while True:
            users = graph.users(chain[-1])
            if len(users) != 1 or not _channel_local(graph, users[0]) \
                    or not _reads_map_as_is(graph, users[0]):
                break
            chain.append(users[0])
        if len(chain) >= 2:
            chains.append(chain)
            taken.update(chain)
    return chains


def _tag(graph: Graph, chains, choice) -> None:
    for chain, on in zip(chains, choice):
        for n in chain:
            if on:
                graph.attrs(n)["channel_loop"] = chain[0]
            else:
                graph.attrs(n).pop("channel_loop", None)


def _peak(graph: Graph, input_in_ram: bool) -> int:
    return plan(value_intervals(graph, input_in_ram))[1]


@dataclass(frozen=True)
class ScheduleChannels(Pass):
    name = "schedule-channels"
    input_in_ram: bool = True

    def apply(self, graph: Graph) -> bool:
        before = {n: graph.attrs(n).get("channel_loop") for n in graph.order()}
        chains = channel_chains(graph)

        def peak_with(choice) -> int:
            _tag(graph, chains, choice)
            return _peak(graph, self.input_in_ram)

        if len(chains) <= MAX_SEARCH:
            # more loops first, so that min() keeps the longest of equal peaks
            choices = sorted(product((True, False), repeat=len(chains)), key=lambda c: -sum(c))
            best = min(choices, key=peak_with)
        else:       # greedy: a loop stays only where it lowers the peak
            best = [True] * len(chains)
            for k in range(len(chains)):
                with_loop = peak_with(best)
                best[k] = peak_with(best[:k] + [False] + best[k + 1:]) >= with_loop
        _tag(graph, chains, best)
        return before != {n: graph.attrs(n).get("channel_loop") for n in graph.order()}
