"""The IR graph: named values in a networkx DAG, and the edits passes make on it."""
from __future__ import annotations

import networkx as nx
import numpy as np

from .types import TensorType, identifier


class Graph:
    """A named DAG of IR nodes.  Node data: op, operands (ordered names), attrs, type."""

    def __init__(self, name: str = "model"):
        self.name = name
        self.g = nx.DiGraph()
        self._counter = 0
        self.ram_peak = None    # bytes, once plan-ram has run

    # construction -----------------------------------------------------------
    def add(self, name: str, op: str, operands=(), attrs=None, type=None) -> str:
        if name in self.g:
            raise ValueError(f"duplicate IR value %{name}")
        self.g.add_node(name, op=op, operands=list(operands), attrs=dict(attrs or {}),
                        type=type, order=self._counter)
        self._counter += 1
        for src in operands:
            self.g.add_edge(src, name)
        return name

    def fresh(self, base: str) -> str:
        """A value name not used yet, derived from `base` (as the text form allows)."""
        base = identifier(base, "v")
        name, k = base, 1
        while name in self.g:
            name, k = f"{base}.{k}", k + 1
        return name

    def remove(self, name: str) -> None:
        self.g.remove_node(name)

    def set_operands(self, name: str, operands) -> None:
        for src in self.operands(name):
            if self.g.has_edge(src, name):
                self.g.remove_edge(src, name)
        self.g.nodes[name]["operands"] = list(operands)
        for src in operands:
            self.g.add_edge(src, name)

    def rename(self, old: str, new: str) -> None:
        if new in self.g:
            raise ValueError(f"duplicate IR value %{new}")
        users = self.users(old)
        nx.relabel_nodes(self.g, {old: new}, copy=False)
        for user in users:
            self.g.nodes[user]["operands"] = [new if o == old else o for o in self.operands(user)]

    def replace_uses(self, old: str, new: str) -> None:
        for user in list(self.users(old)):
            self.set_operands(user, [new if o == old else o for o in self.operands(user)])

    # queries ----------------------------------------------------------------
    def node(self, name: str) -> dict:
        return self.g.nodes[name]

    def op(self, name: str) -> str:
        return self.g.nodes[name]["op"]

    def attrs(self, name: str) -> dict:
        return self.g.nodes[name]["attrs"]

    def type(self, name: str) -> TensorType:
        return self.g.nodes[name]["type"]

    def operands(self, name: str) -> list:
        return self.g.nodes[name]["operands"]

    def users(self, name: str) -> list:
        return sorted(self.g.successors(name), key=lambda n: self.g.nodes[n]["order"])

    def order(self) -> list:
        """Topological order, ties broken by creation order (stable printing)."""
        return list(nx.lexicographical_topological_sort(
            self.g, key=lambda n: self.g.nodes[n]["order"]))

    def nodes_of(self, op: str) -> list:
        return [n for n in self.order() if self.op(n) == op]

    def inputs(self) -> list:
        return self.nodes_of("input")

    def outputs(self) -> list:
        """Output nodes in the order the model declares its outputs (creation order)."""
        return sorted(self.nodes_of("output"), key=lambda n: self.g.nodes[n]["order"])

    def copy(self) -> "Graph":
        other = Graph(self.name)
        for n in self.order():
            d = self.node(n)
            other.add(n, d["op"], d["operands"], _copy_attrs(d["attrs"]), d["type"])
        return other

    def __eq__(self, other) -> bool:
        if not isinstance(other, Graph) or self.name != other.name:
            return False
        if set(self.g.nodes) != set(other.g.nodes):
            return False
        for n in self.g.nodes:
            a, b = self.node(n), other.node(n)
            if (a["op"], a["operands"], a["type"]) != (b["op"], b["operands"], b["type"]):
                return False
            if a["attrs"].keys() != b["attrs"].keys():
                return False
            if any(not attr_equal(a["attrs"][k], b["attrs"][k]) for k in a["attrs"]):
                return False
        return True

    __hash__ = None


def _copy_attrs(attrs: dict) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in attrs.items()}


def attr_equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(attr_equal(x, y) for x, y in zip(a, b))
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return a == b
