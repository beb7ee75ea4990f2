"""ONNX (QDQ) -> IR.

`load_onnx` checks the model with onnx's checker and shape inference, then lowers
it to exact integer arithmetic: see importer.py (graph walk), handlers.py (one
function per operator), linear.py (MatMul/Gemm) and fit.py (requantization).
"""
from __future__ import annotations

import os

import onnx

from ..errors import TinyccError
from ..ir import Graph, verify
from .importer import Importer

MIN_OPSET = 13


def read_model(source) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        return source
    path = os.fspath(source)
    try:
        return onnx.load(path)
    except FileNotFoundError:
        raise TinyccError(f"{path}: no such file") from None
    except Exception as e:  # protobuf's DecodeError and friends
        raise TinyccError(f"{path}: not an ONNX model ({type(e).__name__})") from None


def load_onnx(source, warn=None) -> Graph:
    """Import an ONNX model (path or ModelProto) as a verified IR graph.

    `warn(message)` receives non-fatal findings (default: ignored).
    """
    model = _topologically_sorted(read_model(source))
    label = source if isinstance(source, (str, os.PathLike)) else "model"
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        detail = " | ".join(lines)[:400] or "invalid model"
        raise TinyccError(f"{label}: ONNX checker: {detail}") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise TinyccError(f"{label}: opset {opset} is too old; tinycc-nn needs opset {MIN_OPSET} or newer")
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # InferenceError, and ValueError for broken files
        first = str(e).strip().splitlines()[0]
        raise TinyccError(f"{label}: ONNX shape inference: {first}") from None
    graph = Importer(model, warn or (lambda msg: None)).run()
    verify(graph)
    return graph


def _topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its nodes in dependency order (a copy; the model itself if already so).

    ONNX asks for sorted nodes, but onnxruntime runs any order, and so do hand-edited
    graphs.  Nodes with an input nobody produces (or in a cycle) go last, in their
    order, so the checker still names them.
    """
    g = model.graph
    sources = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    known = set(sources)
    for n in g.node:
        if not all(i in known for i in n.input):
            break
        known.update(n.output)
    else:
        return model
    known = set(sources)
    pending, order = list(g.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            break
        for n in ready:
            known.update(n.output)
        order += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    order += pending
    sorted_model = onnx.ModelProto()
    sorted_model.CopyFrom(model)
    del sorted_model.graph.node[:]
    sorted_model.graph.node.extend(order)
    return sorted_model
