"""tinycc_nn/passes/plan_ram.py: RAM offsets from lifetimes; live values never share bytes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qdq
import tinycc_nn
from onnx_cases import assert_same_behaviour, check_lines, pass_models, pass_snapshots, typed_ir
from tinycc_nn.ir import verify
from tinycc_nn.passes.plan_ram import PlanRam, plan, storage_bytes
from tinycc_nn.printer import print_graph

MODELS = pass_models()


def lifetimes(graph):
    """Independent of the pass: value -> (first, last position it must be held)."""
    order = graph.order()
    pos = {n: i for i, n in enumerate(order)}
    return {n: (pos[n], max([pos[u] for u in graph.users(n)], default=pos[n])) for n in order}


def assert_plan_sound(graph, input_in_ram=True):
    life = lifetimes(graph)
    planned = {n: graph.attrs(n) for n in graph.order() if "ram_offset" in graph.attrs(n)}
    for n in graph.order():
        op = graph.op(n)
        must = op not in ("const", "output", "argmax") and (op != "input" or input_in_ram)
        assert (n in planned) == must, n
    for n, a in planned.items():
        t = graph.type(n)
        assert a["ram_bytes"] == t.size * storage_bytes(t.bits)
        assert a["ram_offset"] >= 0
    names = list(planned)
    for i, n in enumerate(names):
        for m in names[i + 1:]:
            (s1, e1), (s2, e2) = life[n], life[m]
            if s1 <= e2 and s2 <= e1:       # live at the same time
                a, b = planned[n], planned[m]
                assert (a["ram_offset"] + a["ram_bytes"] <= b["ram_offset"]
                        or b["ram_offset"] + b["ram_bytes"] <= a["ram_offset"]), (n, m)
    peak = max([a["ram_offset"] + a["ram_bytes"] for a in planned.values()], default=0)
    assert graph.ram_peak == peak
    # no plan can beat the most bytes live at one time
    live_max = max([sum(a["ram_bytes"] for n, a in planned.items() if life[n][0] <= t <= life[n][1])
                    for t in range(len(life))], default=0)
    assert peak >= live_max
    verify(graph)


@pytest.mark.parametrize("input_in_ram", [True, False])
@pytest.mark.parametrize("name, model, x", MODELS, ids=[m[0] for m in MODELS])
def test_behaviour_unchanged_and_plan_sound(name, model, x, input_in_ram):
    before = pass_snapshots(model, stop_after="pack-weights")["pack-weights"]
    after = before.copy()
    assert PlanRam(input_in_ram=input_in_ram).apply(after) is True
    assert_plan_sound(after, input_in_ram)
    assert_same_behaviour(before, after, x)
    again = after.copy()
    assert PlanRam(input_in_ram=input_in_ram).apply(again) is False
    assert again == after


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_plan_sound_on_generated_models(seed, input_in_ram):
    rng = np.random.default_rng(seed)
    model = qdq.build(qdq.random_mlp(rng, max_width=24, max_depth=4))
    g = pass_snapshots(model, stop_after="pack-weights")["pack-weights"]
    PlanRam(input_in_ram=input_in_ram).apply(g)
    assert_plan_sound(g, input_in_ram)


CHAIN = '''graph @chain {
  %x = input() {name = "x", dtype = "float32", shape = ["N", 8], qdtype = "int8", scale = 0.25, zero_point = 0} : i8[8] -128..127
  %w1 = const() {values = W1}
  %d1 = dense(%x, %w1) {bias = 0, mult = 1, rnd = 0, shift = 0, rounding = "floor", lo = null, hi = null}
  %w2 = const() {values = W2}
  %d2 = dense(%d1, %w2) {bias = 0, mult = 1, rnd = 0, shift = 4, rounding = "floor", lo = -128, hi = 127}
  %w3 = const() {values = [[1, -1], [1, 1], [-1, 1], [0, 1]]}
  %d3 = dense(%d2, %w3) {bias = 0, mult = 1, rnd = 0, shift = 1, rounding = "floor", lo = -128, hi = 127}
  %k = argmax(%d3) {last = false}
  %o = output(%d3) {name = "y", dtype = "int8", shape = ["N", 2], float_ops = []}
  %ok = output(%k) {name = "k", dtype = "int64", shape = ["N"], float_ops = []}
}
'''


def chain_graph():
    rng = np.random.default_rng(7)
    w1 = rng.choice([-1, 1], (8, 16)).tolist()
    w2 = rng.choice([-1, 1], (16, 4)).tolist()
    g = typed_ir(CHAIN.replace("W1", str(w1)).replace("W2", str(w2)))
    # 8 x i8 in, 16 x i11 raw accumulators (2 bytes each), 4 x i8, 2 x i8
    assert [str(g.type(n)).split("]")[0] for n in ("x", "d1", "d2", "d3")] == \
        ["i8[8", "i11[16", "i8[4", "i8[2"]
    return g


def test_three_layer_chain_peak_by_hand():
    g = chain_graph()
    PlanRam().apply(g)
    assert_plan_sound(g)
    # %x (8 bytes) is live while %d1 (32 bytes) is computed: 8 + 32 = 40;
    # then %d1 + %d2 = 36, then %d2 + %d3 = 6
    assert g.ram_peak == 40
    check_lines(print_graph(g), [
        'zero_point = 0, ram_offset = 0, ram_bytes = 8} : i8[8]',
        '%d1 = dense(%x, %w1) {bias = 0, mult = 1, rnd = 0, shift = 0, rounding = "floor", lo = null, '
        'hi = null, ram_offset = 8, ram_bytes = 32} : i11[16]',
        'lo = -128, hi = 127, ram_offset = 0, ram_bytes = 4} : i8[4]',
        'lo = -128, hi = 127, ram_offset = 4, ram_bytes = 2} : i8[2]',
        '%k = argmax(%d3) {last = false} : u1[] 0..1',
    ])
    text = print_graph(g)
    for line in text.splitlines():
        if "%w" in line.split("=")[0] or line.strip().startswith(("%k =", "%o =", "%ok =")):
            assert "ram_offset" not in line


def test_three_layer_chain_without_the_input():
    g = chain_graph()
    PlanRam(input_in_ram=False).apply(g)
    assert_plan_sound(g, input_in_ram=False)
    assert "ram_offset" not in g.attrs("x")
    assert g.ram_peak == 32 + 4
    assert (g.attrs("d1")["ram_offset"], g.attrs("d2")["ram_offset"], g.attrs("d3")["ram_offset"]) == (0, 32, 0)


def test_report_ram_used_is_the_peak(rng):
    m = qdq.random_mlp(rng, max_width=20, max_depth=3)
    art = tinycc_nn.compile(qdq.build(m), "python")
    assert art.report["ram_used"] == art.graph.ram_peak > 0


@pytest.mark.parametrize("bits, size", [(1, 1), (8, 1), (9, 2), (16, 2), (17, 4), (32, 4)])
def test_storage_bytes(bits, size):
    assert storage_bytes(bits) == size


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 10), st.integers(1, 40)),
                min_size=1, max_size=25))
def test_plan_function_never_overlaps_live_buffers(spans):
    intervals = {f"v{i}": (s, s + d, size) for i, (s, d, size) in enumerate(spans)}
    offsets, peak = plan(intervals)
    assert set(offsets) == set(intervals)
    names = list(intervals)
    for i, n in enumerate(names):
        s1, e1, b1 = intervals[n]
        for m in names[i + 1:]:
            s2, e2, b2 = intervals[m]
            if s1 <= e2 and s2 <= e1:
                assert offsets[n] + b1 <= offsets[m] or offsets[m] + b2 <= offsets[n], (n, m)
    assert peak == max(offsets[n] + intervals[n][2] for n in names)
    live_max = max(sum(b for s, e, b in intervals.values() if s <= t <= e) for t in range(0, 41))
    assert peak >= live_max


def test_a_pinned_interval_keeps_its_offset_and_nothing_overlaps_it():
    # the pdk backend pins a stack slot at offset 0 while the first layer runs; first fit
    # would put that layer's output right above it and strand the slot's bytes later
    intervals = {"stack+": (0, 1, 2), "a": (1, 2, 16), "b": (2, 3, 16), "c": (3, 4, 16)}
    offsets, peak = plan(intervals, pinned={"stack+": 0})
    assert offsets["stack+"] == 0
    assert peak == 32
    for x in intervals:
        for y in intervals:
            (s1, e1, n1), (s2, e2, n2) = intervals[x], intervals[y]
            if x < y and s1 <= e2 and s2 <= e1:     # live at once: disjoint bytes
                assert offsets[x] + n1 <= offsets[y] or offsets[y] + n2 <= offsets[x]


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3), st.integers(1, 9)),
                min_size=1, max_size=8), st.integers(1, 4))
def test_pinned_plans_never_overlap_live_buffers(spans, pin_size):
    intervals = {f"v{i}": (s, s + d, n) for i, (s, d, n) in enumerate(spans)}
    intervals["pin"] = (0, 2, pin_size)
    offsets, peak = plan(intervals, pinned={"pin": 0})
    assert offsets["pin"] == 0
    names = sorted(intervals)
    for i, x in enumerate(names):
        s1, e1, n1 = intervals[x]
        assert offsets[x] + n1 <= peak
        for y in names[i + 1:]:
            s2, e2, n2 = intervals[y]
            if s1 <= e2 and s2 <= e1:
                assert offsets[x] + n1 <= offsets[y] or offsets[y] + n2 <= offsets[x]


def test_a_pin_over_a_buffer_still_live_is_refused():
    """A channel loop's output pinned at 0 while the loop's input, which a residual Add
    reads after the loop, sits at 0: the pin cannot hold, and plan says so (None) instead
    of overlapping them."""
    intervals = {"x": (0, 3, 8), "loop_out": (1, 3, 8), "sum": (3, 4, 8)}
    assert plan(intervals, pinned={"loop_out": 0}) is None
    assert plan(intervals, pinned={"loop_out": 8}) is not None
