"""tinycc_nn/frontend: every supported ONNX operator and form, bit-exact against onnxruntime.

Each test builds a small graph with onnx.helper (onnx_cases.Net), compiles it for the
reference backend and compares every output with onnxruntime, with graph
optimizations disabled (the ONNX semantics) and, unless said otherwise, enabled
(onnxruntime's fused QDQ kernels).  Inputs include saturating values and exact
half-steps of the input scale.
"""
import numpy as np
import pytest

import qdq
import tinycc_nn
from onnx_cases import Net, assert_bit_exact, f32, float_inputs, ir_consts, NP_TYPE

K, N = 6, 5
XS = 2.0 ** -5      # input scale used throughout


def ints(rng, shape, lo=-8, hi=8):
    return rng.integers(lo, hi, shape)


def quantized_input(net, shape, dtype="int8", zp=0, scale=XS):
    return net.quant(net.input("x", shape), scale, zp, dtype)


def ops_at(art_or_model, stop_after="import"):
    g = tinycc_nn.compile(art_or_model, "python", stop_after=stop_after).graph
    return [g.op(n) for n in g.order()]


# QuantizeLinear / DequantizeLinear ------------------------------------------------------

QDTYPES = [("int8", 0), ("int8", -5), ("uint8", None), ("uint8", 0), ("uint8", 128)]


@pytest.mark.parametrize("dtype, zp", QDTYPES)
def test_quantize_dequantize_per_tensor(rng, dtype, zp):
    net = Net()
    net.output(quantized_input(net, ["N", K], dtype, zp), ["N", K])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


@pytest.mark.parametrize("dtype, zp", QDTYPES)
def test_quantized_integer_output(rng, dtype, zp):
    net = Net()
    xd = quantized_input(net, ["N", K], dtype, zp)
    y = net.matmul(xd, ints(rng, (K, N)))
    net.output(net.quant(y, 2 ** -3, zp, dtype, dequant=False), ["N", N], dtype)
    art = assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))
    assert next(iter(art.run(float_inputs(rng, 2, [K], XS)).values())).dtype == NP_TYPE[dtype]


@pytest.mark.parametrize("in_dtype, in_zp", QDTYPES)
@pytest.mark.parametrize("out_dtype, out_zp", [("int8", 0), ("int8", 7), ("uint8", None), ("uint8", 100)])
def test_layer_between_quantized_tensors(rng, in_dtype, in_zp, out_dtype, out_zp):
    net = Net()
    xd = quantized_input(net, ["N", K], in_dtype, in_zp)
    y = net.add("Relu", [net.matmul(xd, ints(rng, (K, N)))])
    net.output(net.quant(y, 2 ** -3, out_zp, out_dtype), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


def test_requantize_an_activation_to_another_scale(rng):
    net = Net()
    xd = quantized_input(net, ["N", K])
    net.output(net.quant(xd, 2 ** -3, 3, "int8"), ["N", K])
    # onnxruntime's optimizer drops the second Q/DQ pair (its result leaves the 2**-3 grid)
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS), optimized=[False])


@pytest.mark.parametrize("zp", [np.zeros(N, np.int8), np.array([0, 1, -1, 3, -4], np.int8)],
                         ids=["zero", "nonzero"])
@pytest.mark.parametrize("axis", [1, -1])
def test_per_axis_weight_dequantize(rng, zp, axis):
    net = Net()
    xd = quantized_input(net, ["N", K])
    scales = f32([2 ** -1, 2 ** -2, 2 ** -3, 2 ** -4, 1.0])
    y = net.add("MatMul", [xd, net.weight(ints(rng, (K, N)), scales, zp=zp, axis=axis)])
    net.output(net.quant(y, 2 ** -3), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


def test_per_axis_weight_dequantize_for_gemm_transb(rng):
    net = Net()
    xd = quantized_input(net, [1, K])
    scales = f32([2 ** -1, 2 ** -2, 2 ** -3, 2 ** -4, 1.0])
    w = net.weight(ints(rng, (N, K)), scales, zp=np.zeros(N, np.int8), axis=0)
    net.output(net.quant(net.add("Gemm", [xd, w], transB=1), 2 ** -3), [1, N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [1, K], XS))


@pytest.mark.parametrize("gemm", [False, True], ids=["matmul", "gemm-transB"])
def test_per_axis_weight_dequantize_without_zero_point(rng, gemm):
    net = Net()
    xd = quantized_input(net, [1, K])
    scales = f32([2 ** -1, 2 ** -2, 2 ** -3, 2 ** -4, 1.0])
    if gemm:
        y = net.add("Gemm", [xd, net.weight(ints(rng, (N, K)), scales, axis=0)], transB=1)
    else:
        y = net.add("MatMul", [xd, net.weight(ints(rng, (K, N)), scales, axis=1)])
    net.output(net.quant(y, 2 ** -3), [1, N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [1, K], XS))


@pytest.mark.parametrize("dtype, values, zp", [("int4", (-8, 8), None), ("uint4", (0, 16), 8)])
def test_int4_weights_behind_dequantize(rng, dtype, values, zp):
    net = Net()
    xd = quantized_input(net, ["N", K])
    w = net.weight(ints(rng, (K, N), *values), 2.0 ** -2, zp=zp, dtype=dtype)
    net.output(net.quant(net.add("MatMul", [xd, w]), 2 ** -3), ["N", N])
    art = assert_bit_exact(net.model(opset=21), float_inputs(rng, 40, [K], XS))
    (_, attrs), = ir_consts(art)
    assert attrs["values"].min() >= -8 and attrs["values"].max() <= 7


def test_quantize_linear_of_a_constant_float_weight_is_folded(rng):
    net = Net()
    xd = quantized_input(net, ["N", K])
    wf = net.const(f32(rng.normal(0, 1, (K, N))))
    ws, wz = net.const(f32(2 ** -3)), net.const(np.array(0, np.int8))
    wq = net.add("QuantizeLinear", [wf, ws, wz])
    y = net.add("MatMul", [xd, net.add("DequantizeLinear", [wq, ws, wz])])
    net.output(net.quant(y, 2 ** -3), ["N", N])
    model = net.model()
    art = assert_bit_exact(model, float_inputs(rng, 60, [K], XS))
    (_, attrs), = ir_consts(art)
    expected = np.clip(np.rint(np.asarray(model.graph.initializer[0].float_data or
                                          _init_array(model, wf)) / f32(2 ** -3)), -128, 127)
    assert np.array_equal(attrs["values"], expected.astype(np.int64))
    assert ops_at(model).count("matmul") == 1


def _init_array(model, name):
    from onnx import numpy_helper
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


# MatMul / Gemm ---------------------------------------------------------------------------

@pytest.mark.parametrize("batch", ["N", 1])
def test_matmul(rng, batch):
    net = Net()
    xd = quantized_input(net, [batch, K])
    net.output(net.quant(net.matmul(xd, ints(rng, (K, N))), 2 ** -3), [batch, N])
    art = assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))
    assert [art.graph.op(n) for n in art.graph.order()] == ["input", "const", "dense", "output"]


def test_matmul_on_a_rank1_input_without_batch(rng):
    net = Net()
    xd = quantized_input(net, [K])
    net.output(net.quant(net.matmul(xd, ints(rng, (K, N))), 2 ** -3), [N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [K], XS))


def _column_model(rng, how):
    """W[N,K] @ x[K,1]: the activation made a column by Reshape or Transpose."""
    net = Net()
    if how == "reshape":
        xd = quantized_input(net, [K])
        xc = net.add("Reshape", [xd, net.const(np.array([K, 1], np.int64))])
    else:
        xd = quantized_input(net, [1, K])
        xc = net.add("Transpose", [xd], perm=[1, 0])
    y = net.add("MatMul", [net.weight(ints(rng, (N, K)), 2.0 ** -2), xc])
    net.output(net.quant(y, 2 ** -3), [N, 1])
    return net.model(), [K] if how == "reshape" else [1, K]


@pytest.mark.parametrize("how", ["reshape", "transpose"])
def test_matmul_weight_first_column_form(rng, how):
    model, shape = _column_model(rng, how)
    assert_bit_exact(model, float_inputs(rng, 40, shape, XS))


def test_matmul_weight_first_on_a_column_input(rng):
    net = Net()
    xd = quantized_input(net, [K, 1])
    y = net.add("MatMul", [net.weight(ints(rng, (N, K)), 2.0 ** -2), xd])
    net.output(net.quant(y, 2 ** -3), [N, 1])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [K, 1], XS))


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.5, 2.0), (2.0, 0.25), (1.0, -1.0), (0.5, -4.0),
                                         (1.0, 0.0)])
@pytest.mark.parametrize("bias", [None, "int32", "float"])
def test_gemm(rng, trans_a, trans_b, alpha, beta, bias):
    net = Net()
    xd = quantized_input(net, [1, K])
    if trans_a:      # activation given as [K, 1]
        xd = net.add("Transpose", [xd], perm=[1, 0])
    w = ints(rng, (K, N))
    ins = [xd, net.weight(w.T.copy() if trans_b else w, 2.0 ** -2)]
    grid = XS * 2.0 ** -2 * alpha / (abs(beta) or 1.0)   # accumulator units, through alpha, beta
    if bias == "int32":
        ins.append(net.weight(rng.integers(-300, 300, N), grid, dtype="int32"))
    elif bias == "float":
        ins.append(net.const(f32(rng.integers(-300, 300, (1, N)) * grid)))
    y = net.add("Gemm", ins, transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    net.output(net.quant(y, 2 ** -3), [1, N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [1, K], XS))


def test_gemm_scalar_bias(rng):
    net = Net()
    xd = quantized_input(net, [1, K])
    y = net.add("Gemm", [xd, net.weight(ints(rng, (K, N)), 2.0 ** -2), net.const(f32([3 * 2 ** -7]))])
    net.output(net.quant(y, 2 ** -3), [1, N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [1, K], XS))


# Add / Sub / Mul ---------------------------------------------------------------------------

@pytest.mark.parametrize("const_first", [False, True])
def test_add_bias_on_the_grid_becomes_bias_add(rng, const_first):
    net = Net()
    y = net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))
    b = net.const(f32(rng.integers(-100, 100, N) * 2 ** -7))
    y = net.add("Relu", [net.add("Add", [b, y] if const_first else [y, b])])
    net.output(net.quant(y, 2 ** -3), ["N", N])
    model = net.model()
    assert_bit_exact(model, float_inputs(rng, 60, [K], XS))
    assert ops_at(model) == ["input", "const", "matmul", "bias_add", "requant", "output"]


@pytest.mark.parametrize("relu", [False, True])
def test_add_float_bias_off_the_grid(rng, relu):
    net = Net()
    y = net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))
    y = net.add("Add", [y, net.const(f32(rng.normal(0, 1, N)))])
    if relu:
        y = net.add("Relu", [y])
    net.output(net.quant(y, 2 ** -3), ["N", N])
    model = net.model()
    # the bias is folded into the requantization fit, not an integer bias_add
    assert ops_at(model) == ["input", "const", "matmul", "requant", "output"]
    # onnxruntime's optimized QDQ kernels round this bias differently from its own plain
    # graph, so the ONNX semantics (optimizations off) are the reference here
    assert_bit_exact(model, float_inputs(rng, 100, [K], XS), optimized=[False])


@pytest.mark.parametrize("relu", [False, True])
def test_add_of_two_tensors_on_different_power_of_two_scales(rng, relu):
    """A residual connection on an MLP: x (scale 2^-5) + dense(x) (scale 2^-3, a zero
    point) in one pass, the finer unit, then requantized."""
    net = Net()
    xd = quantized_input(net, ["N", K])
    h = net.quant(net.matmul(xd, ints(rng, (K, K))), 2 ** -3, 3)
    y = net.add("Add", [h, xd])
    if relu:
        y = net.add("Relu", [y])
    net.output(net.quant(y, 2 ** -2, -1), ["N", K])
    art = assert_bit_exact(net.model(), float_inputs(rng, 80, [K], XS))
    (add,) = [n for n in art.graph.order() if art.graph.op(n) == "add"]
    assert art.graph.attrs(add)["shifts"] == [2, 0] and art.graph.attrs(add)["bias"] == -3 * 4


def test_two_runtime_tensors_that_broadcast_or_subtract_are_refused(rng):
    net = Net()
    xd = quantized_input(net, ["N", K])
    h = net.quant(net.matmul(xd, ints(rng, (K, 1))), 2 ** -3)
    net.output(net.quant(net.add("Add", [xd, h], out="bcast"), 2 ** -2), ["N", K])
    with pytest.raises(tinycc_nn.TinyccError, match="'bcast_node': adds tensors of shapes .* \\(no broadcasting\\)"):
        tinycc_nn.compile(net.model(), "python")
    net = Net()
    xd = quantized_input(net, ["N", K])
    h = net.quant(net.matmul(xd, ints(rng, (K, K))), 2 ** -3)
    net.output(net.quant(net.add("Sub", [xd, h], out="diff"), 2 ** -2), ["N", K])
    with pytest.raises(tinycc_nn.TinyccError, match="'diff_node': subtracts two runtime tensors"):
        tinycc_nn.compile(net.model(), "python")


def test_add_off_grid_scalar(rng):
    net = Net()
    y = net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))
    net.output(net.quant(net.add("Add", [y, net.const(f32(0.3))]), 2 ** -3), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS), optimized=[False])


@pytest.mark.parametrize("c", [0.25, [0.5, -0.25, 0.0, 1.0, 0.125], 0.37, [0.1, -0.2, 0.3, 0.4, -0.5]],
                         ids=["grid", "grid-per-channel", "off-grid", "off-grid-per-channel"])
def test_sub_of_a_constant(rng, c):
    net = Net()
    y = net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))
    # output scale 2**-1: fewer output levels keep the exact fit's search short
    net.output(net.quant(net.add("Sub", [y, net.const(f32(c))]), 2 ** -1), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS), optimized=[False])


@pytest.mark.parametrize("c", [0.5, 2.0, 1.5, 0.0, [0.5, 1.5, 0.25, 2.0, 0.75]],
                         ids=["half", "two", "1.5", "zero", "per-channel"])
def test_mul_by_a_non_negative_constant(rng, c):
    net = Net()
    y = net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))
    net.output(net.quant(net.add("Mul", [y, net.const(f32(c))]), 2 ** -1), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


def test_mul_by_power_of_two_before_a_matmul(rng):
    net = Net()
    xd = quantized_input(net, ["N", K])
    xm = net.add("Mul", [net.const(f32(0.5)), xd])
    net.output(net.quant(net.matmul(xm, ints(rng, (K, N))), 2 ** -3), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


# Relu / Clip ---------------------------------------------------------------------------------

CLIPS = [(0.0, None), (None, 1.0), (-0.5, 0.75), (0.1, 0.3)]


@pytest.mark.parametrize("lo, hi", CLIPS)
def test_clip_after_matmul(rng, lo, hi):
    net = Net()
    y = net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))
    ins = [y, net.const(f32(lo)) if lo is not None else "", net.const(f32(hi)) if hi is not None else ""]
    while not ins[-1]:
        ins.pop()
    net.output(net.quant(net.add("Clip", ins), 2 ** -3), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


@pytest.mark.parametrize("act", ["relu", "clip-both", "clip-min", "clip-max"])
def test_activation_before_matmul(rng, act):
    net = Net()
    xd = quantized_input(net, ["N", K])
    if act == "relu":
        xa = net.add("Relu", [xd])
    elif act == "clip-both":
        xa = net.add("Clip", [xd, net.const(f32(-0.25)), net.const(f32(0.5))])
    elif act == "clip-min":
        xa = net.add("Clip", [xd, net.const(f32(-0.25))])
    else:
        xa = net.add("Clip", [xd, "", net.const(f32(0.5))])
    net.output(net.quant(net.matmul(xa, ints(rng, (K, N))), 2 ** -3), ["N", N])
    model = net.model()
    assert_bit_exact(model, float_inputs(rng, 60, [K], XS))
    assert "clamp" in ops_at(model)


@pytest.mark.parametrize("place", ["before-matmul", "after-matmul"])
def test_clip_with_infinite_bounds(rng, place):
    # Clip(x, 0, +inf) / Clip(x, -inf, +inf): an infinite bound is no bound (was an OverflowError)
    net = Net()
    xd = quantized_input(net, ["N", K])
    inf = [net.const(f32(0.0)), net.const(f32(np.inf))]
    if place == "before-matmul":
        xd = net.add("Clip", [xd] + inf)
    y = net.matmul(xd, ints(rng, (K, N)))
    if place == "after-matmul":
        y = net.add("Clip", [y, net.const(f32(-np.inf)), net.const(f32(np.inf))])
    net.output(net.quant(y, 2 ** -3), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


@pytest.mark.parametrize("requantized", [False, True])
def test_add_on_the_grid_of_a_non_power_of_two_scale(rng, requantized):
    # b = k * s exactly, but onnxruntime rounds (q - z) * s before adding b: folding b into
    # an integer bias_add ((q + k - z) * s, one rounding) differed on most samples
    s = np.float32(0.1)
    net = Net()
    xd = quantized_input(net, ["N", K], scale=s)
    y = net.add("Add", [xd, net.const(np.array([1, 2, 4, -8, 16, -1], np.float32) * s)])
    if requantized:
        y = net.quant(y, 0.1, 0)
    net.output(y, ["N", K])
    x = rng.integers(-128, 128, (256, K)).astype(np.float32) * s
    assert_bit_exact(net.model(), x, optimized=[False])


def test_relu_and_float_output_without_requantization(rng):
    net = Net()
    y = net.add("Relu", [net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))])
    net.output(y, ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


# data movement ------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", ["N", 1])
@pytest.mark.parametrize("how", ["flatten", "reshape-1", "computed-shape"])
def test_image_input_flattened_into_matmul(rng, batch, how):
    net = Net()
    xd = quantized_input(net, [batch, 1, 4, 4])
    if how == "flatten":
        xf = net.add("Flatten", [xd])
    elif how == "reshape-1":
        xf = net.add("Reshape", [xd, net.const(np.array([-1, 16], np.int64))])
    else:       # the exporter's Shape -> Gather -> Concat -> Reshape
        shape = net.add("Shape", [xd])
        n = net.add("Gather", [shape, net.const(np.array([0], np.int64))], axis=0)
        target = net.add("Concat", [n, net.const(np.array([16], np.int64))], axis=0)
        xf = net.add("Reshape", [xd, target])
    net.output(net.quant(net.matmul(xf, ints(rng, (16, N)), -3), 2 ** -3), [batch, N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [1, 4, 4], XS))


@pytest.mark.parametrize("batch", ["N", 1])
def test_shape_with_start_and_end(rng, batch):
    # Shape(end=-3) is the batch dimension alone: [N] (it was the whole shape, [N, 1, 4, 4])
    net = Net()
    xd = quantized_input(net, [batch, 1, 4, 4])
    n = net.add("Shape", [xd], end=-3)
    inner = net.add("ReduceProd", [net.add("Shape", [xd], start=1)], keepdims=1)
    xf = net.add("Reshape", [xd, net.add("Concat", [n, inner], axis=0)])
    net.output(net.quant(net.matmul(xf, ints(rng, (16, N))), 2 ** -3), [batch, N])
    assert_bit_exact(net.model(18), float_inputs(rng, 40, [1, 4, 4], XS))


def test_identity_everywhere(rng):
    net = Net()
    xd = net.add("Identity", [quantized_input(net, ["N", K])])
    y = net.add("Identity", [net.matmul(xd, ints(rng, (K, N)))])
    net.output(net.add("Identity", [net.quant(y, 2 ** -3, 0, "int8")]), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [K], XS))


def test_transpose_of_an_activation(rng):
    # [1, K] -> [K, 1], W @ x, then back to [1, N]; also permutes nothing on the device
    net = Net()
    xc = net.add("Transpose", [quantized_input(net, [1, K])], perm=[1, 0])
    y = net.add("MatMul", [net.weight(ints(rng, (N, K)), 2.0 ** -2), xc])
    y = net.add("Transpose", [net.quant(y, 2 ** -3)], perm=[1, 0])
    net.output(y, [1, N])
    model = net.model()
    assert_bit_exact(model, float_inputs(rng, 40, [1, K], XS))
    assert ops_at(model, "lower-elementwise") == ["input", "const", "dense", "output"]


def test_output_permuted_by_reshape_and_transpose(rng):
    net = Net()
    y = net.quant(net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, 6))), 2 ** -3)
    y = net.add("Reshape", [y, net.const(np.array([-1, 2, 3], np.int64))])
    net.output(net.add("Transpose", [y], perm=[0, 2, 1]), ["N", 3, 2])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [K], XS))


# ArgMax ---------------------------------------------------------------------------------

def _argmax_model(rng, batch, keepdims, last, source="quantized"):
    net = Net()
    y = net.matmul(quantized_input(net, [batch, K]), ints(rng, (K, N), -2, 3))
    y = net.add("Relu", [y])
    if source == "quantized":       # coarse scale: many outputs are 0 or equal
        y = net.quant(y, 2 ** -1, 0, "int8")
    elif source == "zero-point":
        y = net.quant(y, 2 ** -1, 3, "uint8")
    am = net.add("ArgMax", [y], axis=-1 if keepdims else 1, keepdims=keepdims, select_last_index=last)
    net.output(y, [batch, N])
    net.output(am, [batch, 1] if keepdims else [batch], "int64")
    return net.model(), y


@pytest.mark.parametrize("batch", ["N", 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_argmax_with_ties(rng, batch, keepdims, last):
    model, y = _argmax_model(rng, batch, keepdims, last)
    x = float_inputs(rng, 80, [K], XS)
    art = assert_bit_exact(model, x)
    v = art.run(x)[y]
    ties = ((v == v.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum()
    assert ties >= 10       # the case the index rule decides
    assert art.graph.attrs(art.graph.nodes_of("argmax")[0])["last"] is bool(last)


@pytest.mark.parametrize("source", ["relu", "zero-point"])
@pytest.mark.parametrize("last", [0, 1])
def test_argmax_of_float_values(rng, source, last):
    model, _ = _argmax_model(rng, "N", 0, last, source)
    assert_bit_exact(model, float_inputs(rng, 80, [K], XS))


# model-level forms ----------------------------------------------------------------------

@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets(rng, opset):
    m = qdq.random_mlp(rng, max_width=12, max_depth=3)
    m.opset = opset
    model = qdq.build(m)
    assert_bit_exact(model, qdq.random_inputs(rng, m, 60))


def test_nodes_out_of_topological_order(rng):
    # ONNX asks for sorted nodes; onnxruntime runs them in any order, and so do we
    net = Net()
    y = net.add("Relu", [net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))])
    net.output(net.quant(y, 2 ** -3), ["N", N])
    x = float_inputs(rng, 60, [K], XS)
    want = assert_bit_exact(net.model(), x).run(x)
    net.nodes.reverse()
    got = tinycc_nn.compile(net.model(), "python").run(x)
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_dead_branch_with_an_unsupported_operator(rng):
    # nothing observes the Sigmoid: it must not stop the compilation
    net = Net()
    xd = quantized_input(net, ["N", K])
    net.add("Sigmoid", [xd], out="unused")
    net.output(net.quant(net.matmul(xd, ints(rng, (K, N))), 2 ** -3), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 60, [K], XS))


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_input_already_quantized(rng, dtype):
    net = Net()
    x = net.input("x", ["N", K], dtype)
    zp = [net.const(np.array(0, NP_TYPE[dtype]))] if dtype == "int8" else []
    xd = net.add("DequantizeLinear", [x, net.const(f32(2 ** -4))] + zp)
    net.output(net.quant(net.add("Relu", [net.matmul(xd, ints(rng, (K, N)))]), 2 ** -3), ["N", N])
    model = net.model()
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    x = rng.integers(lo, hi + 1, (60, K)).astype(NP_TYPE[dtype])
    x[0], x[1] = lo, hi
    art = assert_bit_exact(model, x)
    inp = art.graph.inputs()[0]
    assert art.graph.attrs(inp)["qdtype"] == dtype and "scale" not in art.graph.attrs(inp)


@pytest.mark.parametrize("opset", [13, 21])
def test_non_power_of_two_output_scale_with_zero_point(rng, opset):
    net = Net()
    y = net.add("Relu", [net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))])
    net.output(net.quant(y, 0.1, 3, "int8"), ["N", N])
    model = net.model(opset)
    art = assert_bit_exact(model, float_inputs(rng, 100, [K], XS))
    dense = art.graph.attrs(art.graph.nodes_of("dense")[0])
    assert dense["mult"] != 1       # a real multiplier: 0.1 is not a power of two
    out = art.graph.attrs(art.graph.outputs()[0])
    assert out["float_ops"] == [["dequantize", float(np.float32(0.1)), 3]]


@pytest.mark.parametrize("value_set", list(qdq.VALUE_SETS))
def test_weight_value_sets_recorded(rng, value_set):
    vals = qdq.VALUE_SETS[value_set]
    rows = max(K, -(-len(vals) // N))
    w = rng.choice(vals, size=(rows, N))
    w.ravel()[:len(vals)] = vals             # every value of the set occurs
    rng.shuffle(w.ravel())
    net = Net()
    y = net.matmul(quantized_input(net, ["N", rows]), w, -4)
    net.output(net.quant(y, 2 ** -1), ["N", N])
    art = assert_bit_exact(net.model(), float_inputs(rng, 40, [rows], XS))
    (name, attrs), = ir_consts(art)
    assert attrs["valueset"] == vals
    assert np.array_equal(attrs["values"], w)


def test_weight_zero_point_is_subtracted_into_the_values(rng):
    net = Net()
    w = rng.integers(0, 4, (K, N))
    y = net.add("MatMul", [quantized_input(net, ["N", K]),
                           net.weight(w, 2.0 ** -2, zp=np.array(2, np.uint8), dtype="uint8")])
    net.output(net.quant(y, 2 ** -3), ["N", N])
    art = assert_bit_exact(net.model(), float_inputs(rng, 40, [K], XS))
    (_, attrs), = ir_consts(art)
    assert np.array_equal(attrs["values"], w - 2)
    assert attrs["valueset"] == sorted(set((w - 2).ravel().tolist()))


def test_two_outputs_of_different_layers(rng):
    net = Net()
    h = net.quant(net.add("Relu", [net.matmul(quantized_input(net, ["N", K]), ints(rng, (K, N)))]), 2 ** -3)
    y = net.quant(net.matmul(h, ints(rng, (N, 3))), 2 ** -2)
    net.output(y, ["N", 3])
    net.output(h, ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [K], XS))


# power-of-two models the requantization fit refuses (see test_fit.py) ------------------------

def test_power_of_two_layer_with_a_two_level_channel(rng):
    net = Net()
    xd = quantized_input(net, ["N", 1])
    xc = net.add("Clip", [xd, net.const(f32(0.0)), net.const(f32(63 * XS))])    # x in 0..63
    y = net.add("MatMul", [xc, net.weight(np.array([[0, 1]]), 2.0 ** -2)])        # acc unit 2**-7
    y = net.add("Add", [y, net.const(f32([0.0, 33 * 2.0 ** -7]))])
    net.output(net.quant(y, 0.5, 0, "int8"), ["N", 2])
    assert_bit_exact(net.model(), float_inputs(rng, 64, [1], XS))


def test_requantize_to_a_finer_power_of_two_scale(rng):
    net = Net()
    xd = quantized_input(net, ["N", K])
    xc = net.add("Clip", [xd, net.const(f32(0.0)), net.const(f32(3 * XS))])
    y = net.matmul(net.quant(xc, 2 ** -8, 0, "int8"), ints(rng, (K, N)))
    net.output(net.quant(y, 2 ** -3), ["N", N])
    assert_bit_exact(net.model(), float_inputs(rng, 40, [K], XS))


def test_dead_relu_channel_keeps_the_accumulator_narrow(rng):
    from tinycc_nn.ir import accumulator_range
    net = Net()
    w = ints(rng, (K, N))
    w[:, 0] = 0
    y = net.matmul(quantized_input(net, ["N", K]), w)
    y = net.add("Relu", [net.add("Add", [y, net.const(f32([-1.0, 0, 0, 0, 0]))])])   # channel 0 <= -1
    net.output(net.quant(y, 2 ** -3), ["N", N])
    art = assert_bit_exact(net.model(), float_inputs(rng, 40, [K], XS))
    for d in art.graph.nodes_of("dense"):
        (_, _), (pre_lo, pre_hi) = accumulator_range(art.graph, d)
        assert max(abs(int(pre_lo.min())), abs(int(pre_hi.max()))) < 2 ** 31, art.graph.attrs(d)


# ReduceMean over a map's H and W (torch's dynamo export of a global average) -----------

@pytest.mark.parametrize("opset", [17, 18])        # axes an attribute, then an input
def test_reduce_mean_over_h_and_w_is_a_global_average(rng, opset):
    net = Net()
    x = net.quant(net.input("x", ["N", 3, 4, 4]), XS, 5, "uint8")
    axes = {"axes": [-1, -2]} if opset < 18 else {}
    ins = [x] if opset < 18 else [x, net.const(np.array([2, 3], np.int64))]
    m = net.quant(net.add("ReduceMean", ins, keepdims=0, **axes), XS * 2, 3, "uint8")
    net.output(net.quant(net.matmul(m, ints(rng, (3, N))), 2 ** -3), ["N", N])
    xs = rng.uniform(-0.5, 8, (60, 3, 4, 4)).astype(np.float32)
    art = assert_bit_exact(net.model(opset), xs)
    assert "sumpool" in [art.graph.op(n) for n in art.graph.order()]


def test_reduce_mean_over_other_axes_is_refused(rng):
    net = Net()
    x = net.quant(net.input("x", ["N", 3, 4, 4]), XS)
    net.output(net.quant(net.add("ReduceMean", [x], out="m", axes=[1], keepdims=1), XS), ["N", 1, 4, 4])
    with pytest.raises(tinycc_nn.TinyccError, match="'m_node': averages axes \\[1\\] .*only the spatial axes"):
        tinycc_nn.compile(net.model(), "python")
