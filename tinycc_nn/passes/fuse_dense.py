"""fuse-dense: layer flattening.

Matches   matmul(x, w) -> [bias_add]* -> [requant] -> [clamp]*
and       conv(x, w)   -> [bias_add]* -> [requant] -> [clamp]*
where every intermediate value has exactly one user, and replaces the chain by one
`dense` (or `qconv`, which keeps the conv's window attributes) op.  A trailing clamp narrows the requant's bounds (two clamps compose to
one).  A matmul with no requant becomes a dense with mult=1, rnd=0, shift=0 and no
clamp (a raw accumulator output).  Does not move clamps that sit between the
accumulator and the requant (per-channel requant would need per-channel bounds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import REQUANT_ATTRS, Graph
from ..ir.edit import replace_chain
from . import Pass


def compose_clamp(lo1, hi1, lo2, hi2):
    """clamp(clamp(v, lo1, hi1), lo2, hi2) as one clamp (None = unbounded)."""
    lo = lo2 if lo1 is None else (lo1 if lo2 is None else max(lo1, lo2))
    hi = hi2 if hi1 is None else (hi1 if hi2 is None else min(hi1, hi2))
    if lo is not None and hi is not None and lo > hi:
        # the second clamp's interval lies entirely outside the first one's
        v = lo2 if hi1 is not None and lo2 is not None and hi1 < lo2 else hi2
        lo = hi = v
    return lo, hi


def _sum_bias(a, b):
    total = np.asarray(a, np.int64) + np.asarray(b, np.int64)
    return int(total) if total.ndim == 0 else [int(v) for v in total]


def _sole_user(graph: Graph, name: str, op: str):
    users = graph.users(name)
    if len(users) == 1 and graph.op(users[0]) == op:
        return users[0]
    return None


@dataclass(frozen=True)
class FuseDense(Pass):
    name = "fuse-dense"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for mm in graph.nodes_of("matmul") + graph.nodes_of("conv"):
            fused = "dense" if graph.op(mm) == "matmul" else "qconv"
            chain, attrs = [mm], {**graph.attrs(mm), "bias": 0, "mult": 1, "rnd": 0, "shift": 0,
                                  "rounding": "floor", "lo": None, "hi": None}
            while (nxt := _sole_user(graph, chain[-1], "bias_add")):
                chain.append(nxt)   # zero-point corrections and the bias add up
                attrs["bias"] = _sum_bias(attrs["bias"], graph.attrs(nxt)["bias"])
            nxt = _sole_user(graph, chain[-1], "requant")
            if nxt:
                chain.append(nxt)
                attrs.update({k: graph.attrs(nxt)[k] for k in REQUANT_ATTRS})
            while (nxt := _sole_user(graph, chain[-1], "clamp")):
                chain.append(nxt)
                a = graph.attrs(nxt)
                attrs["lo"], attrs["hi"] = compose_clamp(attrs["lo"], attrs["hi"], a["lo"], a["hi"])
            # the layer keeps its ONNX name and its place
            replace_chain(graph, chain, fused, graph.operands(mm), attrs)
            changed = True
        return changed
