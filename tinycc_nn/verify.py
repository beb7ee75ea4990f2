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

    def summary(self) -> dict:
        def mean(k):
            v = self.stats.get(k)
            return None if v is None or len(v) == 0 else float(np.mean(v))

        def peak(k):
            v = self.stats.get(k)
            return None if v is None or len(v) == 0 else int(np.max(v))
        return {"n": self.n, "mismatches": self.mismatches, "argmax_agree": self.argmax_agree,
                "first_mismatch": self.first_mismatch,
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
    ours, stats = artifact.run(x, with_stats=True, progress=progress)
    inp = artifact.graph.attrs(artifact.graph.inputs()[0])
    ref = onnxruntime_outputs(model_path, x, inp, optimized=optimized_ort)
    bad, detail = compare(ours, ref)
    agree = int((_class_of(ours) == _class_of(ref)).sum())
    first = int(np.argmax(bad)) if bad.any() else None
    return VerifyResult(len(bad), int(bad.sum()), agree, first, ours, stats, detail)
