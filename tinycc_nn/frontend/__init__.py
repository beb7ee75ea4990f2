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
from ..limits import LARGEST_PART, MAX_MODEL_BYTES, too_many_values
from .importer import Importer
from .ort_graph import integer_graph
from .values import FloatScales

MIN_OPSET = 13
FLOAT_LINEAR = {"MatMul", "Gemm", "Conv", "FusedGemm", "FusedMatMul", "FusedConv"}
# FusedGemm/FusedConv: onnxruntime fused the activation after the op before its QDQ fusion ran
ACTIVATION_FIRST = ("; an activation between the two, fused into the float op here, blocks "
                    "it, and a ReLU does not when its quantizer's zero point is the bottom of "
                    "its range, -128 in int8 or 0 in uint8: onnxruntime then drops the ReLU "
                    "as a no-op")


def read_model(source) -> onnx.ModelProto:
    """The model at `source`, its size checked before it is read and its external data
    (tensors in files beside it) loaded only from inside its folder."""
    if isinstance(source, onnx.ModelProto):
        return source
    path = os.fspath(source)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise TinyccError(f"{path}: no such file") from None
    except OSError as e:
        raise TinyccError(f"{path}: cannot read: {e.strerror}") from None
    if size > MAX_MODEL_BYTES:
        raise TinyccError(f"{path}: {size} bytes; tinycc-nn reads models of at most "
                          f"{MAX_MODEL_BYTES} bytes ({LARGEST_PART})")
    try:
        model = onnx.load(path, load_external_data=False)
    except IsADirectoryError:
        raise TinyccError(f"{path}: is a folder, not an ONNX model") from None
    except Exception as e:  # protobuf's DecodeError and friends
        raise TinyccError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    _load_external_data(model, path, size)
    return model


def _load_external_data(model: onnx.ModelProto, path: str, size: int) -> None:
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    total = size
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        where = os.path.realpath(os.path.join(folder, location))
        if os.path.isabs(location) or os.path.commonpath([folder, where]) != folder:
            raise TinyccError(f"{path}: tensor '{tensor.name}' keeps its data in {location!r}, "
                              "outside the model's folder; move the file beside the model")
        if not os.path.isfile(where):
            raise TinyccError(f"{path}: tensor '{tensor.name}' keeps its data in {location!r}, "
                              "which does not exist beside the model")
        try:
            total += int(info.get("length") or os.path.getsize(where))
        except ValueError:
            raise TinyccError(f"{path}: tensor '{tensor.name}': bad external data length") from None
        if total > MAX_MODEL_BYTES:
            raise TinyccError(f"{path}: more than {MAX_MODEL_BYTES} bytes with its external data; "
                              f"too large for any part ({LARGEST_PART})")
    try:
        onnx.load_external_data_for_model(model, folder)
    except Exception as e:
        raise TinyccError(f"{path}: cannot read its external data ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None


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
    _check_sizes(model, label)
    warn = warn or (lambda msg: None)
    try:
        graph = Importer(model, warn).run()
    except FloatScales as e:
        graph = _integer_reading(model, label, warn, e)
    verify(graph)
    return graph


def _integer_reading(model: onnx.ModelProto, label, warn, refusal: FloatScales):
    """Float scales: compile the graph onnxruntime runs with its integer kernels."""
    fused = integer_graph(model, label)
    try:
        graph = Importer(fused, warn).run()
    except TinyccError as e:
        left = [n for n in fused.graph.node if n.op_type in FLOAT_LINEAR]
        if not left and isinstance(e, FloatScales):
            # an op onnxruntime has no integer kernel for (ReduceMean, a float pool...)
            raise TinyccError(
                f"{e.node}: onnxruntime has no integer kernel for it and computes it in float32 "
                f"at every optimization level, from values dequantized with a scale that is "
                f"not a power of two ({str(e).split(': ', 1)[1]}), so no integer program can "
                "match it: use GlobalAveragePool or MaxPool (onnxruntime runs those on integers), "
                "or power-of-two scales (tinycc_nn.qat)") from None
        if left or isinstance(e, FloatScales):
            # lead with the node at fault: the one onnxruntime leaves in float32
            what = f"{left[0].op_type} '{left[0].name}'" if left else "the model"
            fused_first = left and left[0].op_type in ("FusedGemm", "FusedConv")
            activation = ACTIVATION_FIRST if fused_first else ""
            raise TinyccError(
                f"{what}: onnxruntime runs it in float32 at every optimization level (it "
                "fuses a QDQ MatMul/Gemm/Conv into an integer kernel only when it sees the "
                "whole group: quantized input and weights, a bias, if any, as int32 behind a "
                "DequantizeLinear (recent onnxruntime quantizes a float bias itself), a "
                f"QuantizeLinear right after{activation}), and the scales are not powers of "
                f"two ({refusal}), so no integer program can match it: quantize the float "
                "model with onnxruntime's quantize_static (which writes such groups), or use "
                "power-of-two scales (tinycc_nn.qat)") from None
        raise TinyccError(f"{e} [scales that are not powers of two, e.g. {refusal.node}, so "
                          "this is the integer reading: the graph onnxruntime runs with its "
                          "integer kernels]") from None
    return graph


def _check_sizes(model: onnx.ModelProto, label) -> None:
    """Refuse a tensor no part can hold (an input of [N, 1e9], a folded constant of
    shape [1e12]) from its declared or inferred shape, before anything is allocated."""
    g = model.graph
    declared = [(vi.name, [d.dim_value if d.HasField("dim_value") else d.dim_param or "?"
                           for d in vi.type.tensor_type.shape.dim])
                for vi in [*g.input, *g.value_info, *g.output]]
    declared += [(t.name, list(t.dims)) for t in g.initializer]
    for name, dims in declared:
        count = 1
        for d in dims:
            count *= d if isinstance(d, int) else 1
        refusal = too_many_values(count, f"{label}: tensor '{name}' of shape {dims}")
        if refusal:
            raise TinyccError(refusal)


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
