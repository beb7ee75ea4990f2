"""What the importer knows about each ONNX tensor.

A `Const` is a constant tensor (initializer, Constant node, or folded), with its
integer origin when it came out of a DequantizeLinear.  An `Act` is a runtime
tensor: an IR integer vector `ir` plus the exact recipe that turns it into the ONNX
tensor's value: `ops`, a chain of float32 elementwise ops (`hostio.apply_float_ops`,
parameters per IR element), and `index`, the array (shaped like the ONNX tensor,
batch dimension 1) of IR element numbers, so data movement (Reshape, Flatten,
Transpose, ...) never needs code on the device.  An `Act` with `ir=None` is the float
graph input before its QuantizeLinear.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import TinyccError

QDTYPES = {"int8", "uint8", "int16", "uint16", "int4", "uint4"}   # integer tensor types
DATA_MOVEMENT = {"Identity", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Dropout",
                 "Slice", "Gather", "Expand", "Tile", "SpaceToDepth", "DepthToSpace"}


class FloatScales(TinyccError):
    """A MatMul/Gemm/Conv whose float32 arithmetic (non-power-of-two scales) no integer
    program reproduces: the model has only its integer reading (ort_graph.py)."""

    @property
    def node(self) -> str:
        return str(self).split(":", 1)[0]


@dataclass
class Const:
    value: np.ndarray
    qint: np.ndarray | None = None     # integer tensor behind a DequantizeLinear ...
    qscale: np.ndarray | None = None   # ... its scale and zero point, broadcast to its shape
    qzp: np.ndarray | None = None
    dq_node: str | None = None

    def map(self, fn) -> "Const":
        """Apply a shape op to the value and, in step, to its integer origin."""
        if self.qint is None:
            return Const(fn(self.value))
        return Const(fn(self.value), fn(self.qint), fn(self.qscale), fn(self.qzp), self.dq_node)


@dataclass
class Act:
    ir: str | None
    index: np.ndarray
    dtype: str                      # ONNX element type name of the tensor
    ops: list = field(default_factory=list)

    @property
    def shape(self) -> tuple:
        return self.index.shape

    def with_index(self, index: np.ndarray) -> "Act":
        return Act(self.ir, index, self.dtype, self.ops)


def is_pow2(x) -> bool:
    x = np.asarray(x, np.float64)
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        return False
    mant, _ = np.frexp(x)
    return bool(np.all(mant == 0.5))


def varies_by_channel(ops) -> bool:
    """Whether some float op parameter is a per-channel list (not one number per tensor)."""
    return any(np.asarray(p).size > 1 for op in ops for p in op[1:] if not isinstance(p, str))


def compact(v):
    """A per-channel attribute as one number when every channel has it, else a list."""
    v = np.asarray(v).reshape(-1)
    return v[0].item() if (v == v[0]).all() else [x.item() for x in v]


def by_channel(act: Act, ir_type) -> tuple:
    """(act with each ONNX element numbered by its IR channel, number of channels): float
    op parameters are per channel of the IR value (an element of a vector, a plane of a
    [C, H, W] map), so ONNX parameters are mapped onto channels, not elements."""
    per = ir_type.size // max(ir_type.channels, 1)
    return act.with_index(act.index // per), ir_type.channels


def per_element(param, act: Act, axis: int, size: int):
    """An ONNX per-tensor or per-axis parameter as a per-IR-element list (or scalar).

    `size` is the IR vector's length.  Returns None when two ONNX elements that are
    the same IR element disagree, or when an IR element is not in the tensor.
    """
    p = np.asarray(param)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(()).item()
    shape = [1] * len(act.shape)
    shape[axis] = p.size
    full = np.broadcast_to(p.reshape(shape), act.shape).ravel()
    idx = act.index.ravel()
    out = np.zeros(size, dtype=full.dtype)
    seen = np.zeros(size, bool)
    for i, v in zip(idx, full):
        if seen[i] and out[i] != v:
            return None
        out[i], seen[i] = v, True
    if not seen.all():
        return None
    return out.tolist()

# operands of an ONNX node, as the operator handlers take them -------------------------

def arg_act(args, k, where, what="input") -> Act:
    """Operand k, which must be a runtime tensor."""
    a = args[k] if k < len(args) else None
    if not isinstance(a, Act):
        raise TinyccError(f"{where}: {what} {k} must be a runtime tensor")
    return a


def arg_const(args, k, where, what) -> Const:
    """Operand k, which must be a constant."""
    a = args[k] if k < len(args) else None
    if not isinstance(a, Const):
        raise TinyccError(f"{where}: {what} must be a constant")
    return a


def runtime_act(args, where) -> Act:
    """Operand 0, a runtime tensor computed from the quantized input."""
    x = arg_act(args, 0, where)
    if x.ir is None:
        raise TinyccError(f"{where}: the model input must be quantized (QuantizeLinear) first")
    return x
