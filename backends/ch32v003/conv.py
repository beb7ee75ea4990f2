"""qconv on the CH32V003: two output pixels per 32-bit add, weights by a jump table.

Packing.  Before the convolution the input channels are rewritten as words that hold
two pixels, x0 + x1 * 2^16 (read as integers, not bit fields): x0 feeds output row oy
and x1 output row oy + half, half = ceil(Ho / 2), so x1 sits half * stride rows below
x0.  Padding is written into the packed plane (pad_value), so the kernel never tests
bounds.  Sums and constant multiples of such words are the same sums and multiples of
both halves, so one add computes two multiply-accumulates; each half is read back
exactly (sign-extend the low 16 bits, then the rest) when the per-channel proven
range of the convolution fits 16 bits signed.  Otherwise a word holds one pixel (`lanes`
1, 32-bit sums): same kernel, half the throughput; when RAM is short (`narrow`) the
packed plane holds the pixels in the input map's own C type instead, a byte for 8-bit
activations: a quarter of the RAM, a few percent slower (lbu has no 16-bit encoding,
c.lw has).

Kernel.  For a block of B output words in a row, B accumulators stay in registers
while the taps go by: each tap is a byte (weight value - smallest value) indexing a
`switch` whose case for value v adds v times the B input words at that tap, v
multiplied with shifts and adds (`kernels.mul_const`): 1-3 instructions per word, no
multiplier.  The tap offsets are a table shared by all output channels; the weight
bytes are the per-channel part.  One kernel serves every layer with the same
(B, stride, value range).  The requantization of each pixel is the dense layers'
epilogue (layers.epilogue) with the bias (and rnd, when it fits) preloaded into both
halves of the accumulators.
"""
from __future__ import annotations

from dataclasses import dataclass

import zlib

import numpy as np

from ... import ir
from ...errors import TinyccError
from . import kernels as K
from .channels import ChannelOp
from .csource import ARENA_VIEW, SIZEOF, c_name, fits, lit
from .layers import Ctx, _indent, epilogue

MAX_BLOCK = 6          # accumulators in registers (RV32E: 12 allocatable, 6 for pointers and temporaries)
MAX_OFFSETS = 72       # taps in one offset table; more input channels loop instead
MAX_CASES = 24         # weight values with a case each; wider sets take two digits per weight
INT16 = (-(1 << 15), (1 << 15) - 1)


@dataclass
class ConvGeometry:
    cin: int
    h: int
    w: int
    m: int
    cg: int
    kh: int
    kw: int
    group: int
    sh: int
    sw: int
    top: int
    left: int
    ho: int
    wo: int
    lanes: int          # pixels per packed word (2: 16-bit halves, 1: 32-bit)
    block: int          # output words per kernel call (accumulators)
    values: tuple       # the weight values the kernel has a case for
    digits: bool        # weights split into 16 * hi + lo (two taps each: wide value sets)
    nibbles: bool = False   # two output channels' cases per byte (at most 16 cases)

    @property
    def half(self) -> int:
        return (self.ho + 1) // 2 if self.lanes == 2 else self.ho

    @property
    def blocks(self) -> int:
        return -(-self.wo // self.block)

    @property
    def rows(self) -> int:          # packed rows
        return (self.half - 1) * self.sh + self.kh

    @property
    def cols(self) -> int:          # packed columns
        return (self.wo - 1) * self.sw + self.kw

    @property
    def slack(self) -> int:
        """Words after the packed channels that a row's last block may read (into the
        next row, or past the end): they only feed columns that are not stored."""
        return (self.blocks * self.block - self.wo) * self.sw

    @property
    def plane_words(self) -> int:   # elements of one packed channel (words when lanes == 2)
        return self.rows * self.cols

    def packed_t(self, xt: str, narrow: bool) -> str:
        """C element type of the packed planes: words (of two pixels, or of one), or with
        one lane and `narrow` the map's own type."""
        return ARENA_VIEW[xt] if narrow and self.lanes == 1 else "nn_u32a"

    @property
    def split_channels(self) -> bool:
        """Loop over the input channels around the kernel (offset table of one channel)."""
        return self.cg * self.kh * self.kw > MAX_OFFSETS

    @property
    def taps(self) -> int:          # weight bytes per output channel
        return self.cg * self.kh * self.kw * (2 if self.digits else 1)

    def codes(self, w: np.ndarray) -> np.ndarray:
        """[M, taps] case indices of the weights (lo digit then 16 * hi digit per tap)."""
        w = np.asarray(w, np.int64).reshape(self.m, -1)
        if self.digits:
            lo = (w + 8) % 16 - 8
            w = np.stack([lo, w - lo], axis=-1).reshape(self.m, -1)
        return np.searchsorted(np.asarray(self.values), w)


def _block_size(wo: int) -> int:
    """Accumulators per kernel call: always MAX_BLOCK, so that one kernel (about 1 KB of
    code) serves every layer; a row shorter than that computes a few unused columns."""
    return MAX_BLOCK


def geometry(graph: ir.Graph, node: str) -> ConvGeometry:
    a = graph.attrs(node)
    w = np.asarray(graph.attrs(graph.operands(node)[1])["values"], np.int64)
    m, cg, kh, kw = w.shape
    cin, h, wd = a["in_shape"]
    ho, wo = graph.type(node).shape[1:]
    (lo, hi), _ = ir.accumulator_range(graph, node)
    bias = ir.per_channel(a["bias"], m)
    conv_lo, conv_hi = lo - bias, hi - bias
    xlo, xhi = ir.map_channel_range(graph, node)
    if not fits(conv_lo.min(), conv_hi.max()) or not fits(lo.min(), hi.max()):
        raise TinyccError(f"%{node}: the convolution needs more than 32-bit sums "
                          f"({conv_lo.min()}..{conv_hi.max()}); the ch32v003 target has no code for it")
    lanes = 2 if (fits(conv_lo.min(), conv_hi.max(), INT16) and fits(xlo.min(), xhi.max(), INT16)
                  and ho > 1) else 1
    values = sorted({int(v) for v in w.ravel()})
    digits = len(values) > MAX_CASES
    if digits:
        lo = (w + 8) % 16 - 8
        values = sorted({int(v) for v in lo.ravel()} | {int(v) for v in (w - lo).ravel()})
    return ConvGeometry(cin, h, wd, m, cg, kh, kw, a["group"], *a["strides"], a["pads"][0],
                        a["pads"][1], ho, wo, lanes, _block_size(wo), tuple(values), digits,
                        nibbles=len(values) <= 16)


def _elem_tag(pt: str) -> str:
    return {"nn_u32a": "", "int8_t": "_i8", "uint8_t": "_u8", "nn_i16a": "_i16",
            "nn_u16a": "_u16", "nn_i32a": "_i32"}[pt]


def mac_name(g: ConvGeometry, pt: str = "nn_u32a") -> str:
    vs = g.values
    tag = (f"{vs[0]}_{vs[-1]}" if list(vs) == list(range(vs[0], vs[-1] + 1))
           else f"{len(vs)}v{zlib.crc32(repr(vs).encode()):08x}")
    return f"nn_cmac_b{g.block}s{g.sw}_{tag}{_elem_tag(pt)}".replace("-", "m")


def mul_acc(acc: str, v: int) -> list:
    """Statements acc += v * t (t is clobbered) with one temporary: the signed binary
    digits of v from the lowest up, `t <<= gap` between them."""
    out, at = [], 0
    for shift, d in K.naf(abs(v)):
        if shift > at:
            out.append(f"t <<= {shift - at};")
            at = shift
        out.append(f"{acc} {'+=' if (d > 0) == (v > 0) else '-='} t;")
    return out


def mac_source(g: ConvGeometry, pt: str = "nn_u32a") -> str:
    """acc[0..B-1] += sum over taps of w * q[i*sw]: one case per weight value; q walks the
    taps by the deltas of `step`; q's elements are `pt` (read as 32-bit integers)."""
    b, sw = g.block, g.sw
    cases = []
    for k, v in enumerate(g.values):
        if v == 0:
            cases.append(f"        case {k}:           /* 0 */\n            break;")
            continue
        lines = []
        for i in range(b):
            lines.append(" ".join([f"t = (uint32_t)q[{i * sw}];"] + mul_acc(f"a{i}", v)))
        cases.append(f"        case {k}:           /* {v} */\n"
                     + "\n".join("            " + s for s in lines) + "\n            break;")
    accs = ", ".join(f"a{i} = acc[{i}]" for i in range(b))
    store = " ".join(f"acc[{i}] = a{i};" for i in range(b))
    return f"""\
/* acc[i] += sum over the taps of w * q[{sw} * i], i < {b}; a tap is a weight byte
 * (the index of w in {{{", ".join(map(str, g.values[:6]))}{", ..." if len(g.values) > 6 else ""}}}) and a step of q.  Each case adds a constant multiple, no multiplier. */
NN_HOT __attribute__((noinline)) static void {mac_name(g, pt)}(const {pt} *q, const uint8_t *w,
    const uint8_t *end, const uint16_t *step, nn_u32a *acc)
{{
    uint32_t {accs};
    do {{
        uint32_t t;
        q += *step++;
        switch (*w++) {{
{chr(10).join(cases)}
        default:
            __builtin_unreachable();
        }}
        (void)t;
    }} while (w != end);
    {store}
}}
"""


def mul_name(g: ConvGeometry, pt: str = "nn_u32a") -> str:
    return f"nn_cmul_b{g.block}s{g.sw}{_elem_tag(pt)}"


def mul_source(g: ConvGeometry, pt: str = "nn_u32a") -> str:
    """The same sums with the hardware multiplier: the weight byte is the weight."""
    b, sw = g.block, g.sw
    accs = ", ".join(f"a{i} = acc[{i}]" for i in range(b))
    body = "\n".join(f"        a{i} += v * (uint32_t)q[{i * sw}];" for i in range(b))
    store = " ".join(f"acc[{i}] = a{i};" for i in range(b))
    return f"""\
/* acc[i] += sum over the taps of w * q[{sw} * i], i < {b}, with the multiplier (Zmmul). */
NN_HOT __attribute__((noinline)) static void {mul_name(g, pt)}(const {pt} *q, const int8_t *w,
    const int8_t *end, const uint16_t *step, nn_u32a *acc)
{{
    uint32_t {accs};
    do {{
        q += *step++;
        uint32_t v = (uint32_t)(int32_t)*w++;
{body}
    }} while (w != end);
    {store}
}}
"""


def pack_source(ctx: Ctx, node: str, g: ConvGeometry, xt: str, pt: str, fn: str) -> str:
    """nn_pack_<node>(x, p, ci0, count): `count` input channels from x into packed planes
    (two-pixel words, or with one lane the map's own elements)."""
    a = ctx.graph.attrs(node)
    pads = ir.per_channel(a["pad_value"], g.cin)
    two = g.lanes == 2
    words = pt == "nn_u32a"
    vt, wrap = ("uint32_t", "(uint32_t)(int32_t)") if words else (xt, "")
    if (pads == pads[0]).all():
        pad = f"({vt}){lit(pads[0])}"
    else:
        arr = ctx.module.array(f"nn_pad_{c_name(node)}", pads, f"%{node}: padding value per input channel")
        pad = f"({vt}){wrap}{arr}[ci0 + k]"
    inner = min(g.w, max(g.cols - g.left, 0))
    right = g.cols - g.left - inner
    dist = g.half * g.sh * g.w          # elements from x0's row to x1's row
    hstep = g.half * g.sh
    word = "v0 + (v1 << 16)" if two else "v0"
    x0 = f"{wrap}x[o + i]"
    x1 = f"{wrap}x[o + {dist} + i]"
    # four words per iteration: a taken branch costs as much as the word itself
    by = 4 if inner % 4 == 0 else 2 if inner % 2 == 0 else 1
    fast = (f"for (int i = 0; i < {inner}; i += {by}, p += {by}) {{\n"
            + "\n".join(f"    p[{u}] = {x0.replace('i]', f'i + {u}]')}"
                         + (f" + ({x1.replace('i]', f'i + {u}]')} << 16);" if two else ";") for u in range(by))
            + "\n}")
    slow = (f"for (int i = 0; i < {inner}; i++) {{\n"
            f"    {vt} v0 = in0 ? {x0} : pad;\n"
            + (f"    {vt} v1 = in1 ? {x1} : pad;\n" if two else "")
            + f"    *p++ = {word};\n}}")
    rowbody = [f"int in0 = r >= {g.top} && r < {g.top + g.h};"]
    if two:
        rowbody.append(f"int in1 = r + {hstep} >= {g.top} && r + {hstep} < {g.top + g.h};")
    if g.left:
        rowbody.append(f"for (int i = 0; i < {g.left}; i++)\n    *p++ = both;")
    if inner:
        rowbody.append(f"if (in0{' && in1' if two else ''}) {{\n" + _indent([fast], 4) + "\n} else {\n"
                       + _indent([slow], 4) + "\n}")
    if right > 0:
        rowbody.append(f"for (int i = 0; i < {right}; i++)\n    *p++ = both;")
    body = [f"{vt} pad = {pad};", f"{vt} both = {'pad + (pad << 16)' if two else 'pad'};",
            "(void)pad;", "(void)both;",
            f"int o = {-g.top * g.w};",
            f"for (int r = 0; r < {g.rows}; r++, o += {g.w}) {{\n" + _indent(rowbody, 4) + "\n}"]
    what = f"words of {g.lanes} pixel(s)" if words else f"{xt} pixels"
    return (f"/* %{node}: input channels as packed {what}, "
            f"{g.rows} x {g.cols} per channel, padding included */\n"
            f"static void {fn}(const {ARENA_VIEW[xt]} *x, {pt} *p, int ci0, int count)\n{{\n"
            "    (void)ci0;\n"
            f"    for (int k = 0; k < count; k++, x += {g.h * g.w}) {{\n" + _indent(body, 8)
            + "\n    }\n}\n")


def _steps(g: ConvGeometry) -> np.ndarray:
    """Word steps from one tap to the next (the first from the block's start)."""
    chans = 1 if g.split_channels else g.cg
    ci, ky, kx = np.meshgrid(np.arange(chans), np.arange(g.kh), np.arange(g.kw), indexing="ij")
    offs = (ci * g.plane_words + ky * g.cols + kx).ravel()
    if g.digits:
        offs = np.repeat(offs, 2)
    return np.diff(offs, prepend=0)


def emit_qconv(ctx: Ctx, node: str, prepack: bool = True, narrow: bool = False) -> ChannelOp:
    gr, mod = ctx.graph, ctx.module
    x, wname = gr.operands(node)
    w = np.asarray(gr.attrs(wname)["values"], np.int64)
    a = gr.attrs(node)
    g = geometry(gr, node)
    cn = c_name(node)
    xt, yt = ctx.ctype[x], ctx.ctype[node]
    pt = g.packed_t(xt, narrow)
    if ctx.multiply and w.min() >= -128 and w.max() <= 127:
        g.digits = g.nibbles = False
        codes = mod.array(f"nn_k_{cn}", w.reshape(g.m, -1), f"%{node}: weights per (output channel, "
                          "input channel, ky, kx)", "int8_t")
        mac = mod.kernel(mul_name(g, pt), mul_source(g, pt))
    elif g.nibbles:             # channels 2k and 2k + 1 in the low and high nibbles
        k = g.codes(w)
        k = np.concatenate([k, np.zeros((g.m % 2, k.shape[1]), np.int64)])
        codes = mod.array(f"nn_k_{cn}", k[0::2] + 16 * k[1::2], f"%{node}: case of each weight "
                          "per (output channel pair, input channel, ky, kx), even channel in "
                          "the low nibble", "uint8_t")
        mac = mod.kernel(mac_name(g, pt), mac_source(g, pt))
    else:
        codes = mod.array(f"nn_k_{cn}", g.codes(w), f"%{node}: case of each weight"
                          + (" (lo and 16 * hi digit)" if g.digits else "")
                          + " per (output channel, input channel, ky, kx)", "uint8_t")
        mac = mod.kernel(mac_name(g, pt), mac_source(g, pt))
    offs = mod.array(f"nn_o_{cn}", _steps(g), f"%{node}: packed elements from one tap to the next",
                     "uint16_t")
    pack = mod.kernel(f"nn_pack_{cn}", pack_source(ctx, node, g, xt, pt, f"nn_pack_{cn}"))
    (lo, hi), (t_lo, t_hi) = ir.accumulator_range(gr, node)
    m_all = ir.per_channel(a["mult"], g.m)
    s_max = int(np.max(a["shift"]))
    fold = bool((m_all == 1).all()) and fits(t_lo.min(), t_hi.max() + (1 << s_max))
    const = ir.per_channel(a["bias"], g.m) + (ir.per_channel(a["rnd"], g.m) if fold else 0)
    src_lo, src_hi = (t_lo, t_hi) if fold else (lo, hi)
    # the constant rides in the accumulators when every half stays within 16 bits
    pre = g.lanes == 1 or fits(src_lo.min(), src_hi.max(), INT16)
    if (const == const[0]).all():
        kexpr = lit(const[0])
    else:
        kexpr = f"{mod.array(f'nn_c_{cn}', const, f'%{node}: bias' + (' + rnd' if fold else ''))}[c]"
    rq = epilogue(ctx, cn, "a", src_lo, src_hi, a, g.m, yt, fold, chan="c", store="return ({yt})q;")
    rq_fn = f"nn_rq_{cn}"
    mod.functions.append(f"static inline {yt} {rq_fn}(int32_t a, int c)\n{{\n    (void)c;\n"
                         + _indent(rq, 4) + "\n}\n")
    if pre:
        init_lines = [f"uint32_t k0 = (uint32_t)(int32_t)({kexpr});"]
        init_lines.append("uint32_t init = k0 + (k0 << 16);" if g.lanes == 2 else "uint32_t init = k0;")
        add_k = ""
    else:
        init_lines = ["uint32_t init = 0;", f"int32_t k0 = {kexpr};"]
        add_k = " + k0"
    taps = g.taps
    wt = "int8_t" if mac.startswith("nn_cmul") else "uint8_t"
    if g.nibbles:       # unpack channel c's cases once (the kernel reads a byte per tap)
        wptr = "cases"
        unpack = [f"uint8_t cases[{taps}];",
                  f"const uint8_t *wp = {codes} + {K.mul_const('((uint32_t)c >> 1)', taps)};",
                  "unsigned sh = (unsigned)(c & 1) << 2;",
                  f"for (int i = 0; i < {taps}; i++)\n    cases[i] = (uint8_t)((wp[i] >> sh) & 15);"]
    else:
        wptr = f"{codes} + {K.mul_const('(uint32_t)c', taps)}" if g.m > 1 else codes
        unpack = []
    b = g.block
    per = g.kh * g.kw * (2 if g.digits else 1) if g.split_channels else taps
    if g.split_channels:
        call = (f"const {wt} *wk = w;\nconst {pt} *pk = pb;\n"
                f"for (int ci = 0; ci < {g.cg}; ci++, wk += {per}, pk += {g.plane_words})\n"
                f"    {mac}(pk, wk, wk + {per}, {offs}, acc);")
    else:
        call = f"{mac}(pb, w, w + {per}, {offs}, acc);"
    if g.lanes == 2:
        decode = ["int32_t lo = (int32_t)(s << 16) >> 16;",
                  "int32_t hi = (int32_t)(s - (uint32_t)lo) >> 16;",
                  f"y[col + i] = {rq_fn}(lo{add_k}, c);",
                  f"if (low)\n    y[col + i + {g.half * g.wo}] = {rq_fn}(hi{add_k}, c);"]
    else:
        decode = [f"y[col + i] = {rq_fn}((int32_t)s{add_k}, c);"]
    low = (f"int low = oy + {g.half} < {g.ho};" if g.ho % 2 else "const int low = 1;") \
        if g.lanes == 2 else ""
    block = ([f"nn_u32a acc[{b}];"] + [f"acc[{i}] = init;" for i in range(b)] + [call]
             + [f"int n = {g.wo} - col < {b} ? {g.wo} - col : {b};",
                "for (int i = 0; i < n; i++) {\n    uint32_t s = acc[i];\n"
                + _indent(decode, 4) + "\n}"])
    rows = ([low] if low else []) + [
        f"const {pt} *pb = prow;",
        f"for (int col = 0; col < {g.wo}; col += {b}, pb += {b * g.sw}) {{\n" + _indent(block, 4) + "\n}"]
    body = init_lines + unpack + [f"const {wt} *w = {wptr};", f"const {pt} *prow = p;",
                                  f"for (int oy = 0; oy < {g.half}; oy++, prow += {g.sh * g.cols}, y += {g.wo}) {{\n"
                                  + _indent(rows, 4) + "\n}"]
    kind = {g.cin: "group 1"}.get(g.cg, "depthwise" if g.cg == 1 and g.group == g.cin else f"group {g.group}")
    desc = (f"%{node} = qconv(%{x}, %{wname}): {g.cin}x{g.h}x{g.w} -> {g.m}x{g.ho}x{g.wo}, "
            f"{g.kh}x{g.kw} stride {g.sh}x{g.sw}, {kind}, weights {w.min()}..{w.max()};\n"
            f" * {g.lanes} pixel(s) per 32-bit add, {b} accumulators; channel c of the packed input")
    ctx.notes[node] = (f"conv: {g.lanes} pixel(s) per add, blocks of {b}, "
                       f"{len(g.values)} weight cases by jump table" + (" (two digits per weight)" if g.digits else "")
                       + (f", input packed as {xt}" if pt != "nn_u32a" else ""))
    mod.functions.append(f"/* {desc} */\nNN_HOT static void nn_{cn}(const {pt} *p, {ARENA_VIEW[yt]} *y, int c)\n"
                         "{\n" + _indent(body, 4) + "\n}\n")
    depthwise = g.cg == 1 and g.group == g.cin and g.m == g.cin
    return ChannelOp(node, f"nn_{cn}", g.m, g.h * g.w, g.ho * g.wo, ARENA_VIEW[xt], ARENA_VIEW[yt],
                     group_in=0 if depthwise else g.cg, group_out=g.m // g.group, pack=pack,
                     packed=f"NN_AT({pt}, {ctx.scratch[node, 'packed']})", packed_t=pt,
                     packed_plane=g.plane_words, prepack=prepack and not depthwise, in_channels=g.cin)


def conv_scratch(graph: ir.Graph, node: str, xt: str, prepack: bool, narrow: bool) -> int:
    """Bytes of the packed input buffer (every input channel, or one group's), whole words."""
    g = geometry(graph, node)
    depthwise = g.cg == 1 and g.group == g.cin and g.m == g.cin
    chans = g.cin if prepack and not depthwise else g.cg
    size = SIZEOF[xt] if g.packed_t(xt, narrow) != "nn_u32a" else 4
    return -(-(chans * g.plane_words + g.slack) * size // 4) * 4
