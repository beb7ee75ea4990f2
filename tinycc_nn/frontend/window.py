"""Conv, MaxPool, GlobalMaxPool, AveragePool, GlobalAveragePool and ReduceMean over H, W:
2-D window operators on NCHW maps.

The IR value behind a map is read as [C, H, W] in C order (ir/window.py), so the
operator's input must be its producer's elements in their own order (batch 1): a
Transpose in between is refused by name.

Conv follows MatMul's exactness argument (linear.py): power-of-two input and weight
scales make every product exact and every partial sum exact below 2**24 units.  The
input is integerized as (q + offset[c]) * unit; ONNX pads the float map with 0.0,
which is q = -offset[c], so the IR conv pads with that value and every tap of every
output pixel contributes (q + offset) * w: the offsets fold into one bias per output
channel.  MaxPool commutes with the (monotone non-decreasing) float ops on its input
and runs on the integers.  AveragePool sums on the integers (sumpool) and keeps
onnxruntime's float32 division by the window size as a float op, which the next
QuantizeLinear's requantization fit reproduces exactly.
"""
from __future__ import annotations

import numpy as np

from ..errors import TinyccError
from ..ir import window_out_hw
from . import linear
from .values import Act, FloatScales, compact, varies_by_channel
from .values import arg_act as _act, arg_const as _const, runtime_act as _float_act


def map_input(imp, x: Act, where: str, op_type: str) -> tuple:
    """(x as an IR map, its [C, H, W]) for a window op (batch 1).  A reordered view of the
    value computed before it (a Transpose from NHWC, a Slice or crop) is copied into
    order first by an IR `gather`; its float ops must then be one per tensor."""
    shape = x.shape
    if len(shape) != 4:
        raise TinyccError(f"{where}: input has shape {list(shape)}; only 2-D maps "
                          "[N, C, H, W] are supported")
    if shape[0] != 1:
        raise TinyccError(f"{where}: batch dimension {shape[0]}; one sample per inference "
                          "(batch 1 or symbolic) is compiled")
    chw = tuple(int(d) for d in shape[1:])
    n = imp.ir.type(x.ir).size
    if x.index.size == n and (x.index.ravel() == np.arange(n)).all():
        return x, chw
    if varies_by_channel(x.ops):
        raise TinyccError(f"{where}: its input is a reordered view (Transpose or Slice) of a "
                          f"tensor with per-channel scales or offsets; {op_type} needs a map "
                          "whose channels are the view's")
    ir = imp.emit("gather", x.ir + ".gather", [x.ir],
                  {"index": x.index.ravel().tolist(), "shape": list(chw)})
    return Act(ir, np.arange(x.index.size).reshape(shape), x.dtype, x.ops), chw


def _window_attrs(attrs: dict, where: str, kernel, in_hw, op_type: str):
    """(strides, pads [top, left, bottom, right]) from ONNX attributes, checked."""
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise TinyccError(f"{where}: dilations {list(attrs['dilations'])} are not supported "
                          "(dilation 1 only)")
    if attrs.get("ceil_mode", 0):
        raise TinyccError(f"{where}: ceil_mode 1 is not supported; export with ceil_mode=0 "
                          "(floor) or pad the input explicitly")
    strides = [int(s) for s in attrs.get("strides", [1, 1])]
    if len(strides) != 2 or min(strides) < 1:
        raise TinyccError(f"{where}: strides {strides} must be two positive integers")
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4 or min(pads) < 0:
            raise TinyccError(f"{where}: pads {pads} must be four non-negative integers")
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for axis in range(2):
            size, k, s = in_hw[axis], kernel[axis], strides[axis]
            total = max((-(-size // s) - 1) * s + k - size, 0)
            small, big = total // 2, total - total // 2
            pads[axis], pads[axis + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
    else:
        raise TinyccError(f"{where}: auto_pad {auto!r} is not supported")
    ho, wo = window_out_hw((1,) + tuple(in_hw), kernel, strides, pads)
    if ho < 1 or wo < 1:
        raise TinyccError(f"{where}: kernel {list(kernel)} is larger than the padded "
                          f"{in_hw[0]}x{in_hw[1]} map")
    return strides, pads


def pool_window(node, attrs: dict, where: str, h: int, w: int) -> tuple:
    """(kernel, strides, pads) of a pooling node: the whole map for Global*Pool, else its
    kernel_shape, strides and pads (checked); an average's divisor must be the kernel's."""
    if node.op_type.startswith("Global"):
        return [h, w], [1, 1], [0, 0, 0, 0]
    kernel = [int(k) for k in attrs.get("kernel_shape", [])]
    if len(kernel) != 2 or min(kernel) < 1:
        raise TinyccError(f"{where}: kernel_shape {kernel} must be two positive integers")
    strides, pads = _window_attrs(attrs, where, kernel, (h, w), node.op_type)
    if "Average" in node.op_type and any(pads) and not attrs.get("count_include_pad", 0):
        raise TinyccError(f"{where}: with pads and count_include_pad=0 the divisor differs "
                          "at the border; use count_include_pad=1 or no padding")
    return kernel, strides, pads


def _channel_offsets(offset, c: int, where: str) -> np.ndarray:
    """integerize's offsets (per channel of the IR value) as one per map channel."""
    per = offset.size // c
    off = offset.reshape(c, per)
    if (off != off[:, :1]).any():
        raise TinyccError(f"{where}: the input's zero point varies within a channel of the map")
    return off[:, 0]


def _map_act(ir: str, imp, ops, dtype) -> Act:
    shape = imp.ir.type(ir).shape
    return Act(ir, np.arange(int(np.prod(shape))).reshape((1,) + shape), dtype, ops)


def conv(imp, node, args, where, attrs):
    x = _float_act(args, where)
    w = _const(args, 1, where, "W (the weight)")
    if w.value.ndim != 4:
        raise TinyccError(f"{where}: weight has shape {list(w.value.shape)}; only 2-D "
                          "convolutions (weights [M, C/group, kh, kw]) are supported")
    x, (c, h, wd) = map_input(imp, x, where, "Conv")
    m, cg, kh, kw = (int(d) for d in w.value.shape)
    group = int(attrs.get("group", 1))
    if group < 1 or c % group or m % group or cg * group != c:
        raise TinyccError(f"{where}: group {group} with {c} input channels does not match "
                          f"weights {list(w.value.shape)}")
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != [kh, kw]:
        raise TinyccError(f"{where}: kernel_shape {list(attrs['kernel_shape'])} differs from "
                          f"the weight's {[kh, kw]}")
    strides, pads = _window_attrs(attrs, where, (kh, kw), (h, wd), "Conv")
    if w.qint is None:
        raise TinyccError(f"{where}: weight is a float tensor; weights must be constant "
                          "integers behind a DequantizeLinear")
    scale = np.asarray(w.qscale, np.float64).reshape(m, -1)
    if (scale != scale[:, :1]).any():
        raise TinyccError(f"DequantizeLinear '{w.dq_node}': the weight scale varies within an "
                          "output channel (per-channel scales must be on axis 0)")
    units = scale[:, 0]
    if not linear.is_pow2(units):
        raise FloatScales(f"DequantizeLinear '{w.dq_node}': weight scale {units[0]} is not a "
                          "power of two; onnxruntime's float32 products would round, so no "
                          "integer program can match them bit-exactly")
    ints = np.asarray(w.qint, np.int64) - np.asarray(w.qzp, np.int64)
    ir_x, offset, unit = linear.integerize(imp, x, where)
    off = _channel_offsets(offset, c, where)
    chan = (np.arange(m) // (m // group))[:, None] * cg + np.arange(cg)[None, :]
    acc_bias = (off[chan][:, :, None, None] * ints).sum(axis=(1, 2, 3))
    out_units = unit * units
    if len(args) > 2 and args[2] is not None:
        b = _const(args, 2, where, "B (the bias)").value
        if b.size != m:
            raise TinyccError(f"{where}: bias has {b.size} values for {m} output channels")
        acc_bias = acc_bias + linear.bias_in_units(np.asarray(b, np.float32).reshape(-1),
                                                   out_units, where)
    linear.check_float32_range(imp, ir_x, off, unit, ints.reshape(m, -1).T, units, 1.0,
                               acc_bias, where)
    wname = imp.emit_const(w.dq_node or node.output[0] + ".w", ints)
    acc = imp.emit("conv", node.output[0], [ir_x, wname],
                   {"in_shape": [c, h, wd], "strides": strides, "pads": pads, "group": group,
                    "pad_value": compact(-off)})
    if acc_bias.any():
        acc = imp.emit("bias_add", node.output[0] + ".bias", [acc], {"bias": compact(acc_bias)})
    linear.warn_inexact(imp, acc, where)
    return [_map_act(acc, imp, [["dequantize", compact(out_units), 0]], "float32")]



def _ops_per_map_channel(ops, n: int, c: int, where: str) -> list:
    """Float op parameters given per IR channel of a vector (n of them) as per map channel."""
    if n == c:
        return ops
    out = []
    for op in ops:
        new = [op[0]]
        for p in op[1:]:
            arr = np.asarray(p) if not isinstance(p, str) and p is not None else None
            if arr is not None and arr.size == n and n > 1:
                per = arr.reshape(c, -1)
                if (per != per[:, :1]).any():
                    raise TinyccError(f"{where}: the input's scale or zero point varies within "
                                      "a channel of the map")
                p = compact(per[:, 0])
            new.append(p)
        out.append(new)
    return out


def max_pool(imp, node, args, where, attrs):
    x = _act(args, 0, where)
    if x.ir is None:
        raise TinyccError(f"{where}: the model input must be quantized (QuantizeLinear) first")
    if len(node.output) > 1 and node.output[1]:
        raise TinyccError(f"{where}: the Indices output is not supported")
    if attrs.get("storage_order", 0) not in (0, 1):
        raise TinyccError(f"{where}: storage_order {attrs['storage_order']} is not supported")
    x, (c, h, w) = map_input(imp, x, where, node.op_type)
    kernel, strides, pads = pool_window(node, attrs, where, h, w)
    if pads[0] >= kernel[0] or pads[2] >= kernel[0] or pads[1] >= kernel[1] or pads[3] >= kernel[1]:
        raise TinyccError(f"{where}: pads {pads} must be smaller than the kernel {kernel}")
    ops = _ops_per_map_channel(x.ops, imp.ir.type(x.ir).channels, c, where)
    out = imp.emit("maxpool", node.output[0], [x.ir],
                   {"in_shape": [c, h, w], "kernel": kernel, "strides": strides, "pads": pads})
    return [_map_act(out, imp, ops, x.dtype)]


def average_pool(imp, node, args, where, attrs):
    x, (c, h, w) = map_input(imp, _float_act(args, where), where, node.op_type)
    return [_average(imp, node.output[0], x, (c, h, w), *pool_window(node, attrs, where, h, w), where)]


def reduce_mean(imp, node, args, where, attrs):
    """ReduceMean over a map's H and W (what torch's dynamo exporter writes for
    adaptive_avg_pool2d(x, 1) or x.mean((2, 3))): a global average, summed exactly and
    divided once in float32 as onnxruntime's ReduceMean does; keepdims 0 gives [N, C]."""
    x = _float_act(args, where)
    if len(args) > 1 and args[1] is not None:
        axes = [int(a) for a in np.asarray(_const(args, 1, where, "axes").value).reshape(-1)]
    else:
        axes = [int(a) for a in attrs.get("axes", [])]
    rank = len(x.shape)
    if rank != 4 or sorted(a % rank for a in axes) != [2, 3]:
        raise TinyccError(f"{where}: averages axes {axes} of a rank-{rank} tensor; only the "
                          "spatial axes of an [N, C, H, W] map (2 and 3: a global average "
                          "pool) are supported")
    x, (c, h, w) = map_input(imp, x, where, node.op_type)
    y = _average(imp, node.output[0], x, (c, h, w), [h, w], [1, 1], [0, 0, 0, 0], where)
    return [y if attrs.get("keepdims", 1) else y.with_index(y.index.reshape(y.index.shape[:2]))]


def _average(imp, name: str, x: Act, chw, kernel, strides, pads, where: str) -> Act:
    """The window sums of x exactly (a sumpool), then onnxruntime's float32 division."""
    if x.dtype != "float32":
        raise TinyccError(f"{where}: averages a {x.dtype} tensor; dequantize it first")
    c, h, w = chw
    ir_x, offset, unit = linear.integerize(imp, x, where)
    off = _channel_offsets(offset, c, where)
    taps = kernel[0] * kernel[1]
    out = imp.emit("sumpool", name, [ir_x],
                   {"in_shape": [c, h, w], "kernel": kernel, "strides": strides, "pads": pads,
                    "pad_value": compact(-off)})
    linear.warn_inexact(imp, out, where)
    # (sum + taps * offset) * unit is onnxruntime's exact float sum; it then divides
    ops = [["dequantize", unit, compact(-taps * off)], ["div", float(taps)]]
    return _map_act(out, imp, ops, "float32")
