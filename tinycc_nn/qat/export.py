"""Write a trained QAT model as a canonical QDQ ONNX graph, built node by node.

Building the graph from the modules' integers (instead of tracing custom autograd
functions) makes the file say exactly what the eval model computes:

    input -> QuantizeLinear -> DequantizeLinear                       (layer 0 input)
    per layer:  [Clip] -> QuantizeLinear -> DequantizeLinear           (its input quantizer)
                MatMul(x, DequantizeLinear(int8 w [in, out], s_w))      (axis 1 if per channel)
                Add(., DequantizeLinear(int32 b [out], s_in * s_w))   (if the layer has a bias; axis 0)
                Relu                                                   (if a ReLU follows)
    [Clip] -> QuantizeLinear -> DequantizeLinear -> logits; ArgMax(axis=1) -> class

Convolutional models (an nn.Sequential of QConv2d, ReLU, MaxPool2d, Flatten, then the
dense layers) take an input [N, C, H, W] and map each QConv2d the same way:

    QuantizeLinear -> DequantizeLinear                               (its input quantizer)
    Conv(x, DequantizeLinear(int8 w [out, in / groups, kh, kw], s_w),
            DequantizeLinear(int32 b [out], s_in * s_w))             (axis 0 if per channel)
    Relu; the next quantizer's QuantizeLinear -> DequantizeLinear; MaxPool; ...; Flatten

A MaxPool is written after the quantizer that follows it in torch: quantizing is monotone,
so max and quantize commute exactly, and the pool then works on the small integers.

With `gemm=True` a layer is one Gemm(x, DequantizeLinear(w [out, in]), b, transB=1).
The Clip appears only for activations narrower than their 8-bit container (e.g. uint4
in uint8): QuantizeLinear saturates at the container's limits, the Clip at the
quantizer's.  Every scale is a float32 power of two, every zero point 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from tinycc_nn.errors import TinyccError
from tinycc_nn.qat.conv import QConv2d, QuantizedConv
from tinycc_nn.qat.layers import QLinear, QuantizedLinear
from tinycc_nn.qat.quantizers import ActQuant

EXACT_LIMIT = 2**24  # float32 holds every integer below this: sums stay exact


LAYERS = (QLinear, QConv2d, nn.ReLU, ActQuant, nn.MaxPool2d, nn.Flatten)


def sequence(model: nn.Module) -> list[nn.Module]:
    """The model's layers in order: an nn.Sequential, flattened, without no-op modules.

    A Flatten is kept only after a convolution (before one it does nothing).
    """
    if not isinstance(model, nn.Sequential):
        raise TinyccError(f"export expects an nn.Sequential of QLinear/ReLU/ActQuant, got {type(model).__name__}")
    out: list[nn.Module] = []
    for m in model:
        if isinstance(m, nn.Sequential):
            out += sequence(m)
        elif not isinstance(m, nn.Identity):
            if not isinstance(m, LAYERS):
                raise TinyccError(f"export: cannot express layer {type(m).__name__} "
                                  "(only QLinear, QConv2d, ReLU, MaxPool2d, Flatten, ActQuant)")
            if not isinstance(m, nn.Flatten) or any(isinstance(p, QConv2d) for p in out):
                out.append(m)
    if not out or not isinstance(out[0], (QLinear, QConv2d)) or not isinstance(out[-1], ActQuant):
        raise TinyccError("export: the model must start with a QLinear or QConv2d and end with an ActQuant")
    return out


def _check_pool(m: nn.MaxPool2d) -> None:
    if m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)) or m.ceil_mode or m.return_indices:
        raise TinyccError("export: MaxPool2d with padding, dilation, ceil_mode or indices is not supported")


def _input_quant(m: nn.Module) -> ActQuant | None:
    return m if isinstance(m, ActQuant) else getattr(m, "input_quant", None)


def _pooled_quantizers(layers: list[nn.Module]) -> dict[int, ActQuant]:
    """For each MaxPool2d (by index): the quantizer of the next quantized layer, when only
    pools and Flatten stand between them, so that it can be applied before the pool."""
    hoisted = {}
    for i, m in enumerate(layers):
        if isinstance(m, nn.MaxPool2d):
            _check_pool(m)
            nxt = next(j for j in range(i + 1, len(layers)) if not isinstance(layers[j], (nn.MaxPool2d, nn.Flatten)))
            if _input_quant(layers[nxt]) is not None:
                hoisted[i] = _input_quant(layers[nxt])
    return hoisted


def check_exact(q: QuantizedLinear | QuantizedConv, index: int) -> None:
    """Refuse layers whose accumulator could leave float32's exact integer range."""
    in_max = 2 ** (q.in_bits - 1) if q.in_signed else 2**q.in_bits - 1  # largest |q_in|
    w = q.weight.astype(np.int64)
    bound = np.abs(w.reshape(len(w), -1)).sum(axis=1) * in_max  # one output's taps
    if q.bias is not None:
        bound = bound + np.abs(q.bias.astype(np.int64))
    if bound.max() >= EXACT_LIMIT:
        raise TinyccError(f"layer {index}: worst-case accumulator {int(bound.max())} is not below 2**24, "
                          "so float32 (torch, onnxruntime) would round it; use fewer bits")


class _Builder:
    """Collects nodes and initializers; every helper returns its output tensor name."""

    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def qdq(self, x: str, quant: ActQuant, prefix: str, output: str | None = None) -> str:
        s = self.const(f"{prefix}.scale", np.float32(2.0 ** quant.exponent()))
        zp = self.const(f"{prefix}.zero_point", np.array(0, np.int8 if quant.signed else np.uint8))
        container = (-128, 127) if quant.signed else (0, 255)
        if (quant.qmin, quant.qmax) != container:
            lo = self.const(f"{prefix}.clip_min", np.float32(quant.qmin * 2.0 ** quant.exponent()))
            hi = self.const(f"{prefix}.clip_max", np.float32(quant.qmax * 2.0 ** quant.exponent()))
            x = self.node("Clip", [x, lo, hi], f"{prefix}.clipped")
        q = self.node("QuantizeLinear", [x, s, zp], f"{prefix}.q")
        return self.node("DequantizeLinear", [q, s, zp], output or f"{prefix}.dq")

    def linear(self, x: str, q: QuantizedLinear, prefix: str, gemm: bool) -> str:
        per_channel = np.ndim(q.weight_exponent) == 1  # the outputs are Gemm's rows, MatMul's columns
        s_w = self.const(f"{prefix}.weight_scale", np.exp2(q.weight_exponent).astype(np.float32))
        w_int = q.weight if gemm else q.weight.T.copy()
        w = self.node("DequantizeLinear", [self.const(f"{prefix}.weight_q", w_int), s_w], f"{prefix}.weight",
                      **({"axis": 0 if gemm else 1} if per_channel else {}))
        y = None if gemm else self.node("MatMul", [x, w], f"{prefix}.matmul")
        b = None
        if q.bias is not None:
            s_b = self.const(f"{prefix}.bias_scale", np.exp2(q.in_exponent + q.weight_exponent).astype(np.float32))
            b = self.node("DequantizeLinear", [self.const(f"{prefix}.bias_q", q.bias), s_b], f"{prefix}.bias",
                          **({"axis": 0} if per_channel else {}))
        if gemm:
            return self.node("Gemm", [x, w] + ([b] if b else []), f"{prefix}.gemm", transB=1)
        return self.node("Add", [y, b], f"{prefix}.add") if b else y

    def conv(self, x: str, q: QuantizedConv, prefix: str, kernel: tuple[int, int]) -> str:
        per_channel = np.ndim(q.weight_exponent) == 1
        axis = {"axis": 0} if per_channel else {}
        s_w = self.const(f"{prefix}.weight_scale", np.exp2(q.weight_exponent).astype(np.float32))
        w = self.node("DequantizeLinear", [self.const(f"{prefix}.weight_q", q.weight), s_w], f"{prefix}.weight", **axis)
        inputs = [x, w]
        if q.bias is not None:
            s_b = self.const(f"{prefix}.bias_scale", np.exp2(q.in_exponent + q.weight_exponent).astype(np.float32))
            inputs.append(self.node("DequantizeLinear", [self.const(f"{prefix}.bias_q", q.bias), s_b],
                                    f"{prefix}.bias", **axis))
        (ph, pw) = q.padding
        return self.node("Conv", inputs, f"{prefix}.conv", kernel_shape=list(kernel), strides=list(q.stride),
                         pads=[ph, pw, ph, pw], group=q.groups, dilations=[1, 1])


def _input_dims(first: nn.Module, input_shape) -> list[int]:
    """The input's dims after the batch: [features] for a dense model, [C, H, W] for a conv one."""
    shape = [int(input_shape)] if np.ndim(input_shape) == 0 else [int(d) for d in input_shape]
    if isinstance(first, QLinear):
        if shape[-1] != first.in_features:
            raise TinyccError(f"export: input has {shape[-1]} features, first layer expects {first.in_features}")
        return shape[-1:]
    if len(shape) < 3 or shape[-3] != first.in_channels:
        raise TinyccError(f"export: input shape {shape} has not the {first.in_channels} channels "
                          "the first QConv2d expects (give (C, H, W))")
    return shape[-3:]


def build_onnx(model: nn.Module, input_shape, *, opset=17, argmax=True, gemm=False) -> onnx.ModelProto:
    """The canonical QDQ graph of `model` in eval mode (see the module docstring)."""
    layers = sequence(model)
    dims = _input_dims(layers[0], input_shape)
    hoisted = _pooled_quantizers(layers)
    b, x, index, schemes = _Builder(), "input", 0, []
    done = None  # the quantizer already applied to x (before a pool)
    for i, m in enumerate(layers):
        if isinstance(m, (QLinear, QConv2d)):
            q = m.quantized()
            check_exact(q, index)
            if done is not m.input_quant:
                x = b.qdq(x, m.input_quant, f"layer{index}.input")
            if isinstance(m, QConv2d):
                x = b.conv(x, q, f"layer{index}", m.kernel_size)
            else:
                x = b.linear(x, q, f"layer{index}", gemm)
            schemes.append(q.scheme.name)
            index, done = index + 1, None
        elif isinstance(m, nn.ReLU):
            x = b.node("Relu", [x], f"layer{index - 1}.relu")
        elif isinstance(m, nn.MaxPool2d):
            if i in hoisted and done is not hoisted[i]:
                x, done = b.qdq(x, hoisted[i], f"layer{index - 1}.output"), hoisted[i]
            k, st = (m.kernel_size,) * 2 if np.ndim(m.kernel_size) == 0 else m.kernel_size, m.stride
            st = (st,) * 2 if np.ndim(st) == 0 else st
            x = b.node("MaxPool", [x], f"layer{index - 1}.pool{i}", kernel_shape=list(k), strides=list(st))
        elif isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise TinyccError("export: only Flatten(start_dim=1) is supported")
            x = b.node("Flatten", [x], f"layer{index - 1}.flatten", axis=1)
    last = layers[-1]
    x = b.qdq(x, last, "output", output="logits") if done is not last else b.node("Identity", [x], "logits")
    classes = [m for m in layers if isinstance(m, (QLinear, QConv2d))][-1]
    classes = classes.out_features if isinstance(classes, QLinear) else classes.out_channels
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])]
    if argmax:
        b.node("ArgMax", ["logits"], "class", axis=1, keepdims=0)
        outputs.append(helper.make_tensor_value_info("class", TensorProto.INT64, ["N"]))
    graph = helper.make_graph(
        b.nodes, "tinycc_nn_qat", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *dims])],
        outputs, initializer=b.inits)
    opsets = [helper.make_opsetid("", opset)]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="tinycc_nn.qat",
                                   ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(onnx_model, {"tinycc_nn.weight_schemes": ",".join(schemes)})
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def export_onnx(model: nn.Module, path, input_shape, *, opset=17, argmax=True, gemm=False,
                metadata: dict | None = None) -> Path:
    """Write `build_onnx(model, ...)` to `path` (input_shape: features, or (..., features);
    (C, H, W) for a model that starts with a QConv2d); `metadata` goes into the model's
    metadata_props (e.g. `tinycc_nn.datasets.input_metadata`: how its input is made)."""
    onnx_model = build_onnx(model, input_shape, opset=opset, argmax=argmax, gemm=gemm)
    if metadata:  # set_model_props replaces every prop: keep the exporter's own
        own = {prop.key: prop.value for prop in onnx_model.metadata_props}
        onnx.helper.set_model_props(onnx_model, {**own, **metadata})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, path)
    return path
