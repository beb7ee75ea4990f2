"""Walk an ONNX QDQ graph and build the IR (see values.py for what is tracked)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from .. import hostio
from ..errors import TinyccError
from ..ir import Graph, TensorType, channel_range, identifier, infer_type
from .fit import FitError, fit_requant
from .values import DATA_MOVEMENT, QDTYPES, Act, Const, compact



def dtype_name(elem_type: int) -> str:
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "undefined"


def _dims(vi) -> list:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
            for d in vi.type.tensor_type.shape.dim]


# what to do instead, for operators people put in classifiers
UNSUPPORTED_HINTS = {
    op: (f"; a {op} after the logits does not change which class is largest: export the "
         "logits (add an ArgMax for the class), and apply it on the host if you need it")
    for op in ("Softmax", "LogSoftmax", "Sigmoid")
}

# operators that belong folded into the layer before them
FOLD_HINTS = {
    "BatchNormalization": ("; fold it into the Conv/Gemm before it before quantizing (torch: "
                           "eval-mode export or torch.ao fuse_modules; onnxruntime: "
                           "onnxruntime.quantization.shape_inference.quant_pre_process)"),
}


class Importer:
    def __init__(self, model: onnx.ModelProto, warn):
        self.model = model
        self.ir = Graph(identifier(model.graph.name or "model", "m"))
        self.vals: dict = {}
        self.warn = warn
        self.quantized_input = None
        self.reading = "float"      # "integer" once an integer kernel is compiled (kernels.py)

    # IR construction helpers ---------------------------------------------------------
    def emit(self, op: str, base: str, operands, attrs) -> str:
        name = self.ir.fresh(base)
        self.ir.add(name, op, operands, attrs)
        self.ir.node(name)["type"] = infer_type(self.ir, name)
        return name

    def emit_const(self, base: str, values: np.ndarray) -> str:
        values = np.asarray(values, np.int64)
        return self.emit("const", base, [], {"values": values,
                                             "valueset": sorted(set(values.ravel().tolist()))})

    # driver ---------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.model.graph
        for init in g.initializer:
            self.vals[init.name] = Const(numpy_helper.to_array(init))
        runtime_inputs = [i for i in g.input if i.name not in self.vals]
        if len(runtime_inputs) != 1:
            names = ", ".join(f"'{i.name}'" for i in runtime_inputs) or "none"
            raise TinyccError(f"model has {len(runtime_inputs)} runtime inputs ({names}); "
                              "tinycc-nn compiles models with exactly one input")
        self._graph_input(runtime_inputs[0])
        for node in _live_nodes(g):
            self._visit(node)
        for out in g.output:
            self._graph_output(out)
        if self.reading == "integer":
            for name in self.ir.inputs():
                self.ir.attrs(name)["reading"] = "integer"
        return self.ir

    def _graph_input(self, vi) -> None:
        dims = _dims(vi)
        dtype = dtype_name(vi.type.tensor_type.elem_type)
        for k, d in enumerate(dims):
            if not isinstance(d, int) and not (k == 0 and len(dims) >= 2):
                raise TinyccError(f"input '{vi.name}': dimension {k} is {d!r}; only a leading "
                                  "batch dimension may be symbolic")
        if any(d == 0 for d in dims):
            raise TinyccError(f"input '{vi.name}': shape {dims} holds no values")
        shape1 = [1 if isinstance(d, str) else d for d in dims]
        act = Act(None, np.arange(int(np.prod(shape1))).reshape(shape1), dtype)
        self.input_info = {"name": vi.name, "dtype": dtype, "shape": dims}
        if dtype in QDTYPES:
            act = Act(self._make_input(dtype, None, None, act.index.size), act.index, dtype)
        elif dtype != "float32":
            raise TinyccError(f"input '{vi.name}': element type {dtype} is not supported "
                              "(float32, or an 8/16-bit integer)")
        self.vals[vi.name] = act

    def _make_input(self, qdtype, scale, zero_point, size) -> str:
        attrs = dict(self.input_info, qdtype=qdtype)
        if scale is not None:
            attrs["scale"], attrs["zero_point"] = scale, zero_point
        name = self.ir.fresh(self.input_info["name"])
        lo, hi = hostio.QRANGE[qdtype]
        self.ir.add(name, "input", [], attrs, TensorType.for_range(lo, hi, (size,)))
        return name

    def _visit(self, node) -> None:
        where = f"{node.op_type} '{node.name or node.output[0]}'"
        if node.domain not in ("", "ai.onnx", "com.microsoft"):
            raise TinyccError(f"{where}: operator domain '{node.domain}' is not supported")
        args = []
        for name in node.input:
            if name and name not in self.vals:
                raise TinyccError(f"{where}: input '{name}' is not produced by any node")
            args.append(self.vals[name] if name else None)
        present = [a for a in args if a is not None]
        if all(isinstance(a, Const) for a in present):
            results = self._fold(node, args, where)
        elif node.op_type == "Shape":     # of one sample: a symbolic batch counts as 1
            a = _attrs(node)
            shape = list(args[0].shape)[a.get("start", 0):a.get("end", None)]
            results = [Const(np.array(shape, np.int64))]
        else:
            table = MS_HANDLERS if node.domain == "com.microsoft" else HANDLERS
            handler = table.get(node.op_type)
            if handler is None:
                hint = UNSUPPORTED_HINTS.get(node.op_type, "") if _ends_the_graph(
                    self.model.graph, node.output[0]) else FOLD_HINTS.get(node.op_type, "")
                raise TinyccError(f"{where}: operator {node.op_type} is not supported{hint}")
            results = handler(self, node, args, where, _attrs(node))
        for name, value in zip(node.output, results):
            if name:
                self.vals[name] = value

    def _fold(self, node, args, where):
        """Evaluate a node whose inputs are all constant, keeping integer origins."""
        if node.op_type == "DequantizeLinear":
            q, a = args[0].value, _attrs(node)
            if q.dtype.name in ("int4", "uint4"):       # ml_dtypes arrays from onnx
                q = q.astype(np.int8 if q.dtype.name == "int4" else np.uint8)
            if q.dtype.kind not in "iu":
                raise TinyccError(f"{where}: dequantizes a {q.dtype} tensor")
            scale = args[1].value
            zp = args[2].value if len(args) > 2 and args[2] is not None else np.zeros((), q.dtype)
            if zp.dtype.name in ("int4", "uint4"):
                zp = zp.astype(np.int8)
            if zp.size == 1:
                zp = np.full(scale.shape, zp.reshape(-1)[0], np.int64)
            shape = [1] * q.ndim
            if scale.size > 1:
                if a.get("block_size", 0):
                    raise TinyccError(f"{where}: blocked quantization is not supported")
                shape[a.get("axis", 1) % q.ndim] = scale.size
            s = np.broadcast_to(scale.reshape(shape), q.shape)
            z = np.broadcast_to(zp.reshape(shape), q.shape)
            return [Const(hostio.dequantize(q, s, z), q.astype(np.int64), s.astype(np.float32),
                          z.astype(np.int64), node.name or node.output[0])]
        try:
            ref = ReferenceEvaluator(node)
            outs = ref.run(None, {n: a.value for n, a in zip(node.input, args) if n})
        except Exception as e:  # the reference evaluator raises anything
            raise TinyccError(f"{where}: cannot evaluate on constants: {e}") from None
        if node.op_type in DATA_MOVEMENT and args[0].qint is not None:
            def move(arr):
                ins = {node.input[0]: arr}
                ins.update({n: a.value for n, a in zip(node.input[1:], args[1:]) if n})
                return ReferenceEvaluator(node).run(None, ins)[0]
            return [args[0].map(move)]
        return [Const(np.asarray(o)) for o in outs]

    def _graph_output(self, vi) -> None:
        v = self.vals.get(vi.name)
        where = f"output '{vi.name}'"
        if isinstance(v, Const):
            raise TinyccError(f"{where}: is a constant; nothing to compute")
        if v.ir is None:
            raise TinyccError(f"{where}: is the unquantized model input")
        n = self.ir.type(v.ir).size
        attrs = {"name": vi.name, "dtype": v.dtype, "shape": _dims(vi), "float_ops": v.ops}
        if v.index.size != n or (v.index.ravel() != np.arange(n)).any():
            attrs["index"] = v.index.ravel().tolist()
        declared = dtype_name(vi.type.tensor_type.elem_type)
        if declared not in (v.dtype, "undefined"):
            raise TinyccError(f"{where}: declared {declared} but computes {v.dtype}")
        self.ir.add(self.ir.fresh("out." + vi.name), "output", [v.ir], attrs)

    # requantization ---------------------------------------------------------------------
    def requantize(self, act: Act, ops: list, dtype: str, where: str) -> Act:
        """The integer tensor dtype(ops(act)), fitted exactly; reuses act.ir when unchanged."""
        chain = act.ops + ops

        def f(a):
            return hostio.apply_float_ops(a.T, chain).T.astype(np.int64)
        hint = ""
        divs = [op[1] for op in chain if op[0] == "div"]
        if divs:
            hint = (f"; an average over {int(divs[0])} elements comes before it, whose exact "
                    "halves onnxruntime rounds to even: no multiplier reproduces that, a "
                    "pooling window of a power-of-two size does")
        return self.requantize_fn(act, f, dtype, where, hint)

    def requantize_fn(self, act: Act, f, dtype: str, where: str, hint: str = "") -> Act:
        """The integer tensor dtype(f(act)) for a monotone f from [channels, n] accumulator
        values (row c of channel c) to integers, fitted exactly."""
        a_lo, a_hi = channel_range(self.ir, act.ir)
        try:
            fit = fit_requant(f, a_lo, a_hi)
        except FitError as e:
            raise TinyccError(f"{where}: cannot requantize exactly: {e}{hint}") from None
        ir = act.ir
        lo = fit.lo if fit.lo > a_lo.min() else None
        hi = fit.hi if fit.hi < a_hi.max() else None
        if fit.is_clamp_only():
            if lo is not None or hi is not None:
                ir = self.emit("clamp", act.ir + ".clamp", [act.ir], {"lo": lo, "hi": hi})
        else:
            attrs = {k: compact(getattr(fit, k)) for k in ("mult", "rnd", "shift")}
            attrs.update(rounding=fit.rounding, lo=fit.lo, hi=fit.hi)
            ir = self.emit("requant", act.ir + ".q", [act.ir], attrs)
        return Act(ir, act.index, dtype)


def _ends_the_graph(g, name: str) -> bool:
    """Whether `name` reaches only graph outputs, through quantizers and reshapes."""
    passive = {"QuantizeLinear", "DequantizeLinear", "Identity", "Flatten", "Reshape",
               "Squeeze", "Unsqueeze"}
    outputs = {o.name for o in g.output}
    todo, seen = [name], set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        users = [n for n in g.node if v in n.input]
        if any(n.op_type not in passive for n in users):
            return False
        todo += [o for n in users for o in n.output]
    return bool(seen & outputs)


def _live_nodes(g) -> list:
    """The nodes some graph output depends on, in graph order: onnxruntime computes a
    dead branch too, but nothing observes it, so it must not stop the compilation."""
    needed = {o.name for o in g.output}
    live = []
    for node in reversed(g.node):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    return live[::-1]


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


from .handlers import HANDLERS, MS_HANDLERS  # noqa: E402  (handlers use Importer's helpers)
