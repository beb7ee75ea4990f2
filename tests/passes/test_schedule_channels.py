"""schedule-channels: which chains run channel by channel, what that does to the RAM
plan, and that the reference results do not move."""
import numpy as np

import qdq_conv
import tinycc_nn
from tinycc_nn import printer
from tinycc_nn.ir import verify
from tinycc_nn.ir.schedule import loops
from tinycc_nn.passes.plan_ram import value_intervals
from tinycc_nn.passes.schedule_channels import ScheduleChannels, channel_chains


def _graph(model, stop="pack-weights"):
    return tinycc_nn.compile(model, "python", stop_after=stop).graph


def test_sequential_depthwise_stack_becomes_one_loop(rng):
    model = qdq_conv.sequential_depthwise_cnn(rng, channels=8)
    g = _graph(model)
    (chain,) = channel_chains(g)
    assert [g.op(n) for n in chain] == ["qconv", "qconv", "maxpool", "qconv", "maxpool"]
    assert ScheduleChannels().apply(g)
    verify(g)
    assert list(loops(g)) == [chain[0]]
    assert f'channel_loop = "{chain[0]}"' in printer.print_graph(g)


def test_loop_holds_one_plane_and_lowers_the_peak(rng):
    model = qdq_conv.sequential_depthwise_cnn(rng, channels=16)
    plain = tinycc_nn.compile(model, "python", stop_after="pack-weights").graph
    from tinycc_nn.passes.plan_ram import plan, PlanRam
    peak_plain = plan(value_intervals(plain))[1]
    g = tinycc_nn.compile(model, "python").graph
    first = next(iter(loops(g).values()))
    sizes = value_intervals(g)
    assert sizes[first[0]][2] == 14 * 14          # conv1: one 14x14 plane of uint8
    assert sizes[first[-1]][2] == 16 * 2 * 2       # the loop's output map is whole
    assert g.ram_peak < peak_plain / 4
    assert g.ram_peak == plan(sizes)[1]


def test_schedule_does_not_change_results(rng):
    model = qdq_conv.sequential_depthwise_cnn(rng, channels=4)
    x = rng.uniform(0, 1, (32, 1, 16, 16)).astype(np.float32)
    a = tinycc_nn.compile(model, "python").run(x)
    import qdq
    ref = qdq.ort_run(model, x)
    for got, want in zip(a.values(), ref):
        assert np.array_equal(got.reshape(32, -1), want.reshape(32, -1))


def test_a_map_with_two_users_ends_the_chain(rng):
    import onnx
    from onnx import helper, TensorProto
    g0 = qdq_conv._G()
    x = g0.qdq("input", -6, "int8", 0)
    w = g0.node("DequantizeLinear", [g0.const(rng.integers(-3, 4, (2, 1, 3, 3)).astype(np.int8)),
                                     g0.const(np.float32(0.25))])
    c = g0.qdq(g0.node("Conv", [x, w], kernel_shape=[3, 3]), -4, "int8", 0)
    p1 = g0.node("MaxPool", [c], kernel_shape=[2, 2])
    p2 = g0.node("MaxPool", [c], kernel_shape=[3, 3])
    outs = [helper.make_tensor_value_info(p, TensorProto.FLOAT, [1, 2, "H", "W"]) for p in (p1, p2)]
    graph = helper.make_graph(g0.nodes, "two", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 1, 8, 8])], outs, g0.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    assert channel_chains(_graph(model)) == []
