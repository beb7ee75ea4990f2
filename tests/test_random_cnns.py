"""Random small QDQ CNNs (qdq_conv.random_cnn), compiled to `-t python`, bit-exact
against onnxruntime: kernels, strides, pads, auto_pad, groups, pools, value sets,
per-channel scales, zero points, dense and global-average heads; and residual networks
(qdq_conv.random_residual_cnn: Add of two feature maps, or of a map and the input), and
branchy ones (qdq_conv.random_branchy_cnn: NHWC inputs, Pad, Concat)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qdq
import qdq_conv
import tinycc_nn
from tinycc_nn import TinyccError


def _check(seed: int, optimized: bool, make=qdq_conv.random_cnn) -> None:
    rng = np.random.default_rng(seed)
    model, shape, scale = make(rng)
    x = qdq_conv.random_map_inputs(rng, shape, scale, 24)
    try:
        art = tinycc_nn.compile(model, "python", warn=lambda m: None)
    except TinyccError as e:      # only the documented refusal of averages with exact halves
        assert "power-of-two size" in str(e), f"seed {seed}: {e}"
        return
    outs = art.run(x)
    ref = qdq.ort_run(model, x, optimized=optimized)
    qdq.assert_outputs_equal(outs, ref, len(x), seed)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_cnn_bit_exact(seed):
    _check(seed, optimized=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_residual_cnn_bit_exact(seed):
    _check(seed, optimized=False, make=qdq_conv.random_residual_cnn)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_branchy_cnn_bit_exact(seed):
    """NHWC inputs, Pads, two-branch Concats (qdq_conv.random_branchy_cnn)."""
    _check(seed, optimized=False, make=qdq_conv.random_branchy_cnn)
