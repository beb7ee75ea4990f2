"""IR value types, and IR identifiers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorType:
    """Element signedness and width, shape, and the proven value interval [lo, hi]."""
    signed: bool
    bits: int
    shape: tuple
    lo: int
    hi: int

    @classmethod
    def for_range(cls, lo: int, hi: int, shape) -> "TensorType":
        lo, hi = int(lo), int(hi)
        if lo < 0:
            bits = max((-lo - 1).bit_length(), max(hi, 0).bit_length()) + 1
        else:
            bits = max(hi.bit_length(), 1)
        return cls(lo < 0, bits, tuple(int(d) for d in shape), lo, hi)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def channels(self) -> int:
        """Channels are axis 0: a vector's elements, a [C, H, W] map's planes."""
        return int(self.shape[0]) if self.shape else 1

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{'i' if self.signed else 'u'}{self.bits}[{dims}] {self.lo}..{self.hi}"


def identifier(text: str, prefix: str) -> str:
    """`text` as an IR identifier: ASCII letters, digits, '_' and '.', not starting with a
    digit or '.'; `prefix` is put in front when it would."""
    name = "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in text)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = prefix + "_" + name
    return name
