"""tinycc_nn/frontend/kernels.py and ort_graph.py: int8 models made by onnxruntime's
quantizer (float scales) compile to onnxruntime's integer reading, bit-exactly.

Every combination the issue names: QDQ and QOperator, per-tensor and per-channel weights,
int8 and uint8 activations, MatMul (+ Add) and Gemm, with and without bias; a small CNN.
A requantization whose double rounding (float32 product, then integer) neither one
multiplier-and-shift nor two requantizations in a row reproduce is refused, naming the
node; the test then draws the next model of the same kind, and one in three must compile.
"""
import itertools

import numpy as np
import pytest

import ort_quant
import tinycc_nn
from tinycc_nn.errors import TinyccError

COMBOS = list(itertools.product((False, True), (False, True), ("int8", "uint8"),
                                (False, True), (False, True)))


def _first_compiling(make, tmp_path, target="python", tries=3, **options):
    """(model, artifact) for the first of `tries` seeds whose model compiles."""
    refusals = []
    for seed in range(tries):
        model = make(np.random.default_rng(seed), tmp_path)
        try:
            return model, tinycc_nn.compile(model, target, **options)
        except TinyccError as e:
            assert "cannot requantize exactly" in str(e), str(e)
            refusals.append(str(e))
    pytest.fail("every seed refused: " + " | ".join(refusals))


def _assert_matches_integer_reading(model, art, x):
    ours = art.run(x)
    ref = ort_quant.ort_default(model, x)
    for name, want in zip([o.name for o in model.graph.output], ref):
        got = ours[name].reshape(len(x), -1)
        bad = np.flatnonzero((got != want.reshape(len(x), -1)).any(axis=1))
        assert bad.size == 0, f"{name}: {bad.size}/{len(x)} differ, first {bad[0]}"


@pytest.mark.parametrize("qoperator, per_channel, activations, gemm, bias", COMBOS,
                         ids=lambda v: str(v))
def test_quantize_static_mlps_match_onnxruntime(tmp_path, qoperator, per_channel, activations,
                                                gemm, bias):
    def make(rng, folder):
        model = ort_quant.float_mlp(rng, [12, 8, 5], gemm=gemm, bias=bias)
        calib = rng.normal(0, 1, (16, 12)).astype(np.float32)
        return ort_quant.quantize(model, calib, folder, qoperator=qoperator,
                                  per_channel=per_channel, activations=activations)
    model, art = _first_compiling(make, tmp_path)
    assert art.graph.attrs(art.graph.inputs()[0])["reading"] == "integer"
    x = np.random.default_rng(9).normal(0, 1.5, (300, 12)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)


@pytest.mark.parametrize("qoperator, per_channel, activations", [
    (False, True, "int8"), (True, False, "uint8"), (False, False, "uint8"), (True, True, "int8")])
def test_quantize_static_mlps_on_ch32v003(tmp_path, qoperator, per_channel, activations):
    def make(rng, folder):
        model = ort_quant.float_mlp(rng, [10, 6, 4], gemm=per_channel)
        calib = rng.normal(0, 1, (16, 10)).astype(np.float32)
        return ort_quant.quantize(model, calib, folder, qoperator=qoperator,
                                  per_channel=per_channel, activations=activations)
    model, art = _first_compiling(make, tmp_path, "ch32v003", executor="host")
    x = np.random.default_rng(4).normal(0, 1.5, (100, 10)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)


@pytest.mark.parametrize("qoperator, per_channel, activations", [
    (False, False, "uint8"), (False, True, "int8"), (True, False, "uint8"), (True, True, "int8")])
@pytest.mark.parametrize("target", ["python", "ch32v003"])
def test_quantize_static_cnn(tmp_path, qoperator, per_channel, activations, target):
    def make(rng, folder):
        model = ort_quant.float_cnn(rng)
        calib = rng.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)
        return ort_quant.quantize(model, calib, folder, qoperator=qoperator,
                                  per_channel=per_channel, activations=activations)
    options = {"executor": "host"} if target == "ch32v003" else {}
    model, art = _first_compiling(make, tmp_path, target, **options)
    x = np.random.default_rng(2).uniform(-0.2, 1.2, (60, 1, 8, 8)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)


@pytest.mark.parametrize("qoperator", [False, True])
@pytest.mark.parametrize("target", ["python", "ch32v003"])
@pytest.mark.parametrize("pool", ["GlobalAveragePool", "GlobalMaxPool"])
def test_quantize_static_cnn_with_global_pool(tmp_path, qoperator, target, pool):
    # onnxruntime runs com.microsoft QLinearGlobalAveragePool: an int32 sum, requantized;
    # GlobalMaxPool it leaves between a DequantizeLinear and a QuantizeLinear in float32
    def make(rng, folder):
        model = ort_quant.float_cnn(rng, channels=4, pool=pool)
        calib = rng.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)
        return ort_quant.quantize(model, calib, folder, qoperator=qoperator, per_channel=True)
    options = {"executor": "host"} if target == "ch32v003" else {}
    model, art = _first_compiling(make, tmp_path, target, **options)
    x = np.random.default_rng(8).uniform(-0.2, 1.2, (60, 1, 8, 8)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)


@pytest.mark.parametrize("target", ["python", "ch32v003"])
def test_quantize_static_cnn_with_average_pool(tmp_path, target):
    """QOperator: com.microsoft QLinearAveragePool with a calibrated output scale, a float32
    average that is a function of the window sum (float_average.py); QDQ gives the pool its
    input's scale, so 2x2 windows average sums of 4k + 2 to exact halves that onnxruntime's
    float32 rounding settles either way: refused, naming the pool."""
    def make(rng, folder, qoperator):
        model = ort_quant.float_cnn(rng, channels=3, pool="AveragePool")
        calib = rng.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)
        return ort_quant.quantize(model, calib, folder, qoperator=qoperator)
    options = {"executor": "host"} if target == "ch32v003" else {}
    model = make(np.random.default_rng(0), tmp_path, True)
    art = tinycc_nn.compile(model, target, **options)
    x = np.random.default_rng(3).uniform(-0.2, 1.2, (200, 1, 8, 8)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)
    with pytest.raises(TinyccError, match="QLinearAveragePool .*window sum of .*scales are equal"):
        tinycc_nn.compile(make(np.random.default_rng(0), tmp_path, False), target, **options)


def _qdq_matmul_float_out(rng, x_dtype):
    """Q -> DQ -> MatMul with DQ int8 weights and no QuantizeLinear after: onnxruntime fuses
    it into com.microsoft MatMulIntegerToFloat, whose float output is the graph's."""
    from onnx import TensorProto, helper, numpy_helper
    x_zp = np.array(rng.integers(-20, 20) if x_dtype == "int8" else rng.integers(100, 140),
                    {"int8": np.int8, "uint8": np.uint8}[x_dtype])
    inits = [numpy_helper.from_array(np.array(v), n) for v, n in (
        (np.float32(rng.uniform(0.005, 0.03)), "xs"), (x_zp, "xz"),
        (rng.integers(-100, 100, (6, 3)).astype(np.int8), "w"),
        (np.float32(rng.uniform(0.01, 0.05)), "ws"), (np.int8(0), "wz"))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("x_dtype", ["int8", "uint8"])
@pytest.mark.parametrize("target", ["python", "ch32v003"])
def test_a_qdq_matmul_with_a_float_output_is_matmul_integer_to_float(x_dtype, target):
    """float32(acc) * (a_scale * b_scale): the int32 sum on the target, the float product
    on the output (it used to be refused as dynamic quantization)."""
    from tinycc_nn.frontend.ort_graph import integer_graph
    model = _qdq_matmul_float_out(np.random.default_rng(3), x_dtype)
    assert "MatMulIntegerToFloat" in [n.op_type for n in integer_graph(model, "m").graph.node]
    options = {"executor": "host"} if target == "ch32v003" else {}
    art = tinycc_nn.compile(model, target, **options)
    x = np.random.default_rng(5).normal(0, 2, (500, 6)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)


def test_matmul_integer_to_float_with_its_bias():
    """The node as written (com.microsoft): a float bias is one float32 add after the
    product."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(np.array(v), n) for v, n in (
        (rng.integers(-128, 128, (5, 4)).astype(np.int8), "b"), (np.float32(0.0173), "as"),
        (np.float32(0.0291), "bs"), (np.uint8(121), "az"), (np.int8(0), "bz"),
        (rng.normal(0, 1, 4).astype(np.float32), "bias"))]
    node = helper.make_node("MatMulIntegerToFloat", ["a", "b", "as", "bs", "az", "bz", "bias"], ["y"],
                            name="mitf", domain="com.microsoft")
    graph = helper.make_graph([node], "m", [helper.make_tensor_value_info("a", TensorProto.UINT8, ["N", 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    x = rng.integers(0, 256, (400, 5)).astype(np.uint8)
    got = tinycc_nn.compile(model, "python").run(x)["y"]
    assert np.array_equal(got, ort_quant.ort_default(model, x)[0])


def test_verify_reports_both_readings(tmp_path):
    from tinycc_nn.verify import verify_artifact

    def make(rng, folder):
        model = ort_quant.float_mlp(rng, [12, 8, 5])
        return ort_quant.quantize(model, rng.normal(0, 1, (16, 12)).astype(np.float32), folder)
    model, art = _first_compiling(make, tmp_path)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    x = np.random.default_rng(1).normal(0, 2, (400, 12)).astype(np.float32)
    res = verify_artifact(art, path, x)
    assert res.reading == "integer" and res.mismatches == 0
    f = res.summary()["float_reading"]
    assert set(f) == {"mismatches", "max_lsb", "argmax_agree"}
    assert 0 <= f["mismatches"] <= len(x) and f["max_lsb"] >= 0


def test_power_of_two_models_keep_the_float_reading():
    import qdq
    rng = np.random.default_rng(0)
    art = tinycc_nn.compile(qdq.build(qdq.random_mlp(rng)), "python")
    assert "reading" not in art.graph.attrs(art.graph.inputs()[0])


def test_fma_rounds_once():
    from tinycc_nn.hostio import fma
    # (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: float32 drops the 2^-24 before the subtraction
    x = np.float32(1 + 2.0 ** -12)
    assert x * x - np.float32(1) == np.float32(2.0 ** -11)
    assert fma(x, x, np.float32(-1.0)) == np.float32(2.0 ** -11 + 2.0 ** -24)


@pytest.mark.parametrize("qoperator", [False, True])
def test_quantize_static_mlp_on_pfs154(tmp_path, qoperator):
    # per-tensor weights: the pdk backend needs one multiplier (times powers of two)
    def make(rng, folder):
        model = ort_quant.float_mlp(rng, [8, 4, 3])
        calib = rng.normal(0, 1, (16, 8)).astype(np.float32)
        return ort_quant.quantize(model, calib, folder, qoperator=qoperator, activations="uint8")
    model, art = _first_compiling(make, tmp_path, "pfs154")
    x = np.random.default_rng(6).normal(0, 1.5, (30, 8)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)


def _qlinear_matmul_model(scale: float, k: int = 20, n: int = 3):
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    inits = [numpy_helper.from_array(np.asarray(v, dt), name) for v, dt, name in (
        (1.0, np.float32, "one"), (0, np.int8, "zero"), (w, np.int8, "w"),
        (scale, np.float32, "ws"))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "one", "zero"], ["xq"]),
             helper.make_node("QLinearMatMul", ["xq", "one", "zero", "w", "ws", "zero",
                                                "one", "zero"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "one", "zero"], ["y"])]
    graph = helper.make_graph(nodes, "qlm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_double_rounding_compiles_as_two_requants():
    # float32(acc) * 0.0027169634 rounds to float32 first: no single multiplier-and-shift
    # gives onnxruntime's steps, a fixed-grid double rounding does
    model = _qlinear_matmul_model(0.0027169634122401476)
    art = tinycc_nn.compile(model, "python", stop_after="import")
    assert len(list(art.graph.nodes_of("requant"))) == 2
    art = tinycc_nn.compile(model, "python")
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (4000, 20)).astype(np.float32)
    x[:1000] = rng.choice([-128.0, 127.0], (1000, 20))
    _assert_matches_integer_reading(model, art, x)


def test_dynamic_quantization_is_refused_with_what_to_do(tmp_path):
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    onnx.save(ort_quant.float_mlp(np.random.default_rng(0), [6, 4, 3]), tmp_path / "f.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "d.onnx"), weight_type=QuantType.QInt8)
    with pytest.raises(TinyccError, match="dynamic quantization .* quantize_static"):
        tinycc_nn.compile(str(tmp_path / "d.onnx"), "python")


def _qlinear_add_model(rng, n, dtype):
    from onnx import TensorProto, helper, numpy_helper
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    onnx_type = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    scales = rng.uniform(0.001, 0.1, 3).astype(np.float32)
    zps = rng.integers(lo, hi + 1, 3)
    inits = [numpy_helper.from_array(np.asarray(v, t), name) for v, t, name in (
        (scales[0], np.float32, "sa"), (zps[0], dtype, "za"), (scales[1], np.float32, "sb"),
        (zps[1], dtype, "zb"), (scales[2], np.float32, "sc"), (zps[2], dtype, "zc"),
        (rng.integers(lo, hi + 1, n), dtype, "b"))]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"],
                            domain="com.microsoft")
    graph = helper.make_graph([node], "qladd", [helper.make_tensor_value_info("a", onnx_type, ["N", n])],
                              [helper.make_tensor_value_info("c", onnx_type, ["N", n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)])


@pytest.mark.parametrize("n", [1, 24])
def test_qlinear_add_matches_onnxruntime_on_every_input_value(n):
    rng = np.random.default_rng(n)
    for case in range(20):
        dtype = (np.uint8, np.int8)[case % 2]
        model = _qlinear_add_model(rng, n, dtype)
        lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
        a = np.tile(np.arange(lo, hi + 1)[:, None], (1, n)).astype(dtype)
        got = tinycc_nn.compile(model, "python").run(a)["c"].reshape(len(a), n)
        assert np.array_equal(got, ort_quant.ort_default(model, a)[0]), case


def test_a_float_scale_residual_add_is_refused_naming_it(tmp_path):
    """onnxruntime's QLinearAdd of two runtime tensors rounds a * r_a + b * r_b in float32."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (2, 2, 3, 3)).astype(np.float32), f"w{k}")
             for k in range(2)] + [numpy_helper.from_array(rng.normal(0, 0.1, 2).astype(np.float32), f"b{k}")
                                   for k in range(2)]
    nodes = [helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Add", ["r1", "r0"], ["s"], name="residual"),
             helper.make_node("Flatten", ["s"], ["logits"])]
    graph = helper.make_graph(nodes, "res", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 32])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    q = ort_quant.quantize(model, rng.uniform(0, 1, (16, 2, 4, 4)).astype(np.float32), tmp_path,
                           qoperator=True)
    with pytest.raises(TinyccError, match="QLinearAdd '.*': adds two runtime tensors, rounding"):
        tinycc_nn.compile(q, "python")


def test_a_float_scale_reduce_mean_is_refused_naming_it():
    """onnxruntime fuses no integer kernel for DequantizeLinear -> ReduceMean ->
    QuantizeLinear (torch's dynamo export of a global average after PT2E): it averages
    rounded float32 values."""
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.array(v), n) for v, n in (
        (np.float32(0.0123), "s"), (np.int8(-128), "z"), (np.array([2, 3], np.int64), "axes"))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("ReduceMean", ["d", "axes"], ["m"], name="gap", keepdims=1),
             helper.make_node("QuantizeLinear", ["m", "s", "z"], ["mq"]),
             helper.make_node("DequantizeLinear", ["mq", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(TinyccError, match="ReduceMean 'gap': onnxruntime has no integer kernel"):
        tinycc_nn.compile(model, "python")


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("target", ["python", "ch32v003"])
def test_quantize_static_qoperator_concat(tmp_path, per_channel, target):
    """com.microsoft QLinearConcat: each input through QuantizeLinear(x_scale * (x - x_zp)),
    requantized exactly, then joined."""
    model = ort_quant.quantize(ort_quant.float_branchy_cnn(np.random.default_rng(0)),
                               np.random.default_rng(1).uniform(0, 1, (16, 2, 6, 6)).astype(np.float32),
                               tmp_path, qoperator=True, per_channel=per_channel)
    assert "QLinearConcat" in {n.op_type for n in model.graph.node}
    options = {"executor": "host"} if target == "ch32v003" else {}
    art = tinycc_nn.compile(model, target, **options)
    x = np.random.default_rng(2).uniform(-0.2, 1.2, (100, 2, 6, 6)).astype(np.float32)
    _assert_matches_integer_reading(model, art, x)
