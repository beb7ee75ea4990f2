"""Joining branches: the Add of two runtime tensors (a residual connection) and Concat.

Both take tensors computed on different IR values.  Add puts both on the finer of two
power-of-two units and adds them in one IR `add`; Concat joins IR values one pair at a
time in an IR `concat` (a flat concatenation, so a concat of maps along channels is a
map) and keeps the tensor's element order in the index, so other axes reach a window op
as a reordered view (window.map_input gathers it)."""
from __future__ import annotations

import numpy as np

from ..errors import TinyccError
from ..ir import channel_range
from . import linear
from .values import Act, compact


def add_tensors(imp, a: Act, b: Act, where: str) -> Act:
    """a + b of two runtime tensors with power-of-two scales (a residual connection): on
    the finer unit u both are integers, (qa + oa) << sa and (qb + ob) << sb, and float32's
    one rounding of their sum is float32(acc) * u, what the result's dequantize computes."""
    if a.shape != b.shape:
        raise TinyccError(f"{where}: adds tensors of shapes {list(a.shape)} and {list(b.shape)}; "
                          "only tensors of one shape are added (no broadcasting)")
    if a.dtype != "float32" or b.dtype != "float32":
        raise TinyccError(f"{where}: adds {a.dtype} and {b.dtype} tensors; dequantize them first")
    ir_a, off_a, u_a = linear.integerize(imp, a, where)
    ir_b, off_b, u_b = linear.integerize(imp, b, where)
    if imp.ir.type(ir_a).size != imp.ir.type(ir_b).size or not np.array_equal(a.index, b.index):
        raise TinyccError(f"{where}: its operands are laid out differently (a Transpose, Slice "
                          "or Reshape on one side only); only tensors computed in the same "
                          "order are added")
    if len(imp.ir.type(ir_b).shape) > len(imp.ir.type(ir_a).shape):   # the map first
        (ir_a, off_a, u_a), (ir_b, off_b, u_b) = (ir_b, off_b, u_b), (ir_a, off_a, u_a)
    unit = min(u_a, u_b)
    sa, sb = int(np.log2(u_a / unit)), int(np.log2(u_b / unit))
    size, n = imp.ir.type(ir_a).size, imp.ir.type(ir_a).channels
    per_element = [np.repeat(np.asarray(o, np.int64), size // len(o)) for o in (off_a, off_b)]
    bias = ((per_element[0] << sa) + (per_element[1] << sb)).reshape(n, -1)
    if (bias != bias[:, :1]).any():
        raise TinyccError(f"{where}: the operands' zero points vary within a channel of the sum")
    bias = bias[:, 0]
    acc = imp.emit("add", ir_a + ".add", [ir_a, ir_b], {"shifts": [sa, sb], "bias": compact(bias)})
    lo, hi = channel_range(imp.ir, acc)
    if max(-int(lo.min()), int(hi.max())) >= 1 << 31:
        raise TinyccError(f"{where}: the sum needs more than 32 bits at the finer scale "
                          f"({u_a:g} and {u_b:g} are too far apart)")
    return Act(acc, a.index, "float32", [["dequantize", unit, 0]])


def concat_acts(imp, acts: list, axis: int, name: str, where: str) -> Act:
    """The Concat of runtime tensors `acts` on `axis`.  Inputs quantized alike are joined
    as they are; power-of-two scales that differ are first brought to the finest one (an
    exact requant: value * 2^s + offset)."""
    if any(a.ir is None for a in acts):
        raise TinyccError(f"{where}: concatenates the unquantized model input; quantize it first")
    if len({a.dtype for a in acts}) > 1:
        raise TinyccError(f"{where}: concatenates tensors of types {sorted({a.dtype for a in acts})}")
    axis %= max(len(acts[0].shape), 1)
    ops = acts[0].ops
    if len({repr(a.ops) for a in acts}) > 1:
        parts = [linear.integerize(imp, a, where) for a in acts]
        unit = min(u for _, _, u in parts)
        rescaled = []
        for a, (ir, off, u) in zip(acts, parts):
            k = 1 << int(np.log2(u / unit))
            rnd = np.asarray(off, np.int64) * k
            if k != 1 or rnd.any():
                ir = imp.emit("requant", ir + ".unit", [ir],
                              {"mult": k, "rnd": compact(rnd), "shift": 0, "rounding": "floor",
                               "lo": None, "hi": None})
            rescaled.append(Act(ir, a.index, "float32", [["dequantize", unit, 0]]))
        acts, ops = rescaled, rescaled[0].ops
    ir, index = acts[0].ir, [acts[0].index]
    for a in acts[1:]:
        base = imp.ir.type(ir).size
        t0, t1 = imp.ir.type(ir), imp.ir.type(a.ir)
        maps = len(t0.shape) == 3 and len(t1.shape) == 3 and t0.shape[1:] == t1.shape[1:]
        shape = [t0.shape[0] + t1.shape[0], *t0.shape[1:]] if maps else [t0.size + t1.size]
        ir = imp.emit("concat", name, [ir, a.ir], {"shape": shape})
        index.append(a.index + base)
    return Act(ir, np.concatenate(index, axis=axis), acts[0].dtype, ops)

