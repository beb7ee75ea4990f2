"""Every committed example's model.pt is the model its model.onnx was exported from.

`benchmarks/accuracy.py` reports the torch QAT column from model.pt; if a new model.onnx
were committed without its model.pt (or the other way round) that column would silently
describe another network.  Here both run on the same test images and must agree bit for bit.
"""

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
