"""Random small QDQ MLPs, compiled to `-t python`, bit-exact against onnxruntime.

Covers widths 1-64, depth 1-4, every weight value set, power-of-two scales, with
and without bias, int8/uint8 activations with and without zero points, MatMul and
Gemm, batch 1 and symbolic.  The draw itself is qdq.random_mlp (seeded by
hypothesis), so a failure shrinks to a seed that reproduces it.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qdq
import tinycc_nn


def _check(seed: int, optimized: bool) -> None:
    rng = np.random.default_rng(seed)
    m = qdq.random_mlp(rng)
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 48)
    outs = tinycc_nn.compile(model, "python").run(x)
    ref = qdq.ort_run(model, x, optimized=optimized)
    qdq.assert_outputs_equal(outs, ref, len(x), seed)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_mlp_bit_exact(seed):
    _check(seed, optimized=False)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_mlp_matches_optimized_onnxruntime(seed):
    # onnxruntime's default level fuses QDQ into integer kernels; results must not move
    _check(seed, optimized=True)
