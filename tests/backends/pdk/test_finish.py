"""backends/pdk/finish.py: one finish routine for layers that differ only in incidental
choices, and what that buys on models the project has never seen."""
import re

import numpy as np
import pytest

import qdq
import tinycc_nn
from tinycc_nn.backends.pdk import finish, sdas

pytestmark = pytest.mark.skipif(not sdas.available("pdk13") or not sdas.available("pdk14"),
                                reason="needs sdaspdk13/sdaspdk14 and sdldpdk (Debian package sdcc)")


def _bit_exact(art, model, x):
    for (name, got), want in zip(art.run(x).items(), qdq.ort_run(model, x)):
        assert np.array_equal(got.reshape(len(x), -1), want.reshape(len(x), -1)), name


def _finish_routines(asm: str) -> list:
    return re.findall(r"^(finish_\d+):", asm, re.M)


@pytest.mark.parametrize("target", ["pms150c", "pfs154"])
@pytest.mark.parametrize("bias", [True, False])
def test_unseen_reference_shapes_share_one_finish_and_are_bit_exact(target, bias):
    # int8 input and activations (ReLU to 0..127), a weight scale per layer, an output
    # layer that shifts nothing and clamps to 0..255: one routine serves all four layers
    rng = np.random.default_rng(5 if bias else 6)
    m = qdq.unseen_reference_shape(rng, bias=bias)
    model = qdq.build(m)
    art = tinycc_nn.compile(model, target, opt="size")
    asm = art.files["model.asm"]
    assert len(_finish_routines(asm)) == 1
    _bit_exact(art, model, qdq.random_inputs(rng, m, 8))


def test_code_outside_the_tables_does_not_grow_with_incidental_choices():
    # the words besides the weight and constant tables, on the PMS150C with --opt size:
    # the uint8 example's shape, then int8 models of the same shape with and without biases
    example = tinycc_nn.compile("examples/mnist8x8_ref/model.onnx", "pms150c", opt="size")
    base = example.report["rom_used"] - example.report["rom_table_data"]
    for seed, bias in ((1, True), (2, True), (7, False)):
        model = qdq.build(qdq.unseen_reference_shape(np.random.default_rng(seed), bias=bias))
        art = tinycc_nn.compile(model, "pms150c", opt="size")
        code = art.report["rom_used"] - art.report["rom_table_data"]
        # what remains is the per-neuron constants' fetch (5 words a layer) and the
        # parameter byte's handling; it was 145 words more before the finish was shared
        assert code <= base + 30, (seed, bias, code, base)
        assert art.report["ram_used"] <= example.report["ram_used"]


@pytest.mark.parametrize("opt", ["size", "speed"])
@pytest.mark.parametrize("shifts", [(0, 3), (2, 0), (0, 0)])
def test_a_layer_that_shifts_nothing_beside_one_that_shifts(opt, shifts):
    rng = np.random.default_rng(sum(shifts) + (opt == "speed"))
    layers = []
    x_exp = -6
    for k, (n_in, n_out) in enumerate(((12, 8), (8, 6))):
        w_exp = -2
        out_exp = x_exp + w_exp + shifts[k]
        layers.append(qdq.Layer(qdq.random_weights(rng, (n_in, n_out), "pm2"), w_exp,
                                rng.integers(-40, 40, n_out), relu=k == 0, out_exp=out_exp,
                                out_dtype="int8"))
        x_exp = out_exp
    m = qdq.Model(layers, 12, in_exp=-6, in_dtype="int8", argmax=True)
    model = qdq.build(m)
    art = tinycc_nn.compile(model, "pfs154", opt=opt)
    _bit_exact(art, model, qdq.random_inputs(rng, m, 24))


def test_the_parameter_byte():
    # bit 0: not a tie; bits 1-6: count + 1; bit 7: the second bound
    tail = finish.Tail(2, 1, None, "even", True, True, (127, 255))

    class P:
        shift, rounding, clamp_high, span, shifts = 0, "half_even", 255, 255, None

    assert finish.parameter(P, tail) == 0x80 | 1 << 1 | 1
    P.shift, P.clamp_high = 3, 127
    assert finish.parameter(P, tail) == 4 << 1
    P.rounding = "floor"
    assert finish.parameter(P, tail) == 4 << 1 | 1
