"""Compile, execute on the target's executor, compare with onnxruntime bit-exactly."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reference import onnxruntime_outputs


@dataclass
class VerifyResult:
    n: int
    mismatches: int
    argmax_agree: int
    first_mismatch: int | None
    outputs: dict
    stats: dict
    detail: str = ""
    reading: str = "float"          # which onnxruntime reading the outputs were compared with
    float_reading: dict | None = None   # agreement with the float reading (integer models)

    def summary(self) -> dict:
        def mean(k):
            v = self.stats.get(k)
            return None if v is None or len(v) == 0 else float(np.mean(v))

        def peak(k):
            v = self.stats.get(k)
            return None if v is None or len(v) == 0 else int(np.max(v))
        return {"n": self.n, "mismatches": self.mismatches, "argmax_agree": self.argmax_agree,
                "first_mismatch": self.first_mismatch, "reading": self.reading,
                "float_reading": self.float_reading,
                "cycles_mean": mean("cycles"), "cycles_max": peak("cycles"),
                "instructions_mean": mean("instructions")}


def _class_of(outputs: dict) -> np.ndarray:
    """Per-sample class: an integer (ArgMax) output if there is one, else argmax of the first."""
    for v in outputs.values():
        if v.dtype.kind in "iu" and v.reshape(len(v), -1).shape[1] == 1:
            return v.reshape(-1)
    first = next(iter(outputs.values()))
    return first.reshape(len(first), -1).argmax(axis=1)


def compare(ours: dict, ref: dict) -> tuple:
    """(mismatching sample mask, first mismatch description)."""
    n = len(next(iter(ref.values())))
    bad = np.zeros(n, bool)
    detail = ""
    for name, r in ref.items():
        o = ours[name].reshape(n, -1)
        r = r.reshape(n, -1)
        if o.shape != r.shape or o.dtype != r.dtype:
            bad[:] = True
            detail = detail or f"output '{name}': {o.dtype}{list(o.shape[1:])} vs onnxruntime {r.dtype}{list(r.shape[1:])}"
            continue
        diff = (o != r).any(axis=1)
        if diff.any() and not detail:
            i = int(np.argmax(diff))
            detail = f"output '{name}' sample {i}: got {o[i][:8].tolist()}, onnxruntime {r[i][:8].tolist()}"
        bad |= diff
    return bad, detail


def verify_artifact(artifact, model_path, x, optimized_ort: bool = False,
                    progress=None) -> VerifyResult:
    """Compare with onnxruntime.  A model compiled to its integer reading (float scales:
    the kernels onnxruntime fuses, frontend/ort_graph.py) is compared with onnxruntime at
    its default optimization level, and its agreement with the float reading (optimizations
    off) is reported beside: what integer deployment costs."""
    ours, stats = artifact.run(x, with_stats=True, progress=progress)
    inp = artifact.graph.attrs(artifact.graph.inputs()[0])
    reading = inp.get("reading", "float")
    ref = onnxruntime_outputs(model_path, x, inp, optimized=optimized_ort or reading == "integer")
    bad, detail = compare(ours, ref)
    agree = int((_class_of(ours) == _class_of(ref)).sum())
    first = int(np.argmax(bad)) if bad.any() else None
    float_reading = None
    if reading == "integer":
        plain = onnxruntime_outputs(model_path, x, inp, optimized=False)
        float_reading = float_agreement(artifact.graph, ours, plain)
    return VerifyResult(len(bad), int(bad.sum()), agree, first, ours, stats, detail,
                        reading, float_reading)


def float_agreement(graph, ours: dict, plain: dict) -> dict:
    """How the compiled outputs differ from the float reading: samples that differ, the
    largest difference in LSBs of each output's quantization step, argmax agreement."""
    steps = {}
    for node in graph.outputs():
        attrs = graph.attrs(node)
        deq = [op for op in attrs["float_ops"] if op[0] == "dequantize"]
        step = np.asarray(deq[-1][1], np.float64).min() if deq else 1.0
        steps[attrs["name"]] = step
    n = len(next(iter(plain.values())))
    differ = np.zeros(n, bool)
    lsb = 0.0
    for name, r in plain.items():
        o = ours[name].reshape(n, -1).astype(np.float64)
        r = r.reshape(n, -1).astype(np.float64)
        if o.shape != r.shape:
            continue
        d = np.abs(o - r)
        differ |= (d > 0).any(axis=1)
        lsb = max(lsb, float(d.max(initial=0)) / steps.get(name, 1.0))
    agree = int((_class_of(ours) == _class_of(plain)).sum())
    return {"mismatches": int(differ.sum()), "max_lsb": round(lsb, 3), "argmax_agree": agree}
