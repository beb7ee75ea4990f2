"""Random float MLPs quantized by onnxruntime's quantize_static, compiled to `-t python`
and bit-exact against onnxruntime's integer kernels (the integer reading).

The draw: widths 1-24, depth 1-3, MatMul (+ Add) or Gemm, with or without bias, QDQ or
QOperator, per-tensor or per-channel weights, int8 or uint8 activations.  A model whose
requantization the fit refuses (onnxruntime's double rounding matches no multiplier and
shift at some channel; the refusal names it) is not compiled, so it is skipped.
"""
import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ort_quant
import tinycc_nn


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1))
def test_random_quantize_static_mlp_bit_exact(tmp_path, seed):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 25)) for _ in range(int(rng.integers(2, 5)))]
    model = ort_quant.float_mlp(rng, sizes, gemm=bool(rng.random() < 0.5),
                                bias=bool(rng.random() < 0.7))
    calib = rng.normal(0, 1, (12, sizes[0])).astype(np.float32)
    qmodel = ort_quant.quantize(model, calib, tmp_path, qoperator=bool(rng.random() < 0.4),
                                per_channel=bool(rng.random() < 0.5),
                                activations=str(rng.choice(["int8", "uint8"])))
    try:
        art = tinycc_nn.compile(qmodel, "python")
    except tinycc_nn.TinyccError as e:
        assert "cannot requantize exactly" in str(e), str(e)
        assume(False)
    x = rng.normal(0, 1.5, (64, sizes[0])).astype(np.float32)
    ours = art.run(x)["logits"].reshape(len(x), -1)
    want = ort_quant.ort_default(qmodel, x)[0].reshape(len(x), -1)
    assert np.array_equal(ours, want), f"seed {seed}"
