"""The integer reading of a QDQ model: the graph onnxruntime really runs.

A QDQ model with float (non-power-of-two) scales has two readings.  As written, every
operator computes in float32 (onnxruntime with optimizations off), and float products
round, so no integer program reproduces it.  At its default optimization level
onnxruntime fuses each DequantizeLinear -> MatMul/Gemm/Conv -> QuantizeLinear group into
an integer kernel (QLinearMatMul, QGemm, QLinearConv, ...; kernels.py has their
arithmetic) and leaves the rest (e.g. an Add of a dequantized bias) in float32.  That
fused graph is what a deployment runs, and what tinycc-nn compiles these models to.

We let onnxruntime decide the fusion: it optimizes the model at ORT_ENABLE_EXTENDED
(the QDQ fusions; the default ORT_ENABLE_ALL adds only layout changes, NCHWc/NHWC,
that move data without changing the arithmetic) and writes the graph it would run
(SessionOptions.optimized_model_filepath); the importer then reads that graph.
"""
from __future__ import annotations

import os
import tempfile

import onnx

from ..errors import TinyccError


def integer_graph(model: onnx.ModelProto, label) -> onnx.ModelProto:
    """The model as onnxruntime's graph optimizer rewrites it (QDQ groups fused)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory() as tmp:
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        try:
            ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise TinyccError(f"{label}: onnxruntime cannot load it to find its integer kernels: "
                              f"{str(e).splitlines()[0]}") from None
        return onnx.load(so.optimized_model_filepath)
