"""tinycc_nn/frontend/float_average.py: com.microsoft QLinearAveragePool, onnxruntime's
float32 window average, compiles bit-exactly where its output is a function of the
integer window sum and is refused, naming the node and the sum, where it is not."""
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import tinycc_nn
from tinycc_nn.errors import TinyccError

NP = {"uint8": np.uint8, "int8": np.int8}
TP = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}


def _pool_model(dtype, shape, x_s, x_zp, y_s, y_zp, kernel, strides=(1, 1), pads=(0, 0, 0, 0),
                count_include_pad=1):
    """One QLinearAveragePool from an integer input to an integer output."""
    inits = [numpy_helper.from_array(np.array(v, t), n) for v, t, n in (
        (x_s, np.float32, "xs"), (x_zp, NP[dtype], "xz"), (y_s, np.float32, "ys"), (y_zp, NP[dtype], "yz"))]
    node = helper.make_node("QLinearAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"], name="pool",
                            domain="com.microsoft", kernel_shape=list(kernel), strides=list(strides),
                            pads=list(pads), count_include_pad=count_include_pad)
    c, h, w = shape
    ho = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    graph = helper.make_graph([node], "avg", [helper.make_tensor_value_info("x", TP[dtype], ["N", c, h, w])],
                              [helper.make_tensor_value_info("y", TP[dtype], ["N", c, ho, wo])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)])


def _ort(model, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _inputs(rng, dtype, shape, n):
    """Uniform over the type, and windows of nearby values (many ways to one sum)."""
    info = np.iinfo(NP[dtype])
    wide = rng.integers(info.min, info.max + 1, (n, *shape))
    centre = rng.integers(info.min, info.max + 1, (n, 1, 1, 1))
    near = np.clip(centre + rng.integers(-3, 4, (n, *shape)), info.min, info.max)
    return np.concatenate([wide, near]).astype(NP[dtype])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_pools_match_onnxruntime_or_are_refused_by_sum(seed):
    rng = np.random.default_rng(seed)
    dtype = str(rng.choice(["uint8", "int8"]))
    info = np.iinfo(NP[dtype])
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    strides = tuple(int(s) for s in rng.integers(1, 3, 2))
    pads = tuple(int(rng.integers(0, k)) for k in kernel * 2) if rng.random() < 0.4 else (0, 0, 0, 0)
    shape = (int(rng.integers(1, 4)), int(rng.integers(kernel[0] + 1, 7)), int(rng.integers(kernel[1] + 1, 7)))
    x_s, y_s = (float(np.float32(rng.uniform(0.002, 0.05))) for _ in range(2))
    x_zp, y_zp = (int(rng.integers(info.min, info.max + 1)) // 2 for _ in range(2))
    model = _pool_model(dtype, shape, x_s, x_zp, y_s, y_zp, kernel, strides, pads)
    try:
        art = tinycc_nn.compile(model, "python")
    except TinyccError as e:
        assert "QLinearAveragePool 'pool'" in str(e) and "a window sum of" in str(e), str(e)
        return
    x = _inputs(rng, dtype, shape, 200)
    assert np.array_equal(art.run(x)["y"], _ort(model, x))


def test_a_calibrated_output_scale_compiles_on_the_ch32v003_bit_exact():
    model = _pool_model("uint8", (4, 6, 6), 0.0046344, 0, 0.00342345, 3, (2, 2), (2, 2))
    x = _inputs(np.random.default_rng(1), "uint8", (4, 6, 6), 100)
    want = _ort(model, x)
    for target in ("python", "ch32v003"):
        options = {"executor": "host"} if target == "ch32v003" else {}
        assert np.array_equal(tinycc_nn.compile(model, target, **options).run(x)["y"], want)


def test_equal_scales_on_a_2x2_window_are_refused_naming_the_sum():
    """A sum of 4k + 2 averages to k + 0.5 exactly, and float32's rounding of the
    dequantized values decides which way onnxruntime rounds it: not a function of the sum."""
    model = _pool_model("uint8", (2, 4, 4), 0.0047906, 0, 0.0047906, 0, (2, 2), (2, 2))
    with pytest.raises(TinyccError, match=r"QLinearAveragePool 'pool': .*window sum of \d+ gives \d+\.5 "):
        tinycc_nn.compile(model, "python")


def test_a_window_over_the_whole_map_is_the_global_average():
    """onnxruntime falls back to its integer global average pool (no float sum): equal
    scales compile there."""
    model = _pool_model("int8", (3, 4, 4), 0.0047906, -5, 0.0047906, -5, (4, 4))
    x = _inputs(np.random.default_rng(2), "int8", (3, 4, 4), 200)
    assert np.array_equal(tinycc_nn.compile(model, "python").run(x)["y"], _ort(model, x))


def test_pads_without_count_include_pad_are_refused():
    model = _pool_model("uint8", (1, 5, 5), 0.01, 0, 0.02, 0, (3, 3), pads=(1, 1, 1, 1),
                        count_include_pad=0)
    with pytest.raises(TinyccError, match="count_include_pad=0 the divisor differs"):
        tinycc_nn.compile(model, "python")
