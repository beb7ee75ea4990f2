"""Float models quantized by onnxruntime's own quantizer, the way users make int8 models.

`float_mlp` / `float_cnn` build small float32 ONNX models (MatMul + Add or Gemm, Relu;
Conv, MaxPool, Flatten, Gemm); `quantize` runs `onnxruntime.quantization.quantize_static`
over a few random calibration samples, in QDQ or QOperator format, per-tensor or
per-channel, int8 or uint8 activations.  `ort_default` runs the result as onnxruntime
deploys it (default optimization level: its integer kernels).
"""
from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def float_mlp(rng, sizes, gemm: bool = False, bias: bool = True) -> onnx.ModelProto:
    nodes, inits, x = [], [], "input"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32)
        c = rng.normal(0, 0.2, b).astype(np.float32)
        if gemm:
            inits.append(numpy_helper.from_array(w.T.copy(), f"W{k}"))
            ins = [x, f"W{k}"]
            if bias:
                inits.append(numpy_helper.from_array(c, f"B{k}"))
                ins.append(f"B{k}")
            nodes.append(helper.make_node("Gemm", ins, [f"h{k}"], transB=1))
        else:
            inits.append(numpy_helper.from_array(w, f"W{k}"))
            nodes.append(helper.make_node("MatMul", [x, f"W{k}"], [f"m{k}" if bias else f"h{k}"]))
            if bias:
                inits.append(numpy_helper.from_array(c, f"B{k}"))
                nodes.append(helper.make_node("Add", [f"m{k}", f"B{k}"], [f"h{k}"]))
        x = f"h{k}"
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{k}"]))
            x = f"r{k}"
    nodes.append(helper.make_node("Identity", [x], ["logits"]))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", sizes[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def float_cnn(rng, channels: int = 3, size: int = 8, classes: int = 4,
              pool: str = "MaxPool") -> onnx.ModelProto:
    """Conv 3x3 (pad 1) -> Relu -> MaxPool 2x2, AveragePool 2x2, GlobalAveragePool or
    GlobalMaxPool -> Flatten -> Gemm."""
    w = rng.normal(0, 0.4, (channels, 1, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, channels).astype(np.float32)
    flat = channels if pool.startswith("Global") else channels * (size // 2) ** 2
    fc = rng.normal(0, 1 / np.sqrt(flat), (classes, flat)).astype(np.float32)
    fb = rng.normal(0, 0.1, classes).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w, "cw"), (b, "cb"), (fc, "fw"), (fb, "fb"))]
    nodes = [helper.make_node("Conv", ["input", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node(pool, ["r"], ["p"]) if pool.startswith("Global")
             else helper.make_node(pool, ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def float_branchy_cnn(rng) -> onnx.ModelProto:
    """Two convs of the input (3x3 -> 3 channels, 1x1 -> 2) -> Relu -> Concat (channels)
    -> conv 3x3 -> Relu -> Flatten -> Gemm: onnxruntime's quantizer writes QLinearConcat."""
    w = {"w1": (3, 2, 3, 3), "b1": (3,), "w2": (2, 2, 1, 1), "b2": (2,), "w3": (2, 5, 3, 3), "b3": (2,),
         "fw": (4, 32)}
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, s).astype(np.float32), n) for n, s in w.items()]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["input", "w2", "b2"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Concat", ["r1", "r2"], ["cat"], axis=1, name="cat"),
             helper.make_node("Conv", ["cat", "w3", "b3"], ["c3"], name="conv3"),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("Flatten", ["r3"], ["f"]),
             helper.make_node("Gemm", ["f", "fw"], ["logits"], transB=1, name="fc")]
    graph = helper.make_graph(
        nodes, "branchy", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def quantize(model: onnx.ModelProto, calibration: np.ndarray, folder, *, qoperator=False,
             per_channel=False, activations="int8") -> onnx.ModelProto:
    """quantize_static with int8 weights; returns the quantized model."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.samples = iter([{"input": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.samples, None)

    src, dst = folder / "float.onnx", folder / "int8.onnx"
    onnx.save(model, src)
    logging.getLogger().setLevel(logging.ERROR)    # its advice to pre-process the model
    quantize_static(str(src), str(dst), Reader(),
                    quant_format=QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
                    per_channel=per_channel, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8)
    return onnx.load(dst)


def ort_default(model: onnx.ModelProto, x: np.ndarray) -> list:
    """onnxruntime at its default optimization level (its fused integer kernels)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})
