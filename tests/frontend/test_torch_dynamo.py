"""torch.onnx.export(..., dynamo=True), torch's default exporter, of fake-quantized models.

The dynamo exporter (it needs onnxscript) writes each fake quantizer as QuantizeLinear ->
DequantizeLinear (opset 18 or newer, an `axis` attribute even on per-tensor pairs), a
Linear as Gemm with its float bias, and keeps a ReLU apart.  Three routes reach it:
`torch.fake_quantize_per_tensor_affine` calls (input shape fixed: see `_export`), torch.ao
FakeQuantize modules (after `tinycc_nn.qat.freeze_fake_quant`; as they are, they do not
export) and PT2E (torchao's prepare_pt2e/convert_pt2e).  Power-of-two scales compile to
the float reading, float scales to onnxruntime's integer reading, as after the TorchScript
exporter.
"""
import numpy as np
import pytest

import tinycc_nn
from onnx_cases import assert_bit_exact
from tinycc_nn.errors import TinyccError

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
import onnx  # noqa: E402
from torch import nn  # noqa: E402

from tinycc_nn.qat import freeze_fake_quant  # noqa: E402


def _export(module, path, k=16) -> onnx.ModelProto:
    """A fixed batch of 1: with a symbolic one (`dynamic_shapes`) torch.export stops at the
    fake-quant ops, which have no kernel for its shape-only tensors."""
    torch.onnx.export(module, (torch.zeros(1, k),), str(path), dynamo=True,
                      input_names=["input"], output_names=["y"], verbose=False)
    return onnx.load(str(path))


def _inputs(k=16, n=400):
    return np.random.default_rng(k).normal(0, 1, (n, k)).astype(np.float32)


class FakeQuantMLP(nn.Module):
    """Linear 16 -> 8 -> ReLU -> 4 with fake quantization on input, weights and outputs;
    the ReLU's quantizer has zero point `relu_zero_point`."""

    def __init__(self, scales, relu_zero_point=0):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 4)
        self.s, self.z = scales, relu_zero_point

    def forward(self, x):
        s = self.s

        def fq(t, scale, zero_point=0):
            return torch.fake_quantize_per_tensor_affine(t, scale, zero_point, -128, 127)

        x = fq(x, s[0])
        h = torch.relu(nn.functional.linear(x, fq(self.fc1.weight, s[1]), self.fc1.bias))
        h = fq(h, s[2], self.z)
        return fq(nn.functional.linear(h, fq(self.fc2.weight, s[3]), self.fc2.bias), s[4])


def test_power_of_two_fake_quant_with_float_bias_is_bit_exact(tmp_path):
    scales = [2 ** -5, 2 ** -7, 2 ** -4, 2 ** -7, 2 ** -4]
    model = _export(FakeQuantMLP(scales).eval(), tmp_path / "m.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert ops == {"QuantizeLinear", "DequantizeLinear", "Gemm", "Relu"}
    assert model.opset_import[0].version >= 18
    assert_bit_exact(model, _inputs(), optimized=(False,))   # the float reading


def test_float_scales_compile_when_the_relu_quantizer_starts_at_zero(tmp_path):
    scales = [0.03, 0.011, 0.05, 0.013, 0.07]
    model = _export(FakeQuantMLP(scales, relu_zero_point=-128).eval(), tmp_path / "m.onnx")
    assert_bit_exact(model, _inputs(), optimized=(True,))    # the integer reading
    centred = _export(FakeQuantMLP(scales).eval(), tmp_path / "c.onnx")
    refusal = "FusedGemm .* a ReLU does not when its quantizer's zero point"
    with pytest.raises(TinyccError, match=refusal):
        tinycc_nn.compile(centred, "python")


class EagerQat(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.fc1, self.relu, self.fc2 = nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)

    def forward(self, x):
        return self.dequant(self.fc2(self.relu(self.fc1(self.quant(x)))))


def _trained_eager_qat(backend):
    """torch.ao eager-mode QAT: fused Linear+ReLU, FakeQuantize modules, a few steps."""
    model = EagerQat().train()
    model.qconfig = torch.ao.quantization.get_default_qat_qconfig(backend)
    model = torch.ao.quantization.prepare_qat(
        torch.ao.quantization.fuse_modules_qat(model, [["fc1", "relu"]]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(10):
        loss = model(torch.randn(32, 16)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_fake_quantize_modules_export_once_frozen(tmp_path):
    """x86: per-channel int8 weights, uint8 activations in [0, 127] (a Clip between Q and DQ).

    As they are, its FusedMovingAvgObsFakeQuantize modules trace to an op the exporter has no
    ONNX function for; a plain FakeQuantize stops torch.export at its Python branch."""
    model = _trained_eager_qat("x86")
    with pytest.raises(Exception, match="No ONNX function found for .*_fused_moving_avg_obs_fq"):
        _export(model, tmp_path / "m.onnx")
    onnx_model = _export(freeze_fake_quant(model), tmp_path / "m.onnx")
    assert "Clip" in {n.op_type for n in onnx_model.graph.node}
    assert_bit_exact(onnx_model, _inputs(), optimized=(True,))


def test_pt2e_xnnpack_quantizer_is_bit_exact(tmp_path):
    pytest.importorskip("torchao")
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import (XNNPACKQuantizer,
                                                         get_symmetric_quantization_config)

    float_model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    batch = {0: torch.export.Dim("N")}   # calibrate on batches of any size
    graph = torch.export.export(float_model, (torch.zeros(2, 16),), dynamic_shapes=(batch,)).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(graph, quantizer)
    for x in torch.randn(4, 32, 16):
        prepared(x)
    model = _export(convert_pt2e(prepared), tmp_path / "m.onnx")
    assert_bit_exact(model, _inputs(), optimized=(True,))
