"""maxpool and sumpool on the CH32V003: one function per layer computing one channel.

Without padding every window lies inside the plane and its taps are unrolled with
constant offsets; with padding each tap row and column is tested (maxpool skips the
taps outside the map, sumpool adds pad_value for them), as ir/window.py defines.
Offsets are kept as running sums: no multiplication.
"""
from __future__ import annotations

from ... import ir
from .channels import ChannelOp
from .csource import ARENA_VIEW, c_name, lit
from .layers import Ctx, _indent

UNROLL_TAPS = 16


def _window_loops(g, a, tap_lines, start, finish) -> list:
    """Loops over output pixels; `tap_lines(off, row_ok, col_ok)` add one tap."""
    c, h, w = a["in_shape"]
    kh, kw = a["kernel"]
    sh, sw = a["strides"]
    top, left = a["pads"][0], a["pads"][1]
    ho, wo = g.type_shape[1:]
    padded = any(a["pads"])
    if not padded and kh * kw <= UNROLL_TAPS:
        taps = []
        for ky in range(kh):
            for kx in range(kw):
                taps += tap_lines(f"o + {ky * w + kx}", None, None)
        inner = start + taps + finish
        return ["int ro = 0;",
                f"for (int oy = 0; oy < {ho}; oy++, ro += {sh * w}) {{\n"
                + _indent(["int o = ro;", f"for (int ox = 0; ox < {wo}; ox++, o += {sw}) {{\n"
                           + _indent(inner, 4) + "\n}"], 4) + "\n}"]
    taps = tap_lines("oo + kx", "rr >= 0 && rr < " + str(h), "cc >= 0 && cc < " + str(w)) if padded \
        else tap_lines("oo + kx", None, None)
    colloop = (f"for (int kx = 0, cc = c0; kx < {kw}; kx++, cc++) {{\n" + _indent(taps, 4) + "\n}")
    rowloop = (f"for (int ky = 0, rr = r0, oo = ro + c0; ky < {kh}; ky++, rr++, oo += {w}) {{\n"
               + _indent([colloop], 4) + "\n}")
    inner = start + [rowloop] + finish
    return [f"int r0 = {-top}, ro = {-top * w};",
            f"for (int oy = 0; oy < {ho}; oy++, r0 += {sh}, ro += {sh * w}) {{\n"
            + _indent([f"int c0 = {-left};",
                       f"for (int ox = 0; ox < {wo}; ox++, c0 += {sw}) {{\n" + _indent(inner, 4) + "\n}"], 4)
            + "\n}"]


class _Geo:
    def __init__(self, graph, node):
        self.type_shape = graph.type(node).shape


def _function(ctx: Ctx, node: str, what: str, body: list) -> ChannelOp:
    g = ctx.graph
    (x,) = g.operands(node)
    cn = c_name(node)
    xt, yt = ARENA_VIEW[ctx.ctype[x]], ARENA_VIEW[ctx.ctype[node]]
    a = g.attrs(node)
    c, h, w = a["in_shape"]
    ho, wo = g.type(node).shape[1:]
    ctx.module.functions.append(
        f"/* %{node} = {what}(%{x}): {c}x{h}x{w} -> {c}x{ho}x{wo}, kernel {a['kernel']}, "
        f"strides {a['strides']}, pads {a['pads']}; one channel */\n"
        f"static void nn_{cn}(const {xt} *x, {yt} *y, int c)\n{{\n    (void)c;\n"
        + _indent(body, 4) + "\n}\n")
    ctx.notes[node] = f"{what}: one plane per call"
    return ChannelOp(node, f"nn_{cn}", c, h * w, ho * wo, xt, yt, group_in=0)


def emit_maxpool(ctx: Ctx, node: str) -> ChannelOp:
    def tap(off, row_ok, col_ok):
        test = " && ".join(t for t in (row_ok, col_ok) if t)
        upd = f"v = x[{off}];\nif (v > m)\n    m = v;"
        return [f"if ({test}) {{\n" + _indent([upd], 4) + "\n}"] if test else [upd]
    start = ["int32_t m = INT32_MIN, v;"]
    body = _window_loops(_Geo(ctx.graph, node), ctx.graph.attrs(node), tap, start, ["*y++ = m;"])
    return _function(ctx, node, "maxpool", body)


def emit_sumpool(ctx: Ctx, node: str) -> ChannelOp:
    a = ctx.graph.attrs(node)
    pads = ir.per_channel(a["pad_value"], a["in_shape"][0])
    if (pads == pads[0]).all():
        pv = lit(pads[0])
    else:
        pv = ctx.module.array(f"nn_pad_{c_name(node)}", pads, f"%{node}: padding value per channel") + "[c]"

    def tap(off, row_ok, col_ok):
        test = " && ".join(t for t in (row_ok, col_ok) if t)
        if not test:
            return [f"s += x[{off}];"]
        return [f"s += {test} ? x[{off}] : {pv};"] if pv != "0" else [f"if ({test})\n    s += x[{off}];"]
    body = _window_loops(_Geo(ctx.graph, node), a, tap, ["int32_t s = 0;"], ["*y++ = s;"])
    return _function(ctx, node, "sumpool", body)
