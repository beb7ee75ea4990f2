"""onnxruntime as the reference: the same ONNX model, the same float inputs.

By default the session runs with graph optimizations disabled, so onnxruntime
executes the model's operators as written (the ONNX semantics); `optimized=True`
uses its default level instead, where it fuses QDQ patterns into its own integer
kernels.  Outputs come back per sample, [n, ...], like Artifact.run.
"""
from __future__ import annotations

import numpy as np

from . import hostio
from .errors import TinyccError


def onnxruntime_outputs(model_path, x, input_attrs, optimized: bool = False, chunk: int = 4096):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4      # failures come back as exceptions, reported below
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise TinyccError(f"{model_path}: onnxruntime cannot load it: {str(e).splitlines()[0]}") from None
    inp = sess.get_inputs()[0]
    shape = list(input_attrs["shape"])
    sample = hostio.sample_shape(shape)
    x = np.asarray(x)
    n = x.shape[0]
    batched = bool(shape) and isinstance(shape[0], str)
    dtype = np.float32 if input_attrs["dtype"] == "float32" else np.dtype(input_attrs["dtype"])
    x = x.reshape([n] + sample).astype(dtype)
    names = [o.name for o in sess.get_outputs()]
    # Whole chunks at once only when every output keeps the input's batch dimension in
    # front (a Transpose or Reshape may move or merge it); else, or if onnxruntime refuses
    # a larger batch (a Reshape to a fixed [1, ...]), one sample per run, as compiled.
    batched = batched and all(o.shape and o.shape[0] == inp.shape[0] for o in sess.get_outputs())
    if batched:
        try:
            results = {k: [] for k in names}
            for s in range(0, n, chunk):
                part = x[s:s + chunk]
                outs = sess.run(None, {inp.name: part.reshape([-1] + shape[1:])})
                for k, o in zip(names, outs):
                    if o.ndim == 0 or o.shape[0] != len(part):
                        raise ValueError("batch dimension not in front")
                    results[k].append(o.reshape(o.shape[0], -1))
            return {k: np.concatenate(v) for k, v in results.items()}
        except Exception:  # onnxruntime's own exception types, or the check above
            pass
    one = [1 if isinstance(d, str) else d for d in shape]
    results = {k: [] for k in names}
    for i in range(n):
        try:
            outs = sess.run(None, {inp.name: x[i:i + 1].reshape(one)})
        except Exception as e:  # onnxruntime raises its own exception types
            raise TinyccError(f"{model_path}: onnxruntime cannot run it on sample {i}: "
                              f"{str(e).strip().splitlines()[0]}") from None
        for k, o in zip(names, outs):
            results[k].append(o.reshape(1, -1))
    return {k: np.concatenate(v) for k, v in results.items()}
