"""The C generation pieces of the ch32v003 backend: bit-plane codes and layouts, the
multiplier-free constant products, the arena plan, and C that is warning-free C99."""
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qdq
import tinycc_nn
from tinycc_nn.backends.ch32v003 import kernels
from tinycc_nn.backends.ch32v003.codegen import generate
from tinycc_nn.backends.ch32v003.planes import PlaneCode, pack_groups8, pack_words32

EXPECTED_PLANES = {"binary": 1, "ternary": 2, "pm2": 2, "odd4": 4, "int4": 4, "int8": 8}


def _reconstruct(code: PlaneCode, bits: np.ndarray) -> np.ndarray:
    place = np.array([code.ratio ** k for k in range(code.planes)], np.int64)
    return code.offset + code.scale * (bits * place).sum(axis=-1)


@pytest.mark.parametrize("name", sorted(qdq.VALUE_SETS))
def test_plane_code_of_every_value_set(name):
    values = np.array(qdq.VALUE_SETS[name])
    code = PlaneCode.for_values(values)
    assert code.planes == EXPECTED_PLANES[name]
    assert np.array_equal(_reconstruct(code, code.bits(values)), values)
    assert set(values.tolist()) <= set(code.values())


@pytest.mark.parametrize("values, planes, ratio", [
    ([-2, -1, 1, 2], 2, 3),          # pm2: w = -2 + b0 + 3 b1
    ([-5, -4, 4, 5], 2, 9),
    ([-6, 6], 1, 2),                 # binary with scale 12
    ([7], 0, 2),                     # one value: no planes, w = offset
    ([-3, 0, 5], 4, 2),              # an arbitrary set: offset code over gcd 1
])
def test_plane_code_forms(values, planes, ratio):
    code = PlaneCode.for_values(values)
    assert (code.planes, code.ratio) == (planes, ratio)
    assert np.array_equal(_reconstruct(code, code.bits(values)), values)


def test_plane_code_rejects_values_off_its_grid():
    code = PlaneCode.for_values([-15, -13, 15])
    with pytest.raises(ValueError):
        code.bits(np.array([2]))


def _table_dot(code, packed, x, n_out):
    """The table8 kernel's arithmetic in numpy: sum_k ratio^k T[byte], then offset*X + scale*H."""
    pad = -len(x) % 8
    xs = np.concatenate([x, np.zeros(pad, np.int64)])
    groups = xs.reshape(-1, 8)
    masks = np.arange(256)[:, None] >> np.arange(8)[None, :] & 1
    tables = groups @ masks.T                                   # [groups, 256]
    b = packed.reshape(len(groups), n_out, code.planes).astype(np.int64)
    h = np.zeros(n_out, np.int64)
    for k in range(code.planes):
        h = h * code.ratio + tables[np.arange(len(groups))[:, None], b[:, :, k]].sum(axis=0)
    return code.offset * x.sum() + code.scale * h


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(qdq.VALUE_SETS)), st.integers(1, 40), st.integers(1, 9),
       st.integers(0, 2**32 - 1))
def test_pack_groups8_reproduces_the_dot_product(name, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    w = qdq.random_weights(rng, (n_in, n_out), name)
    x = rng.integers(0, 256, n_in)
    code = PlaneCode.for_values(w)
    packed = pack_groups8(code, w)
    assert packed.dtype == np.uint8 and packed.size == -(-n_in // 8) * n_out * code.planes
    assert np.array_equal(_table_dot(code, packed, x, n_out), x @ w)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(qdq.VALUE_SETS)), st.integers(1, 70), st.integers(1, 5),
       st.integers(0, 2**32 - 1))
def test_pack_words32_reproduces_the_dot_product(name, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    w = qdq.random_weights(rng, (n_in, n_out), name)
    x = rng.integers(-30000, 30000, n_in)
    code = PlaneCode.for_values(w)
    words = pack_words32(code, w).reshape(n_out, code.planes, -(-n_in // 32))
    bits = (words[..., :, None].astype(np.int64) >> np.arange(32)) & 1    # [out, plane, word, 32]
    bits = bits.reshape(n_out, code.planes, words.shape[-1] * 32)[:, :, :n_in]
    h = np.zeros(n_out, np.int64)
    for k in range(code.planes):
        h = h * code.ratio + bits[:, k, :] @ x
    assert np.array_equal(code.offset * x.sum() + code.scale * h, x @ w)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**40), 2**40), st.integers(0, 2**32 - 1))
def test_mul_const_is_shifts_and_adds(c, v):
    expr = kernels.mul_const("v", c)
    assert "*" not in expr
    python = expr.replace("((uint32_t)0)", "0")
    assert eval(python, {"v": v}) % 2**32 == (c * v) % 2**32


@given(st.integers(1, 2**40))
def test_naf_has_no_adjacent_digits(c):
    digits = kernels.naf(c)
    assert sum(d << s for s, d in digits) == c
    shifts = [s for s, _ in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))


def _graph(seed: int, **changes):
    rng = np.random.default_rng(seed)
    m = qdq.random_mlp(rng)
    for k, v in changes.items():
        setattr(m, k, v)
    return tinycc_nn.compile(qdq.build(m), "python").graph


@pytest.mark.parametrize("seed", [0, 4, 7])
def test_arena_buffers_are_aligned_and_inside(seed):
    graph = _graph(seed)
    cm = generate(graph)
    import re
    offsets = [int(o) for o in re.findall(r"NN_AT\([a-z0-9_]+, (\d+)\)", cm.model_c)]
    assert offsets and all(o % 4 == 0 and o < cm.arena_bytes for o in offsets)
    assert f"static uint32_t nn_arena[{(cm.arena_bytes + 3) // 4}];" in cm.model_c


def test_the_output_vector_is_written_in_place():
    graph = _graph(1, argmax=True)
    cm = generate(graph)
    body = cm.model_c.split("int nn_infer", 1)[1]
    assert ", output);" in body                     # the last layer writes the caller's buffer
    assert "output[i] =" not in body                # no copy


def test_unroll_option_changes_the_lookup_loop():
    graph = _graph(3)
    assert "_u2(" in generate(graph, unroll=2).model_c
    assert "_u2(" not in generate(graph, unroll=1).model_c


@pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")
@pytest.mark.parametrize("seed", [0, 2, 5])
def test_model_c_is_warning_free_pedantic_c99(tmp_path, seed):
    cm = generate(_graph(seed))
    (tmp_path / "model.c").write_text(cm.model_c)
    (tmp_path / "model.h").write_text(cm.model_h)
    cmd = ["gcc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wconversion",
           "-Wno-sign-conversion", "-ffreestanding", "-O2", "-c", "model.c", "-o", "model.o"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")
@pytest.mark.parametrize("seed", [1, 6, 9])
def test_bit_serial_everywhere_equals_the_reference(tmp_path, seed):
    """generate(tables=False), the RAM-saving fallback, on random models (host build)."""
    from tinycc_nn.backends.ch32v003.hostbuild import HostModel
    rng = np.random.default_rng(seed)
    m = qdq.random_mlp(rng)
    ref = tinycc_nn.compile(qdq.build(m), "python")
    cm = generate(ref.graph, tables=False)
    assert "nn_table8" not in cm.model_c
    (tmp_path / "model.c").write_text(cm.model_c)
    (tmp_path / "model.h").write_text(cm.model_h)
    xq = ref.quantize_inputs(qdq.random_inputs(rng, m, 32))
    classes, vectors = HostModel([tmp_path / "model.c"], [tmp_path]).infer(xq)
    want, _ = ref.run_quantized(xq)
    kinds = [ref.graph.op(ref.graph.operands(o)[0]) for o in ref.graph.outputs()]
    for kind, v in zip(kinds, want):
        got = classes[:, None] if kind == "argmax" else vectors
        assert np.array_equal(got.astype(np.int64), v)
