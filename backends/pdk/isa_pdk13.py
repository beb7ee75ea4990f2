"""pdk13 encodings (13-bit words; PMS150C and relatives), from the free-pdk "13 bit
instruction set" table and checked against sdaspdk13 4.2 by the tests.

Address reach: RAM operands 6 bits (0x00-0x3f), bit operations on RAM only 4 bits
(0x00-0x0f), I/O 5 bits (0x00-0x1f), idxm/ldt16/stt16 pointers even and below 0x20, code
addresses 10 bits (1024 words). pdk13 has no cneqsn, comp, nadd, swapc.
"""

from .isa import Field, build_core

M = (Field("M", 0, 6),)
IO = (Field("IO", 0, 5),)
K = (Field("k", 0, 8),)
BIT_M = (Field("M", 0, 4), Field("n", 5, 3))
BIT_IO = (Field("IO", 0, 5), Field("n", 5, 3))
WORD_M = (Field("M", 0, 5, align=2),)
CODE = (Field("k", 0, 10),)

ENCODINGS = [
    ("nop", 0x0000, ()), ("ldsptl", 0x0006, ()), ("ldspth", 0x0007, ()),
    ("addc a", 0x0010, ()), ("subc a", 0x0011, ()), ("izsn a", 0x0012, ()),
    ("dzsn a", 0x0013, ()), ("pcadd a", 0x0017, ()), ("not a", 0x0018, ()),
    ("neg a", 0x0019, ()), ("sr a", 0x001A, ()), ("sl a", 0x001B, ()),
    ("src a", 0x001C, ()), ("slc a", 0x001D, ()), ("swap a", 0x001E, ()),
    ("wdreset", 0x0030, ()), ("pushaf", 0x0032, ()), ("popaf", 0x0033, ()),
    ("reset", 0x0035, ()), ("stopsys", 0x0036, ()), ("stopexe", 0x0037, ()),
    ("engint", 0x0038, ()), ("disgint", 0x0039, ()), ("ret", 0x003A, ()),
    ("reti", 0x003B, ()), ("mul", 0x003C, ()),
    ("xor.io IO, a", 0x0060, IO), ("mov.io IO, a", 0x0080, IO), ("mov.io a, IO", 0x00A0, IO),
    ("stt16 M", 0x00C0, WORD_M), ("ldt16 M", 0x00C1, WORD_M),
    ("idxm M, a", 0x00E0, WORD_M), ("idxm a, M", 0x00E1, WORD_M),
    ("ret #k", 0x0100, K),
    ("t0sn M, #n", 0x0200, BIT_M), ("t1sn M, #n", 0x0210, BIT_M),
    ("set0 M, #n", 0x0300, BIT_M), ("set1 M, #n", 0x0310, BIT_M),
    ("add M, a", 0x0400, M), ("sub M, a", 0x0440, M), ("addc M, a", 0x0480, M),
    ("subc M, a", 0x04C0, M), ("and M, a", 0x0500, M), ("or M, a", 0x0540, M),
    ("xor M, a", 0x0580, M), ("mov M, a", 0x05C0, M),
    ("add a, M", 0x0600, M), ("sub a, M", 0x0640, M), ("addc a, M", 0x0680, M),
    ("subc a, M", 0x06C0, M), ("and a, M", 0x0700, M), ("or a, M", 0x0740, M),
    ("xor a, M", 0x0780, M), ("mov a, M", 0x07C0, M),
    ("addc M", 0x0800, M), ("subc M", 0x0840, M), ("izsn M", 0x0880, M),
    ("dzsn M", 0x08C0, M), ("inc M", 0x0900, M), ("dec M", 0x0940, M),
    ("clear M", 0x0980, M), ("xch a, M", 0x09C0, M), ("not M", 0x0A00, M),
    ("neg M", 0x0A40, M), ("sr M", 0x0A80, M), ("sl M", 0x0AC0, M),
    ("src M", 0x0B00, M), ("slc M", 0x0B40, M), ("ceqsn a, M", 0x0B80, M),
    ("t0sn.io IO, #n", 0x0C00, BIT_IO), ("t1sn.io IO, #n", 0x0D00, BIT_IO),
    ("set0.io IO, #n", 0x0E00, BIT_IO), ("set1.io IO, #n", 0x0F00, BIT_IO),
    ("add a, #k", 0x1000, K), ("sub a, #k", 0x1100, K), ("ceqsn a, #k", 0x1200, K),
    ("and a, #k", 0x1400, K), ("or a, #k", 0x1500, K), ("xor a, #k", 0x1600, K),
    ("mov a, #k", 0x1700, K),
    ("goto k", 0x1800, CODE), ("call k", 0x1C00, CODE),
]

PDK13 = build_core("pdk13", 13, ENCODINGS, aliases={"xch M": "xch a, M"})
