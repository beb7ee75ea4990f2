"""torch.onnx.export of fake-quantized modules (the TorchScript exporter, dynamo=False).

torch keeps a Linear's bias in float32, so its Gemm has a float bias off the accumulator
grid.  With power-of-two scales the product sum is exact and onnxruntime's sgemm adds the
bias once to it (for K up to one 128-wide block), which the requantization fit
reproduces: these compile bit-exactly (against the model as written; onnxruntime's
optimized graph rounds differently here, as README says of --ort-optimized).  With float scales onnxruntime fuses no integer
kernel for such a Gemm, so the model is refused, saying what to do instead.
"""
import numpy as np
import pytest

import tinycc_nn
from onnx_cases import assert_bit_exact
from tinycc_nn.errors import TinyccError

torch = pytest.importorskip("torch")


class FakeQuantMLP(torch.nn.Module):
    def __init__(self, k, scales):
        super().__init__()
        torch.manual_seed(k)
        self.fc1, self.fc2 = torch.nn.Linear(k, 8), torch.nn.Linear(8, 4)
        self.s = scales

    @staticmethod
    def fq(x, scale):
        return torch.fake_quantize_per_tensor_affine(x, scale, 0, -128, 127)

    def forward(self, x):
        s = self.s
        x = self.fq(x, s[0])
        h = torch.relu(torch.nn.functional.linear(x, self.fq(self.fc1.weight, s[1]), self.fc1.bias))
        h = self.fq(h, s[2])
        y = torch.nn.functional.linear(h, self.fq(self.fc2.weight, s[3]), self.fc2.bias)
        return self.fq(y, s[4])


def _export(module, k, path):
    torch.onnx.export(module.eval(), torch.zeros(1, k), str(path), dynamo=False,
                      input_names=["input"], output_names=["y"], opset_version=17,
                      dynamic_axes={"input": {0: "N"}, "y": {0: "N"}})
    import onnx
    return onnx.load(str(path))


@pytest.mark.parametrize("k", [12, 128])
def test_power_of_two_fake_quant_with_float_bias_is_bit_exact(tmp_path, k):
    model = _export(FakeQuantMLP(k, [2 ** -5, 2 ** -7, 2 ** -4, 2 ** -7, 2 ** -4]), k,
                    tmp_path / "m.onnx")
    x = np.random.default_rng(k).normal(0, 1, (500, k)).astype(np.float32)
    assert_bit_exact(model, x, optimized=(False,))   # the float reading: ONNX semantics


def test_float_scale_fake_quant_is_refused_with_what_to_do(tmp_path):
    model = _export(FakeQuantMLP(12, [0.03, 0.011, 0.05, 0.013, 0.07]), 12, tmp_path / "m.onnx")
    with pytest.raises(TinyccError, match="in float32 at every optimization level") as e:
        tinycc_nn.compile(model, "python")
    assert "quantize_static" in str(e.value) and "tinycc_nn.qat" in str(e.value)
