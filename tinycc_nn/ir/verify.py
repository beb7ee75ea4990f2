"""verify(graph): the IR contract, checked after every pass in tests and with --verify-ir."""
from __future__ import annotations

import networkx as nx
import numpy as np

from ..errors import TinyccError
from .graph import Graph
from .ops import OPS, ROUNDINGS, WEIGHTED, WINDOWED
from .ranges import infer_type
from .schedule import live_ranges, loops
from .window import window_out_hw


def verify(graph: Graph) -> None:
    """Check the IR contract; raise TinyccError naming the first broken value."""
    for name, data in graph.g.nodes(data=True):
        if "op" not in data:
            users = ", ".join("%" + u for u in graph.g.successors(name))
            raise TinyccError(f"%{name} is used by {users} but never defined")
    if not nx.is_directed_acyclic_graph(graph.g):
        raise TinyccError(f"graph @{graph.name}: has a cycle")
    if not graph.inputs():
        raise TinyccError(f"graph @{graph.name}: has no input")
    if not graph.outputs():
        raise TinyccError(f"graph @{graph.name}: has no output")
    cache: dict = {}
    for name in graph.order():
        _verify_node(graph, name, cache)
    _verify_ram_plan(graph)


def _verify_ram_plan(graph: Graph) -> None:
    """Values that are live at the same time must not share RAM; channel loops are chains."""
    for name, chain in loops(graph).items():
        if chain[0] != name:
            raise TinyccError(f"channel loop {name!r} does not start at %{name}")
        for a, b in zip(chain, chain[1:]):
            if graph.users(a) != [b] or graph.operands(b)[0] != a:
                raise TinyccError(f"channel loop {name!r}: %{b} does not continue the chain "
                                  f"from %{a} (its only user, reading it)")
            if len(graph.type(b).shape) != 3 or len(graph.type(a).shape) != 3:
                raise TinyccError(f"channel loop {name!r}: %{a} -> %{b} are not maps")
    ranges = live_ranges(graph)
    live = []
    for n in graph.order():
        a = graph.attrs(n)
        if "ram_offset" in a:
            live.append((n, *ranges[n], a["ram_offset"], a["ram_bytes"]))
    for i, (n, s1, e1, o1, b1) in enumerate(live):
        for m, s2, e2, o2, b2 in live[i + 1:]:
            if s1 <= e2 and s2 <= e1 and o1 < o2 + b2 and o2 < o1 + b1:
                raise TinyccError(f"%{n} and %{m} are live together but share RAM")


def _verify_node(graph: Graph, name: str, cache: dict) -> None:
    d = graph.node(name)
    op, attrs, args = d["op"], d["attrs"], d["operands"]

    def fail(msg):
        raise TinyccError(f"%{name} = {op}: {msg}")

    spec = OPS.get(op)
    if spec is None:
        fail("unknown op")
    if len(args) != spec.operands:
        fail(f"takes {spec.operands} operands, has {len(args)}")
    missing = spec.required - attrs.keys()
    if missing:
        fail(f"missing attribute(s) {', '.join(sorted(missing))}")
    extra = attrs.keys() - spec.required - spec.optional
    if extra:
        fail(f"unknown attribute(s) {', '.join(sorted(extra))}")
    for a in args:
        if a not in graph.g:
            fail(f"operand %{a} is not defined")
        if not OPS[graph.op(a)].has_result:
            fail(f"operand %{a} has no result")
        if graph.op(a) == "const" and not (op in WEIGHTED and a == args[1]):
            fail(f"constant %{a} can only be the weight operand of {'/'.join(WEIGHTED)}")
    if op in WEIGHTED and graph.op(args[1]) != "const":
        fail("weights (second operand) must be a const")
    if op in ("matmul", "dense"):
        x, w = args
        wshape = np.asarray(graph.attrs(w)["values"]).shape
        if len(wshape) != 2 or graph.type(x).size != wshape[0]:
            fail(f"shapes do not match: x {list(graph.type(x).shape)}, w {list(wshape)}")
    if op == "const":
        values = np.asarray(attrs["values"])
        if values.dtype.kind not in "iu":
            fail("values must be integers")
        if "valueset" in attrs and sorted(set(values.ravel().tolist())) != list(attrs["valueset"]):
            fail("valueset does not match the values")
        if "codebook" in attrs and not set(values.ravel().tolist()) <= set(attrs["codebook"]):
            fail("codebook does not cover every value")
    if op in WINDOWED and len(args) == spec.operands:
        _verify_window(graph, name, fail)
    for key in ("bias", "mult", "rnd", "shift"):
        if key in attrs:
            v = np.asarray(attrs[key])
            if v.ndim > 1 or (v.ndim == 1 and v.size != _channels(graph, name)):
                fail(f"{key} must be an int or a list of {_channels(graph, name)}")
    if "mult" in attrs and (np.asarray(attrs["mult"]) < 0).any():
        fail("mult must not be negative")
    if "shift" in attrs and (np.asarray(attrs["shift"]) < 0).any():
        fail("shift must not be negative")
    if "rounding" in attrs and attrs["rounding"] not in ROUNDINGS:
        fail(f"rounding must be one of {', '.join(ROUNDINGS)}")
    if op in ("requant", "clamp", "dense", "qconv"):
        lo, hi = attrs["lo"], attrs["hi"]
        if lo is not None and hi is not None and lo > hi:
            fail(f"clamp bounds {lo} > {hi}")
    if op == "add":
        if graph.type(args[0]).size != graph.type(args[1]).size:
            fail(f"operand sizes differ: {graph.type(args[0])} and {graph.type(args[1])}")
        shifts = attrs["shifts"]
        if (not isinstance(shifts, (list, tuple)) or len(shifts) != 2
                or any(not isinstance(s, (int, np.integer)) or s < 0 for s in shifts)):
            fail(f"shifts must be two non-negative ints, not {shifts!r}")
    if op == "concat":
        size = graph.type(args[0]).size + graph.type(args[1]).size
        if int(np.prod(attrs["shape"])) != size:
            fail(f"shape {list(attrs['shape'])} does not hold the operands' {size} elements")
    if op == "gather":
        idx = np.asarray(attrs["index"])
        size = graph.type(args[0]).size
        if idx.ndim != 1 or idx.size != int(np.prod(attrs["shape"])) or idx.dtype.kind not in "iu":
            fail(f"index must be {int(np.prod(attrs['shape']))} ints (the elements of shape "
                 f"{list(attrs['shape'])})")
        low = -1 if "fill" in attrs else 0
        if idx.size and (idx.min() < low or idx.max() >= size):
            fail(f"index {int(idx.min())}..{int(idx.max())} outside the operand's {size} elements"
                 + ("" if low else " (-1, a fill, needs the fill attribute)"))
    if op == "argmax" and not graph.type(args[0]).shape:
        fail("argmax takes a vector (or a map, read flattened), not a scalar")
    if op == "input":
        from ..hostio import QRANGE
        if attrs["qdtype"] not in QRANGE:
            fail(f"unknown qdtype {attrs['qdtype']!r}")
    expected = infer_type(graph, name, cache) if op != "input" else d["type"]
    if op == "input" and (expected is None or len(expected.shape) != 1):
        fail("input must have a vector type")
    if d["type"] != expected:
        fail(f"type is {d['type']}, interval analysis gives {expected}")


def _verify_window(graph: Graph, name: str, fail) -> None:
    op, attrs = graph.op(name), graph.attrs(name)
    x = graph.operands(name)[0]
    shape = attrs["in_shape"]
    for key, n in (("in_shape", 3), ("strides", 2), ("pads", 4), ("kernel", 2)):
        v = attrs.get(key, [1, 1])
        if not isinstance(v, list) or len(v) != n or not all(type(d) is int for d in v):
            fail(f"{key} must be a list of {n} integers")
    if min(shape) < 1 or min(attrs["strides"]) < 1 or min(attrs["pads"]) < 0:
        fail("in_shape and strides must be positive, pads not negative")
    if graph.type(x).size != shape[0] * shape[1] * shape[2]:
        fail(f"operand %{x} has {graph.type(x).size} elements, in_shape {shape} needs "
             f"{shape[0] * shape[1] * shape[2]}")
    if op in ("conv", "qconv"):
        w = np.asarray(graph.attrs(graph.operands(name)[1])["values"]).shape
        g = attrs["group"]
        if len(w) != 4:
            fail(f"weights must be [M, C/group, kh, kw], are {list(w)}")
        if type(g) is not int or g < 1 or shape[0] % g or w[0] % g or w[1] * g != shape[0]:
            fail(f"group {g} does not divide {shape[0]} input and {w[0]} output channels "
                 f"of weights {list(w)}")
        kernel = w[2:]
    else:
        kernel = attrs["kernel"]
        if min(kernel) < 1:
            fail("kernel must be positive")
    if "pad_value" in attrs:
        pv = np.asarray(attrs["pad_value"])
        if pv.ndim > 1 or (pv.ndim == 1 and pv.size != shape[0]):
            fail(f"pad_value must be an int or a list of {shape[0]}")
    if op == "maxpool" and (attrs["pads"][0] >= kernel[0] or attrs["pads"][1] >= kernel[1]
                            or attrs["pads"][2] >= kernel[0] or attrs["pads"][3] >= kernel[1]):
        fail("pads must be smaller than the kernel (a window would hold no element)")
    ho, wo = window_out_hw(shape, kernel, attrs["strides"], attrs["pads"])
    if ho < 1 or wo < 1:
        fail(f"kernel {list(kernel)} does not fit the padded map {shape[1:]}")


def _channels(graph: Graph, name: str) -> int:
    op = graph.op(name)
    if op in ("matmul", "dense"):
        return int(np.asarray(graph.attrs(graph.operands(name)[1])["values"]).shape[1])
    if op in ("conv", "qconv"):
        return int(np.asarray(graph.attrs(graph.operands(name)[1])["values"]).shape[0])
    return graph.type(graph.operands(name)[0]).channels
