"""export_onnx: the canonical QDQ graph, and onnxruntime == torch eval, bit for bit."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from torch import nn  # noqa: E402

from tinycc_nn.errors import TinyccError  # noqa: E402
from tinycc_nn.qat import SCHEMES, ActQuant, QLinear, build_onnx, export_onnx, mlp, torch_predict  # noqa: E402

FEATURES, CLASSES = 12, 10


def _data(n=384, seed=0):
    """Inputs in [0, 1] labelled by a random linear teacher, so training has signal."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, FEATURES), dtype=np.float32)
    y = (x @ rng.standard_normal((FEATURES, CLASSES))).argmax(1)
    return x, y


def _train_one_epoch(model, seed=0):
    torch.manual_seed(seed)
    x, y = _data(seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for i in range(0, len(x), 32):
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x[i:i + 32])), torch.from_numpy(y[i:i + 32]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _probe_inputs(model):
    """Test inputs plus the awkward ones: out of range, negative, exact rounding ties."""
    x, _ = _data(n=200, seed=7)
    s_in = 2.0 ** next(m for m in model if isinstance(m, QLinear)).input_quant.exponent()
    ties = (np.arange(FEATURES * 4, dtype=np.float32).reshape(4, FEATURES) + 0.5) * s_in
    wild = np.random.default_rng(3).normal(0, 3, (20, FEATURES)).astype(np.float32)
    return np.concatenate([x, ties, wild, np.zeros((1, FEATURES), np.float32)])


def _ort_run(path, x, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))


def _assert_bit_exact(model, path, argmax=True):
    x = _probe_inputs(model)
    logits, classes = torch_predict(model, x)
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        out = _ort_run(path, x, level)
        assert out["logits"].dtype == np.float32 and out["logits"].shape == (len(x), CLASSES)
        assert np.array_equal(out["logits"].view(np.int32), logits.view(np.int32)), level
        if argmax:
            assert out["class"].dtype == np.int64 and np.array_equal(out["class"], classes), level
        else:
            assert set(out) == {"logits"}
    assert len(np.unique(logits, axis=0)) > 10  # a real comparison, not of constant outputs


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("gemm", [False, True])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_weight_scheme_exports_bit_exact(tmp_path, scheme, gemm, bias):
    torch.manual_seed(0)     # the initial weights too: not whatever tests ran before
    model = _train_one_epoch(mlp((FEATURES, 16, 8, CLASSES), scheme, bias=bias, act_bits=4))
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, FEATURES), gemm=gemm)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    _assert_bit_exact(model, path)


def _signed_model(bits):
    return nn.Sequential(
        QLinear(FEATURES, 16, weight_scheme="int4", act_bits=bits, act_signed=True), nn.ReLU(),
        QLinear(16, CLASSES, weight_scheme="ternary", act_bits=bits, act_signed=True),
        ActQuant(bits=bits, signed=True))


@pytest.mark.parametrize("argmax", [True, False])
@pytest.mark.parametrize("bits", [3, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_activation_options_export_bit_exact(tmp_path, signed, bits, argmax):
    if signed:
        model = _signed_model(bits)
    else:
        model = mlp((FEATURES, 16, CLASSES), "pm2", act_bits=bits, input_bits=bits, output_bits=bits)
    _train_one_epoch(model, seed=bits)
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=FEATURES, argmax=argmax, opset=13)
    _assert_bit_exact(model, path, argmax)
    clips = [n for n in onnx.load(path).graph.node if n.op_type == "Clip"]
    assert len(clips) == (0 if bits == 8 else 3)  # only sub-8-bit quantizers need a Clip


def test_canonical_graph_form():
    model = _train_one_epoch(mlp((FEATURES, 16, 8, CLASSES), "pm2", act_bits=8))
    graph = build_onnx(model, FEATURES).graph
    qdq, layer = ["QuantizeLinear", "DequantizeLinear"], ["DequantizeLinear", "MatMul", "DequantizeLinear", "Add"]
    assert [n.op_type for n in graph.node] == (
        qdq + layer + ["Relu"] + qdq + layer + ["Relu"] + qdq + layer + qdq + ["ArgMax"])
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits", "class"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == FEATURES
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    assert inits["layer0.weight_q"].dtype == np.int8 and inits["layer0.weight_q"].shape == (FEATURES, 16)
    assert inits["layer0.bias_q"].dtype == np.int32 and inits["layer0.bias_q"].shape == (16,)
    assert inits["layer0.input.zero_point"].dtype == np.uint8 and inits["output.zero_point"].dtype == np.int8
    for name, value in inits.items():
        if name.endswith("scale"):
            assert value.dtype == np.float32 and value.shape == ()
            assert np.frexp(value)[0] == 0.5  # a power of two
    assert inits["layer1.bias_scale"] == inits["layer1.input.scale"] * inits["layer1.weight_scale"]
    argmax = graph.node[-1]
    assert {a.name: a.i for a in argmax.attribute} == {"axis": 1, "keepdims": 0}


def test_gemm_form_keeps_torch_weight_layout():
    model = _train_one_epoch(mlp((FEATURES, 16, CLASSES), "int8", bias=False))
    graph = build_onnx(model, FEATURES, gemm=True).graph
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 2 and all(len(n.input) == 2 for n in gemms)  # no bias input
    assert not any(n.op_type in ("Add", "MatMul") for n in graph.node)
    w = next(onnx.numpy_helper.to_array(t) for t in graph.initializer if t.name == "layer0.weight_q")
    assert w.shape == (16, FEATURES)


def test_inexact_accumulator_is_refused():
    layer = QLinear(2048, 4, weight_scheme="int8", act_bits=8, act_signed=True)
    with torch.no_grad():
        layer.weight.fill_(1.0)  # every weight at the top level: worst case 2048*127*128
    model = _calibrate(nn.Sequential(layer, ActQuant(signed=True)), 2048)
    with pytest.raises(TinyccError, match="2\\*\\*24"):
        build_onnx(model, 2048)


def _calibrate(model, features):
    model.train()(torch.rand(8, features))  # calibrates the quantizers, no optimizer step
    return model


def test_unsupported_layers_and_shapes_are_refused():
    model = _train_one_epoch(mlp((FEATURES, 8, CLASSES)))
    with pytest.raises(TinyccError, match="features"):
        build_onnx(model, FEATURES + 1)
    with pytest.raises(TinyccError, match="Sigmoid"):
        build_onnx(nn.Sequential(*model[:-1], nn.Sigmoid(), model[-1]), FEATURES)
    with pytest.raises(TinyccError, match="end with an ActQuant"):
        build_onnx(nn.Sequential(*model[:-1]), FEATURES)


def test_metadata_joins_the_exporters_own(tmp_path):
    from tinycc_nn.datasets import input_metadata, view_of
    model = mlp((FEATURES, 8, CLASSES), weight_schemes=("pm2", "ternary"))
    _train_one_epoch(model)
    model.eval()
    path = export_onnx(model, tmp_path / "m.onnx", FEATURES, metadata=input_metadata(8, 20))
    saved = onnx.load(path)
    props = {p.key: p.value for p in saved.metadata_props}
    assert props["tinycc_nn.weight_schemes"] == "pm2,ternary"  # was dropped by the metadata
    assert view_of(saved) == (8, 20)


def _per_channel_model(scheme):
    """A per-channel MLP whose first layer's rows differ in norm 16x, so their exponents differ."""
    torch.manual_seed(0)
    model = mlp((FEATURES, 16, 8, CLASSES), scheme, per_channel=True)
    with torch.no_grad():
        model[0].weight.mul_(torch.logspace(-2, 2, 16, base=2)[:, None])
    return _train_one_epoch(model)


@pytest.mark.parametrize("gemm", [False, True])
@pytest.mark.parametrize("scheme", ["odd2", "ternary", "int4"])
def test_per_channel_weights_export_bit_exact(tmp_path, scheme, gemm):
    model = _per_channel_model(scheme)
    exponents = model[0].quantized().weight_exponent
    assert exponents.shape == (16,) and len(set(exponents.tolist())) > 1
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, FEATURES), gemm=gemm)
    graph = onnx.load(path).graph
    onnx.checker.check_model(onnx.load(path), full_check=True)
    _assert_bit_exact(model, path)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    assert np.array_equal(np.log2(inits["layer0.weight_scale"]), exponents)
    assert np.array_equal(inits["layer0.bias_scale"], inits["layer0.weight_scale"] * inits["layer0.input.scale"])
    axis = {n.output[0]: {a.name: a.i for a in n.attribute} for n in graph.node if n.op_type == "DequantizeLinear"}
    assert axis["layer0.weight"] == {"axis": 0 if gemm else 1}  # the outputs: Gemm's rows, MatMul's columns
    assert axis["layer0.bias"] == {"axis": 0}


@pytest.mark.parametrize("target", ["python", "ch32v003"])
def test_per_channel_export_compiles_bit_exact(tmp_path, target):
    from onnx_cases import assert_bit_exact
    model = _per_channel_model("odd2")
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, FEATURES))
    assert_bit_exact(onnx.load(path), _probe_inputs(model), target)
