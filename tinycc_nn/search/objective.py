"""One trial: propose, reject at once what cannot fit, train the rest, measure, compile.

The trial's value is the onnxruntime accuracy of the exported model on the test images
(what the part will compute, since the compiled program is bit-exact to it). Everything
else the reports need is kept in the study as user attributes, the exported model itself
included (zlib + base64, a few KB), so any machine sharing the study can write the winner:

    experiment        the Experiment (dict), enough to train the model again
    rom_used ...      the compiler's figures for the trained model (fit.REPORT_KEYS)
    rejected          why the compiler refused the untrained model (pruned trials)
    model_onnx        the trained model.onnx
"""
from __future__ import annotations

import base64
import dataclasses
import time
import zlib
from pathlib import Path

from tinycc_nn.errors import TinyccError
from tinycc_nn.qat import experiment as experiment_module
from tinycc_nn.search.fit import check_fit, compile_report
from tinycc_nn.search.space import Space, suggest


def encode_model(path: Path) -> str:
    return base64.b64encode(zlib.compress(Path(path).read_bytes(), 9)).decode("ascii")


def decode_model(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def _reject(trial, stage: str, error: TinyccError):
    import optuna

    trial.set_user_attr("rejected", f"{stage}: {error}")
    raise optuna.TrialPruned(f"{stage}: {error}")


def make_objective(space: Space, target: str, options: dict, out_dir: Path,
                   progress: bool = False, log=print):
    """The optuna objective for this search; trials write to out_dir/trials/NNNN/."""
    def objective(trial) -> float:
        start = time.time()
        exp = suggest(trial, space)
        trial.set_user_attr("experiment", dataclasses.asdict(exp))
        shape = "-".join(map(str, exp.widths))
        try:
            check_fit(exp, target, options)
        except TinyccError as e:
            log(f"trial {trial.number}: {shape} rejected untrained: {e}")
            _reject(trial, "untrained", e)
        trial_dir = out_dir / "trials" / f"{trial.number:04d}"
        results = experiment_module.run(exp, trial_dir, progress=progress)
        try:
            report = compile_report(trial_dir / "model.onnx", target, options)
        except TinyccError as e:  # training moved a weight set or range past the part
            log(f"trial {trial.number}: {shape} rejected after training: {e}")
            _reject(trial, "trained", e)
        accuracy = results["ort_accuracy"]
        for key, value in report.items():
            trial.set_user_attr(key, value)
        for key in ("fp32_accuracy", "torch_accuracy", "weight_bytes"):
            trial.set_user_attr(key, results.get(key))
        trial.set_user_attr("model_onnx", encode_model(trial_dir / "model.onnx"))
        cycles = report.get("cycles_per_inference")
        log(f"trial {trial.number}: {shape} {100 * accuracy:.2f}%, ROM {report['rom_used']} "
            f"{report['rom_unit']}, RAM {report['ram_used']} B"
            + (f", {cycles} cycles" if cycles else "") + f" ({time.time() - start:.0f} s)")
        return accuracy

    return objective
