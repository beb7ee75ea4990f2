"""pdk14 encodings (14-bit words; PFS154 and relatives), from the free-pdk "14 bit
instruction set" table and checked against sdaspdk14 4.2 by the tests.

Address reach: RAM operands 7 bits (0x00-0x7f), bit operations on RAM 6 bits (0x00-0x3f),
I/O 6 bits (0x00-0x3f), idxm/ldt16/stt16 pointers even, code addresses 11 bits (2048 words).
Beyond pdk13: cneqsn, comp, nadd, swapc. The free-pdk device table lists comp and nadd as
missing on the PFS154 itself (present on PFS172, PMS152, ...): SDCC's assembler encodes
them for every pdk14 part, so a code generator for the PFS154 must not emit them.
sdas 4.2 accepts ``swapc.io`` only with a named register (``f``, ``sp``); with a numeric
address it encodes the right word but reports an addressing error.
"""

from .isa import Field, build_core

M = (Field("M", 0, 7),)
IO = (Field("IO", 0, 6),)
K = (Field("k", 0, 8),)
BIT_M = (Field("M", 0, 6), Field("n", 6, 3))
BIT_IO = (Field("IO", 0, 6), Field("n", 6, 3))
WORD_M = (Field("M", 0, 7, align=2),)
CODE = (Field("k", 0, 11),)

ENCODINGS = [
    ("nop", 0x0000, ()), ("ldsptl", 0x0006, ()), ("ldspth", 0x0007, ()),
    ("addc a", 0x0060, ()), ("subc a", 0x0061, ()), ("izsn a", 0x0062, ()),
    ("dzsn a", 0x0063, ()), ("pcadd a", 0x0067, ()), ("not a", 0x0068, ()),
    ("neg a", 0x0069, ()), ("sr a", 0x006A, ()), ("sl a", 0x006B, ()),
    ("src a", 0x006C, ()), ("slc a", 0x006D, ()), ("swap a", 0x006E, ()),
    ("wdreset", 0x0070, ()), ("pushaf", 0x0072, ()), ("popaf", 0x0073, ()),
    ("reset", 0x0075, ()), ("stopsys", 0x0076, ()), ("stopexe", 0x0077, ()),
    ("engint", 0x0078, ()), ("disgint", 0x0079, ()), ("ret", 0x007A, ()),
    ("reti", 0x007B, ()), ("mul", 0x007C, ()),
    ("xor.io IO, a", 0x00C0, IO), ("mov.io IO, a", 0x0180, IO), ("mov.io a, IO", 0x01C0, IO),
    ("ret #k", 0x0200, K),
    ("stt16 M", 0x0300, WORD_M), ("ldt16 M", 0x0301, WORD_M),
    ("idxm M, a", 0x0380, WORD_M), ("idxm a, M", 0x0381, WORD_M),
    ("swapc.io IO, #n", 0x0400, BIT_IO),
    ("comp a, M", 0x0600, M), ("comp M, a", 0x0680, M),
    ("nadd a, M", 0x0700, M), ("nadd M, a", 0x0780, M),
    ("add M, a", 0x0800, M), ("sub M, a", 0x0880, M), ("addc M, a", 0x0900, M),
    ("subc M, a", 0x0980, M), ("and M, a", 0x0A00, M), ("or M, a", 0x0A80, M),
    ("xor M, a", 0x0B00, M), ("mov M, a", 0x0B80, M),
    ("add a, M", 0x0C00, M), ("sub a, M", 0x0C80, M), ("addc a, M", 0x0D00, M),
    ("subc a, M", 0x0D80, M), ("and a, M", 0x0E00, M), ("or a, M", 0x0E80, M),
    ("xor a, M", 0x0F00, M), ("mov a, M", 0x0F80, M),
    ("addc M", 0x1000, M), ("subc M", 0x1080, M), ("izsn M", 0x1100, M),
    ("dzsn M", 0x1180, M), ("inc M", 0x1200, M), ("dec M", 0x1280, M),
    ("clear M", 0x1300, M), ("xch a, M", 0x1380, M), ("not M", 0x1400, M),
    ("neg M", 0x1480, M), ("sr M", 0x1500, M), ("sl M", 0x1580, M),
    ("src M", 0x1600, M), ("slc M", 0x1680, M), ("ceqsn a, M", 0x1700, M),
    ("cneqsn a, M", 0x1780, M),
    ("t0sn.io IO, #n", 0x1800, BIT_IO), ("t1sn.io IO, #n", 0x1A00, BIT_IO),
    ("set0.io IO, #n", 0x1C00, BIT_IO), ("set1.io IO, #n", 0x1E00, BIT_IO),
    ("t0sn M, #n", 0x2000, BIT_M), ("t1sn M, #n", 0x2200, BIT_M),
    ("set0 M, #n", 0x2400, BIT_M), ("set1 M, #n", 0x2600, BIT_M),
    ("add a, #k", 0x2800, K), ("sub a, #k", 0x2900, K), ("ceqsn a, #k", 0x2A00, K),
    ("cneqsn a, #k", 0x2B00, K), ("and a, #k", 0x2C00, K), ("or a, #k", 0x2D00, K),
    ("xor a, #k", 0x2E00, K), ("mov a, #k", 0x2F00, K),
    ("goto k", 0x3000, CODE), ("call k", 0x3800, CODE),
]

PDK14 = build_core("pdk14", 14, ENCODINGS, aliases={"xch M": "xch a, M"})
