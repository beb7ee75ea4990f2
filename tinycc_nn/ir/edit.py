"""Graph edits that keep types right: what passes use to rewrite the graph."""
from __future__ import annotations

from .graph import Graph
from .ranges import infer_type


def replace_chain(graph: Graph, chain, op: str, operands, attrs) -> str:
    """A new `op` node in place of the chain chain[0] -> ... -> chain[-1]: it takes
    the last one's users and the first one's name and place; the chain goes."""
    first = chain[0]
    new = graph.fresh(f"{first}.{op}")
    graph.add(new, op, operands, attrs)
    graph.node(new)["type"] = infer_type(graph, new)
    graph.replace_uses(chain[-1], new)
    order = graph.node(first)["order"]
    for n in chain:
        graph.remove(n)
    graph.node(new)["order"] = order
    graph.rename(new, first)
    return first
