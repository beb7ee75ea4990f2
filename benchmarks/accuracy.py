"""Test-set accuracy of every example model: torch QAT eval, onnxruntime on the exported
file, and tinycc-nn's reference Python backend, with their agreement counts, next to the
fp32 twin's accuracy.

    python benchmarks/accuracy.py [--limit N] [--models examples/*/model.onnx ...]

Writes benchmarks/results/accuracy.md.  The torch column needs torch and the model.pt
saved next to model.onnx by the example's train.py; without them it shows "-".  The fp32
twin is not saved, so its column is the figure its training run measured on the full test
set (results.json next to the model).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import tinycc_nn
from tinycc_nn.datasets import input_name, mnist, view_of
from tinycc_nn.qat.schemes import SCHEMES  # the scheme table alone needs no torch

ROOT = Path(__file__).resolve().parents[1]


def packed_weight_bytes(model: onnx.ModelProto) -> int | None:
    """Packed size from the exporter's scheme list and the int8 weight initializers."""
    props = {p.key: p.value for p in model.metadata_props}
    schemes = props.get("tinycc_nn.weight_schemes", "").split(",")
    weights = [t for t in model.graph.initializer if t.name.endswith(".weight_q")]
    if len(schemes) != len(weights) or not all(s in SCHEMES for s in schemes):
        return None
    return sum(-(-int(np.prod(t.dims)) * SCHEMES[s].bits // 8) for t, s in zip(weights, schemes))


def torch_classes(path: Path, x: np.ndarray):
    """Classes from the saved torch model (`tinycc_nn.qat.experiment.load_saved`), or None
    without torch or model.pt."""
    pt = path.with_name("model.pt")
    try:
        from tinycc_nn.qat import torch_predict
        from tinycc_nn.qat.experiment import load_saved
    except ImportError:
        return None
    if not pt.exists():
        return None
    return torch_predict(load_saved(pt), x)[1]


# the compiled programs measured: the reference backend, and the MCU C built for the host
# (the same model.c as the firmware; the emulator's figures are in ch32v003.py)
TARGETS = (("tinycc", "python", {}), ("ch32v003", "ch32v003", {"executor": "host"}),
           ("ch32v002", "ch32v002", {"executor": "host"}))


def compiler_classes(path: Path, x: np.ndarray, target: str = "python", **options):
    """Classes from `tinycc_nn.compile(path, target).run(x)`, or the error it raised."""
    try:
        outputs = tinycc_nn.compile(str(path), target, **options).run(x)
    except Exception as e:  # a benchmark reports a failing stage instead of stopping
        return None, f"{type(e).__name__}: {e}"
    return np.asarray(outputs["class"]).reshape(-1), None


def measure(path: Path, limit: int) -> dict:
    model = onnx.load(path)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    size, crop = view_of(model)  # the MNIST view it was trained on: metadata, else its shape
    x, y = mnist(size, "test", crop)
    x, y = x[:limit].reshape([-1] + dims), y[:limit]
    row = {"model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
           "input": input_name(size, crop), "weight_bytes": packed_weight_bytes(model), "n": len(y)}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ort_cls = session.run(["class"], {"input": x})[0]
    row["compiler_error"] = None
    classes = {"ort": ort_cls}
    for key, target, options in TARGETS:
        t0 = time.perf_counter()
        classes[key], error = compiler_classes(path, x, target, **options)
        row[f"{key}_seconds"] = time.perf_counter() - t0
        if error:
            row["compiler_error"] = (row["compiler_error"] or "") + f" {target}: {error}"
        row[f"{key}_vs_ort"] = None if classes[key] is None else int((classes[key] == ort_cls).sum())
    classes["torch"] = torch_classes(path, x)
    for name, cls in classes.items():
        row[name] = None if cls is None else float((cls == y).mean())
    row["torch_vs_ort"] = None if classes["torch"] is None else int((classes["torch"] == ort_cls).sum())
    results = path.with_name("results.json")
    row["fp32"] = json.loads(results.read_text()).get("fp32_accuracy") if results.exists() else None
    return row


def _cell(value, pct=False):
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if pct else str(value)


def table(rows: list[dict]) -> str:
    lines = ["| model | input | packed weights (bytes) | torch fp32 twin | torch QAT eval | onnxruntime "
             "| tinycc-nn python | ch32v003 C | ch32v002 C | torch = ort (classes) "
             "| python / ch32v003 / ch32v002 = ort (classes) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        agree = " / ".join(f"{_cell(r[f'{k}_vs_ort'])}" for k, _, _ in TARGETS)
        lines.append(f"| `{r['model']}` | {r['input']} | {_cell(r['weight_bytes'])} | {_cell(r['fp32'], True)} "
                     f"| {_cell(r['torch'], True)} "
                     f"| {_cell(r['ort'], True)} | {_cell(r['tinycc'], True)} "
                     f"| {_cell(r['ch32v003'], True)} | {_cell(r['ch32v002'], True)} "
                     f"| {_cell(r['torch_vs_ort'])}/{r['n']} | {agree} (of {r['n']}) |")
    errors = [f"- `{r['model']}`: tinycc-nn failed: {r['compiler_error']}" for r in rows if r["compiler_error"]]
    return "\n".join(lines + ([""] + errors if errors else []))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=10000, help="test images (default: all 10,000)")
    ap.add_argument("--models", nargs="*", type=Path,
                    default=sorted((ROOT / "examples").glob("*/model.onnx")))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/accuracy.md")
    args = ap.parse_args(argv)
    rows = [measure(Path(p).resolve(), args.limit) for p in args.models]
    text = ("# Accuracy of the example models\n\n"
            f"Generated by `python benchmarks/accuracy.py`: MNIST test set ({rows[0]['n'] if rows else 0} images), "
            "top-1 accuracy of the `class` output. torch fp32 twin: the unquantized network of the same "
            "widths, as measured on the full test set by the training run (`results.json`; it is not saved); "
            "torch QAT: the QAT model from `model.pt` in eval mode; "
            "onnxruntime: `model.onnx`, default session options; tinycc-nn python: "
            "`tinycc_nn.compile(model, \"python\").run(x)`; ch32v003 / ch32v002 C: the generated "
            "`model.c` built for the host (`executor=\"host\"`, the firmware's C; a model that does "
            "not fit the part shows \"-\" and the reason below). The last columns count images whose "
            "class agrees between two of them.\n\n" + table(rows) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
