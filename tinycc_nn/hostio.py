"""Host-side arithmetic that must match onnxruntime to the bit.

The compiled program works on integers only.  What happens on the host around it,
quantizing float inputs and turning integer outputs back into the float tensors the
ONNX graph returns, is float32 arithmetic that has to be reproduced exactly as
onnxruntime's CPU kernels do it:

* QuantizeLinear divides (it does not multiply by the reciprocal; measured on
  onnxruntime 1.31 with non-power-of-two scales), rounds half to even, adds the
  zero point and saturates.
* DequantizeLinear computes float32(q - zero_point) * scale.
* Add, Mul, Relu and Clip are single float32 operations.
* onnxruntime's QLinearAdd on AVX2 uses fused multiply-adds (frontend/kernels.py):
  float32(x * m + c) with one rounding, then float32(x + p * q) likewise.

The same functions are used by the frontend to fit integer requantization to these
float semantics, by the reference backend (its emitted module embeds this file's
source) and by `verify`.  Keep this module dependency-free apart from numpy.
"""
import numpy as np

QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
          "uint16": (0, 65535), "int4": (-8, 7), "uint4": (0, 15), "int32": (-2**31, 2**31 - 1)}


def quantize(x, scale, zero_point, dtype):
    """ONNX QuantizeLinear on float32 data with per-channel (last axis) or scalar parameters.

    Infinities saturate; NaN becomes the type's minimum, whatever the zero point (as
    onnxruntime's kernels do).
    """
    lo, hi = QRANGE[dtype]
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.rint(np.asarray(x, np.float32) / np.asarray(scale, np.float32))
        q = np.clip(q.astype(np.float64) + np.asarray(zero_point, np.float64), lo, hi)
    return np.where(np.isnan(q), lo, q).astype(np.int64)


def dequantize(q, scale, zero_point):
    """ONNX DequantizeLinear: float32(q - zero_point) * scale."""
    d = (np.asarray(q, np.int64) - np.asarray(zero_point, np.int64)).astype(np.float32)
    return d * np.asarray(scale, np.float32)


def fma(x, m, c):
    """float32(x * m + c) rounded once, as a fused multiply-add does (x86's 80-bit long
    double holds every such product and sum of float32 values exactly)."""
    ld = np.longdouble
    with np.errstate(over="ignore", invalid="ignore"):
        return (np.asarray(x, np.float32).astype(ld) * np.asarray(m, np.float32).astype(ld)
                + np.asarray(c, np.float32).astype(ld)).astype(np.float32)


def apply_float_ops(x, ops):
    """Apply a chain of elementwise float32 ops, as onnxruntime would, to array x.

    `ops` is a list of lists: ["add", c], ["mul", c], ["div", c], ["relu"], ["clip", lo, hi],
    ["quantize", scale, zero_point, dtype], ["dequantize", scale, zero_point],
    ["fma", m, c] (float32(x * m + c), one rounding), ["add_product", p, q] (float32(x + p * q));
    a constant c may be a scalar or a per-channel list (channels on the last axis).
    """
    for op in ops:
        kind = op[0]
        if kind == "add":
            x = np.asarray(x, np.float32) + np.asarray(op[1], np.float32)
        elif kind == "mul":
            x = np.asarray(x, np.float32) * np.asarray(op[1], np.float32)
        elif kind == "div":
            x = np.asarray(x, np.float32) / np.asarray(op[1], np.float32)
        elif kind == "relu":
            x = np.maximum(np.asarray(x, np.float32), np.float32(0))
        elif kind == "clip":
            x = np.asarray(x, np.float32)
            if op[1] is not None:
                x = np.maximum(x, np.float32(op[1]))
            if op[2] is not None:
                x = np.minimum(x, np.float32(op[2]))
        elif kind == "quantize":
            x = quantize(x, op[1], op[2], op[3])
        elif kind == "dequantize":
            x = dequantize(x, op[1], op[2])
        elif kind == "fma":
            x = fma(x, op[1], op[2])
        elif kind == "add_product":
            x = fma(op[1], op[2], x)
        else:
            raise ValueError(f"unknown float op {kind!r}")
    return x


def sample_shape(shape):
    """An ONNX shape without its batch dimension (a leading symbolic or 1 dimension)."""
    shape = list(shape)
    if shape and (isinstance(shape[0], str) or (shape[0] == 1 and len(shape) >= 2)):
        shape = shape[1:]
    return [1 if isinstance(d, str) else int(d) for d in shape]


def prepare_input(x, attrs):
    """Float (or integer) model inputs [n, ...] -> the program's integer inputs [n, F]."""
    x = np.asarray(x)
    size = int(np.prod(sample_shape(attrs["shape"]), dtype=np.int64))
    if x.ndim == 0 or x.size != x.shape[0] * size:
        raise ValueError(f"inputs of shape {list(x.shape)} do not hold samples of "
                         f"{sample_shape(attrs['shape'])} ({size} values each) for input "
                         f"'{attrs['name']}'")
    flat = x.reshape(x.shape[0], size)
    if attrs.get("scale") is not None:
        return quantize(flat.astype(np.float32), attrs["scale"], attrs["zero_point"], attrs["qdtype"])
    lo, hi = QRANGE[attrs["qdtype"]]
    if flat.dtype.kind not in "iu" or flat.min(initial=lo) < lo or flat.max(initial=hi) > hi:
        raise ValueError(f"input '{attrs['name']}' takes {attrs['qdtype']} values")
    return flat.astype(np.int64)


def finish_output(values, attrs):
    """Program results [n, size] (int) -> the ONNX output tensor per sample [n, ...]."""
    y = np.asarray(values, np.int64)
    if attrs["float_ops"]:
        y = apply_float_ops(y, attrs["float_ops"])
    if attrs.get("index") is not None:
        y = y[:, np.asarray(attrs["index"])]
    shape = sample_shape(attrs["shape"])
    if int(np.prod(shape, dtype=np.int64)) != y.shape[1]:
        shape = [y.shape[1]]    # the batch merged into another dimension (Reshape to [-1])
    return y.reshape([y.shape[0]] + shape).astype(attrs["dtype"])
