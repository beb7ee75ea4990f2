"""Interval analysis: the proven range of every value, per channel, and its type.

Ranges are per channel (axis 0 of the value's shape: a vector's elements, a map's
planes): every element of a channel lies in that channel's [lo, hi].  An op that reads
a map takes its operand's hull per input channel (plus the padding value, when the
window reaches outside the map); a matmul reads every element, so a map's channel
range is repeated over the channel's elements.
"""
from __future__ import annotations

import numpy as np

from .graph import Graph
from .ops import per_channel, requant_values
from .types import TensorType
from .window import window_out_hw


def channel_range(graph: Graph, name: str, cache: dict | None = None):
    """Per-channel proven (lo, hi) int64 vectors of value `name`."""
    cache = {} if cache is None else cache
    if name in cache:
        return cache[name]
    op, attrs = graph.op(name), graph.attrs(name)
    args = graph.operands(name)
    if op == "input":
        from ..hostio import QRANGE
        lo, hi = QRANGE[attrs["qdtype"]]
        n = graph.type(name).channels
        r = np.full(n, lo, np.int64), np.full(n, hi, np.int64)
    elif op == "const":
        v = np.asarray(attrs["values"], np.int64)
        r = v.copy(), v.copy()
    elif op in ("matmul", "dense"):
        lo, hi = _dot_range(element_range(graph, args[0], cache),
                            np.asarray(graph.attrs(args[1])["values"], np.int64))
        r = _requant_range(lo, hi, attrs, bias=True) if op == "dense" else (lo, hi)
    elif op in ("conv", "qconv"):
        lo, hi = _conv_range(graph, name, cache)
        r = _requant_range(lo, hi, attrs, bias=True) if op == "qconv" else (lo, hi)
    elif op == "maxpool":
        r = map_channel_range(graph, name, cache)
    elif op == "sumpool":
        lo, hi = map_channel_range(graph, name, cache)
        taps = int(np.prod(attrs["kernel"]))
        r = lo * taps, hi * taps
    elif op == "bias_add":
        lo, hi = channel_range(graph, args[0], cache)
        b = per_channel(attrs["bias"], lo.size)
        r = lo + b, hi + b
    elif op == "add":       # element by element: b may be a vector of a map's size
        (alo, ahi), (blo, bhi) = (element_range(graph, a, cache) for a in args)
        sa, sb = attrs["shifts"]
        n = graph.type(args[0]).channels
        b = np.repeat(per_channel(attrs["bias"], n), alo.size // n)
        r = _hull((alo << sa) + (blo << sb) + b, (ahi << sa) + (bhi << sb) + b, n)
    elif op == "requant":
        r = _requant_range(*channel_range(graph, args[0], cache), attrs, bias=False)
    elif op == "clamp":
        lo, hi = channel_range(graph, args[0], cache)
        r = _clip(lo, attrs["lo"], attrs["hi"]), _clip(hi, attrs["lo"], attrs["hi"])
    elif op == "concat":
        (alo, ahi), (blo, bhi) = (element_range(graph, a, cache) for a in args)
        r = _hull(np.concatenate([alo, blo]), np.concatenate([ahi, bhi]), int(attrs["shape"][0]))
    elif op == "gather":
        lo, hi = element_range(graph, args[0], cache)
        idx = np.asarray(attrs["index"], np.int64)
        fill = attrs.get("fill", 0)
        r = _hull(np.where(idx < 0, fill, lo[np.maximum(idx, 0)]),
                  np.where(idx < 0, fill, hi[np.maximum(idx, 0)]), int(attrs["shape"][0]))
    elif op == "argmax":
        n = graph.type(args[0]).size
        r = np.zeros(1, np.int64), np.full(1, n - 1, np.int64)
    else:
        raise ValueError(f"value %{name} ({op}) has no range")
    cache[name] = r
    return r


def element_range(graph: Graph, name: str, cache: dict | None = None):
    """Per-element (lo, hi) of value `name`, flattened in C order."""
    lo, hi = channel_range(graph, name, cache)
    per = graph.type(name).size // max(lo.size, 1)
    return np.repeat(lo, per), np.repeat(hi, per)


def map_channel_range(graph: Graph, name: str, cache: dict | None = None):
    """Per-input-channel hull of what window op `name` reads, padding included."""
    attrs = graph.attrs(name)
    c = attrs["in_shape"][0]
    lo, hi = _hull(*element_range(graph, graph.operands(name)[0], cache), c)
    if "pad_value" in attrs and any(attrs["pads"]):
        pv = per_channel(attrs["pad_value"], c)
        lo, hi = np.minimum(lo, pv), np.maximum(hi, pv)
    return lo, hi


def _hull(lo, hi, n: int):
    """Per-channel (lo, hi) of element ranges in C order, n channels (axis 0)."""
    return lo.reshape(n, -1).min(axis=1), hi.reshape(n, -1).max(axis=1)


def _conv_range(graph: Graph, name: str, cache):
    attrs = graph.attrs(name)
    xlo, xhi = map_channel_range(graph, name, cache)
    w = np.asarray(graph.attrs(graph.operands(name)[1])["values"], np.int64)
    m, cg = w.shape[:2]
    group = attrs["group"]
    chan = (np.arange(m) // (m // group))[:, None] * cg + np.arange(cg)[None, :]   # [M, cg]
    a, b = xlo[chan][:, :, None, None] * w, xhi[chan][:, :, None, None] * w
    return np.minimum(a, b).sum(axis=(1, 2, 3)), np.maximum(a, b).sum(axis=(1, 2, 3))


def _dot_range(x_range, w):
    xlo, xhi = x_range
    a, b = xlo[:, None] * w, xhi[:, None] * w
    return np.minimum(a, b).sum(axis=0), np.maximum(a, b).sum(axis=0)


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
    """For a dense/matmul/conv/qconv node: per-channel range of the accumulator x.w + bias,
    and of acc*mult + rnd before the shift: what a backend must hold without overflow."""
    op = graph.op(name)
    if op in ("conv", "qconv"):
        lo, hi = _conv_range(graph, name, {})
    else:
        lo, hi = _dot_range(element_range(graph, graph.operands(name)[0]),
                            np.asarray(graph.attrs(graph.operands(name)[1])["values"], np.int64))
    attrs = graph.attrs(name)
    if op not in ("dense", "qconv"):
        return (lo, hi), (lo, hi)
    n = lo.size
    bias = per_channel(attrs["bias"], n)
    lo, hi = lo + bias, hi + bias
    m, r = per_channel(attrs["mult"], n), per_channel(attrs["rnd"], n)
    return (lo, hi), (lo * m + r, hi * m + r)


def result_shape(graph: Graph, name: str) -> tuple:
    """The shape value `name` must have, from its operands and attributes."""
    op, attrs = graph.op(name), graph.attrs(name)
    if op == "input":
        return (graph.type(name).size,)
    if op == "const":
        return np.asarray(attrs["values"]).shape
    if op in ("matmul", "dense"):
        return (np.asarray(graph.attrs(graph.operands(name)[1])["values"]).shape[1],)
    if op in ("conv", "qconv"):
        w = np.asarray(graph.attrs(graph.operands(name)[1])["values"])
        return (w.shape[0],) + window_out_hw(attrs["in_shape"], w.shape[2:], attrs["strides"],
                                             attrs["pads"])
    if op in ("maxpool", "sumpool"):
        return (attrs["in_shape"][0],) + window_out_hw(attrs["in_shape"], attrs["kernel"],
                                                       attrs["strides"], attrs["pads"])
    if op == "argmax":
        return ()
    if op in ("gather", "concat"):
        return tuple(int(d) for d in attrs["shape"])
    return graph.type(graph.operands(name)[0]).shape


def infer_type(graph: Graph, name: str, cache: dict | None = None) -> TensorType | None:
    """The type value `name` must have, from its operands (None for output nodes)."""
    if graph.op(name) == "output":
        return None
    lo, hi = channel_range(graph, name, cache)
    return TensorType.for_range(lo.min(), hi.max(), result_shape(graph, name))
