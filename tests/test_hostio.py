"""tinycc_nn/hostio.py: the host-side float32 arithmetic, against onnxruntime."""
import warnings

import numpy as np
import pytest

import tinycc_nn
from onnx_cases import Net, ort_outputs


@pytest.mark.parametrize("dtype, zp", [("int8", 0), ("int8", -5), ("uint8", 3), ("int16", 0)])
def test_quantize_non_finite_and_huge_inputs(dtype, zp):
    # NaN quantizes to the type's minimum in onnxruntime (it became 0 or INT64_MIN here), and
    # no numpy overflow/invalid warnings leak onto stderr
    net = Net()
    net.output(net.quant(net.input("x", ["N", 4]), 2 ** -5, zp, dtype, dequant=False), ["N", 4], dtype)
    model = net.model(21)
    x = np.array([[np.inf, -np.inf, np.nan, 1e30], [-1e30, -0.0, 3.4e38, -np.nan]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = tinycc_nn.compile(model, "python").run(x)
    got = next(iter(ours.values())).reshape(2, -1)
    assert np.array_equal(got, ort_outputs(model, x)[0])
