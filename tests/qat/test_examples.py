"""Every committed example's model.pt is the model its model.onnx was exported from.

`benchmarks/accuracy.py` reports the torch QAT column from model.pt; if a new model.onnx
were committed without its model.pt (or the other way round) that column would silently
describe another network.  Here both run on the same test images and must agree bit for bit.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_cases import ort_outputs

torch = pytest.importorskip("torch")
from tinycc_nn.datasets import mnist, view_of  # noqa: E402
from tinycc_nn.qat import torch_predict  # noqa: E402
from tinycc_nn.qat.experiment import load_saved  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAVED = sorted(p.parent.name for p in EXAMPLES.glob("*/model.pt"))
IMAGES = 256


def test_the_examples_have_saved_models():
    assert "mnist16x16_cnn" in SAVED and "mnist16x16" in SAVED


@pytest.mark.parametrize("name", SAVED)
def test_saved_model_matches_the_onnx_bit_for_bit(name):
    folder = EXAMPLES / name
    model = onnx.load(folder / "model.onnx")
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    size, crop = view_of(model)
    x = mnist(size, "test", crop)[0][:IMAGES].reshape([-1, *dims])
    ort_logits, ort_classes = ort_outputs(model, x)  # the outputs in order: logits, class
    logits, classes = torch_predict(load_saved(folder / "model.pt"), x)
    np.testing.assert_array_equal(classes, ort_classes.reshape(-1))
    np.testing.assert_array_equal(logits.view(np.int32), ort_logits.view(np.int32))



def _train_cnn(out: Path, *args: str) -> dict:
    """Run the CNN example's train.py as its users do (its other processes import it as __main__)."""
    script = EXAMPLES / "mnist16x16_cnn" / "train.py"
    short = ["--subset", "256", "--float-epochs", "1", "--qat-epochs", "1", "--muon"]
    subprocess.run([sys.executable, str(script), *short, *args, "--out", str(out)], check=True,
                   capture_output=True)
    return json.loads((out / "results.json").read_text())


def test_cnn_teacher_seeds_train_the_twins_their_own_runs_train(tmp_path):
    """`--teacher-seeds 4` trains seed 4's twin in another process; it must be the twin
    `train.py --seed 4` trains, or the one-command recipe would not be the runs it names."""
    both = _train_cnn(tmp_path / "both", "--seed", "3", "--teacher-seeds", "4")
    alone = _train_cnn(tmp_path / "alone", "--seed", "4")
    teacher = torch.load(tmp_path / "both" / "model.pt")["teacher_twins"][0]
    twin = torch.load(tmp_path / "alone" / "model.pt")["twin"]
    assert teacher.keys() == twin.keys()
    assert all(torch.equal(teacher[k], twin[k]) for k in twin)
    assert [e["loss"] for e in both["teacher_twins"][0]["fp32_log"]] == [e["loss"] for e in alone["fp32_log"]]
    assert both["teacher_accuracy"] is not None and alone["teacher_accuracy"] is None
