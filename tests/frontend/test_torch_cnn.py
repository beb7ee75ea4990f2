"""torch exports of fake-quantized CNNs (power-of-two scales), with both exporters:
conv, depthwise conv, a residual Add, then max pool, average pool, or a global average
(TorchScript writes GlobalAveragePool; dynamo writes ReduceMean over H and W), Flatten
and a Linear.  Bit-exact against onnxruntime."""
import numpy as np
import pytest

from onnx_cases import assert_bit_exact

torch = pytest.importorskip("torch")
import onnx  # noqa: E402
from torch import nn  # noqa: E402

SCALES = [2 ** -7, 2 ** -5, 2 ** -4, 2 ** -5, 2 ** -3]   # input, weights, maps, fc, logits


def _fq(x, scale):
    return torch.fake_quantize_per_tensor_affine(x, scale, 0, -128, 127)


class FakeQuantCNN(nn.Module):
    def __init__(self, residual: bool, pool: str):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
        self.fc = nn.Linear(4 if pool == "global" else 4 * 4 * 4, 10, bias=False)
        self.residual, self.pool = residual, pool

    def forward(self, x):
        s = SCALES
        h = _fq(torch.relu(nn.functional.conv2d(_fq(x, s[0]), _fq(self.c1.weight, s[1]), padding=1)), s[2])
        g = _fq(torch.relu(nn.functional.conv2d(h, _fq(self.c2.weight, s[1]), padding=1, groups=4)), s[2])
        if self.residual:
            g = _fq(g + h, s[2])
        if self.pool == "max":
            g = nn.functional.max_pool2d(g, 2)
        elif self.pool == "avg":
            g = _fq(nn.functional.avg_pool2d(g, 2), s[2])
        else:
            g = _fq(nn.functional.adaptive_avg_pool2d(g, 1), s[2])
        return _fq(nn.functional.linear(torch.flatten(g, 1), _fq(self.fc.weight, s[3])), s[4])


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("residual, pool", [(True, "global"), (False, "avg"), (True, "max")])
def test_fake_quantized_cnn_exports_compile_bit_exact(tmp_path, dynamo, residual, pool):
    if dynamo:
        pytest.importorskip("onnxscript")
    path = tmp_path / "m.onnx"
    extra = {} if dynamo else {"dynamic_axes": {"input": {0: "N"}, "y": {0: "N"}}, "opset_version": 17}
    torch.onnx.export(FakeQuantCNN(residual, pool).eval(), (torch.zeros(1, 1, 8, 8),), str(path),
                      dynamo=dynamo, input_names=["input"], output_names=["y"], **extra)
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    if pool == "global":
        assert ("ReduceMean" if dynamo else "GlobalAveragePool") in ops
    x = np.random.default_rng(1).uniform(-0.2, 1.2, (120, 1, 8, 8)).astype(np.float32)
    assert_bit_exact(model, x, optimized=(False,))


class FloatCNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        g = nn.functional.max_pool2d(torch.relu(self.c2(torch.relu(self.c1(x)))), 2)
        return self.fc(torch.flatten(g, 1))


@pytest.mark.parametrize("per_channel", [False, True])
def test_pt2e_xnnpack_cnn_compiles_to_the_integer_reading(tmp_path, per_channel):
    """torch's own int8 flow (torchao PT2E, XNNPACK quantizer: float scales): onnxruntime
    fuses QLinearConv and QGemm, which compile bit-exactly."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("torchao")
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import (XNNPACKQuantizer,
                                                         get_symmetric_quantization_config)
    graph = torch.export.export(FloatCNN().eval(), (torch.zeros(1, 1, 8, 8),)).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
    prepared = prepare_pt2e(graph, quantizer)
    for x in torch.rand(16, 1, 1, 8, 8):
        prepared(x)
    path = tmp_path / "m.onnx"
    torch.onnx.export(convert_pt2e(prepared), (torch.zeros(1, 1, 8, 8),), str(path), dynamo=True,
                      input_names=["input"], output_names=["y"])
    x = np.random.default_rng(2).uniform(0, 1, (100, 1, 8, 8)).astype(np.float32)
    assert_bit_exact(onnx.load(str(path)), x, optimized=(True,))
