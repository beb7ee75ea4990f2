"""Ops on [C, H, W] maps as per-channel functions, and the C loops that call them.

Every map op (qconv, maxpool, sumpool, requant on a map) becomes one static function
`nn_<node>(x, y, c)` computing output channel c into the plane `y`; `x` is input
plane c for a channel-local op, or the first (packed) input channel of c's group for
a conv that reads several channels.  `channel_block` writes the loop over c for one
node or for a whole `channel_loop` chain (ir/schedule.py): the head reads the loop's
input, each later node reads the previous node's one-plane buffer, and only the
last node's plane pointer walks through its whole map.  Pointers walk by constant
steps (no `c * size`: no multiplier).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ChannelOp:
    node: str
    func: str                  # nn_<node>(x, y, c)
    channels: int              # output channels C
    in_plane: int              # elements of one input plane
    out_plane: int             # elements of one output plane
    xt: str                    # pointer element type of x (arena view)
    yt: str                    # pointer element type of y
    group_in: int = 1          # input channels one output channel reads (0: the plane c)
    group_out: int = 1         # output channels per group
    pack: str | None = None    # conv: nn_pack_<node>(x, p, ci0, count) into `packed`
    packed: str | None = None  # C pointer of the packed buffer
    packed_t: str = "nn_u32a"  # C element type of the packed buffer
    packed_plane: int = 0      # elements of one packed input channel
    prepack: bool = False      # pack every input channel once, before the channel loop
    in_channels: int = 0


def _head_lines(op: ChannelOp, x: str, moving: bool) -> tuple:
    """(declarations before the loop, the x argument for channel c, steps after each c)."""
    cn = op.node.replace(".", "_")
    if op.pack is None:
        if not moving:
            return [], x, []
        return ([f"const {op.xt} *x_{cn} = {x};"], f"x_{cn}", [f"x_{cn} += {op.in_plane};"])
    if op.group_in == 0:           # depthwise: pack plane c, then convolve it
        decl = [f"const {op.xt} *x_{cn} = {x};"] if moving else []
        src = f"x_{cn}" if moving else x
        return (decl, f"({op.pack}({src}, {op.packed}, c, 1), {op.packed})",
                [f"x_{cn} += {op.in_plane};"] if moving else [])
    whole_group = op.group_out == op.channels
    if op.prepack:
        decl = [f"{op.pack}({x}, {op.packed}, 0, {op.in_channels});"]
        if whole_group:
            return decl, op.packed, []
        decl += [f"const {op.packed_t} *p_{cn} = {op.packed};", f"int k_{cn} = 0;"]
        step = [f"if (++k_{cn} == {op.group_out}) {{\n    k_{cn} = 0;\n"
                f"    p_{cn} += {op.group_in * op.packed_plane};\n}}"]
        return decl, f"p_{cn}", step
    # pack the group's channels for every output channel (RAM for one group only)
    decl = [f"const {op.xt} *x_{cn} = {x};", f"int ci_{cn} = 0;"]
    arg = f"({op.pack}(x_{cn}, {op.packed}, ci_{cn}, {op.group_in}), {op.packed})"
    if whole_group:
        return decl, arg, []
    decl.append(f"int k_{cn} = 0;")
    step = [f"if (++k_{cn} == {op.group_out}) {{\n    k_{cn} = 0;\n    ci_{cn} += {op.group_in};\n"
            f"    x_{cn} += {op.group_in * op.in_plane};\n}}"]
    return decl, arg, step


def channel_block(chain: list, x: str, y: str, planes: list) -> str:
    """C block running `chain` (ChannelOps) channel by channel: the head reads the map at
    `x`, node i writes plane buffer planes[i] (the last one writes the map at `y`)."""
    head = chain[0]
    decl, xarg, steps = _head_lines(head, x, moving=True)
    last = chain[-1]
    cl = last.node.replace(".", "_")
    decl.append(f"{last.yt} *y_{cl} = {y};")
    body = []
    src = xarg
    for i, op in enumerate(chain):
        dst = f"y_{cl}" if i == len(chain) - 1 else planes[i]
        if i > 0:
            _, src, _ = _head_lines(op, src, moving=False)
        body.append(f"{op.func}({src}, {dst}, c);")
        src = planes[i] if i < len(chain) - 1 else None
    steps = steps + [f"y_{cl} += {last.out_plane};"]
    inner = "\n".join("    " + s.replace("\n", "\n    ") for s in body + steps)
    lines = decl + [f"for (int c = 0; c < {head.channels}; c++) {{\n{inner}\n}}"]
    return "{\n" + "\n".join("    " + s.replace("\n", "\n    ") for s in lines) + "\n}"
