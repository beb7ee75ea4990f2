"""Weight schemes: the integer values a weight may take, and how many bits it packs into.

A scheme is data, not code, so that the quantizer, the exporter, the budget helper and
the compiler's weight packer read the same table and cannot disagree.  Every scheme pairs
with one power-of-two scale per tensor: weight = level * 2**e.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightScheme:
    """Allowed integer weight values (`levels`, sorted) and packed `bits` per weight."""

    name: str
    levels: tuple[int, ...]
    bits: int
    doc: str

    @property
    def max_level(self) -> int:
        return max(abs(v) for v in self.levels)


def _scheme(name: str, levels, bits: int, doc: str) -> WeightScheme:
    levels = tuple(sorted(int(v) for v in levels))
    assert len(levels) <= 2**bits, name
    return WeightScheme(name, levels, bits, doc)


SCHEMES: dict[str, WeightScheme] = {
    s.name: s
    for s in (
        _scheme("binary", (-1, 1), 1, "sign only; 8 weights per byte"),
        _scheme("ternary", (-1, 0, 1), 2, "BitNet b1.58 values, packed at 2 bits"),
        _scheme("pm2", (-2, -1, 1, 2), 2, "BitNetPDK values: add x or 2x, never skip"),
        _scheme("odd2", (-3, -1, 1, 3), 2, "BitNetMCU 2bitsym: uniform, w = 2k+1, k in -2..1"),
        _scheme("odd4", range(-15, 16, 2), 4, "BitNetMCU 4-bit: w = 2k+1, k in -8..7"),
        _scheme("int4", range(-7, 8), 4, "symmetric 4-bit integers"),
        _scheme("int8", range(-127, 128), 8, "symmetric 8-bit integers"),
    )
}


def get_scheme(scheme: str | WeightScheme) -> WeightScheme:
    """Look a scheme up by name; a helpful KeyError lists the known names."""
    if isinstance(scheme, WeightScheme):
        return scheme
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise KeyError(f"unknown weight scheme {scheme!r}; known: {', '.join(SCHEMES)}") from None
