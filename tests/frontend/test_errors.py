"""tinycc_nn/frontend refusals: a TinyccError that names the node or tensor, never a crash.

Each model is valid ONNX that onnxruntime runs, unless the test is about an invalid file.
"""
import numpy as np
import onnx
import pytest
from onnx import helper

import qdq
import tinycc_nn
from onnx_cases import Net, f32
from tinycc_nn import TinyccError

K, N = 6, 5


def refused(model, *fragments, **kw) -> str:
    """Compile must raise TinyccError (not another exception) mentioning every fragment."""
    with pytest.raises(TinyccError) as e:
        tinycc_nn.compile(model, "python", **kw)
    msg = str(e.value)
    for f in fragments:
        assert f in msg, msg
    assert "\n" not in msg
    return msg


def qin(net, shape=("N", K)):
    return net.quant(net.input("x", list(shape)), 2 ** -5, 0, "int8")


def weights(rng, shape=(K, N)):
    return rng.integers(-8, 8, shape)


def finish(net, y, shape=("N", N)):
    net.output(net.quant(y, 2 ** -3), list(shape))
    return net.model()


def test_float_weight_not_behind_dequantize(rng):
    net = Net()
    w = net.const(f32(rng.normal(0, 1, (K, N))), "Wfloat")
    model = finish(net, net.add("MatMul", [qin(net), w], out="mm"))
    refused(model, "MatMul 'mm_node'", "weight is a float tensor")


def test_non_power_of_two_weight_scale(rng):
    # a float scale means the integer reading (onnxruntime fuses QLinearMatMul); 0.3 makes
    # float32(acc) * 0.075 land next to ties in several binades, where onnxruntime's double
    # rounding matches no requantization chain: refused by the fused node, saying what to do
    net = Net()
    w = net.weight(weights(rng), 0.3, name="Wdq")
    model = finish(net, net.add("MatMul", [qin(net), w], out="mm"))
    refused(model, "QLinearMatMul 'mm_node'", "cannot requantize exactly", "rounds twice",
            "calibration data", "DequantizeLinear 'Wdq_node'", "integer reading")


def test_non_power_of_two_activation_scale_feeding_matmul_compiles_to_integer_kernels(rng):
    import ort_quant
    net = Net()
    xd = net.quant(net.input("x", ["N", K]), 0.03, 0, "int8")
    model = finish(net, net.add("MatMul", [xd, net.weight(weights(rng), 2.0 ** -2)], out="mm"))
    art = tinycc_nn.compile(model, "python")
    assert art.graph.attrs(art.graph.inputs()[0])["reading"] == "integer"
    x = rng.normal(0, 2, (400, K)).astype(np.float32)
    assert np.array_equal(art.run(x)[model.graph.output[0].name].reshape(400, -1),
                          ort_quant.ort_default(model, x)[0])


def test_weight_scale_varying_along_the_input_axis(rng):
    net = Net()
    w = net.weight(weights(rng), f32([2.0 ** -i for i in range(K)]), zp=np.zeros(K, np.int8), axis=0,
                   name="Wk")
    model = finish(net, net.add("MatMul", [qin(net), w], out="mm"))
    refused(model, "MatMul 'mm_node'", "varies along the input axis", "'Wk_node'")


def _two_input_model():
    net = Net()
    a = net.quant(net.input("first", ["N", K]), 2 ** -5)
    b = net.quant(net.input("second", ["N", K]), 2 ** -5)
    return finish(net, net.add("Add", [a, b], out="sum"), ("N", K))


def test_two_runtime_inputs():
    refused(_two_input_model(), "2 runtime inputs", "exactly one input")


def test_two_runtime_inputs_are_named():
    refused(_two_input_model(), "'first'", "'second'")


def test_sub_of_two_runtime_tensors():
    """(An Add of two runtime tensors is a residual connection and compiles.)"""
    net = Net()
    xd = qin(net)
    model = finish(net, net.add("Sub", [xd, net.add("Relu", [xd])], out="diff"), ("N", K))
    refused(model, "Sub 'diff_node'", "subtracts two runtime tensors")


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "Softmax", "Exp"])
def test_unsupported_operator_on_activations(rng, op):
    net = Net()
    y = net.add(op, [net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)])], out="act")
    refused(finish(net, y), f"{op} 'act_node'", f"operator {op} is not supported")


def _conv_net(rng, **attrs):
    net = Net()
    xd = qin(net, (1, 1, 6, 6))
    y = net.add("Conv", [xd, net.weight(rng.integers(-8, 8, (2, 1, 3, 3)), 2.0 ** -2)],
                out="conv1", **attrs)
    return net, y


@pytest.mark.parametrize("attrs, fragment", [
    ({"dilations": [2, 2]}, "dilation 1 only"),
    ({"auto_pad": "SOMETHING"}, "auto_pad"),
    ({"kernel_shape": [2, 2]}, "kernel_shape [2, 2] differs"),
    ({"group": 2}, "group 2"),
])
def test_conv_forms_refused_by_name(rng, attrs, fragment):
    net, y = _conv_net(rng, **attrs)
    refused(finish(net, y, (1, "C", "H", "W")), "Conv 'conv1_node'", fragment)


def test_conv_weight_scale_not_a_power_of_two(rng):
    net = Net()
    xd = qin(net, (1, 1, 6, 6))
    y = net.add("Conv", [xd, net.weight(rng.integers(-8, 8, (2, 1, 3, 3)), 0.3, name="wdq")],
                out="conv1")
    refused(finish(net, y, (1, "C", "H", "W")), "QLinearConv 'conv1_node'",
            "cannot requantize exactly", "DequantizeLinear 'wdq_node'", "integer reading")


def test_conv_of_a_transposed_map_with_per_channel_scales(rng):
    """A transposed map is gathered into order (tests/frontend/test_reordered_maps.py),
    unless its scales differ per channel of the tensor before the Transpose."""
    net = Net()
    s, z = net.const(f32([2 ** -5, 2 ** -4])), net.const(np.array([0, 0], np.int8))
    q = net.add("QuantizeLinear", [net.input("x", [1, 2, 6, 6]), s, z], axis=1)
    xd = net.add("Transpose", [net.add("DequantizeLinear", [q, s, z], axis=1)], perm=[0, 2, 1, 3])
    y = net.add("Conv", [xd, net.weight(rng.integers(-8, 8, (2, 6, 3, 3)), 2.0 ** -2)],
                out="conv1")
    refused(finish(net, y, (1, "C", "H", "W")), "Conv 'conv1_node'", "reordered view",
            "per-channel scales")


@pytest.mark.parametrize("op, attrs, fragment", [
    ("MaxPool", {"kernel_shape": [2, 2], "ceil_mode": 1}, "ceil_mode"),
    ("MaxPool", {"kernel_shape": [2, 2], "pads": [2, 0, 0, 0]}, "smaller than the kernel"),
    ("AveragePool", {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}, "count_include_pad"),
])
def test_pool_forms_refused_by_name(op, attrs, fragment):
    net = Net()
    y = net.add(op, [qin(net, (1, 1, 6, 6))], out="pool1", **attrs)
    refused(finish(net, y, (1, "C", "H", "W")), f"{op} 'pool1_node'", fragment)


def test_average_with_exact_halves_names_the_window(rng):
    net = Net()
    y = net.add("GlobalAveragePool", [qin(net, (1, 1, 2, 3))], out="gap")
    msg = refused(finish(net, y, (1, "C", "H", "W")), "power-of-two size")
    assert "6 elements" in msg


def test_operator_of_another_domain():
    net = Net()
    net.nodes.append(helper.make_node("Foo", [qin(net)], ["f"], domain="com.example", name="foo1"))
    net.output("f", ["N", K])
    model = net.model()
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    refused(model, "Foo 'foo1'", "com.example")


@pytest.mark.parametrize("opset", [11, 12])
def test_old_opset(tmp_path, rng, opset):
    net = Net()
    model = finish(net, net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)]))
    model.opset_import[0].version = opset
    path = tmp_path / "old.onnx"
    onnx.save(model, path)
    refused(str(path), str(path), f"opset {opset} is too old", "13")


@pytest.mark.parametrize("content", [b"hello world\n", b"\x00\x01\x02\xff" * 10])
def test_file_that_is_not_onnx(tmp_path, content):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    refused(str(path), str(path), "not an ONNX model")


def test_missing_file(tmp_path):
    refused(str(tmp_path / "nothere.onnx"), "nothere.onnx", "no such file")


def _unsorted_model():
    net = Net()
    qin(net)
    net.output(net.add("Relu", ["nothere"], out="r"), ["N", K])
    return net.model()


def test_checker_failure_names_the_tensor():
    refused(_unsorted_model(), "ONNX checker", "'nothere'")


@pytest.mark.parametrize("case", ["unsorted", "bad-attribute"])
def test_checker_failure_names_the_node(case):
    if case == "unsorted":
        model = _unsorted_model()
    else:
        net = Net()
        net.output(net.add("Relu", [qin(net)], out="r", alpha=1.0), ["N", K])
        model = net.model()
    refused(model, "ONNX checker", "r_node")


def test_output_that_is_a_constant():
    net = Net()
    net.output(qin(net), ["N", K])
    net.output(net.add("Identity", [net.const(f32([1.0, 2.0]))], out="constout"), [2])
    refused(net.model(), "output 'constout'", "is a constant")


def test_output_that_is_the_unquantized_input():
    net = Net()
    net.output(net.add("Identity", [net.input("x", ["N", K])], out="raw"), ["N", K])
    refused(net.model(), "output 'raw'", "unquantized model input")


def test_gemm_with_off_grid_float_bias_over_one_sgemm_block(rng):
    # onnxruntime adds the float bias to each 128-wide block's partial sum: rounds each time
    k = 200
    net = Net()
    c = net.const(f32(rng.normal(0, 1, N)), "C")
    y = net.add("Gemm", [qin(net, (1, k)), net.weight(weights(rng, (k, N)), 2.0 ** -2), c],
                out="gemm")
    refused(finish(net, y, (1, N)), "Gemm 'gemm_node'", "not on the accumulator grid",
            "K = 200 > 128", "int32")


def test_gemm_with_a_beta_that_is_not_an_exact_scaling(rng):
    net = Net()
    y = net.add("Gemm", [qin(net, (1, K)), net.weight(weights(rng), 2.0 ** -2),
                         net.const(np.zeros(N, np.float32))], out="gemm", beta=-0.75)
    refused(finish(net, y, (1, N)), "Gemm 'gemm_node'", "beta=-0.75", "neither 0 nor a power of two")


def test_gemm_with_non_power_of_two_alpha(rng):
    net = Net()
    y = net.add("Gemm", [qin(net, (1, K)), net.weight(weights(rng), 2.0 ** -2)], out="gemm", alpha=0.3)
    refused(finish(net, y, (1, N)), "Gemm 'gemm_node'", "alpha=0.3", "not a power of two")


def test_argmax_over_several_rows():
    net = Net()
    net.output(net.add("ArgMax", [qin(net, (1, 2, K))], out="am", axis=2), [1, 2, 1], "int64")
    refused(net.model(), "ArgMax 'am_node'", "several results")


def test_argmax_over_elements_with_different_scales(rng):
    net = Net()
    w = net.weight(weights(rng), f32([2.0 ** -i for i in range(N)]), zp=np.zeros(N, np.int8), axis=1)
    am = net.add("ArgMax", [net.add("MatMul", [qin(net), w])], out="am", axis=1, keepdims=0)
    net.output(am, ["N"], "int64")
    refused(net.model(), "ArgMax 'am_node'", "different scales")


def test_sub_of_a_tensor_from_a_constant(rng):
    net = Net()
    y = net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)])
    refused(finish(net, net.add("Sub", [net.const(f32(1.0)), y], out="s")), "Sub 's_node'", "not monotone")


def test_mul_by_a_negative_constant(rng):
    net = Net()
    y = net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)])
    refused(finish(net, net.add("Mul", [y, net.const(f32(-1.0))], out="m")), "Mul 'm_node'", "non-negative")


def test_matmul_of_two_runtime_tensors():
    net = Net()
    xd = qin(net, (1, K))
    y = net.add("MatMul", [net.add("Transpose", [xd], perm=[1, 0]), xd], out="mm")
    net.output(y, [K, K])
    refused(net.model(), "MatMul 'mm_node'", "two runtime tensors")


def test_unquantized_input_into_matmul(rng):
    net = Net()
    y = net.add("MatMul", [net.input("x", ["N", K]), net.weight(weights(rng), 2.0 ** -2)], out="mm")
    refused(finish(net, y), "MatMul 'mm_node'", "must be quantized")


def test_off_grid_add_before_matmul(rng):
    net = Net()
    xa = net.add("Add", [qin(net), net.const(f32(0.01))])
    y = net.add("MatMul", [xa, net.weight(weights(rng), 2.0 ** -2)], out="mm")
    refused(finish(net, y), "MatMul 'mm_node'", "off the quantization grid")


@pytest.mark.parametrize("shape, fragment", [(["N", "F"], "dimension 1 is 'F'")])
def test_input_shapes_refused(shape, fragment):
    net = Net()
    net.output(net.quant(net.input("x", shape), 2 ** -5), shape)
    refused(net.model(), "input 'x'", fragment)


def test_fixed_batch_of_several_rows_is_refused_at_the_matmul(rng):
    # [4, K] has no batch dimension to drop: it is one sample of 4 rows, and a MatMul
    # over it would give 4 results per inference
    net = Net()
    y = net.add("MatMul", [qin(net, [4, K]), net.weight(weights(rng), 2.0 ** -2)], out="mm")
    refused(finish(net, y, (4, N)), "MatMul 'mm_node'", "not a single vector")


def test_input_element_type_refused():
    net = Net()
    x = net.input("x", ["N", K], "int32")
    net.output(net.add("DequantizeLinear", [x, net.const(f32(0.5))]), ["N", K])
    refused(net.model(), "input 'x'", "int32 is not supported")


def test_input_quantized_twice():
    net = Net()
    x = net.input("x", ["N", K])
    net.output(net.quant(x, 2 ** -5), ["N", K])
    net.output(net.quant(x, 2 ** -4), ["N", K])
    refused(net.model(), "QuantizeLinear", "already quantized by")


def test_blocked_quantization(rng):
    net = Net()
    w = net.const(weights(rng).astype(np.int8))
    wd = net.add("DequantizeLinear", [w, net.const(f32(np.full((3, N), 0.25)))], out="wblk",
                 axis=0, block_size=2)
    model = finish(net, net.add("MatMul", [qin(net), wd]))
    model.opset_import[0].version = 21
    refused(model, "DequantizeLinear 'wblk_node'", "blocked quantization is not supported")


def test_fit_failure_names_the_quantizer(rng):
    # Mul by 0.3 makes float32 products round irregularly (first at accumulator 240):
    # no integer requant reproduces it; accumulators stay within +-768 to keep the search short
    net = Net()
    y = net.add("MatMul", [qin(net, ("N", 3)), net.weight(np.full((3, 2), 2), 2.0 ** -2)])
    y = net.add("Mul", [y, net.const(f32(0.3))])
    net.output(net.quant(y, 2 ** -3, 0, "int8", dequant=False), ["N", 2], "int8")
    msg = refused(net.model(), "QuantizeLinear", "cannot requantize exactly", "channel")
    assert "_node'" in msg


# warnings ---------------------------------------------------------------------------------

def _wide_model(rng, k):
    net = Net()
    xd = net.quant(net.input("x", ["N", k]), 2 ** -5, 0, "int16")
    y = net.add("MatMul", [xd, net.weight(rng.integers(-128, 128, (k, N)), 2.0 ** -2)], out="big")
    net.output(net.quant(y, 2 ** -3), ["N", N])
    return net.model(21)


def test_warning_when_partial_sums_can_exceed_2_24(rng):
    seen = []
    tinycc_nn.compile(_wide_model(rng, 64), "python", warn=seen.append)
    assert len(seen) == 1
    assert "MatMul 'big_node'" in seen[0] and "2^24" in seen[0]


def test_no_warning_for_small_partial_sums(rng):
    seen = []
    tinycc_nn.compile(_wide_model(rng, 2), "python", warn=seen.append)
    m = qdq.random_mlp(rng)
    tinycc_nn.compile(qdq.build(m), "python", warn=seen.append)
    assert seen == []


def test_warning_is_optional(rng):
    tinycc_nn.compile(_wide_model(rng, 64), "python")      # no callback: no crash, no output


# non-finite parameters, empty tensors ------------------------------------------------------

@pytest.mark.parametrize("scale", [np.inf, np.nan])
def test_non_finite_quantize_scale(rng, scale):
    # onnxruntime's results are NaN (0 * inf); the compiled program used to return numbers
    net = Net()
    y = net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)])
    y = net.add("QuantizeLinear", [y, net.const(f32(scale)), net.const(np.array(0, np.int8))], out="qinf")
    net.output(y, ["N", N], "int8")
    refused(net.model(), "QuantizeLinear 'qinf_node'", f"scale {scale}", "positive finite")


@pytest.mark.parametrize("op, value", [("Add", np.nan), ("Add", -np.inf), ("Mul", np.inf)])
def test_non_finite_elementwise_constant(rng, op, value):
    net = Net()
    y = net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)])
    y = net.add(op, [y, net.const(f32(np.full(N, value)))], out="nf")
    refused(finish(net, y), f"{op} 'nf_node'", str(value), "only finite constants")


@pytest.mark.parametrize("lo, hi, fragment", [(np.nan, 1.0, "min bound nan"),
                                              (np.inf, None, "min bound inf"),
                                              (0.0, -np.inf, "max bound -inf")])
def test_clip_with_a_nan_or_inverted_infinite_bound(rng, lo, hi, fragment):
    net = Net()
    y = net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)])
    bounds = [net.const(f32(lo)), "" if hi is None else net.const(f32(hi))]
    y = net.add("Clip", [y] + bounds, out="clipnf")
    refused(finish(net, y), "Clip 'clipnf_node'", fragment)


def test_input_with_a_zero_sized_dimension():
    net = Net()
    net.output(net.quant(net.input("x", ["N", 0]), 2 ** -5), ["N", 0])
    refused(net.model(), "input 'x'", "holds no values")


def test_dropout_in_training_mode(rng):
    # onnxruntime drops random elements then; an inference-mode Dropout is an Identity
    net = Net()
    y = net.add("MatMul", [qin(net), net.weight(weights(rng), 2.0 ** -2)])
    y = net.add("Dropout", [y, net.const(f32(0.25)), net.const(np.array(True))], out="drop")
    refused(finish(net, y), "Dropout 'drop_node'", "training_mode is true")


def test_a_softmax_on_the_logits_is_refused_with_what_to_export(rng):
    net = Net()
    y = net.add("Softmax", [net.matmul(qin(net), weights(rng))], out="probs", axis=-1)
    net.output(y, ["N", N])
    msg = refused(net.model(), "Softmax 'probs_node'", "operator Softmax is not supported",
                  "export the logits")
    assert "ArgMax" in msg


def test_an_unfolded_batch_norm_is_refused_with_how_to_fold_it(rng):
    net = Net()
    xd = net.quant(net.input("x", ["N", 2, 4, 4]), 2 ** -5, 0, "int8")
    c = net.add("Conv", [xd, net.weight(rng.integers(-8, 8, (2, 2, 3, 3)), 2.0 ** -2)], pads=[1, 1, 1, 1])
    stats = [net.const(f32(v)) for v in ([1.0, 0.5], [0.0, 0.25], [0.1, -0.1], [1.0, 2.0])]
    bn = net.add("BatchNormalization", [c, *stats], out="bn")
    msg = refused(finish(net, net.add("Relu", [bn]), ("N", 2, 4, 4)), "BatchNormalization 'bn_node'",
                  "is not supported", "fold it into the Conv")
    assert "quant_pre_process" in msg
