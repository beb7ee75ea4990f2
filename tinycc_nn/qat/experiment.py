"""One MNIST experiment end to end: fp32 twin, QAT student, export, measured accuracy.

The examples and the sweep are configurations of this one function, so every committed
model comes out of the same steps: train the unquantized twin (its accuracy is the fp32
reference, its weights the student's starting point and, optionally, its teacher),
fine-tune the quantized model, optionally refine its integer weights directly
(`tinycc_nn.qat.refine`), export it, and measure torch eval and onnxruntime on the full
test set, counting how many of the 10,000 answers agree bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import tinycc_nn
from tinycc_nn.datasets import input_metadata, mnist, mnist_images
from tinycc_nn.qat import export_onnx, mlp, torch_predict, weight_bytes
from tinycc_nn.qat.augment import random_affine, random_shift
from tinycc_nn.qat.refine import refine_weights
from tinycc_nn.qat.training import Recipe, accuracy, fit, float_mlp


@dataclasses.dataclass
class Experiment:
    """Everything that decides the model; saved next to it so it can be rebuilt."""

    size: int
    widths: tuple
    schemes: object = "pm2"  # one scheme name or one per layer
    bias: bool = True
    act_bits: int = 8
    input_bits: int = 8
    float_epochs: int = 30
    qat_epochs: int = 30
    lr: float = 3e-3
    qat_lr: float = 1e-3
    batch_size: int = 128
    augment: dict | None = None  # {"kind": "shift", "max_shift": 1} or {"kind": "affine", ...}
    distill: bool = False
    muon: bool = False  # Muon on the hidden layers' weights (training.hidden_weights)
    weight_exponent_offset: int = 0  # added to each layer's MSE weight exponent (QLinear)
    refine_passes: int = 0  # sweeps of integer coordinate descent after QAT (0: none)
    seed: int = 0
    train_limit: int | None = None  # train on the first N training images (None: all 60,000)
    test_limit: int | None = None  # measure on the first N test images (None: all 10,000)
    crop: int = 28  # keep the centred crop x crop of the 28x28 digit, then downscale to size

    def build(self) -> torch.nn.Sequential:
        return mlp(tuple(self.widths), self.schemes, bias=self.bias, act_bits=self.act_bits,
                   input_bits=self.input_bits, weight_exponent_offset=self.weight_exponent_offset)


def augmenter(spec: dict | None):
    """The numpy augmentation named by `spec`, or None."""
    if not spec:
        return None
    spec = dict(spec)
    kind = spec.pop("kind")
    return functools.partial({"shift": random_shift, "affine": random_affine}[kind], **spec)


def ort_predict(path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, class) from onnxruntime with its default (fully optimizing) session."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, classes = session.run(["logits", "class"], {"input": x})
    return logits, classes


def run(exp: Experiment, out_dir=None, progress: bool = True) -> dict:
    """Train, export to `out_dir/model.onnx` (+ model.pt), measure; returns the results."""
    start = time.time()
    images, labels = (a[:exp.train_limit] for a in mnist_images("train"))
    x_test, y_test = (a[:exp.test_limit] for a in mnist(exp.size, "test", exp.crop))
    test = (x_test, y_test)
    recipe = functools.partial(Recipe, batch_size=exp.batch_size, augment=augmenter(exp.augment),
                               seed=exp.seed, muon=exp.muon)
    # torch seeds its default generator at random in every process: seed before the first
    # initialisation, or the twin (and everything after it) differs from run to run
    torch.manual_seed(exp.seed)
    teacher = float_mlp(tuple(exp.widths), bias=exp.bias)
    if exp.float_epochs:
        fit(teacher, images, labels, exp.size, recipe(epochs=exp.float_epochs, lr=exp.lr),
            desc="fp32 twin", progress=progress, crop=exp.crop)
    float_acc = accuracy(teacher, *test) if exp.float_epochs else None
    model = exp.build()
    if exp.float_epochs:
        model.load_state_dict(teacher.state_dict(), strict=False)  # same parameter names
    teacher.eval()
    log = fit(model, images, labels, exp.size,
              recipe(epochs=exp.qat_epochs, lr=exp.qat_lr if exp.float_epochs else exp.lr,
                     teacher=teacher if exp.distill else None),
              desc="QAT", progress=progress, crop=exp.crop)
    results = {"weight_bytes": weight_bytes(model), "fp32_accuracy": float_acc}
    if exp.refine_passes:
        results["qat_accuracy"] = accuracy(model, *test)
        x_train, y_train = (a[:exp.train_limit] for a in mnist(exp.size, "train", exp.crop))
        results["refine_log"] = refine_weights(model, x_train, y_train, passes=exp.refine_passes,
                                               seed=exp.seed, progress=progress)
    results.update(train_seconds=round(time.time() - start), epochs_log=log)
    logits, classes = torch_predict(model, x_test)
    results["torch_accuracy"] = float((classes == y_test).mean())
    if out_dir is not None:
        out = Path(out_dir)
        path = export_onnx(model, out / "model.onnx", exp.widths[0],
                           metadata=input_metadata(exp.size, exp.crop))
        torch.save({"experiment": dataclasses.asdict(exp), "state_dict": model.state_dict()}, out / "model.pt")
        ort_logits, ort_classes = ort_predict(path, x_test)
        results["ort_accuracy"] = float((ort_classes == y_test).mean())
        results["class_agreement"] = int((ort_classes == classes).sum())
        results["logits_bit_agreement"] = int((ort_logits.view(np.int32) == logits.view(np.int32)).all(axis=1).sum())
        compiled = tinycc_nn.compile(str(path), "python").run(x_test)  # the compiler's reference target
        tin_logits, tin_classes = np.asarray(compiled["logits"], np.float32), np.asarray(compiled["class"])
        results["tinycc_accuracy"] = float((tin_classes == y_test).mean())
        results["tinycc_logits_bit_agreement"] = int(
            (tin_logits.view(np.int32) == ort_logits.view(np.int32)).all(axis=1).sum())
        (out / "results.json").write_text(json.dumps(
            {"experiment": dataclasses.asdict(exp), **results}, indent=1) + "\n")
    return results


def load(pt_path) -> tuple[torch.nn.Sequential, Experiment]:
    """Rebuild a saved model (eval mode) and its Experiment from model.pt."""
    return _rebuild(torch.load(pt_path, weights_only=True))


def _rebuild(saved: dict) -> tuple[torch.nn.Sequential, Experiment]:
    exp = Experiment(**saved["experiment"])
    model = exp.build()
    model.load_state_dict(saved["state_dict"])
    return model.eval(), exp


def load_saved(pt_path) -> torch.nn.Module:
    """The torch model (eval mode) of an example's model.pt: one an Experiment wrote rebuilds
    itself (`load`); any other is rebuilt by the `load_model(pt)` of the train.py beside it,
    the script that wrote it (the CNN example's)."""
    pt_path = Path(pt_path)
    saved = torch.load(pt_path, weights_only=True)
    if "experiment" in saved:
        return _rebuild(saved)[0]
    script_path = pt_path.with_name("train.py")
    spec = importlib.util.spec_from_file_location(f"{pt_path.parent.name}_train", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.load_model(pt_path)


def _uint(bits: int) -> str:
    return "uint8" if bits == 8 else f"uint{bits} (0..{2**bits - 1} in a uint8)"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def write_readme(out_dir, title: str, intro: str, command: str, exp: Experiment, results: dict) -> None:
    """README.md with the measured table: written by the run, so it cannot drift."""
    n = 10000
    widths = "-".join(str(w) for w in exp.widths)
    schemes = exp.schemes if isinstance(exp.schemes, str) else ", ".join(exp.schemes)
    sweeps = len(results.get("refine_log", [])) - 1
    refined = f" + {sweeps} refinement sweeps" if sweeps > 0 else ""
    if exp.float_epochs:
        recipe = (f"Training: fp32 twin {exp.float_epochs} epochs, then QAT {exp.qat_epochs} epochs "
                  f"(Adam, cosine schedule, lr {exp.lr:g} then {exp.qat_lr:g}")
    else:
        recipe = f"Training: QAT from scratch {exp.qat_epochs} epochs (Adam, cosine schedule, lr {exp.lr:g}"
    recipe += ((f", weight exponents {exp.weight_exponent_offset:+d} from the MSE choice"
                if exp.weight_exponent_offset else "")
               + (", distilled from the twin" if exp.distill else "")
               + (", Muon on the hidden layers" if exp.muon else "")
               + (f", augmentation {exp.augment['kind']}" if exp.augment else "") + ")"
               + (f", then {sweeps} sweeps of coordinate descent on the integer weights "
                  "(`tinycc_nn.qat.refine`)" if sweeps > 0 else "") + ".")
    lines = [
        f"# {title}", "", intro, "",
        f"Network {widths}, weights {schemes}, bias {'yes' if exp.bias else 'no'}, "
        f"inputs {_uint(exp.input_bits)}, hidden activations {_uint(exp.act_bits)}, logits int8.",
        f"Packed weights: {results['weight_bytes']} bytes. Training took {results['train_seconds']} s "
        f"on {torch.get_num_threads()} CPU thread(s).", "", recipe, "",
        "Accuracy on the full 10,000-image MNIST test set:", "",
        "| model | accuracy |", "|---|---|",
        f"| torch fp32 twin (same widths, unquantized) | {_pct(results['fp32_accuracy'])} |",
        *([f"| torch QAT, eval mode, before refinement | {_pct(results['qat_accuracy'])} |"]
          if "qat_accuracy" in results else []),
        f"| torch QAT{refined}, eval mode | {_pct(results['torch_accuracy'])} |",
        f"| onnxruntime on `model.onnx` | {_pct(results.get('ort_accuracy'))} |",
        f"| `tinycc-nn compile model.onnx -t python` | {_pct(results.get('tinycc_accuracy'))} |", "",
        f"torch eval and onnxruntime agree on {results.get('class_agreement')} of {n} classes and "
        f"on all logits, bit for bit, for {results.get('logits_bit_agreement')} of {n} images; "
        f"tinycc-nn's reference target and onnxruntime on all logits, bit for bit, for "
        f"{results.get('tinycc_logits_bit_agreement')} of {n}.", "",
        "Reproduce (CPU, fixed seeds; writes model.onnx, model.pt, results.json and this file):", "",
        "```", command, "```", "",
    ]
    Path(out_dir, "README.md").write_text("\n".join(lines))
