"""lower-elementwise: every elementwise op becomes a `requant`.

Backends then implement one elementwise op.  bias_add(x) is requant with rnd=bias;
clamp(x) is requant with mult=1; a clamp after a requant (or a dense) narrows that
op's bounds instead of costing a second pass over the vector.  Runs after fuse-dense.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, infer_type
from . import Pass
from .fuse_dense import compose_clamp


@dataclass(frozen=True)
class LowerElementwise(Pass):
    name = "lower-elementwise"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for n in graph.order():
            op = graph.op(n)
            if op == "clamp" and graph.op(graph.operands(n)[0]) in ("requant", "dense") \
                    and len(graph.users(graph.operands(n)[0])) == 1:
                src = graph.operands(n)[0]
                a, b = graph.attrs(src), graph.attrs(n)
                a["lo"], a["hi"] = compose_clamp(a["lo"], a["hi"], b["lo"], b["hi"])
                graph.node(src)["type"] = infer_type(graph, src)
                graph.replace_uses(n, src)
                graph.remove(n)
                changed = True
            elif op in ("clamp", "bias_add"):
                a = graph.attrs(n)
                attrs = {"mult": 1, "rnd": a.get("bias", 0), "shift": 0, "rounding": "floor",
                         "lo": a.get("lo"), "hi": a.get("hi")}
                graph.node(n).update(op="requant", attrs=attrs)
                changed = True
        for n in graph.order():     # types downstream of a narrowed clamp may have narrowed
            if graph.op(n) != "output":
                graph.node(n)["type"] = infer_type(graph, n)
        return changed
