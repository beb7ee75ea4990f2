"""Print an IR graph in its text form (.tir), the form `parser.parse` reads back."""
from __future__ import annotations

import json
import math

import numpy as np

from .ir import Graph

HEADER = "# tinycc-nn IR"


def format_value(v, indent: str = "") -> str:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if v is None:
        return "null"
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            return str(f)
        text = repr(f)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        if v and isinstance(v[0], (list, tuple)):
            inner = indent + "  "
            rows = (",\n" + inner).join(format_value(x, inner) for x in v)
            return "[\n" + inner + rows + "]"
        return "[" + ", ".join(format_value(x, indent) for x in v) + "]"
    raise TypeError(f"cannot print attribute value {v!r}")


def format_node(graph: Graph, name: str) -> str:
    d = graph.node(name)
    args = ", ".join("%" + a for a in d["operands"])
    text = f"%{name} = {d['op']}({args})"
    if d["attrs"]:
        body = ", ".join(f"{k} = {format_value(v, '    ')}" for k, v in d["attrs"].items())
        text += " {" + body + "}"
    if d["type"] is not None:
        text += f" : {d['type']}"
    return text


def print_graph(graph: Graph) -> str:
    lines = [HEADER, f"graph @{graph.name} {{"]
    lines += ["  " + format_node(graph, n) for n in graph.order()]
    lines.append("}")
    return "\n".join(lines) + "\n"
