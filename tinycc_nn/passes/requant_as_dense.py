"""requant-as-dense: a standalone `requant` becomes a `dense` with identity weights.

For targets whose code generator knows only layers (Padauk): requant(x) is exactly
dense(x, I) with bias 0 and the requant's mult, rnd, shift, rounding and bounds, since
dense = requant(bias_add(matmul(x, w))).  The identity is an ordinary 0/1 const, so the
IR stays self-describing (the reference backend runs it as it runs any layer) and a
backend may recognise it (`is_identity`) and read one input per neuron instead of a
table.  The node keeps its name and place.  Runs after lower-elementwise, which has
turned every elementwise op into a requant, and after pack-weights, whose encoding it
gives the new const.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import REQUANT_ATTRS, Graph, infer_type
from ..ir.edit import replace_chain
from . import Pass
from .pack_weights import choose_encoding


def is_identity(values) -> bool:
    w = np.asarray(values)
    return w.ndim == 2 and w.shape[0] == w.shape[1] and np.array_equal(w, np.eye(len(w), dtype=w.dtype))


@dataclass(frozen=True)
class RequantAsDense(Pass):
    name = "requant-as-dense"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for n in graph.nodes_of("requant"):
            x = graph.operands(n)[0]
            if len(graph.type(x).shape) != 1:
                continue        # a map's requant: no identity layer (the backend refuses maps)
            size = graph.type(x).size
            eye = graph.fresh(f"{n}.identity")
            values = np.eye(size, dtype=np.int64)
            enc, bits, book = choose_encoding({0, 1} if size > 1 else {1})
            graph.add(eye, "const", (), {"values": values, "valueset": sorted(set(values.ravel().tolist())),
                                         "encoding": enc, "code_bits": bits, "codebook": book})
            graph.node(eye)["type"] = infer_type(graph, eye)
            attrs = {"bias": 0, **{k: graph.attrs(n)[k] for k in REQUANT_ATTRS}}
            replace_chain(graph, [n], "dense", (x, eye), attrs)
            graph.node(eye)["order"] = graph.node(n)["order"]
            changed = True
        return changed
