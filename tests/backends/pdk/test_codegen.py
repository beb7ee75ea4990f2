"""The Padauk backends end to end: IR -> sdas -> .ihx -> simulator, bit-exact against
the reference backend and onnxruntime, on random models and on edge cases."""
import numpy as np
import pytest

import qdq
import tinycc_nn
from tinycc_nn.backends.pdk import sdas
from tinycc_nn.errors import DoesNotFit, TinyccError

pytestmark = pytest.mark.skipif(not sdas.available("pdk13") or not sdas.available("pdk14"),
                                reason="needs sdaspdk13/sdaspdk14 and sdldpdk (Debian package sdcc)")


def _bit_exact(model, x, target):
    art = tinycc_nn.compile(model, target)
    outs, stats = art.run(x, with_stats=True)
    ref = qdq.ort_run(model, x)
    for (name, got), want in zip(outs.items(), ref):
        assert np.array_equal(got.reshape(len(x), -1), want.reshape(len(x), -1)), name
    assert (stats["cycles"] >= stats["instructions"]).all()
    return art, stats


def _agrees(art, model, x):
    """Every output of `art` on x equals onnxruntime's, bit for bit."""
    for (name, got), want in zip(art.run(x).items(), qdq.ort_run(model, x)):
        assert np.array_equal(got.reshape(len(x), -1), want.reshape(len(x), -1)), name


def _pm2_mlp(rng, sizes):
    """{-2,-1,+1,+2} layers of these sizes, uint8 ReLU hidden vectors, an argmax."""
    layers = [qdq.Layer(qdq.random_weights(rng, (k, n), "pm2"), -1, None, True, -1, "uint8")
              for k, n in zip(sizes[:-2], sizes[1:-1])]
    layers.append(qdq.Layer(qdq.random_weights(rng, sizes[-2:], "pm2"), -1, None, False, 0))
    return qdq.Model(layers, sizes[0], in_exp=-7, in_dtype="uint8", argmax=True)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("target", ["pms150c", "pfs154"])
def test_random_models_bit_exact_on_the_simulator(seed, target):
    rng = np.random.default_rng(1000 + seed)
    m = qdq.random_mlp(rng, max_width=20, max_depth=3)
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 6)
    try:
        _bit_exact(model, x, target)
    except DoesNotFit as e:     # a refusal must give the numbers
        assert "needs" in str(e) and "has" in str(e)


@pytest.mark.parametrize("value_set", sorted(qdq.VALUE_SETS))
def test_every_weight_value_set(value_set):
    rng = np.random.default_rng(hash(value_set) % 2**32)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (13, 9), value_set), -3,
                             rng.integers(-300, 300, 9), True, -2, "uint8"),
                   qdq.Layer(qdq.random_weights(rng, (9, 4), value_set), -3, None, False, -1)],
                  13, in_exp=-5, argmax=True)
    _bit_exact(qdq.build(m), qdq.random_inputs(rng, m, 8), "pfs154")


@pytest.mark.parametrize("last", [False, True])
def test_argmax_ties_pick_the_first_or_the_last(last):
    from onnx import helper
    rng = np.random.default_rng(3)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (8, 6), "ternary"), 0, None, True, 2, "uint8")],
                  8, in_exp=0, argmax=True)
    model = qdq.build(m)
    node = next(n for n in model.graph.node if n.op_type == "ArgMax")
    node.attribute.append(helper.make_attribute("select_last_index", int(last)))
    x = rng.integers(-3, 4, (20, 8)).astype(np.float32)   # coarse outputs: many ties
    _bit_exact(model, x, "pms150c")


def test_reference_shape_fits_the_pms150c_and_streams_its_input():
    rng = np.random.default_rng(5)
    widths = [64, 16, 16, 16, 10]
    layers = [qdq.Layer(qdq.random_weights(rng, (widths[k], widths[k + 1]), "pm2"), -1, None,
                        relu=k < 3, out_exp=-1 if k < 3 else 0,
                        out_dtype="uint8" if k < 3 else "int8") for k in range(4)]
    m = qdq.Model(layers, 64, in_exp=-7, in_dtype="uint8", argmax=True)
    x = rng.uniform(0, 1, (3, 64)).astype(np.float32)
    art, stats = _bit_exact(qdq.build(m), x, "pms150c")
    r = art.report
    assert r["input"] == "streamed"
    assert r["rom_used"] + r["rom_harness"] <= r["rom_capacity"]
    assert r["ram_used"] <= 64 and r["stack_high_water"] <= r["ram_used"]
    assert "model.ihx" in art.files and art.files["model.asm"].count("ret #") >= 424
    per_layer = r["cycles_per_layer"]
    assert list(per_layer) == ["l0_mm", "l1_mm", "l2_mm", "l3_mm", "class"]
    assert sum(per_layer.values()) == r["cycles_per_inference"]
    assert min(per_layer.values()) > 0


def test_a_model_too_big_fails_with_the_numbers():
    rng = np.random.default_rng(9)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (64, 64), "int8"), -8, None, True, -1, "uint8")],
                  64, in_exp=-7)
    with pytest.raises(DoesNotFit, match=r"PMS150C: needs \d+ (words of ROM|bytes of RAM), has \d+"):
        tinycc_nn.compile(qdq.build(m), "pms150c")


def test_generated_assembly_is_readable_and_assembles():
    rng = np.random.default_rng(2)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (16, 8), "binary"), -2, None, True, -2, "uint8")],
                  16, in_exp=-6)
    art = tinycc_nn.compile(qdq.build(m), "pfs154")
    asm = art.files["model.asm"]
    assert "_nn_infer:" in asm and "; dense %" in asm and "kernel_" in asm
    assert art.files["model.ihx"].startswith(":")
    assert art.report["rom_breakdown"]["tables"] > 0


def test_a_standalone_requant_of_the_input_equals_the_reference():
    from tinycc_nn.parser import parse
    g = parse("""graph @m {
      %x = input() {name = "x", dtype = "int8", shape = ["N", 4], qdtype = "int8"} : i8[4] -128..127
      %y = requant(%x) {mult = 3, rnd = 1, shift = 2, rounding = "half_even", lo = -20, hi = null} : i8[4] -20..96
      %o = output(%y) {name = "y", dtype = "int8", shape = ["N", 4], float_ops = []}
    }""")
    xq = np.arange(-128, 128).reshape(-1, 4)            # every input byte, ties included
    want = tinycc_nn.compile(g, "python").run_quantized(xq)[0]
    for target in ("pms150c", "pfs154"):
        art = tinycc_nn.compile(g, target)
        assert "identity weights (a requant)" in art.files["model.asm"]
        assert np.array_equal(art.run_quantized(xq)[0][0], want[0])


@pytest.mark.parametrize("opt", ["size", "speed"])
def test_streamed_input_both_ways(opt):
    # 48 inputs do not fit a PMS150C's RAM beside the rest: the first layer streams them,
    # read inside the kernel, whichever finish routines --opt picks
    rng = np.random.default_rng(21)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (48, 12), "pm2"), -1, rng.integers(-99, 99, 12),
                             True, -1, "uint8"),
                   qdq.Layer(qdq.random_weights(rng, (12, 10), "int4"), -3, None, False, -2)],
                  48, in_exp=-6, in_dtype="int8", argmax=True)
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 5)
    art = tinycc_nn.compile(model, "pms150c", opt=opt)
    assert art.report["input"] == "streamed"
    outs = art.run(x)
    for (name, got), want in zip(outs.items(), qdq.ort_run(model, x)):
        assert np.array_equal(got.reshape(5, -1), want.reshape(5, -1)), name
    asm = art.files["model.asm"]
    assert "stage" not in asm and "call _nn_read_input" in asm
    assert ("kernel_s" in asm) == (opt == "size")       # speed inlines the kernel


@pytest.mark.parametrize("value_set,n,bias", [("binary", 12, True), ("pm2", 12, True),
                                              ("odd4", 8, False), ("pm2", 9, True)])
@pytest.mark.parametrize("ways", [2, 4])
def test_a_streamed_layer_reads_each_input_once_for_several_neurons(value_set, n, bias, ways):
    # 1, 2 and 4 planes pack 2 or 4 neurons per table byte when 8 divides by ways * planes;
    # a width they do not divide falls back to fewer
    rng = np.random.default_rng(n)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (56, n), value_set), -3,
                             rng.integers(-200, 200, n) if bias else None, True, -1, "uint8"),
                   qdq.Layer(qdq.random_weights(rng, (n, 6), "pm2"), -2, None, False, -1)],
                  56, in_exp=-6, in_dtype="int8", argmax=True)
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 6)
    art = tinycc_nn.compile(model, "pms150c", reads_shared_by=ways)
    outs = art.run(x)
    for (name, got), want in zip(outs.items(), qdq.ort_run(model, x)):
        assert np.array_equal(got.reshape(6, -1), want.reshape(6, -1)), name
    planes = {"binary": 1, "pm2": 2, "odd4": 4}[value_set]
    packs = n % ways == 0 and 8 % (ways * planes) == 0
    assert art.report["input"] == "streamed"
    assert (f"x{ways}_" in art.files["model.asm"]) == packs


def test_opt_size_takes_the_fewest_words_and_speed_the_fewest_instructions():
    model = qdq.build(_pm2_mlp(np.random.default_rng(8), (64, 16, 10)))
    fixed = {w: tinycc_nn.compile(model, "pms150c", reads_shared_by=w).report for w in (1, 2, 4)}
    size = tinycc_nn.compile(model, "pms150c").report
    speed = tinycc_nn.compile(model, "pms150c", opt="speed").report
    assert size["rom_used"] == min(r["rom_used"] for r in fixed.values())
    assert speed["instructions_per_inference"] < min(r["instructions_per_inference"] for r in fixed.values())
    assert speed["reads_shared_by"] == 4
    with pytest.raises(TinyccError, match="reads_shared_by=3"):
        tinycc_nn.compile(model, "pms150c", reads_shared_by=3)


def _two_table_model(rng, bias):
    # 64 x 16 two-bit weights: 256 table bytes, one more than a `pcadd` table holds
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (64, 16), "pm2"), -1,
                             rng.integers(-300, 300, 16) if bias else None, True, -1, "uint8"),
                   qdq.Layer(qdq.random_weights(rng, (16, 10), "pm2"), -1, None, False, 0)],
                  64, in_exp=-7, in_dtype="uint8", argmax=True)
    return m, qdq.build(m)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ways", [1, 4])
@pytest.mark.parametrize("copies", [True, False])
def test_a_layer_spanning_two_tables_loops_per_table_or_dispatches(bias, ways, copies):
    from tinycc_nn.backends.pdk import Pms150cBackend
    rng = np.random.default_rng(31 + bias)
    m, model = _two_table_model(rng, bias)
    x = qdq.random_inputs(rng, m, 6)
    art = tinycc_nn.compile(model, "pms150c", reads_shared_by=ways)
    backend = Pms150cBackend()
    gen = backend.variant(art.graph, {}, "size", ways, copies)
    assert gen.seg_copies_used
    asm = gen.source
    assert ("fetch_" in asm) == (not copies)           # the dispatcher and its RAM byte
    assert ("table segment of" in asm) == (not copies)
    assert ("finish_group" in asm) == (copies and ways > 1 and not bias)
    art._program = backend.program_of(art.graph, gen)      # run this variant's program
    _agrees(art, model, x)


def test_rom_limit_bounds_the_program_for_both_opts():
    model = qdq.build(_pm2_mlp(np.random.default_rng(8), (64, 16, 10)))
    size = tinycc_nn.compile(model, "pms150c").report
    fastest = tinycc_nn.compile(model, "pms150c", opt="speed").report
    assert fastest["rom_used"] > size["rom_used"] + 20
    limit = (size["rom_used"] + fastest["rom_used"]) // 2
    bounded = tinycc_nn.compile(model, "pms150c", opt="speed", rom_limit=limit).report
    assert size["rom_used"] <= bounded["rom_used"] <= limit
    assert fastest["cycles_per_inference"] <= bounded["cycles_per_inference"] <= size["cycles_per_inference"]
    with pytest.raises(DoesNotFit, match=rf"needs {size['rom_used']} words of ROM \(rom_limit="
                                         rf"{size['rom_used'] - 1}\), has {size['rom_used'] - 1}"):
        tinycc_nn.compile(model, "pms150c", rom_limit=size["rom_used"] - 1)
    for bad in ("0", "many", "5000"):
        with pytest.raises(TinyccError, match=f"rom_limit={bad}"):
            tinycc_nn.compile(model, "pms150c", rom_limit=bad)


def test_speed_lets_layers_reading_ram_share_reads_where_ram_allows():
    # the PFS154 has RAM for the other neurons' sums of the hidden layers too, and
    # --opt speed keeps whichever variant measured fastest
    rng = np.random.default_rng(12)
    m = _pm2_mlp(rng, (64, 16, 16, 12))
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 6)
    art, stats = _bit_exact(model, x, "pfs154")          # --opt size: nothing shared
    fast = tinycc_nn.compile(model, "pfs154", opt="speed")
    assert fast.report["ram_layers_share_reads"] and fast.report["input"] == "ram"
    assert fast.report["reads_shared_by"] > 1
    _agrees(fast, model, x)
    assert fast.run(x, with_stats=True)[1]["cycles"].mean() < stats["cycles"].mean()
    _agrees(tinycc_nn.compile(model, "pms150c", opt="speed"), model, x)   # whatever it kept


def test_layers_share_a_table_and_widx_runs_on():
    # 120 + 36 + 30 table bytes: one `pcadd` table; widx is set once, then each layer's
    # rows follow the previous layer's
    rng = np.random.default_rng(40)
    m = _pm2_mlp(rng, (40, 12, 12, 10))
    model = qdq.build(m)
    art, _ = _bit_exact(model, qdq.random_inputs(rng, m, 6), "pms150c")
    lines = art.files["model.asm"].splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith("w_")]
    assert len(tables) == 1 and lines[tables[0] + 3].split() == ["pcadd", "a"]
    assert sum("rows start at entry" in line for line in lines) == 1


@pytest.mark.parametrize("target", ["pms150c", "pfs154"])
@pytest.mark.parametrize("opt", ["size", "speed"])
@pytest.mark.parametrize("bias", [False, True])
def test_per_channel_weight_scales_take_each_neurons_shift_from_its_row(target, opt, bias):
    rng = np.random.default_rng(77 + bias)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (40, 12), "pm2"), rng.integers(-4, 0, 12),
                             rng.integers(-200, 200, 12) if bias else None, True, -1, "uint8"),
                   qdq.Layer(qdq.random_weights(rng, (12, 6), "int4"), rng.integers(-5, -1, 6),
                             None, False, -1)],
                  40, in_exp=-6, in_dtype="int8", argmax=True)
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 8)
    art = tinycc_nn.compile(model, target, opt=opt)
    _agrees(art, model, x)
    assert "shift per neuron, from its row" in art.files["model.asm"]


@pytest.mark.parametrize("w_exp, in_exp, out_exp", [
    ([-3, -2, -3, -1], -3, -4),     # per-channel shifts 2, 1, 2, 0: the 0 cannot be counted
    ([0, -1, 0, -1], -5, -7),       # multipliers 2, 1, 2, 1 (the fit keeps shifts >= 0)
    ([1, -1, 0, -1], -3, -5),       # multipliers 8, 2, 4, 2
    ([1, -1, 0, -3], -3, -5),       # multipliers and a shift with ties to round
])
@pytest.mark.parametrize("opt", ["size", "speed"])
def test_per_channel_multipliers_and_zero_shifts_become_one_multiplier(w_exp, in_exp, out_exp, opt):
    rng = np.random.default_rng(5)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (16, 4), "pm2"), np.array(w_exp),
                             rng.integers(-40, 40, 4), True, out_exp, "uint8"),
                   qdq.Layer(qdq.random_weights(rng, (4, 3), "pm2"), -1, None, False, -2)],
                  16, in_exp=in_exp, in_dtype="int8", argmax=True)
    model = qdq.build(m)
    x = np.concatenate([qdq.random_inputs(rng, m, 24),     # and inputs on the grid, small
                        rng.integers(-6, 7, (40, 16)) * 2.0 ** in_exp]).astype(np.float32)
    for target in ("pms150c", "pfs154"):
        _agrees(tinycc_nn.compile(model, target, opt=opt), model, x)


def test_multipliers_with_different_odd_parts_are_refused_by_name():
    rng = np.random.default_rng(6)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (16, 4), "pm2"), -2, None, False, -4)],
                  16, in_exp=-3, in_dtype="int8")
    graph = tinycc_nn.load_model(qdq.build(m))
    requant = next(n for n in graph.order() if graph.op(n) == "requant")
    graph.attrs(requant)["mult"] = [1, 3, 1, 1]
    assert tinycc_nn.compile(graph, "python")       # fine elsewhere
    with pytest.raises(TinyccError, match=r"per-channel multipliers \[1, 3\] are not one"):
        tinycc_nn.compile(graph, "pms150c")


@pytest.mark.parametrize("opt", ["size", "speed"])
def test_a_layer_with_all_zero_weights_reads_no_table(opt):
    # its output is its (uniform) bias alone: no weight planes, no table rows (this
    # crashed the table packing when an earlier layer had left a table open)
    rng = np.random.default_rng(9)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (16, 4), "pm2"), -2, None, True, -3, "uint8"),
                   qdq.Layer(np.zeros((4, 3), np.int64), -2, np.array([5, 5, 5]), False, -4)],
                  16, in_exp=-3, in_dtype="int8", argmax=True)
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 6)
    for target in ("pms150c", "pfs154"):
        _agrees(tinycc_nn.compile(model, target, opt=opt), model, x)


def test_generic_targets_take_the_parts_rom_and_ram_from_options():
    rng = np.random.default_rng(21)
    m = _pm2_mlp(rng, (64, 12, 10))
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 6)
    # a PMS152-like part: pdk14 with 80 bytes: too little for the 64-byte input beside
    # the rest, so it streams, where the PFS154 (128 bytes) keeps it in RAM
    small = tinycc_nn.compile(model, "pdk14", rom=1264, ram=80)
    _agrees(small, model, x)
    assert small.report["ram_capacity"] == 80 and small.report["rom_capacity"] == 1264
    assert small.report["input"] == "streamed"
    assert tinycc_nn.compile(model, "pfs154").report["input"] == "ram"
    full = tinycc_nn.compile(model, "pdk13")          # defaults: all the core addresses
    assert (full.report["rom_capacity"], full.report["ram_capacity"]) == (1024, 64)
    _agrees(full, model, x)
    with pytest.raises(DoesNotFit, match=r"pdk13: needs \d+ words of ROM, has 200"):
        tinycc_nn.compile(model, "pdk13", rom=200)
    with pytest.raises(TinyccError, match=r"--option ram=100: a pdk13 part has 8\.\.64 bytes"):
        tinycc_nn.compile(model, "pdk13", ram=100)
    with pytest.raises(TinyccError, match=r"--option rom=big: expected a number"):
        tinycc_nn.compile(model, "pdk14", rom="big")


@pytest.mark.parametrize("k, in_dtype", [(64, "uint8"), (62, "int8")])
def test_a_streamed_input_staged_through_ram_shares_the_ram_kernel(k, in_dtype):
    # --opt size stages the input a group at a time and drops the streaming kernel; 62
    # inputs are not whole groups, so the input sum streams the input itself
    rng = np.random.default_rng(k)
    m = _pm2_mlp(rng, (k, 16, 16, 10))
    m.in_dtype = in_dtype
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 8)
    art, stats = _bit_exact(model, x, "pms150c")
    assert art.report["input_staged"] and art.report["input"] == "streamed"
    asm = art.files["model.asm"]
    assert "call stage_4" in asm and "kernel_s" not in asm
    assert ("call usum_s" in asm) == (k % 4 != 0)
    backend, graph = art.backend, art.graph
    plain = backend.variant(graph, art.options, "size", 1, True)
    assert art.report["rom_used"] < plain.asm.words - plain.asm.section_words["harness"]
    assert art.report["ram_used"] == plain.layout.used
    fast = tinycc_nn.compile(model, "pms150c", opt="speed")      # not for speed
    assert not fast.report["input_staged"]
    _agrees(fast, model, x)


def _requant_model(rng, k, n, before: bool, after: str | None):
    """QDQ input [-> Relu -> QDQ at another scale, uint8 zero point 3] -> MatMul -> QDQ
    [-> Relu -> QDQ at a coarser scale (`after`: its dtype)]: standalone requants, which
    the pdk pipeline turns into identity layers."""
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))

    def qdq_pair(src, dst, scale, zp):
        init(dst + "_s", np.float32(scale))
        init(dst + "_z", zp)
        nodes.extend([helper.make_node("QuantizeLinear", [src, dst + "_s", dst + "_z"], [dst + "_q"]),
                      helper.make_node("DequantizeLinear", [dst + "_q", dst + "_s", dst + "_z"], [dst])])

    qdq_pair("input", "x", 2.0 ** -4, np.int8(0))
    x = "x"
    if before:
        nodes.append(helper.make_node("Relu", [x], ["xr"]))
        qdq_pair("xr", "x2", 2.0 ** -3, np.uint8(3))
        x = "x2"
    init("w", rng.choice([-2, -1, 1, 2], size=(k, n)).astype(np.int8))
    init("ws", np.float32(0.25))
    nodes += [helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"]),
              helper.make_node("MatMul", [x, "wd"], ["mm"])]
    qdq_pair("mm", "m", 0.25, np.int8(0))
    y = "m"
    if after:
        nodes.append(helper.make_node("Relu", [y], ["mr"]))
        wide = after == "int16"           # 0..508 at 2**-4: two bytes a value
        qdq_pair("mr", "m2", 2.0 ** -4 if wide else 1.0, np.int16(-300) if wide else np.uint8(10))
        y = "m2"
    nodes.append(helper.make_node("Identity", [y], ["logits"]))
    graph = helper.make_graph(nodes, "requants", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("k, before, after, target, diag", [
    (12, True, None, "pms150c", 1),          # the input requantized, in RAM
    (24, True, None, "pms150c", 1),          # ... streamed: read by index
    (12, False, "uint8", "pfs154", 1),       # a layer's output requantized
    (12, True, "uint8", "pms150c", 2),
    (12, False, "int16", "pfs154", 0),       # two output bytes: the identity table
])
@pytest.mark.parametrize("opt", ["size", "speed"])
def test_standalone_requants_run_as_identity_layers(k, before, after, target, diag, opt):
    rng = np.random.default_rng(k)
    model = _requant_model(rng, k, 6, before, after)
    x = rng.normal(0, 3, (60, k)).astype(np.float32)
    x[:20] = np.round(x[:20] * 16) / 16 + 1 / 32        # ties for the coarser scales
    art = tinycc_nn.compile(model, target, opt=opt)
    _agrees(art, model, x)
    asm = art.files["model.asm"]
    assert asm.count("identity weights (a requant)") == diag     # else the identity's table
    if k == 24:
        assert art.report["input"] == "streamed"


@pytest.mark.parametrize("target", ["pms150c", "pfs154"])
@pytest.mark.parametrize("opt", ["size", "speed"])
def test_a_multiplier_not_a_power_of_two_is_applied_once_after_the_combine(target, opt):
    # logits at a float scale (0.123): the last layer's multiplier is 15+ bits; the planes
    # keep their small coefficients and the combined sum is multiplied once (a loop, or
    # unrolled with --opt speed), so the model still fits the PMS150C
    from onnx import numpy_helper
    rng = np.random.default_rng(31)
    m = _pm2_mlp(rng, (32, 12, 10))
    model = qdq.build(m)
    inits = {i.name: i for i in model.graph.initializer}
    last = [n for n in model.graph.node if n.op_type == "QuantizeLinear"][-1]
    inits[last.input[1]].CopyFrom(numpy_helper.from_array(np.float32(0.123), last.input[1]))
    x = np.concatenate([qdq.random_inputs(rng, m, 40),
                        rng.integers(-3, 4, (40, 32)) * 2.0 ** m.in_exp]).astype(np.float32)
    art = tinycc_nn.compile(model, target, opt=opt)
    _agrees(art, model, x)
    asm = art.files["model.asm"]
    mult = int(next(line for line in asm.splitlines() if "acc = constant + S * " in line).split()[-1])
    assert mult & (mult - 1) and mult > 1 << 10
    assert ("sr " in asm and "C = the multiplier's next bit" in asm) == (opt == "size")


@pytest.mark.parametrize("opt", ["size", "speed"])
def test_per_neuron_constants_are_deltas_from_a_base_in_u(opt):
    # biases: the constants differ per neuron but span less than a byte, while the
    # accumulator needs two: each row holds a signed one-byte delta, u the base
    rng = np.random.default_rng(8)
    sizes = (40, 12, 10)
    layers = [qdq.Layer(qdq.random_weights(rng, (40, 12), "pm2"), -1, rng.integers(-60, 60, 12),
                        True, -1, "uint8"),
              qdq.Layer(qdq.random_weights(rng, (12, 10), "pm2"), -1, rng.integers(-60, 60, 10),
                        False, 0)]
    m = qdq.Model(layers, sizes[0], in_exp=-7, in_dtype="uint8", argmax=True)
    model = qdq.build(m)
    x = qdq.random_inputs(rng, m, 40)
    for target in ("pms150c", "pfs154"):
        art = tinycc_nn.compile(model, target, opt=opt)
        _agrees(art, model, x)
        assert "C = the delta's sign" in art.files["model.asm"]
    plan = art.backend.variant(art.graph, art.options, "size", 1, True).plans["l0_mm"]
    assert plan.const_bytes == 1 and plan.acc_bytes == 2
    deltas = np.array(plan.consts) - plan.const_base
    assert deltas.min() < 0 < deltas.max() and -128 <= deltas.min() and deltas.max() <= 127


@pytest.mark.parametrize("k, opt", [(256, "size"), (256, "speed"), (300, "size"), (300, "speed")])
def test_more_than_255_inputs_stream_with_a_two_byte_index(k, opt):
    # 256 is a 16x16 image; 300 runs past the first 256-entry page of the index
    rng = np.random.default_rng(k)
    m = _pm2_mlp(rng, [k, 8, 10])
    art = tinycc_nn.compile(qdq.build(m), "pfs154", opt=opt)
    assert art.report["input"] == "streamed"
    _agrees(art, qdq.build(m), qdq.random_inputs(rng, m, 6))


@pytest.mark.parametrize("ways", [1, 2, 4])
def test_a_300_input_layer_sharing_reads_is_bit_exact(ways):
    rng = np.random.default_rng(30 + ways)
    m = _pm2_mlp(rng, [300, 8, 10])
    art = tinycc_nn.compile(qdq.build(m), "pfs154", reads_shared_by=ways)
    _agrees(art, qdq.build(m), qdq.random_inputs(rng, m, 4))


def test_a_16x16_input_is_refused_on_the_pms150c_with_the_numbers():
    m = _pm2_mlp(np.random.default_rng(256), [256, 8, 10])
    with pytest.raises(DoesNotFit, match=r"PMS150C: needs \d+ words of ROM, has 1016"):
        tinycc_nn.compile(qdq.build(m), "pms150c")
