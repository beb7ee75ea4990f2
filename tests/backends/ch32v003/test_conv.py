"""Conv, pool and channel-loop code on `-t ch32v003` and `-t ch32v002`: bit-exact against
onnxruntime on the emulator and on the host build, and the BitNetMCU-shaped CNN within
the parts' flash, RAM and the published cycle count."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qdq
import qdq_conv
import tinycc_nn
from tinycc_nn import DoesNotFit, TinyccError
from tinycc_nn.artifact import Artifact
from tinycc_nn.backends.ch32v003 import emulator, firmware
from tinycc_nn.backends.ch32v003.codegen import generate

from .conv_models import bitnet_cnn, mnist16_cnn, small_cnn, wide_sum_cnn

needs_cross = pytest.mark.skipif(not firmware.have_cross_compiler(),
                                 reason="riscv64-unknown-elf-gcc not installed")
TARGETS = ["ch32v003", "ch32v002"]


def _same(got: dict, want: list, n: int) -> None:
    assert len(got) == len(want)
    for (name, g), w in zip(got.items(), want):
        assert np.array_equal(g.reshape(n, -1), w.reshape(n, -1)), name


@needs_cross
@pytest.mark.parametrize("target", TARGETS)
def test_small_cnn_emulator_and_host(target):
    model, x = small_cnn()
    ref = qdq.ort_run(model, x)
    art = tinycc_nn.compile(model, target)
    notes = list(art.report["layers"].values())
    assert any(n.startswith("conv:") for n in notes) and any(n.startswith("maxpool") for n in notes)
    _same(art.run(x[:24]), [r[:24] for r in ref], 24)
    _same(tinycc_nn.compile(model, target, executor="host").run(x), ref, len(x))


@needs_cross
@pytest.mark.parametrize("target", TARGETS)
def test_bitnet_shaped_cnn_fits_and_beats_published_cycles(target):
    model, x = bitnet_cnn()
    art = tinycc_nn.compile(model, target)
    r = art.report
    part = firmware.CH32V002 if target == "ch32v002" else firmware.CH32V003
    assert r["rom_firmware"] <= part.flash and r["ram_used"] <= part.ram
    assert r["cycles_per_inference"] <= 2_740_000          # BitNetMCU on a CH32V002 (multiplier)
    _same(art.run(x[:3]), [o[:3] for o in qdq.ort_run(model, x[:3])], 3)
    if target == "ch32v002":
        assert "__mulsi3" not in art.files["model.c"] and " * q[" in art.files["model.c"]


@needs_cross
def test_mnist16_cnn_fits_the_ch32v003_with_a_margin():
    """The QAT example's shape (uint8 input, per-channel conv scales, odd FC weights): it
    used to take all 2048 B of RAM and 16,032 B of flash."""
    model, x = mnist16_cnn()
    art = tinycc_nn.compile(model, "ch32v003")
    r = art.report
    assert r["ram_used"] <= 1900 and r["rom_firmware"] <= 15_872       # stack included; 15.5 KB
    assert r["cycles_per_inference"] <= 2_740_000
    _same(art.run(x[:2]), [o[:2] for o in qdq.ort_run(model, x[:2])], 2)
    _same(tinycc_nn.compile(model, "ch32v003", executor="host").run(x), qdq.ort_run(model, x), len(x))


def _random_cnn_exact(seed: int, target: str, make=qdq_conv.random_cnn) -> None:
    rng = np.random.default_rng(seed)
    model, shape, scale = make(rng)
    x = qdq_conv.random_map_inputs(rng, shape, scale, 12)
    try:
        art = tinycc_nn.compile(model, target, executor="host", warn=lambda m: None)
    except DoesNotFit:
        return
    except TinyccError as e:         # only the documented refusal of averages with exact halves
        assert "power-of-two size" in str(e), f"seed {seed}: {e}"
        return
    _same(art.run(x), qdq.ort_run(model, x), len(x))


@needs_cross
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from(TARGETS))
def test_random_cnns_host_build_bit_exact(seed, target):
    """Kernels, strides, pads, groups, pools, value sets (int8 weights take two digits),
    zero points and heads, through the C compiled for the host."""
    _random_cnn_exact(seed, target)


@needs_cross
def test_a_conv_with_32_bit_sums_packs_its_input_as_bytes_when_words_do_not_fit():
    """16 input channels of 6x6 (padded) as words take 2304 B: more than the CH32V003 has
    (the compile used to fail: 2722 B of RAM); as uint8_t 576 B.  The CH32V002's 4 KB keep
    the faster words."""
    model, x = wide_sum_cnn()
    want = qdq.ort_run(model, x)
    small = tinycc_nn.compile(model, "ch32v003")
    r = small.report
    assert r["ram_used"] <= 2048 and "in its own type" in r["kernel_note"]
    assert r["layers"]["conv21"].startswith("conv: 1 pixel(s)") and "packed as uint8_t" in r["layers"]["conv21"]
    _same(small.run(x[:4]), [w[:4] for w in want], 4)
    _same(tinycc_nn.compile(model, "ch32v003", executor="host").run(x), want, len(x))
    big = tinycc_nn.compile(model, "ch32v002")
    assert "kernel_note" not in big.report and "packed as" not in big.report["layers"]["conv21"]
    assert big.report["arena_bytes"] > r["arena_bytes"] + 1500


@needs_cross
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from(TARGETS))
def test_random_residual_cnns_host_build_bit_exact(seed, target):
    """Adds of two maps (and of a map and the input), with the maps before them in loops."""
    _random_cnn_exact(seed, target, qdq_conv.random_residual_cnn)


@needs_cross
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from(TARGETS))
def test_random_branchy_cnns_host_build_bit_exact(seed, target):
    """Transposed NHWC inputs and Pads (gathers), Concats of two branches."""
    _random_cnn_exact(seed, target, qdq_conv.random_branchy_cnn)


@needs_cross
@pytest.mark.parametrize("target", TARGETS)
def test_a_residual_block_on_the_emulator(target):
    """Seed 53's second block adds a map that a channel loop reads first: the loop's
    output once went to offset 0 over it (a pin that ignored a live buffer)."""
    rng = np.random.default_rng(53)
    model, shape, scale = qdq_conv.random_residual_cnn(rng)
    x = qdq_conv.random_map_inputs(rng, shape, scale, 6)
    art = tinycc_nn.compile(model, target)
    assert sum(note.startswith("add:") for note in art.report["layers"].values()) == 2
    _same(art.run(x), qdq.ort_run(model, x), len(x))


@needs_cross
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from(TARGETS))
def test_random_cnns_with_narrow_packing_bit_exact(seed, target):
    """The layouts that save RAM (packing in the map's own type, repacking per channel,
    bit-serial dense layers), forced on random CNNs whatever their size."""
    rng = np.random.default_rng(seed)
    model, shape, scale = qdq_conv.random_cnn(rng)
    x = qdq_conv.random_map_inputs(rng, shape, scale, 8)
    try:
        art = tinycc_nn.compile(model, target, executor="host", warn=lambda m: None)
    except (DoesNotFit, TinyccError):
        return                      # refusals are the other test's business
    cm = generate(art.graph, narrow=True, prepack=bool(seed & 1), tables=bool(seed & 2),
                  multiply=target == "ch32v002")
    files = {"model.c": cm.model_c, "model.h": cm.model_h}
    _same(Artifact(target, art.backend, art.graph, files, art.report, art.options).run(x),
          qdq.ort_run(model, x), len(x))


@needs_cross
@pytest.mark.parametrize("seed", [6, 31])       # int8 conv weights; a strided wide value set
def test_wide_weight_sets_on_the_emulator(seed):
    rng = np.random.default_rng(seed)
    model, shape, scale = qdq_conv.random_cnn(rng)
    x = qdq_conv.random_map_inputs(rng, shape, scale, 6)
    _same(tinycc_nn.compile(model, "ch32v003").run(x), qdq.ort_run(model, x), len(x))


def test_emulator_accepts_zmmul_only_on_the_v2c():
    mul = 0x02B50533            # mul a0, a0, a1
    div = 0x02B54533            # div a0, a0, a1
    assert emulator.classify(mul) == ("illegal", 4)
    assert emulator.classify(mul, multiply=True) == ("mul", 4)
    assert emulator.classify(div, multiply=True) == ("illegal", 4)
