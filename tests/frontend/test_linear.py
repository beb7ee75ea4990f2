"""tinycc_nn/frontend/linear.py: MatMul/Gemm are exact only inside float32's range.

Power-of-two scales make every product and partial sum exact, unless they leave float32:
below its smallest denormal onnxruntime's products round, above its largest value they
become inf (and inf - inf NaN).  Such models are refused by node; at the edges, where
float32 still holds every value, they compile bit-exactly.
"""
import numpy as np
import pytest

import tinycc_nn
from onnx_cases import Net, assert_bit_exact, float_inputs
from tinycc_nn.errors import TinyccError


def _model(x_exp, w_exp, y_exp, k=4, n=3):
    rng = np.random.default_rng(k)
    net = Net()
    xq = net.quant(net.input("x", ["N", k]), 2.0 ** x_exp)
    y = net.add("MatMul", [xq, net.weight(rng.integers(-8, 8, (k, n)), 2.0 ** w_exp)], out="mm")
    net.output(net.quant(y, 2.0 ** y_exp), ["N", n])
    return net.model()


@pytest.mark.parametrize("x_exp, w_exp, y_exp, fragment", [
    # onnxruntime computes inf - inf in the accumulation: NaN, saturated to -128
    (62, 62, 120, "beyond float32's range"),
    (120, 3, 120, "beyond float32's range"),
    # the products are below 2^-149: onnxruntime rounds them to denormals or zero
    (-100, -60, -149, "below float32's smallest denormal 2^-149"),
])
def test_scales_leaving_float32_are_refused_by_node(x_exp, w_exp, y_exp, fragment):
    with pytest.raises(TinyccError, match="MatMul 'mm_node'") as e:
        tinycc_nn.compile(_model(x_exp, w_exp, y_exp), "python")
    assert fragment in str(e.value)


def _conv_model(x_exp, w_exp, y_exp):
    rng = np.random.default_rng(2)
    net = Net()
    xq = net.quant(net.input("x", ["N", 1, 5, 5]), 2.0 ** x_exp)
    y = net.add("Conv", [xq, net.weight(rng.integers(-8, 8, (2, 1, 3, 3)), 2.0 ** w_exp)],
                out="conv", pads=[1, 1, 1, 1])
    net.output(net.quant(y, 2.0 ** y_exp), ["N", 2, 5, 5])
    return net.model()


@pytest.mark.parametrize("x_exp, w_exp, y_exp, fragment", [
    (62, 62, 120, "beyond float32's range"),
    (-100, -60, -149, "below float32's smallest denormal 2^-149"),
])
def test_conv_scales_leaving_float32_are_refused_by_node(x_exp, w_exp, y_exp, fragment):
    # the same exactness argument as MatMul's, so the same range check
    with pytest.raises(TinyccError, match="Conv 'conv_node'") as e:
        tinycc_nn.compile(_conv_model(x_exp, w_exp, y_exp), "python")
    assert fragment in str(e.value)


def test_conv_scales_at_the_edge_of_float32_compile_exactly():
    x = float_inputs(np.random.default_rng(1), 40, [1, 5, 5], 2.0 ** -90)
    assert_bit_exact(_conv_model(-90, -59, -149), x, optimized=(False,))


@pytest.mark.parametrize("x_exp, w_exp, y_exp", [
    (-90, -59, -149),        # products exactly on the smallest denormal
    (-80, -50, -135),        # denormal products, normal outputs
    (60, 50, 112),           # large, but every partial sum below 2^128
])
def test_scales_at_the_edges_of_float32_compile_exactly(x_exp, w_exp, y_exp):
    x = float_inputs(np.random.default_rng(1), 40, [4], 2.0 ** x_exp)
    assert_bit_exact(_model(x_exp, w_exp, y_exp), x)


@pytest.mark.parametrize("k", [5, 128])
def test_gemm_float_bias_off_the_grid_is_added_once(k):
    # onnxruntime's sgemm adds C once to the exact sum of a K block (up to 128 wide)
    rng = np.random.default_rng(k)
    net = Net()
    xq = net.quant(net.input("x", ["N", k]), 2.0 ** -5)
    c = net.const(np.asarray(rng.normal(0, 1, 3), np.float32), "C")
    y = net.add("Gemm", [xq, net.weight(rng.integers(-8, 8, (k, 3)), 2.0 ** -3), c], out="gemm")
    net.output(net.quant(net.add("Relu", [y]), 2.0 ** -2), ["N", 3])
    x = float_inputs(rng, 200, [k], 2.0 ** -5)
    assert_bit_exact(net.model(), x, optimized=(False,))
