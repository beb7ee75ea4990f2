"""Per-op C emitters of the CH32V003 backend: `dense` and elementwise `requant`.

Each op becomes one static function specialized to its sizes, encoding and
requantization constants; `EMITTERS[op](ctx, node)` adds it to the module and returns
the statements that call it from nn_infer.  All sums are done in unsigned 32-bit
(or, where the proven ranges need it, 64-bit) arithmetic, which wraps exactly like
the two's complement integers of ir.py; a result is converted back to signed only
where its proven range fits the signed type, so no step overflows in the C sense.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import ir
from ...errors import TinyccError
from . import kernels as K
from .csource import ARENA_VIEW, SIZEOF, CModule, c_name, fits, lit
from .planes import PlaneCode, pack_groups8, pack_words32

TABLE8_BYTES = 512          # one 8-input subset-sum table: 256 uint16 entries


@dataclass
class Ctx:
    graph: ir.Graph
    module: CModule
    ptr: dict                      # value -> C pointer expression
    ctype: dict                    # value -> element C type
    scratch: dict = field(default_factory=dict)   # (node, what) -> arena offset
    notes: dict = field(default_factory=dict)     # node -> kernel description (report)
    unroll: int = 2                # neurons per iteration of the lookup loop, when it divides
    zero_skip: bool = True         # skip groups of 8 zero inputs (unsigned inputs only)
    tables: bool = True            # False: bit-serial kernels only, no table RAM
    multiply: bool = False         # the core has a multiplier (CH32V002): convs use it
    in_place: frozenset = frozenset()  # values written straight into their concat's buffer


def dense_kernel(graph: ir.Graph, node: str, ctype: dict, tables: bool = True) -> str:
    """Which dot-product kernel a dense layer gets: 'table8', 'bits' or 'sum'.
    `tables=False` keeps the 512-byte tables out of RAM (bit-serial everywhere)."""
    w = np.asarray(graph.attrs(graph.operands(node)[1])["values"])
    if PlaneCode.for_values(w).planes == 0:
        return "sum"
    return "table8" if tables and SIZEOF[ctype[graph.operands(node)[0]]] == 1 else "bits"


def dense_scratch(graph: ir.Graph, node: str, ctype: dict, tables: bool = True) -> dict:
    """Arena bytes a dense layer needs while it runs (table and accumulators)."""
    if dense_kernel(graph, node, ctype, tables) != "table8":
        return {}
    n_out = np.asarray(graph.attrs(graph.operands(node)[1])["values"]).shape[1]
    return {"tab": TABLE8_BYTES, "acc": n_out * (8 if _wide_acc(graph, node) else 4)}


def _wide_acc(graph, node) -> bool:
    lo, hi = ir.accumulator_range(graph, node)[0]
    return not fits(lo.min(), hi.max())


def _channel_values(mod: CModule, name: str, values, comment: str, chan: str = "j") -> str:
    """A per-channel constant as a literal (all equal) or an array element `name[chan]`."""
    values = np.asarray(values, np.int64)
    if (values == values[0]).all():
        return lit(values[0])
    return f"{mod.array(name, values, comment)}[{chan}]"


def epilogue(ctx: Ctx, cn: str, src: str, src_lo, src_hi, attrs: dict, n: int, yt: str,
             fold_rnd: bool, chan: str = "j", store: str = "y[j] = ({yt})q;") -> list:
    """Statements for y[j] = clamp(round((src * mult + rnd) / 2^shift)) inside a loop over j.

    `src` is an int32_t/int64_t C expression whose per-channel range is [src_lo, src_hi];
    per-channel constants are indexed by `chan`; `store` is the last statement ({yt}
    stands for the result type, q holds the result).
    """
    mod = ctx.module
    m = ir.per_channel(attrs["mult"], n)
    r = np.zeros(n, np.int64) if fold_rnd else ir.per_channel(attrs["rnd"], n)
    s = ir.per_channel(attrs["shift"], n)
    rounding = attrs["rounding"]
    t_lo, t_hi = np.asarray(src_lo) * m + r, np.asarray(src_hi) * m + r
    head = int(((1 << np.maximum(s, 1)) >> 1).max()) if rounding != "floor" else 0
    wide = (not fits(min(np.min(src_lo), t_lo.min()), max(np.max(src_hi), t_hi.max()) + head)
            or int(s.max()) >= 31)
    st, ut = ("int64_t", "uint64_t") if wide else ("int32_t", "uint32_t")
    lines = []
    rnd = _channel_values(mod, f"nn_rnd_{cn}", r, f"%{cn} rounding constants", chan) if r.any() else None
    if (m == 1).all():
        lines.append(f"{st} t = ({st})({src})" + (f" + {rnd};" if rnd else ";"))
    elif not m.any():           # every channel constant: t = rnd
        lines += [f"(void)({src});", f"{st} t = {rnd or 0};"]
    else:
        lines.append(f"{ut} u = ({ut})({st})({src});")
        if (m == m[0]).all():
            prod = K.mul_const("u", int(m[0]), ut)
        else:
            mult = mod.array(f"nn_mult_{cn}", m, f"%{cn} per-channel multipliers", "uint32_t")
            prod = f"{mod.kernel(K.mul_runtime_name(wide), K.mul_runtime_source(wide))}(u, {mult}[{chan}])"
        lines.append(f"{st} t = ({st})({prod}" + (f" + ({ut})({st}){rnd});" if rnd else ");"))
    if (s == s[0]).all():
        k = int(s[0])
        if k == 0 or rounding == "floor":
            q = f"t >> {k}" if k else "t"
        else:
            bit = f"(t >> {k}) & 1" if rounding == "half_even" else f"(~t >> {k}) & 1"
            half = (1 << (k - 1)) - 1
            q = f"(t + {lit(half)} + ({bit})) >> {k}" if half else f"(t + ({bit})) >> {k}"
    else:
        shifts = mod.array(f"nn_shift_{cn}", s, f"%{cn} per-channel shifts", "uint8_t")
        fn = mod.kernel(K.round_shift_name(rounding, wide), K.round_shift_source(rounding, wide))
        q = f"{fn}(t, {shifts}[{chan}])"
    lines.append(f"{st} q = {q};")
    if attrs["lo"] is not None:
        lines.append(f"if (q < {lit(attrs['lo'])})\n    q = {lit(attrs['lo'])};")
    if attrs["hi"] is not None:
        lines.append(f"if (q > {lit(attrs['hi'])})\n    q = {lit(attrs['hi'])};")
    lines.append(store.format(yt=yt))
    return lines


def _indent(lines, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line.replace("\n", "\n" + pad) for line in lines)


def _weights_comment(code: PlaneCode, values) -> str:
    vs = sorted({int(v) for v in np.asarray(values).ravel()})
    shown = ", ".join(map(str, vs[:8])) + (", ..." if len(vs) > 8 else "")
    form = f"{code.offset} + {code.scale} * code" if code.ratio == 2 else \
        f"{code.offset} + {code.scale} * (b0 + {code.ratio} * b1)"
    return f"weights {{{shown}}} = {form}, {code.planes} bit plane(s)"


@dataclass
class _Dense:
    """What the parts of a dense layer's function need to know."""
    node: str
    cn: str                  # C name
    x: str                   # input value
    w: np.ndarray            # weights [n_in, n_out]
    xt: str                  # input element C type
    code: PlaneCode
    kind: str                # dense_kernel()
    wide: bool               # 64-bit accumulation
    shift_in: int            # x' = x + shift_in in the tables (128 for int8 inputs)

    @property
    def ut(self) -> str:
        return "uint64_t" if self.wide else "uint32_t"


def _table8_loop(ctx: Ctx, d: _Dense) -> tuple:
    """Lines building each group's table and adding its lookups into acc[]; per-neuron H."""
    mod, (n_in, n_out), code = ctx.module, d.w.shape, d.code
    wsym = mod.array(f"nn_w_{d.cn}", pack_groups8(code, d.w), f"%{d.cn}: {_weights_comment(code, d.w)}, "
                     "a byte per (8 inputs, output, plane)", "uint8_t")
    table = mod.kernel(K.table8_name(d.shift_in != 0), K.table8_source(d.shift_in != 0))
    unroll = ctx.unroll if n_out % ctx.unroll == 0 else 1
    dot = mod.kernel(K.dot8_name(code.planes, code.ratio, d.wide, unroll),
                     K.dot8_source(code.planes, code.ratio, d.wide, unroll))
    acc_t = "nn_u64a" if d.wide else "nn_u32a"
    full, rest = divmod(n_in, 8)
    body = [f"nn_u32a *tab = NN_AT(nn_u32a, {ctx.scratch[d.node, 'tab']});",
            f"{acc_t} *acc = NN_AT({acc_t}, {ctx.scratch[d.node, 'acc']});",
            f"const uint8_t *w = {wsym};"]
    body += ["uint32_t sum = 0;"] if code.offset else []
    body.append(f"for (int j = 0; j < {n_out}; j++)\n    acc[j] = 0;")
    call = [("sum += " if code.offset else "") + f"{table}({{x}}, tab);",
            f"{dot}((const nn_u16a *)tab, w, acc, acc + {n_out});"]
    skip = []
    if ctx.zero_skip and not d.shift_in:
        # eight zero inputs add nothing: skip their table and lookups (ReLU zeros, blank pixels)
        if not ctx.ptr[d.x].startswith("NN_AT("):    # the caller's buffers may be unaligned
            test = " | ".join(f"x[{e}]" for e in range(8))
        else:                                        # arena buffers are 4-byte aligned
            test = "((const nn_u32a *)x)[0] | ((const nn_u32a *)x)[1]"
        skip = [f"if (({test}) == 0)\n    continue;"]
    if full:
        body.append(f"for (int g = 0; g < {full}; g++, x += 8, w += {n_out * code.planes}) {{\n"
                    + _indent(skip + [c.format(x="(const uint8_t *)x") for c in call], 4) + "\n}")
    if rest:                     # the last, partial group from a padded copy
        pad = "0x80u" if d.shift_in else "0u"
        fill = [f"last[{e}] = (uint8_t)x[{e}];" for e in range(rest)]
        fill += [f"last[{e}] = {pad};" for e in range(rest, 8)]
        body.append("{\n" + _indent(["uint8_t last[8];"] + fill + [c.format(x="last") for c in call], 4)
                    + "\n}")
    ctx.notes[d.node] = f"8-input subset-sum tables, {code.planes} plane(s)"
    return body, f"{d.ut} h = acc[j];"


def _serial_loop(ctx: Ctx, d: _Dense) -> tuple:
    """Lines for the sum of x and, with weight planes, the per-neuron bit-serial H."""
    (n_in, n_out), code, ut = d.w.shape, d.code, d.ut
    body = [f"{ut} sum = 0;", f"for (int i = 0; i < {n_in}; i++)\n    sum += ({ut})x[i];"] \
        if code.offset else []
    if d.kind == "sum":
        ctx.notes[d.node] = "constant weights: one sum"
        return body + ([] if code.offset else ["(void)x;             /* all weights are 0 */"]), None
    words = (n_in + 31) // 32
    wsym = ctx.module.array(f"nn_w_{d.cn}", pack_words32(code, d.w), f"%{d.cn}: "
                            f"{_weights_comment(code, d.w)}, a word per (output, plane, 32 inputs)",
                            "uint32_t")
    bits = ctx.module.kernel(K.bitserial_name(d.xt, d.wide), K.bitserial_source(d.xt, d.wide))
    body.append(f"const uint32_t *w = {wsym};")
    ctx.notes[d.node] = f"bit-serial masked adds, {code.planes} plane(s)"
    return body, (f"{ut} h = 0;\nfor (int k = 0; k < {code.planes}; k++, w += {words})\n"
                  f"    h = {bits}({K.mul_const('h', code.ratio, ut)}, x, {n_in}, w);")


def emit_dense(ctx: Ctx, node: str) -> list:
    g, mod = ctx.graph, ctx.module
    x, wname = g.operands(node)
    w = np.asarray(g.attrs(wname)["values"], np.int64)
    n_out = w.shape[1]
    attrs = g.attrs(node)
    xt, yt = ctx.ctype[x], ctx.ctype[node]
    kind = dense_kernel(g, node, ctx.ctype, ctx.tables)
    d = _Dense(node, c_name(node), x, w, xt, PlaneCode.for_values(w), kind, _wide_acc(g, node),
               128 if kind == "table8" and xt == "int8_t" else 0)
    st, ut = ("int64_t" if d.wide else "int32_t"), d.ut
    (lo, hi), (t_lo, t_hi) = ir.accumulator_range(g, node)
    s_max = int(np.max(attrs["shift"]))
    # with mult 1, rnd joins the per-neuron constant when acc + rnd (+ rounding) fits 32 bits
    fold = bool((ir.per_channel(attrs["mult"], n_out) == 1).all()) and (
        d.wide or fits(t_lo.min(), t_hi.max() + (1 << s_max)))
    if fold:
        lo, hi = t_lo, t_hi
    const = (ir.per_channel(attrs["bias"], n_out) - d.shift_in * w.sum(axis=0)
             + (ir.per_channel(attrs["rnd"], n_out) if fold else 0))
    if not d.wide and not fits(const.min(), const.max()):
        const = const & 0xFFFFFFFF      # only its value mod 2^32 matters in 32-bit sums
    cterm = _channel_values(mod, f"nn_c_{d.cn}", const,
                            f"%{d.cn}: bias{' + rnd' if fold else ''}"
                            + (f" - {d.shift_in} * column sums of the weights" if d.shift_in else ""))
    body, hsum = (_table8_loop if kind == "table8" else _serial_loop)(ctx, d)
    # acc = const + offset * (sum of x') + scale * H: the same offset term for every neuron
    terms = [K.mul_const("h", d.code.scale, ut)] if hsum else []
    if d.code.offset:
        body.append(f"{ut} s = sum;\n{ut} base = {K.mul_const('s', d.code.offset, ut)};")
        terms.append("base")
    if cterm != "0":
        terms.append(f"({ut}){cterm}")
    loop = ([hsum] if hsum else []) + [f"{st} a = ({st})({' + '.join(terms) or '0'});"]
    loop += epilogue(ctx, d.cn, "a", lo, hi, attrs, n_out, yt, fold)
    body.append(f"for (int j = 0; j < {n_out}; j++) {{\n" + _indent(loop, 4) + "\n}")
    desc = (f"%{node} = dense(%{x}, %{wname}): {w.shape[0]} -> {n_out}, {_weights_comment(d.code, w)};\n"
            f" * {ctx.notes[node]}; {xt} in, {yt} out")
    mod.functions.append(f"/* {desc} */\nstatic void nn_{d.cn}(const {ARENA_VIEW[xt]} *x, {ARENA_VIEW[yt]} *y)"
                         "\n{\n" + _indent(body, 4) + "\n}\n")
    return [f"nn_{d.cn}({ctx.ptr[x]}, {ctx.ptr[node]});"]


def emit_requant(ctx: Ctx, node: str) -> list:
    g, mod = ctx.graph, ctx.module
    (x,) = g.operands(node)
    cn, n = c_name(node), g.type(node).size
    xt, yt = ctx.ctype[x], ctx.ctype[node]
    lo, hi = ir.channel_range(g, x)
    wide = not fits(lo.min(), hi.max())
    lines = epilogue(ctx, cn, f"({'int64_t' if wide else 'int32_t'})x[j]", lo, hi, g.attrs(node),
                     n, yt, fold_rnd=False)
    mod.functions.append(f"/* %{node} = requant(%{x}): {n} channels, {xt} in, {yt} out */\n"
                         f"static void nn_{cn}(const {ARENA_VIEW[xt]} *x, {ARENA_VIEW[yt]} *y)\n{{\n"
                         f"    for (int j = 0; j < {n}; j++) {{\n" + _indent(lines, 8) + "\n    }\n}\n")
    return [f"nn_{cn}({ctx.ptr[x]}, {ctx.ptr[node]});"]


def emit_requant_map(ctx: Ctx, node: str):
    """requant on a [C, H, W] map: channel c's constants over its plane (a ChannelOp)."""
    from .channels import ChannelOp
    g = ctx.graph
    (x,) = g.operands(node)
    cn = c_name(node)
    c, h, w = g.type(node).shape
    xt, yt = ctx.ctype[x], ctx.ctype[node]
    lo, hi = ir.channel_range(g, x)
    wide = not fits(lo.min(), hi.max())
    lines = epilogue(ctx, cn, f"({'int64_t' if wide else 'int32_t'})x[i]", lo, hi, g.attrs(node),
                     c, yt, fold_rnd=False, chan="c", store="y[i] = ({yt})q;")
    ctx.module.functions.append(
        f"/* %{node} = requant(%{x}) on a {c}x{h}x{w} map, {xt} in, {yt} out; one channel */\n"
        f"static void nn_{cn}(const {ARENA_VIEW[xt]} *x, {ARENA_VIEW[yt]} *y, int c)\n{{\n    (void)c;\n"
        f"    for (int i = 0; i < {h * w}; i++) {{\n" + _indent(lines, 8) + "\n    }\n}\n")
    ctx.notes[node] = "requant: one plane per call"
    return ChannelOp(node, f"nn_{cn}", c, h * w, h * w, ARENA_VIEW[xt], ARENA_VIEW[yt], group_in=0)


def emit_add(ctx: Ctx, node: str) -> list:
    """add of two values of one size (a residual connection): y = (a << sa) + (b << sb) +
    bias[c] element by element, channel c's elements consecutive (a map's plane, or one
    element of a vector); 32-bit wrapping sums, exact because the result fits."""
    g, mod = ctx.graph, ctx.module
    a, b = g.operands(node)
    cn, t, attrs = c_name(node), g.type(node), g.attrs(node)
    n, per = t.channels, t.size // t.channels
    lo, hi = ir.channel_range(g, node)
    if not fits(lo.min(), hi.max()):
        raise TinyccError(f"%{node} = add: sums {lo.min()}..{hi.max()} need more than 32 bits; "
                          "the ch32v003 target has no code for them")
    sa, sb = attrs["shifts"]
    at, bt, yt = ctx.ctype[a], ctx.ctype[b], ctx.ctype[node]
    k = _channel_values(mod, f"nn_c_{cn}", ir.per_channel(attrs["bias"], n), f"%{node}: bias",
                        chan="c")
    terms = [f"((uint32_t)(int32_t)*{p}++ << {s})" if s else f"(uint32_t)(int32_t)*{p}++"
             for p, s in (("a", sa), ("b", sb))]
    inner = f"*y++ = ({yt})(int32_t)({' + '.join(terms)} + k);"
    loop = f"for (int i = 0; i < {per}; i++)\n    {inner}" if per > 1 else inner
    body = [f"for (int c = 0; c < {n}; c++) {{\n    uint32_t k = (uint32_t)(int32_t)({k});\n"
            + _indent([loop], 4) + "\n}"]
    mod.functions.append(
        f"/* %{node} = add(%{a} << {sa}, %{b} << {sb}) + bias: {t.size} elements, {at} + {bt} -> {yt} */\n"
        f"static void nn_{cn}(const {ARENA_VIEW[at]} *a, const {ARENA_VIEW[bt]} *b, {ARENA_VIEW[yt]} *y)\n"
        "{\n" + _indent(body, 4) + "\n}\n")
    ctx.notes[node] = "add: one pass, 32-bit sums"
    return [f"nn_{cn}({ctx.ptr[a]}, {ctx.ptr[b]}, {ctx.ptr[node]});"]


def gather_strides(index, shape) -> tuple | None:
    """(base, strides) with index[i0, i1, ...] == base + sum(i_k * strides[k]) (a transpose
    or a crop), or None (an arbitrary order)."""
    idx = np.asarray(index, np.int64).reshape([int(d) for d in shape])
    if (idx < 0).any():        # fills (a Pad)
        return None
    base = int(idx.flat[0])
    strides = [int(idx[tuple(1 if k == j else 0 for k in range(idx.ndim))]) - base if d > 1 else 0
               for j, d in enumerate(idx.shape)]
    grid = np.indices(idx.shape)
    want = base + sum(g * st for g, st in zip(grid, strides))
    return (base, strides) if np.array_equal(want, idx) else None


def emit_gather(ctx: Ctx, node: str) -> list:
    """gather (a reordered view before a window op): nested loops that walk x by constant
    strides when the order is affine (NHWC -> NCHW, a crop), else y[i] = x[index[i]] with
    the index a flash table of the narrowest type."""
    g, mod = ctx.graph, ctx.module
    (x,) = g.operands(node)
    a = g.attrs(node)
    cn, n = c_name(node), g.type(node).size
    xt, yt = ctx.ctype[x], ctx.ctype[node]
    affine = gather_strides(a["index"], a["shape"])
    if affine is not None:
        base, strides = affine
        body = f"*y++ = ({yt})*p{len(strides) - 1};"
        for k in reversed(range(len(strides))):
            src = "x + " + lit(base) if k == 0 else f"p{k - 1}"
            body = (f"const {ARENA_VIEW[xt]} *p{k} = {src};\n"
                    f"for (int i{k} = 0; i{k} < {int(a['shape'][k])}; i{k}++, p{k} += {strides[k]}) {{\n"
                    + _indent([body], 4) + "\n}")
        ctx.notes[node] = "gather: strided loops"
        what = "strides " + ", ".join(map(str, strides))
    else:
        idx = mod.array(f"nn_g_{cn}", a["index"], f"%{node}: source element of each element"
                        + (f" (-1: the fill, {a['fill']})" if "fill" in a else ""))
        if "fill" in a:
            body = (f"for (int i = 0; i < {n}; i++) {{\n    int k = {idx}[i];\n"
                    f"    y[i] = k < 0 ? ({yt}){lit(a['fill'])} : ({yt})x[k];\n}}")
        else:
            body = f"for (int i = 0; i < {n}; i++)\n    y[i] = ({yt})x[{idx}[i]];"
        ctx.notes[node] = "gather: an index table"
        what = "an index table"
    mod.functions.append(
        f"/* %{node} = gather(%{x}): {n} elements of {g.type(x).size} by {what}, {xt} -> {yt} */\n"
        f"static void nn_{cn}(const {ARENA_VIEW[xt]} *x, {ARENA_VIEW[yt]} *y)\n{{\n"
        + _indent([body], 4) + "\n}\n")
    return [f"nn_{cn}({ctx.ptr[x]}, {ctx.ptr[node]});"]


def emit_concat(ctx: Ctx, node: str) -> list:
    """concat (Concat, e.g. of two branches' channels): a's elements, then b's."""
    g = ctx.graph
    a, b = g.operands(node)
    cn, yt = c_name(node), ctx.ctype[node]
    na, nb = g.type(a).size, g.type(b).size
    at, bt = ctx.ctype[a], ctx.ctype[b]
    copies = [(x, first, count) for x, first, count in ((a, 0, na), (b, na, nb))
              if x not in ctx.in_place]
    ctx.notes[node] = {0: "concat: in place (its operands write into it)",
                       1: "concat: one copy, the other operand in place"}.get(len(copies), "concat: two copies")
    if not copies:
        return []
    loops = "".join(f"    for (int i = 0; i < {count}; i++)\n        y[{first} + i] = ({yt})x{k}[i];\n"
                    for k, (x, first, count) in enumerate(copies))
    args = ", ".join(f"const {ARENA_VIEW[ctx.ctype[x]]} *x{k}" for k, (x, _, _) in enumerate(copies))
    ctx.module.functions.append(
        f"/* %{node} = concat(%{a}, %{b}): {na} + {nb} elements, {at} and {bt} -> {yt} */\n"
        f"static void nn_{cn}({args}, {ARENA_VIEW[yt]} *y)\n{{\n{loops}}}\n")
    return [f"nn_{cn}({', '.join(ctx.ptr[x] for x, _, _ in copies)}, {ctx.ptr[node]});"]


EMITTERS = {"dense": emit_dense, "requant": emit_requant, "add": emit_add, "gather": emit_gather,
            "concat": emit_concat}
