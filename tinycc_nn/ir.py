"""The tinycc-nn IR: a small graph of integer tensor ops.

Every value is an integer vector (or a constant matrix) whose element range is
proven by interval analysis and recorded in its type, so a backend can pick the
narrowest accumulator that can never overflow.  The ops, with their exact integer
semantics (the reference backend executes exactly this):

  input                      program input vector, quantized on the host
  const                      constant integer tensor (weights)
  matmul(x, w)               acc[j] = sum_i x[i] * w[i, j]
  bias_add(x) {bias}         x[j] + bias[j]
  requant(x) {mult, rnd, shift, rounding, lo, hi}
                             t = x[j] * mult[j] + rnd[j]
                             clamp(round(t / 2**shift[j]), lo, hi) where round is
                             floor (rounding="floor") or to nearest with ties to
                             even ("half_even", ONNX QuantizeLinear's rule) or to
                             odd ("half_odd": the same rule seen through an odd
                             zero point, which the fit folds into rnd)
  clamp(x) {lo, hi}          clamp(x[j], lo, hi)          (lo/hi may be null: unbounded)
  dense(x, w) {bias, mult, rnd, shift, rounding, lo, hi}
                             requant(bias_add(matmul(x, w))), the fused layer
  argmax(x) {last}           index of the first (last=true: last) maximum
  output(x) {name, dtype, shape, float_ops}
                             host turns x back into the ONNX output tensor

`mult`, `rnd`, `shift` and `bias` are an int (same for every channel) or a list
with one entry per output channel.  `mult` is never negative, so requant is
monotone and interval analysis only needs the end points.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from .errors import TinyccError


@dataclass(frozen=True)
class TensorType:
    """Element signedness and width, shape, and the proven value interval [lo, hi]."""
    signed: bool
    bits: int
    shape: tuple
    lo: int
    hi: int

    @classmethod
    def for_range(cls, lo: int, hi: int, shape) -> "TensorType":
        lo, hi = int(lo), int(hi)
        if lo < 0:
            bits = max((-lo - 1).bit_length(), max(hi, 0).bit_length()) + 1
        else:
            bits = max(hi.bit_length(), 1)
        return cls(lo < 0, bits, tuple(int(d) for d in shape), lo, hi)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{'i' if self.signed else 'u'}{self.bits}[{dims}] {self.lo}..{self.hi}"


@dataclass(frozen=True)
class OpSpec:
    operands: int
    required: frozenset
    optional: frozenset = frozenset()
    has_result: bool = True


PLAN_ATTRS = ("ram_offset", "ram_bytes")   # set by the plan-ram pass


def _spec(n, req, opt=(), result=True):
    return OpSpec(n, frozenset(req), frozenset(opt) | (frozenset(PLAN_ATTRS) if result else frozenset()),
                  result)


REQUANT_ATTRS = ("mult", "rnd", "shift", "rounding", "lo", "hi")
ROUNDINGS = ("floor", "half_even", "half_odd")
OPS = {
    "input": _spec(0, ("name", "dtype", "shape", "qdtype"), ("scale", "zero_point")),
    "const": _spec(0, ("values",), ("valueset", "encoding", "codebook", "code_bits")),
    "matmul": _spec(2, ()),
    "bias_add": _spec(1, ("bias",)),
    "requant": _spec(1, REQUANT_ATTRS),
    "clamp": _spec(1, ("lo", "hi")),
    "dense": _spec(2, ("bias",) + REQUANT_ATTRS),
    "argmax": _spec(1, ("last",)),
    "output": _spec(1, ("name", "dtype", "shape", "float_ops"), ("index",), False),
}


def per_channel(value, n: int) -> np.ndarray:
    """An attr that is an int or a per-channel list, as an int64 vector of length n."""
    arr = np.asarray(value, dtype=np.int64)
    return np.full(n, int(arr), np.int64) if arr.ndim == 0 else arr


def shift_round(t, shift, rounding):
    """t / 2**shift rounded down ("floor"), or to nearest with ties to even/odd."""
    t = np.asarray(t, np.int64)
    q = t >> shift
    if rounding != "floor":
        rem = t - (q << shift)
        half = np.where(shift > 0, np.left_shift(1, np.maximum(shift, 1) - 1), 1)
        tie_up = (q & 1) == (1 if rounding == "half_even" else 0)
        q = q + ((rem > half) | ((rem == half) & tie_up))
    return q


def requant_values(x, mult, rnd, shift, rounding, lo, hi):
    """clamp(round((x*mult + rnd) / 2**shift), lo, hi) on int64 arrays (channels last)."""
    y = shift_round(np.asarray(x, np.int64) * mult + rnd, shift, rounding)
    if lo is not None or hi is not None:
        y = np.clip(y, lo, hi)
    return y


def identifier(text: str, prefix: str) -> str:
    """`text` as an IR identifier: ASCII letters, digits, '_' and '.', not starting with a
    digit or '.'; `prefix` is put in front when it would."""
    name = "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in text)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = prefix + "_" + name
    return name


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

    def replace_chain(self, chain, op: str, operands, attrs) -> str:
        """A new `op` node in place of the chain chain[0] -> ... -> chain[-1]: it takes
        the last one's users and the first one's name and place; the chain goes."""
        first = chain[0]
        new = self.fresh(f"{first}.{op}")
        self.add(new, op, operands, attrs)
        self.node(new)["type"] = infer_type(self, new)
        self.replace_uses(chain[-1], new)
        order = self.node(first)["order"]
        for n in chain:
            self.remove(n)
        self.node(new)["order"] = order
        self.rename(new, first)
        return first

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


# interval analysis -----------------------------------------------------------------

def channel_range(graph: Graph, name: str, cache: dict | None = None):
    """Per-element proven (lo, hi) int64 vectors of value `name`."""
    cache = {} if cache is None else cache
    if name in cache:
        return cache[name]
    op, attrs = graph.op(name), graph.attrs(name)
    args = graph.operands(name)
    if op == "input":
        from .hostio import QRANGE
        lo, hi = QRANGE[attrs["qdtype"]]
        n = graph.type(name).size
        r = np.full(n, lo, np.int64), np.full(n, hi, np.int64)
    elif op == "const":
        v = np.asarray(attrs["values"], np.int64)
        r = v.copy(), v.copy()
    elif op in ("matmul", "dense"):
        xlo, xhi = channel_range(graph, args[0], cache)
        w = np.asarray(graph.attrs(args[1])["values"], np.int64)
        a, b = xlo[:, None] * w, xhi[:, None] * w
        lo, hi = np.minimum(a, b).sum(axis=0), np.maximum(a, b).sum(axis=0)
        if op == "dense":
            lo, hi = _requant_range(lo, hi, attrs, bias=True)
        r = lo, hi
    elif op == "bias_add":
        lo, hi = channel_range(graph, args[0], cache)
        b = per_channel(attrs["bias"], lo.size)
        r = lo + b, hi + b
    elif op == "requant":
        r = _requant_range(*channel_range(graph, args[0], cache), attrs, bias=False)
    elif op == "clamp":
        lo, hi = channel_range(graph, args[0], cache)
        r = _clip(lo, attrs["lo"], attrs["hi"]), _clip(hi, attrs["lo"], attrs["hi"])
    elif op == "argmax":
        n = graph.type(args[0]).size
        r = np.zeros(1, np.int64), np.full(1, n - 1, np.int64)
    else:
        raise ValueError(f"value %{name} ({op}) has no range")
    cache[name] = r
    return r


def _clip(v, lo, hi):
    return np.clip(v, lo, hi) if lo is not None or hi is not None else v


def _requant_range(lo, hi, attrs, bias):
    n = lo.size
    if bias:
        b = per_channel(attrs["bias"], n)
        lo, hi = lo + b, hi + b
    m, r, s = (per_channel(attrs[k], n) for k in ("mult", "rnd", "shift"))
    args = (m, r, s, attrs["rounding"], attrs["lo"], attrs["hi"])
    return requant_values(lo, *args), requant_values(hi, *args)


def accumulator_range(graph: Graph, name: str):
    """For a dense/matmul node: per-channel range of the accumulator x.w + bias,
    and of acc*mult + rnd before the shift: what a backend must hold without overflow."""
    xlo, xhi = channel_range(graph, graph.operands(name)[0])
    w = np.asarray(graph.attrs(graph.operands(name)[1])["values"], np.int64)
    a, b = xlo[:, None] * w, xhi[:, None] * w
    lo, hi = np.minimum(a, b).sum(axis=0), np.maximum(a, b).sum(axis=0)
    attrs = graph.attrs(name)
    if graph.op(name) != "dense":
        return (lo, hi), (lo, hi)
    n = lo.size
    bias = per_channel(attrs["bias"], n)
    lo, hi = lo + bias, hi + bias
    m, r = per_channel(attrs["mult"], n), per_channel(attrs["rnd"], n)
    return (lo, hi), (lo * m + r, hi * m + r)


def infer_type(graph: Graph, name: str, cache: dict | None = None) -> TensorType | None:
    """The type value `name` must have, from its operands (None for output nodes)."""
    op = graph.op(name)
    if op == "output":
        return None
    if op == "input":
        shape = (graph.type(name).size,)
    elif op == "const":
        shape = np.asarray(graph.attrs(name)["values"]).shape
    elif op in ("matmul", "dense"):
        shape = (np.asarray(graph.attrs(graph.operands(name)[1])["values"]).shape[1],)
    elif op == "argmax":
        shape = ()
    else:
        shape = graph.type(graph.operands(name)[0]).shape
    lo, hi = channel_range(graph, name, cache)
    return TensorType.for_range(lo.min(), hi.max(), shape)


# verification ------------------------------------------------------------------------

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
    """Values that are live at the same time must not share RAM."""
    order = graph.order()
    pos = {n: i for i, n in enumerate(order)}
    live = []
    for n in order:
        a = graph.attrs(n)
        if "ram_offset" in a:
            end = max((pos[u] for u in graph.users(n)), default=pos[n])
            live.append((n, pos[n], end, a["ram_offset"], a["ram_bytes"]))
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
        if graph.op(a) == "const" and not (op in ("matmul", "dense") and a == args[1]):
            fail(f"constant %{a} can only be the weight operand of matmul/dense")
    if op in ("matmul", "dense"):
        x, w = args
        if graph.op(w) != "const":
            fail("weights (second operand) must be a const")
        wshape = np.asarray(graph.attrs(w)["values"]).shape
        if len(wshape) != 2 or graph.type(x).shape != (wshape[0],):
            fail(f"shapes do not match: x {list(graph.type(x).shape)}, w {list(wshape)}")
    if op == "const":
        values = np.asarray(attrs["values"])
        if values.dtype.kind not in "iu":
            fail("values must be integers")
        if "valueset" in attrs and sorted(set(values.ravel().tolist())) != list(attrs["valueset"]):
            fail("valueset does not match the values")
        if "codebook" in attrs and not set(values.ravel().tolist()) <= set(attrs["codebook"]):
            fail("codebook does not cover every value")
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
    if op in ("requant", "clamp", "dense"):
        lo, hi = attrs["lo"], attrs["hi"]
        if lo is not None and hi is not None and lo > hi:
            fail(f"clamp bounds {lo} > {hi}")
    if op == "argmax" and len(graph.type(args[0]).shape) != 1:
        fail("argmax takes a vector")
    if op == "input":
        from .hostio import QRANGE
        if attrs["qdtype"] not in QRANGE:
            fail(f"unknown qdtype {attrs['qdtype']!r}")
    expected = infer_type(graph, name, cache) if op != "input" else d["type"]
    if op == "input" and (expected is None or len(expected.shape) != 1):
        fail("input must have a vector type")
    if d["type"] != expected:
        fail(f"type is {d['type']}, interval analysis gives {expected}")


def _channels(graph: Graph, name: str) -> int:
    op = graph.op(name)
    if op in ("matmul", "dense"):
        return int(np.asarray(graph.attrs(graph.operands(name)[1])["values"]).shape[1])
    return graph.type(graph.operands(name)[0]).size
