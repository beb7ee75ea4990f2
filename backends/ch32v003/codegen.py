"""IR graph -> model.c / model.h for the CH32V003: freestanding C99, no multiply.

The C API (model.h):

    #define NN_INPUT_SIZE  F          typedef <int8_t|uint8_t|...> nn_input_t;
    #define NN_OUTPUT_SIZE N          typedef <type of the output vector> nn_output_t;
    int nn_infer(const nn_input_t *input, nn_output_t *output);

`nn_infer` writes the vector feeding the graph's first non-argmax output into
`output` and returns the argmax output's class (0 when the graph has none; a graph
whose only output is an argmax writes its class as output[0]).

Activations live in one static arena laid out from lifetimes with the plan-ram
allocator (`passes.plan_ram.plan`), sizes rounded to 4 bytes so every view is
aligned; the dense layers' lookup tables and accumulators are arena buffers that
live only while their layer runs.  The input stays in the caller's buffer and the
output vector is written straight into the caller's `output`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ... import ir
from ...errors import TinyccError
from ...ir.schedule import live_ranges, loop_plane_values, loops
from ...passes.plan_ram import plan
from .channels import channel_block
from .conv import conv_scratch, emit_qconv
from .csource import ARENA_VIEW, SIZEOF, CModule, narrow_ctype, storage_ctype
from .kernels import PRELUDE
from .layers import EMITTERS, Ctx, dense_scratch, emit_requant_map
from .pool import emit_maxpool, emit_sumpool

MAP_EMITTERS = {"qconv": emit_qconv, "maxpool": emit_maxpool, "sumpool": emit_sumpool,
                "requant": emit_requant_map}


@dataclass
class CModel:
    model_c: str
    model_h: str
    arena_bytes: int
    flash_arrays: dict        # const array -> bytes
    input_ctype: str
    output_ctype: str
    output_size: int
    layers: dict              # node -> kernel description


def _round4(n: int) -> int:
    return (n + 3) // 4 * 4


def _outputs(graph: ir.Graph):
    """(value written to `output` or None, argmax node or None), checked against the contract."""
    vectors, classes, names = [], [], {}
    for o in graph.outputs():
        src = graph.operands(o)[0]
        (classes if graph.op(src) == "argmax" else vectors).append(src)
        names.setdefault(src, graph.attrs(o).get("name", o))
    if len(set(vectors)) > 1:
        raise TinyccError("the ch32v003/ch32v002 C returns one output vector (plus an argmax class); "
                          f"this graph has {len(set(vectors))}: {', '.join(names[v] for v in dict.fromkeys(vectors))}"
                          " (keep one output, or the argmax of one)")
    if len(set(classes)) > 1:
        raise TinyccError("the ch32v003/ch32v002 C returns one argmax class; this graph has "
                          f"{len(set(classes))}: {', '.join(names[c] for c in dict.fromkeys(classes))}"
                          " (keep one argmax output)")
    return (vectors[0] if vectors else None), (classes[0] if classes else None)


def is_map_op(graph: ir.Graph, n: str) -> bool:
    """Ops computed channel by channel (channels.py): window ops and requant on a map."""
    op = graph.op(n)
    return op in ("qconv", "maxpool", "sumpool") or (op == "requant" and len(graph.type(n).shape) == 3)


def _check_ops(graph: ir.Graph) -> str:
    inputs = graph.inputs()
    if len(inputs) != 1:
        raise TinyccError(f"the ch32v003 target takes one input vector; this graph has {len(inputs)}")
    for n in graph.order():
        op = graph.op(n)
        if op not in EMITTERS and op not in MAP_EMITTERS and op not in ("input", "const", "argmax", "output"):
            raise TinyccError(f"%{n} = {op}: the ch32v003 target has no code for this op "
                              "(the pipeline fuses matmul/bias_add/clamp into dense and requant)")
    return inputs[0]


def _arena(graph: ir.Graph, ctype: dict, direct: str | None, tables: bool, prepack: bool,
           narrow: bool, inside: dict):
    """Offsets of every arena buffer ((node, 'value'|'tab'|'acc'|'packed') -> offset) and the
    peak.  Lifetimes follow ir/schedule.py: a channel loop's inner values are one plane."""
    order = graph.order()
    pos = {n: i for i, n in enumerate(order)}
    ranges, planes = live_ranges(graph), loop_plane_values(graph)
    loop_end = {n: pos[chain[-1]] for chain in loops(graph).values() for n in chain}
    for x in sorted(inside, key=lambda v: -pos[v]):        # a concat's buffer opens with
        root = _root(inside, x)                              # its first operand
        ranges[root] = (min(ranges[root][0], ranges[x][0]), ranges[root][1])
    intervals = {}
    for n in order:
        op = graph.op(n)
        if op in ("const", "output", "argmax", "input"):
            continue
        start, end = ranges[n]
        t = graph.type(n)
        count = t.size // t.channels if n in planes else t.size
        if n != direct and n not in inside:
            intervals[(n, "value")] = (start, end, _round4(count * SIZEOF[ctype[n]]))
        if op == "dense":
            for what, size in dense_scratch(graph, n, ctype, tables).items():
                intervals[(n, what)] = (pos[n], pos[n], _round4(size))
        if op == "qconv":
            # a prepacked input lives through the node's whole channel loop
            intervals[(n, "packed")] = (pos[n], loop_end.get(n, pos[n]) if prepack else pos[n],
                                        conv_scratch(graph, n, ctype[graph.operands(n)[0]], prepack, narrow))
    keyed = {f"{n}\0{what}": v for (n, what), v in intervals.items()}
    offsets, peak = plan(keyed)
    # first fit can strand a long-lived map above short-lived planes (the dense layers'
    # tables then go on top of it): also try each map that outlives a channel loop at 0
    for key in [f"{chain[-1]}\0value" for chain in loops(graph).values()]:
        if key in keyed:
            pinned = plan(keyed, {key: 0})      # None: something live is already there
            if pinned is not None and pinned[1] < peak:
                offsets, peak = pinned
    offsets = {tuple(k.split("\0")): off for k, off in offsets.items()}
    for x in inside:
        offsets[(x, "value")] = _offset_in(inside, offsets, x)
    return offsets, peak


def in_place_operands(graph: ir.Graph, ctype: dict, planes: set, direct) -> dict:
    """Values written straight into their concat's buffer: operand -> (concat, byte offset).
    The operand has the concat as its only user, the concat's C type, a whole map (not a
    loop's plane), and a 4-byte-aligned place; then the concat copies nothing for it."""
    inside = {}
    for n in graph.order():
        if graph.op(n) != "concat" or n == direct:
            continue
        a, b = graph.operands(n)
        first = 0
        for x in (a, b):
            if (a != b and graph.op(x) not in ("input", "const") and graph.users(x) == [n]
                    and ctype[x] == ctype[n] and x not in planes and x != direct
                    and first * SIZEOF[ctype[n]] % 4 == 0):
                inside[x] = (n, first * SIZEOF[ctype[n]])
            first += graph.type(x).size
    return inside


def _root(inside: dict, x: str) -> str:
    while x in inside:
        x = inside[x][0]
    return x


def _offset_in(inside: dict, offsets: dict, x: str) -> int:
    off = 0
    while x in inside:
        x, at = inside[x]
        off += at
    return offsets[(x, "value")] + off


def generate(graph: ir.Graph, unroll: int = 2, zero_skip: bool = True, tables: bool = True,
             prepack: bool = True, multiply: bool = False, narrow: bool = False) -> CModel:
    """model.c and model.h for `graph` (after the common pipeline); `unroll` neurons per
    iteration of the table-lookup loops where it divides the layer width; `zero_skip`
    tests each group of 8 unsigned inputs for all zeros and skips it; `tables=False`
    uses the bit-serial kernel everywhere (slower, but no 512-byte table in RAM);
    `prepack=False` packs a conv's input channels again for every output channel
    (slower, but RAM for one group's packed channels instead of all of them); `narrow`
    packs a conv input whose sums need 32 bits in the map's own C type instead of words
    (a quarter of the RAM for 8-bit maps; byte loads have no 16-bit encoding, so a few
    percent slower); `multiply` lets the convolutions use `*` (a core with a multiplier)."""
    inp = _check_ops(graph)
    vector, argmax = _outputs(graph)
    ctype = {n: storage_ctype(graph.type(n), f"value %{n}") for n in graph.order()
             if graph.op(n) not in ("const", "output", "argmax")}
    in_t = ctype[inp]
    if vector is not None:
        out_t, out_size = ctype[vector], graph.type(vector).size
    else:
        t = graph.type(argmax)
        out_t, out_size = narrow_ctype(t.lo, t.hi), 1
    direct = vector if vector is not None and graph.op(vector) in EMITTERS else None
    # operands written into their concat's buffer save a copy, but the buffer then lives
    # from its first operand on: keep whichever plan peaks lower
    inside = in_place_operands(graph, ctype, loop_plane_values(graph), direct)
    offsets, peak = _arena(graph, ctype, direct, tables, prepack, narrow, {})
    if inside:
        joined = _arena(graph, ctype, direct, tables, prepack, narrow, inside)
        if joined[1] <= peak:
            offsets, peak = joined
        else:
            inside = {}

    ptr = {inp: "input"}
    for (n, what), off in offsets.items():
        if what == "value":
            ptr[n] = f"NN_AT({ARENA_VIEW[ctype[n]]}, {off})"
    if direct is not None:
        ptr[direct] = "output"
    ctx = Ctx(graph, CModule(), ptr, ctype,
              {(n, what): off for (n, what), off in offsets.items() if what != "value"},
              unroll=unroll, zero_skip=zero_skip, tables=tables, multiply=multiply,
              in_place=frozenset(inside))

    body = []
    chains = loops(graph)
    for n in graph.order():
        op = graph.op(n)
        if is_map_op(graph, n):
            name = graph.attrs(n).get("channel_loop")
            chain = chains[name] if name is not None else [n]
            if n != chain[0]:
                continue
            cops = [emit_qconv(ctx, m, prepack, narrow) if graph.op(m) == "qconv" else MAP_EMITTERS[graph.op(m)](ctx, m)
                    for m in chain]
            block = channel_block(cops, ptr[graph.operands(n)[0]], ptr[chain[-1]],
                                  [ptr[m] for m in chain[:-1]])
            body.append(block.replace("\n", "\n    "))
        elif op in EMITTERS:
            body += EMITTERS[op](ctx, n)
    if vector is not None and direct is None:       # the output is the input itself
        body.append(f"for (int i = 0; i < {out_size}; i++)\n        output[i] = ({out_t}){ptr[vector]}[i];")
    ret = "0"
    if argmax is not None:
        src = graph.operands(argmax)[0]
        cmp = ">=" if graph.attrs(argmax)["last"] else ">"
        body.append(f"const {ARENA_VIEW[ctype[src]]} *v = {ptr[src]};\n    int best = 0;\n"
                    f"    for (int i = 1; i < {graph.type(src).size}; i++)\n"
                    f"        if (v[i] {cmp} v[best])\n            best = i;")
        if vector is None:
            body.append(f"output[0] = ({out_t})best;")
        ret = "best"
    body.append(f"return {ret};")

    mod = ctx.module
    name = graph.name
    core = ("CH32V002 (RV32EC + Zmmul)" if multiply else "CH32V003 (RV32EC, no multiplier)")
    parts = [f"/* model.c: @{name} for the {core}, generated by tinycc-nn.\n"
             f" * Flash data {sum(mod.flash.values())} bytes, activation arena {peak} bytes.\n"
             " * Freestanding C99 (plus GCC attributes), no libc, no floating point"
             + (", `*` in the convolutions only. */\n" if multiply else ", no `*`. */\n")
             + '#include "model.h"\n', PRELUDE]
    if peak:
        parts.append(f"static uint32_t nn_arena[{(peak + 3) // 4}];\n"
                     "#define NN_AT(type, offset) ((type *)((uint8_t *)nn_arena + (offset)))\n")
    parts += mod.arrays + list(mod.kernels.values()) + mod.functions
    parts.append("int nn_infer(const nn_input_t *input, nn_output_t *output)\n{\n"
                 + "".join(f"    {line}\n" for line in body) + "}\n")
    model_c = "\n".join(parts)
    return CModel(model_c, _header(graph, inp, in_t, out_t, out_size, vector, argmax), peak,
                  dict(mod.flash), in_t, out_t, out_size, dict(ctx.notes))


def _header(graph, inp, in_t, out_t, out_size, vector, argmax) -> str:
    a = graph.attrs(inp)
    quant = (f"input = saturate(round_half_even(x / {a['scale']}) + {a['zero_point']})"
             if a.get("scale") is not None else "input = the integer input tensor")
    if vector is not None:
        what = f"output = %{vector} ({graph.type(vector)})"
    else:
        what = "output[0] = the argmax class"
    returns = (f"the index of the {'last' if graph.attrs(argmax)['last'] else 'first'} maximum "
               f"of %{graph.operands(argmax)[0]}" if argmax is not None else "0 (no argmax output)")
    return (f"/* model.h: @{graph.name} for the CH32V003, generated by tinycc-nn.\n"
            f" * {quant}, {a['qdtype']} ({graph.type(inp)}).\n"
            f" * {what}.\n"
            f" * nn_infer returns {returns}. */\n"
            "#ifndef TINYCC_NN_MODEL_H\n#define TINYCC_NN_MODEL_H\n\n#include <stdint.h>\n\n"
            f"#define NN_INPUT_SIZE {graph.type(inp).size}\ntypedef {in_t} nn_input_t;\n"
            f"#define NN_OUTPUT_SIZE {out_size}\ntypedef {out_t} nn_output_t;\n\n"
            "int nn_infer(const nn_input_t *input, nn_output_t *output);\n\n#endif\n")

