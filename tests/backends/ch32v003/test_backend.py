"""`-t ch32v003` end to end: QDQ models compiled to C, run as firmware under unicorn and
as a host build, equal to the reference backend and to onnxruntime bit for bit."""
import io
import json

import numpy as np
import onnx
import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

import qdq
import tinycc_nn
from tinycc_nn import DoesNotFit, TinyccError
from tinycc_nn.backends.ch32v003 import firmware
from tinycc_nn.cli import main as cli_main

needs_cross = pytest.mark.skipif(not firmware.have_cross_compiler(),
                                 reason="riscv64-unknown-elf-gcc not installed")


def _same(got: dict, want: list, n: int) -> None:
    assert len(got) == len(want)
    for (name, g), w in zip(got.items(), want):
        assert g.dtype == w.dtype, name
        assert np.array_equal(g.reshape(n, -1), w.reshape(n, -1)), name


def check_exact(model, x, **options):
    """Emulator == host build == python reference == onnxruntime; returns the artifact."""
    graph = tinycc_nn.load_model(model)         # the frontend's fit runs once
    art = tinycc_nn.compile(graph, "ch32v003", **options)
    ours, stats = art.run(x, with_stats=True)
    ref = qdq.ort_run(model, x)
    _same(ours, ref, len(x))
    _same(tinycc_nn.compile(graph, "python").run(x), ref, len(x))
    _same(tinycc_nn.compile(graph, "ch32v003", executor="host").run(x), ref, len(x))
    assert stats["instructions"].shape == (len(x),) and (stats["cycles"] > stats["instructions"]).all()
    return art


def _set_init(model, name, arr):
    for t in model.graph.initializer:
        if t.name == name:
            t.CopyFrom(numpy_helper.from_array(np.asarray(arr), name))
            return
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(arr), name))


def _node(model, output):
    return next(n for n in model.graph.node if n.output[0] == output)


@needs_cross
@pytest.mark.parametrize("value_set", sorted(qdq.VALUE_SETS))
def test_every_weight_value_set(value_set):
    rng = np.random.default_rng(sorted(qdq.VALUE_SETS).index(value_set))
    in_dtype = "int8" if len(value_set) % 2 else "uint8"
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (21, 12), value_set), bias=rng.integers(-900, 900, 12),
                             out_exp=-1, out_dtype="uint8"),
                   qdq.Layer(qdq.random_weights(rng, (12, 7), value_set), out_exp=0, relu=False)],
                  21, in_dtype=in_dtype, in_zp=3 if in_dtype == "uint8" else 0, argmax=True)
    art = check_exact(qdq.build(m), qdq.random_inputs(rng, m, 24))
    assert art.graph.attrs(art.graph.inputs()[0])["qdtype"] == in_dtype


@needs_cross
@pytest.mark.parametrize("seed", [11, 23, 42, 97, 1234, 31337])
def test_random_models(seed):
    rng = np.random.default_rng(seed)
    m = qdq.random_mlp(rng)
    check_exact(qdq.build(m), qdq.random_inputs(rng, m, 16))


@needs_cross
def test_raw_accumulator_output():
    rng = np.random.default_rng(5)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (24, 8), "int4"), out_exp=-2),
                   qdq.Layer(qdq.random_weights(rng, (8, 6), "int8"), bias=rng.integers(-900, 900, 6),
                             relu=False)], 24, argmax=True)
    model = qdq.build(m)
    keep = [n for n in model.graph.node if n.output[0] not in ("l1_q", "logits")]
    _node(model, "l1_add").output[0] = "logits"      # the float accumulator is the output
    del model.graph.node[:]
    model.graph.node.extend(keep)
    onnx.checker.check_model(model)
    art = check_exact(model, qdq.random_inputs(rng, m, 24))
    assert "typedef int32_t nn_output_t;" in art.files["model.h"]


@needs_cross
def test_argmax_last_on_ties():
    rng = np.random.default_rng(8)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (16, 12), "binary"), out_exp=-6)], 16, argmax=True)
    model = qdq.build(m)
    next(n for n in model.graph.node if n.op_type == "ArgMax").attribute.append(
        helper.make_attribute("select_last_index", 1))
    x = qdq.random_inputs(rng, m, 40) * 4
    art = check_exact(model, x)
    logits = art.run(x)["logits"]
    ties = (logits == logits.max(axis=1, keepdims=True)).sum(axis=1) > 1
    assert ties.any()                     # otherwise first and last maximum could not differ
    assert art.graph.attrs(art.graph.nodes_of("argmax")[0])["last"] is True


@needs_cross
def test_per_channel_weight_scales_give_per_channel_shifts():
    rng = np.random.default_rng(9)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (24, 8), "int4"), out_exp=-2),
                   qdq.Layer(qdq.random_weights(rng, (8, 6), "binary"), out_exp=-1, relu=False)],
                  24, in_dtype="uint8")
    model = qdq.build(m)
    _set_init(model, "l0_ws", (2.0 ** -rng.integers(0, 6, 8)).astype(np.float32))
    _set_init(model, "l0_wz", np.zeros(8, np.int8))
    dq = _node(model, "l0_wd")
    dq.attribute.append(helper.make_attribute("axis", 1))
    dq.input.append("l0_wz")
    art = check_exact(model, qdq.random_inputs(rng, m, 24))
    shift = art.graph.attrs("l0_mm")["shift"]
    assert isinstance(shift, list) and len(set(shift)) > 1


@needs_cross
def test_non_power_of_two_output_scale_uses_shift_add_multiply():
    rng = np.random.default_rng(10)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (30, 16), "ternary"), bias=rng.integers(-500, 500, 16),
                             out_exp=-3),
                   qdq.Layer(qdq.random_weights(rng, (16, 6), "odd4"), out_exp=-1, relu=False)], 30,
                  argmax=True)
    model = qdq.build(m)
    _set_init(model, "l1_os", np.float32(0.1))
    art = check_exact(model, qdq.random_inputs(rng, m, 30))
    mult = int(art.graph.attrs("l1_mm")["mult"])
    assert mult & (mult - 1)                                     # not a power of two
    layer = art.files["model.c"].split("static void nn_l1_mm", 1)[1].split("\n}\n", 1)[0]
    assert "(u << " in layer                                     # product by shifts and adds
    assert not _symbols(art) & {"__mulsi3", "__muldi3"}


def _requant_graph(op, n_in, n_out, w, attrs, qdtype):
    """input -> dense(w) or requant -> output, straight in the IR (per-channel everything)."""
    from tinycc_nn import ir
    from tinycc_nn.hostio import QRANGE
    g = ir.Graph("arith")
    g.add("x", "input", [], {"name": "x", "dtype": "float32", "shape": ["N", n_in], "qdtype": qdtype},
          ir.TensorType.for_range(*QRANGE[qdtype], (n_in,)))
    args = ["x"]
    if op == "dense":
        g.add("w", "const", [], {"values": w}, ir.TensorType.for_range(w.min(), w.max(), w.shape))
        args.append("w")
    g.add("y", op, args, attrs)
    g.node("y")["type"] = ir.infer_type(g, "y")
    g.add("out", "output", ["y"], {"name": "y", "dtype": "float32", "shape": ["N", n_out], "float_ops": []})
    ir.verify(g)
    return g


@needs_cross
@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["dense", "requant"]), st.sampled_from(["floor", "half_even", "half_odd"]),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_requantization_arithmetic_matches_the_reference(op, rounding, clamp, seed):
    """Per-channel mult (0, 1, odd 24-bit), rnd, shift up to 46, every rounding: the 64-bit
    paths run under the emulator, where rv32 code does the 64-bit shifts."""
    rng = np.random.default_rng(seed)
    qdtype = str(rng.choice(["int8", "uint8", "int16"]))
    n_in = int(rng.integers(1, 20))
    n_out = n_in if op == "requant" else int(rng.integers(1, 12))
    w = rng.integers(-8, 8, (n_in, n_out))
    big = int(rng.choice([2**6, 2**14, 2**40]))       # 32-bit or 64-bit arithmetic
    mult = rng.choice([0, 1, 3, int(rng.integers(1, 2**24 if big > 2**14 else 2**8))], n_out)
    shift = rng.integers(0, int(rng.choice([5, 13, 47])), n_out)
    if rng.random() < 0.4:
        mult[:] = mult[0]                              # one multiplier: inline shifts and adds
    if rng.random() < 0.4:
        shift[:] = shift[0]                            # one shift: inline rounding
    attrs = {"mult": mult.tolist(), "rnd": rng.integers(-big, big, n_out).tolist(),
             "shift": shift.tolist(), "rounding": rounding,
             "lo": int(rng.integers(-3000, 0)) if clamp else None, "hi": int(rng.integers(0, 3000)) if clamp else None}
    if op == "dense":
        attrs["bias"] = rng.integers(-5000, 5000, n_out).tolist()
    graph = _requant_graph(op, n_in, n_out, w, attrs, qdtype)
    assume(graph.type("y").bits <= 32)
    xq = rng.integers(*{"int8": (-128, 128), "uint8": (0, 256), "int16": (-2**15, 2**15)}[qdtype], (20, n_in))
    xq[:4] = {"int8": [-128, 127], "uint8": [0, 255], "int16": [-2**15, 2**15 - 1]}[qdtype][0]
    want = tinycc_nn.compile(graph, "python").run_quantized(xq)[0][0]
    got, stats = tinycc_nn.compile(graph, "ch32v003").run_quantized(xq)
    assert np.array_equal(got[0], want)
    host = tinycc_nn.compile(graph, "ch32v003", executor="host").run_quantized(xq)[0]
    assert np.array_equal(host[0], want)


@needs_cross
def test_mult_one_with_a_rounding_constant_beyond_32_bits():
    """rnd joins the 32-bit per-neuron constant only when acc + rnd fits 32 bits."""
    w = np.arange(-9, 9).reshape(6, 3)
    attrs = {"bias": [-3999, -2130, 332], "mult": 1, "rnd": [-597421253124, 127836306497, 851401411076],
             "shift": [6, 31, 42], "rounding": "floor", "lo": -637, "hi": 1547}
    graph = _requant_graph("dense", 6, 3, w, attrs, "int8")
    xq = np.random.default_rng(19).integers(-128, 128, (16, 6))
    want = tinycc_nn.compile(graph, "python").run_quantized(xq)[0][0]
    assert np.array_equal(tinycc_nn.compile(graph, "ch32v003").run_quantized(xq)[0][0], want)


@needs_cross
def test_int16_activations_take_the_bit_serial_kernel():
    rng = np.random.default_rng(12)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (20, 9), "int8"), out_exp=-8, out_dtype="int16"),
                   qdq.Layer(qdq.random_weights(rng, (9, 40), "pm2"), out_exp=-3, relu=False)], 20,
                  argmax=True, opset=21)
    art = check_exact(qdq.build(m), qdq.random_inputs(rng, m, 20))
    assert "bit-serial" in art.report["layers"]["l1_mm"]


@needs_cross
def test_groups_of_zero_inputs_are_skipped_exactly():
    rng = np.random.default_rng(20)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (40, 24), "odd4"), bias=rng.integers(-900, 900, 24),
                             out_exp=-1),
                   qdq.Layer(qdq.random_weights(rng, (24, 5), "int4"), out_exp=0, relu=False)], 40,
                  in_dtype="uint8", argmax=True)
    x = np.abs(qdq.random_inputs(rng, m, 12)) + 0.02
    x[:, 8:24] = 0                                    # two whole groups of 8 blank "pixels"
    x[3] = 0                                          # and one blank image
    art = check_exact(qdq.build(m), x)
    _, zeroed = art.run(x, with_stats=True)
    _, dense = art.run(np.abs(x) + 0.5, with_stats=True)
    assert (zeroed["instructions"] < dense["instructions"]).all()
    size = tinycc_nn.compile(qdq.build(m), "ch32v003", opt="size")
    _, plain = size.run(x, with_stats=True)
    # opt=size: the same work for every input, up to the clamps' branches
    assert np.ptp(plain["instructions"]) < 0.01 * plain["instructions"].min()
    assert dense["instructions"][3] - zeroed["instructions"][3] > 0.3 * dense["instructions"][3]


@needs_cross
def test_all_zero_weights():
    rng = np.random.default_rng(13)
    m = qdq.Model([qdq.Layer(np.zeros((12, 5), np.int64), bias=rng.integers(-100, 100, 5), out_exp=-3),
                   qdq.Layer(qdq.random_weights(rng, (5, 4), "int4"), out_exp=-2)], 12, argmax=True)
    check_exact(qdq.build(m), qdq.random_inputs(rng, m, 12))


@needs_cross
def test_report_and_firmware_are_multiplier_free():
    rng = np.random.default_rng(14)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (64, 32), "odd4"), out_exp=-1),
                   qdq.Layer(qdq.random_weights(rng, (32, 10), "odd4"), out_exp=0, relu=False)], 64,
                  argmax=True)
    art = tinycc_nn.compile(qdq.build(m), "ch32v003")
    r = art.report
    assert 0 < r["rom_used"] < r["rom_firmware"] <= r["rom_capacity"] == 16384
    assert r["ram_static"] < r["ram_used"] == r["ram_static"] + r["ram_stack"] <= r["ram_capacity"] == 2048
    assert r["cycles_per_inference"] > r["instructions_per_inference"] > 32 * 64
    symbols = _symbols(art)
    assert "nn_infer" in symbols and not symbols & {"__mulsi3", "__muldi3"}


def _symbols(art) -> set:
    elf = ELFFile(io.BytesIO(art.files["firmware.elf"]))
    return {s.name for s in elf.get_section_by_name(".symtab").iter_symbols()}


def _two_layer_graph(outputs):
    """input u8[12] -> dense -> dense -> argmax, with the given values as the outputs."""
    from tinycc_nn import ir
    rng = np.random.default_rng(21)
    g = ir.Graph("edges")
    g.add("x", "input", [], {"name": "x", "dtype": "float32", "shape": ["N", 12], "qdtype": "uint8"},
          ir.TensorType.for_range(0, 255, (12,)))
    for name, src, shape, attrs in (
            ("d1", "x", (12, 9), {"bias": 0, "mult": 1, "rnd": 0, "shift": 3, "rounding": "half_even",
                                  "lo": 0, "hi": 255}),
            ("d2", "d1", (9, 5), {"bias": 0, "mult": 1, "rnd": 0, "shift": 0, "rounding": "floor",
                                  "lo": None, "hi": None})):
        w = rng.integers(-3, 4, shape)
        g.add(f"w_{name}", "const", [], {"values": w}, ir.TensorType.for_range(w.min(), w.max(), w.shape))
        g.add(name, "dense", [src, f"w_{name}"], attrs)
        g.node(name)["type"] = ir.infer_type(g, name)
    g.add("am", "argmax", ["d2"], {"last": False})
    g.node("am")["type"] = ir.infer_type(g, "am")
    for i, v in enumerate(outputs):
        g.add(f"o{i}", "output", [v], {"name": f"o{i}", "dtype": "float32",
                                        "shape": ["N", g.type(v).size], "float_ops": []})
    ir.verify(g)
    return g


@needs_cross
@pytest.mark.parametrize("outputs", [["am"], ["x", "am"], ["d1", "am"], ["d2"]])
def test_output_shapes_of_the_c_contract(outputs):
    """Only a class (written to output[0]); the input itself; an intermediate vector that a
    later layer reads back from the caller's buffer; no argmax."""
    graph = _two_layer_graph(outputs)
    xq = np.random.default_rng(22).integers(0, 256, (10, 12))
    xq[2] = 0
    want = tinycc_nn.compile(graph, "python").run_quantized(xq)[0]
    for executor in ("emulator", "host"):
        got = tinycc_nn.compile(graph, "ch32v003", executor=executor).run_quantized(xq)[0]
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))


def test_two_output_vectors_are_refused():
    with pytest.raises(TinyccError, match="one output vector .*this graph has 2: o0, o1 "):
        tinycc_nn.compile(_two_layer_graph(["d1", "d2"]), "ch32v003")


def test_too_big_for_flash_raises_does_not_fit():
    rng = np.random.default_rng(15)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (256, 128), "int8"), out_exp=2),
                   qdq.Layer(qdq.random_weights(rng, (128, 10), "int8"), out_exp=4, relu=False)], 256)
    with pytest.raises(DoesNotFit) as err:
        tinycc_nn.compile(qdq.build(m), "ch32v003")
    msg = str(err.value)
    assert "16384 available" in msg and "2048 available" in msg and "nn_w_l0_mm 32768 B (flash)" in msg


def test_too_big_for_ram_raises_does_not_fit():
    rng = np.random.default_rng(16)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (2100, 4), "binary"), out_exp=2)], 2100)
    with pytest.raises(DoesNotFit, match=r"2104 bytes of RAM \(2048 available\).*input buffer 2100 B"):
        tinycc_nn.compile(qdq.build(m), "ch32v003")


@needs_cross
def test_a_stack_that_overruns_the_ram_left_raises_does_not_fit_with_the_static_figure():
    # the buffers fit and leave a few bytes: the measured stack runs into .bss, where it
    # overwrites data; a fault after that is its consequence, not a crash to report
    rng = np.random.default_rng(17)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (2024, 4), "binary"), out_exp=2)], 2024)
    with pytest.raises(DoesNotFit, match=r"more than 2048 bytes of RAM: 2032 static, and the stack "
                                         r"overran the 16 bytes left; biggest: nn_harness_input 2024 B \(ram\)"):
        tinycc_nn.compile(qdq.build(m), "ch32v003")


@needs_cross
def test_without_room_for_tables_the_bit_serial_kernel_is_used():
    rng = np.random.default_rng(23)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (1700, 6), "ternary"), out_exp=1),
                   qdq.Layer(qdq.random_weights(rng, (6, 3), "int4"), out_exp=0, relu=False)], 1700,
                  in_dtype="uint8", argmax=True)
    art = check_exact(qdq.build(m), np.abs(qdq.random_inputs(rng, m, 6)))
    assert "bit-serial" in art.report["layers"]["l0_mm"] and "tables" in art.report["kernel_note"]
    assert art.report["ram_used"] <= 2048


def test_without_the_cross_compiler_the_c_is_still_written(monkeypatch):
    monkeypatch.setattr(firmware, "have_cross_compiler", lambda: False)
    rng = np.random.default_rng(17)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (10, 4), "ternary"), out_exp=-2)], 10, argmax=True)
    model = qdq.build(m)
    art = tinycc_nn.compile(model, "ch32v003")
    assert set(art.files) == {"model.c", "model.h"}
    r = art.report
    assert r["rom_used"] is None and r["ram_used"] is None and r["cycles_per_inference"] is None
    with pytest.raises(TinyccError, match="executor='host'"):
        art.run(qdq.random_inputs(rng, m, 2))
    x = qdq.random_inputs(rng, m, 8)
    _same(tinycc_nn.compile(model, "ch32v003", executor="host").run(x), qdq.ort_run(model, x), 8)


def test_bad_options_are_user_errors():
    m = qdq.Model([qdq.Layer(np.ones((4, 2), np.int64))], 4)
    with pytest.raises(TinyccError, match="executor"):
        tinycc_nn.compile(qdq.build(m), "ch32v003", executor="fpga")


@needs_cross
def test_cli_verify_json_has_instruction_and_cycle_means(tmp_path, capsys):
    rng = np.random.default_rng(18)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (16, 8), "pm2"), out_exp=-2),
                   qdq.Layer(qdq.random_weights(rng, (8, 4), "ternary"), out_exp=-1, relu=False)], 16,
                  argmax=True)
    onnx.save(qdq.build(m), tmp_path / "model.onnx")
    np.save(tmp_path / "x.npy", qdq.random_inputs(rng, m, 10))
    code = cli_main(["verify", str(tmp_path / "model.onnx"), "-t", "ch32v003",
                     "--inputs", str(tmp_path / "x.npy"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["mismatches"] == 0 and out["n"] == 10
    assert out["instructions_mean"] > 0 and out["cycles_mean"] > out["instructions_mean"]
