"""C text of the shared CH32V003 kernels and of multiplier-free arithmetic.

The dot products are table lookups (see planes.py for the algebra).  For a group of 8
inputs x'_0..x'_7 (8-bit, made non-negative: x' = x + 128 for signed inputs) the
256-entry table T[m] = sum of the x'_e with bit e of m set is built once per layer and
group, then every (output, plane) of the layer costs one lookup T[byte] where the byte
is the plane's bits for those 8 inputs: `lbu, slli, add, lhu` plus one add.  The
table is built two entries per 32-bit word (T[2q] low half, T[2q+1] high half: the
entries are at most 8 * 255 so the halves never carry into each other), as the sum of
one of 8 words for inputs 0..3 (kept in registers) and one of 16 for inputs 4..7.

Inputs wider than 8 bits take the bit-serial kernel instead: per (output, plane) one
branch-free masked add per input.

GCC's scheduler before register allocation raises register pressure past the
RV32E's 16 registers and spills inside these loops; `NN_HOT` turns it off for the
kernels only (a GCC function attribute; other compilers see nothing).
"""
from __future__ import annotations

PRELUDE = """\
#if defined(__GNUC__) && !defined(__clang__)
/* GCC's pre-allocation scheduler spills in these loops on RV32E (16 registers). */
#define NN_HOT __attribute__((optimize("no-schedule-insns")))
#else
#define NN_HOT
#endif

/* Arena views: the activation arena is one uint32_t array seen through these. */
typedef uint16_t nn_u16a __attribute__((may_alias));
typedef int16_t nn_i16a __attribute__((may_alias));
typedef uint32_t nn_u32a __attribute__((may_alias));
typedef int32_t nn_i32a __attribute__((may_alias));
typedef uint64_t nn_u64a __attribute__((may_alias));
"""


def naf(c: int) -> list:
    """Non-adjacent form of c: [(shift, +1|-1)], fewest non-zero signed binary digits."""
    digits, k = [], 0
    while c:
        if c & 1:
            d = 2 - (c & 3)          # +1 when c = 1 mod 4, -1 when c = 3 mod 4
            digits.append((k, d))
            c -= d
        c >>= 1
        k += 1
    return digits


def mul_const(var: str, c: int, utype: str = "uint32_t") -> str:
    """C expression for var * c (mod 2**width) on unsigned `var`, with shifts and adds."""
    c = int(c)
    if c == 0:
        return f"(({utype})0)"
    terms = [(s, d) for s, d in naf(c)]
    plus = [f"({var} << {s})" if s else var for s, d in terms if d > 0]
    minus = [f"({var} << {s})" if s else var for s, d in terms if d < 0]
    expr = " + ".join(plus) if plus else f"(({utype})0)"
    for m in minus:
        expr += f" - {m}"
    return f"({expr})"


def table8_name(signed: bool) -> str:
    return "nn_table8_s" if signed else "nn_table8_u"


def table8_source(signed: bool) -> str:
    """uint32_t nn_table8_[su](const uint8_t *x, nn_u32a *tab): table of x[0..7], returns sum x'."""
    flip = " ^ 0x80u" if signed else ""
    what = "x + 128 of signed bytes" if signed else "the unsigned bytes"
    loads = ", ".join(f"e{e} = x[{e}]{flip}" for e in range(8))
    return f"""\
/* Subset sums of x'[0..7] ({what}): entry m (uint16, little-endian in
 * tab[m / 2]) = sum of x'[e] over the set bits e of m.  Returns sum of x'[0..7]. */
NN_HOT static uint32_t {table8_name(signed)}(const uint8_t *x, nn_u32a *tab)
{{
    uint32_t {loads};
    /* hi[8h] = sums over x'[4..7] in both halves, parked in the last word of block h
     * (read just before the block is written): no stack array, no extra pointer */
    nn_u32a *hi = tab + 7;
    uint32_t q;
    hi[0] = 0;
    hi[8] = e4 + (e4 << 16);
    q = e5 + (e5 << 16); hi[16] = q; hi[24] = hi[8] + q;
    q = e6 + (e6 << 16); hi[32] = q; hi[40] = hi[8] + q; hi[48] = hi[16] + q; hi[56] = hi[24] + q;
    q = e7 + (e7 << 16);
    for (int k = 0; k < 64; k += 8)
        hi[64 + k] = hi[k] + q;
    uint32_t a0 = e0 << 16;       /* entries 0 and 1: 0 and x'[0] */
    uint32_t p1 = e1 + (e1 << 16), p2 = e2 + (e2 << 16), p3 = e3 + (e3 << 16);
    uint32_t a1 = a0 + p1, a2 = a0 + p2, a3 = a1 + p2;
    uint32_t a4 = a0 + p3, a5 = a1 + p3, a6 = a2 + p3, a7 = a3 + p3;
    nn_u32a *end = tab + 128;
    do {{
        uint32_t b = tab[7];
        tab[0] = a0 + b; tab[1] = a1 + b; tab[2] = a2 + b; tab[3] = a3 + b;
        tab[4] = a4 + b; tab[5] = a5 + b; tab[6] = a6 + b; tab[7] = a7 + b;
        tab += 8;
    }} while (tab != end);
    return tab[-1] >> 16;         /* entry 255: all eight */
}}
"""


def horner_step(var: str, ratio: int, term: str, utype: str) -> str:
    """var * ratio + term, multiplier-free."""
    if ratio == 2:
        return f"({var} << 1) + {term}"
    return f"{mul_const(var, ratio, utype)} + {term}"


def dot8_name(planes: int, ratio: int, wide: bool, unroll: int) -> str:
    return f"nn_dot8_p{planes}r{ratio}{'_64' if wide else ''}_u{unroll}"


def dot8_source(planes: int, ratio: int, wide: bool, unroll: int) -> str:
    """acc[j] += sum_k ratio**k * T[w[j, plane k]] for j in [acc, end), `unroll` at a time."""
    utype = "uint64_t" if wide else "uint32_t"
    acc_t = "nn_u64a" if wide else "nn_u32a"
    body = []
    for u in range(unroll):
        v = f"h{u}"
        base = u * planes
        body.append(f"        {utype} {v} = tab[w[{base}]];")
        for k in range(1, planes):
            body.append(f"        {v} = {horner_step(v, ratio, f'tab[w[{base + k}]]', utype)};")
    for u in range(unroll):
        body.append(f"        acc[{u}] += h{u};")
    body += [f"        acc += {unroll};", f"        w += {unroll * planes};"]
    lines = "\n".join(body)
    return f"""\
/* acc[j] += sum over planes of {ratio}^k * T[byte] for {planes} plane byte(s) per output. */
NN_HOT static void {dot8_name(planes, ratio, wide, unroll)}(const nn_u16a *tab, const uint8_t *w, {acc_t} *acc, {acc_t} *end)
{{
    do {{
{lines}
    }} while (acc != end);
}}
"""


def mul_runtime_name(wide: bool) -> str:
    return "nn_mul_u64" if wide else "nn_mul_u32"


def mul_runtime_source(wide: bool) -> str:
    """a * m (mod 2**width) by shifts and adds over the bits of m (per-channel multipliers)."""
    utype = "uint64_t" if wide else "uint32_t"
    return f"""\
/* a * m without a multiplier: one add per set bit of m. */
static {utype} {mul_runtime_name(wide)}({utype} a, uint32_t m)
{{
    {utype} r = 0;
    while (m) {{
        if (m & 1u)
            r += a;
        a <<= 1;
        m >>= 1;
    }}
    return r;
}}
"""


def round_shift_name(rounding: str, wide: bool) -> str:
    return f"nn_shift_{rounding}{'_64' if wide else ''}"


def round_shift_source(rounding: str, wide: bool) -> str:
    """t / 2**s rounded as ir.shift_round does, for a shift known only at run time."""
    stype = "int64_t" if wide else "int32_t"
    name = round_shift_name(rounding, wide)
    if rounding == "floor":
        body = "    return t >> s;"
    else:
        bit = "(t >> s) & 1" if rounding == "half_even" else "(~t >> s) & 1"
        body = (f"    if (s == 0)\n        return t;\n"
                f"    return (t + ((({stype})1 << (s - 1)) - 1) + ({bit})) >> s;")
    return f"""\
/* t / 2^s rounded ({rounding.replace('_', ' ')}); an arithmetic right shift on GCC. */
static {stype} {name}({stype} t, unsigned s)
{{
{body}
}}
"""


def bitserial_name(ctype: str, wide: bool) -> str:
    return f"nn_bits_{ctype.replace('_t', '')}{'_64' if wide else ''}"


def bitserial_source(ctype: str, wide: bool) -> str:
    """h + sum of x[i] over the set bits of the plane words: for inputs wider than 8 bits."""
    utype = "uint64_t" if wide else "uint32_t"
    xt = {"int8_t": "int8_t", "uint8_t": "uint8_t", "int16_t": "nn_i16a", "uint16_t": "nn_u16a", "int32_t": "nn_i32a",
          "uint32_t": "nn_u32a"}[ctype]
    return f"""\
/* h + sum of x[i] whose bit is set in the words w[0..]: one masked add per input. */
NN_HOT static {utype} {bitserial_name(ctype, wide)}({utype} h, const {xt} *x, int n, const uint32_t *w)
{{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {{
        if ((i & 31) == 0)
            v = *w++;
        h += ({utype})x[i] & (0 - ({utype})(v & 1u));
        v >>= 1;
    }}
    return h;
}}
"""
