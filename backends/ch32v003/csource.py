"""C text helpers: integer types, literals, constant arrays, and the module being built."""
from __future__ import annotations

import numpy as np

from ...errors import TinyccError

INT_TYPES = (("int8_t", -(1 << 7), (1 << 7) - 1), ("uint8_t", 0, (1 << 8) - 1),
             ("int16_t", -(1 << 15), (1 << 15) - 1), ("uint16_t", 0, (1 << 16) - 1),
             ("int32_t", -(1 << 31), (1 << 31) - 1), ("uint32_t", 0, (1 << 32) - 1),
             ("int64_t", -(1 << 63), (1 << 63) - 1))
SIZEOF = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
          "int64_t": 8, "uint64_t": 8}
# pointer element types for values in the arena (see kernels.PRELUDE)
ARENA_VIEW = {"int8_t": "int8_t", "uint8_t": "uint8_t", "int16_t": "nn_i16a",
              "uint16_t": "nn_u16a", "int32_t": "nn_i32a", "uint32_t": "nn_u32a"}
INT32 = (-(1 << 31), (1 << 31) - 1)


def fits(lo: int, hi: int, bounds=INT32) -> bool:
    return bounds[0] <= int(lo) and int(hi) <= bounds[1]


def narrow_ctype(lo: int, hi: int) -> str:
    """The smallest C integer type holding [lo, hi]."""
    for name, tlo, thi in INT_TYPES:
        if tlo <= int(lo) and int(hi) <= thi:
            return name
    raise TinyccError(f"no C integer type holds {lo}..{hi}")


def storage_ctype(ttype, what: str) -> str:
    """C type of an IR vector element: the width its proven range needs (1, 2 or 4 bytes)."""
    if ttype.bits > 32:
        raise TinyccError(f"{what} needs {ttype.bits}-bit integers ({ttype.lo}..{ttype.hi}); "
                          "the ch32v003 target stores values in at most 32 bits")
    width = 8 if ttype.bits <= 8 else 16 if ttype.bits <= 16 else 32
    return f"{'' if ttype.signed else 'u'}int{width}_t"


def lit(v: int) -> str:
    """A C literal of value v with a type wide enough for it."""
    v = int(v)
    if v == -(1 << 31):
        return "(-2147483647 - 1)"
    if -(1 << 31) < v < (1 << 31):
        return str(v)
    if 0 <= v < (1 << 32):
        return f"{v}u"
    if v == -(1 << 63):
        return "(-INT64_C(9223372036854775807) - 1)"
    return f"INT64_C({v})"


def c_name(name: str) -> str:
    """An IR value name as a C identifier fragment."""
    return "".join(c if c.isalnum() else "_" for c in name)


class CModule:
    """What a model.c is made of, gathered while walking the graph."""

    def __init__(self):
        self.arrays: list = []       # C text of const arrays
        self.kernels: dict = {}      # name -> C text, each emitted once
        self.functions: list = []    # per-op static functions
        self.flash: dict = {}        # array name -> bytes (for the report and DoesNotFit)

    def array(self, name: str, values, comment: str, ctype: str | None = None) -> str:
        """A `static const` array in flash; returns its name.  Type: narrowest fitting."""
        values = np.asarray(values, np.int64).ravel()
        if ctype is None:
            ctype = narrow_ctype(values.min(), values.max()) if values.size else "uint8_t"
        hexa = ctype in ("uint8_t", "uint32_t")
        width = 16 if SIZEOF[ctype] <= 2 else 8
        items = [f"0x{int(v):0{SIZEOF[ctype] * 2}x}" if hexa else lit(v) for v in values]
        rows = [", ".join(items[i:i + width]) for i in range(0, len(items), width)]
        body = ",\n".join("    " + r for r in rows)
        self.arrays.append(f"/* {comment} */\nstatic const {ctype} {name}[{len(items)}] = {{\n{body}\n}};\n")
        self.flash[name] = len(items) * SIZEOF[ctype]
        return name

    def kernel(self, name: str, source: str) -> str:
        self.kernels.setdefault(name, source)
        return name
