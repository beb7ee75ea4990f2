"""Does a proposed model fit its part? The compiler's answer on an untrained export.

ROM and RAM depend on the architecture (layer sizes, weight schemes, activation and input
bits, bias) and hardly on the trained values, so the untrained model, exported and compiled
for the target, gives the compiler's own words and bytes before any training is spent:
`tinycc_nn.DoesNotFit` carries the numbers. The activation quantizers get their scales from
one batch of real training images, as the first training step would set them.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import tinycc_nn
from tinycc_nn.datasets import input_metadata, mnist
from tinycc_nn.qat.experiment import Experiment

CALIBRATION_IMAGES = 256
REPORT_KEYS = ("rom_used", "rom_capacity", "rom_unit", "ram_used", "ram_capacity",
               "cycles_per_inference")


def untrained_model(exp: Experiment):
    """The Experiment's QAT model, initialised with its seed, scales calibrated, eval mode."""
    import torch

    torch.manual_seed(exp.seed)
    model = exp.build()
    x = torch.as_tensor(mnist(exp.size, "train", exp.crop)[0][:CALIBRATION_IMAGES])
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def compile_report(path, target: str, options: dict) -> dict:
    """The figures of a compile for `target` that the search records (DoesNotFit passes)."""
    report = tinycc_nn.compile(str(path), target, **options).report
    return {key: report.get(key) for key in REPORT_KEYS}


def check_fit(exp: Experiment, target: str, options: dict) -> dict:
    """Compile the untrained export; its figures, or DoesNotFit (any TinyccError) raised."""
    from tinycc_nn.qat import export_onnx

    with tempfile.TemporaryDirectory(prefix="tinycc-nn-fit-") as tmp:
        path = export_onnx(untrained_model(exp), Path(tmp) / "model.onnx", exp.widths[0],
                           metadata=input_metadata(exp.size, exp.crop))
        return compile_report(path, target, options)
