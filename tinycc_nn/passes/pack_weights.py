"""pack-weights: choose each weight tensor's encoding from the values it really uses.

The frontend records every const's exact value set.  This pass picks the fewest
bits per weight and, among encodings of equal width, the one backends decode
cheapest, and records it as `encoding`, `code_bits` and `codebook` (code c stands for
codebook[c]).  The bit layout in memory is each backend's business.

  binary    {-1,+1}               1 bit   code = (w+1)/2
  ternary   within {-1,0,+1}      2 bits  code = w+1
  pm2       within {-2,-1,+1,+2}  2 bits  bit1 = sign, bit0 = |w|-1
  odd       odd values within +-(2^b-1)   b bits  w = 2c - (2^b-1)
  int       within two's complement b bits (code = w mod 2^b)
  uint      within 0..2^b-1
  table     anything else: codebook = the sorted values
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from . import Pass


def _bits_for(count: int) -> int:
    return max((count - 1).bit_length(), 0)


def choose_encoding(values: set) -> tuple[str, int, list]:
    """(encoding, code_bits, codebook) for a set of integer weight values."""
    vals = sorted(values)
    candidates = []
    if set(vals) <= {-1, 1}:
        candidates.append(("binary", 1, [-1, 1]))
    if set(vals) <= {-1, 0, 1}:
        candidates.append(("ternary", 2, [-1, 0, 1]))
    if set(vals) <= {-2, -1, 1, 2}:
        candidates.append(("pm2", 2, [1, 2, -1, -2]))
    if all(v % 2 for v in vals):
        b = max(_bits_for(max(abs(v) for v in vals) + 1), 1)
        top = (1 << b) - 1
        candidates.append(("odd", b, list(range(-top, top + 1, 2))))
    lo, hi = vals[0], vals[-1]
    b = max(max((-lo - 1).bit_length(), hi.bit_length()) + 1, 1) if lo < 0 else max(hi.bit_length(), 1)
    if lo < 0:
        candidates.append(("int", b, list(range(0, 1 << (b - 1))) + list(range(-(1 << (b - 1)), 0))))
    else:
        candidates.append(("uint", b, list(range(1 << b))))
    candidates.append(("table", _bits_for(len(vals)), vals))
    return min(candidates, key=lambda c: c[1])     # min keeps the first of equal width


@dataclass(frozen=True)
class PackWeights(Pass):
    name = "pack-weights"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for n in graph.nodes_of("const"):
            attrs = graph.attrs(n)
            values = set(int(v) for v in attrs["values"].ravel())
            enc, bits, book = choose_encoding(values)
            new = {"encoding": enc, "code_bits": bits, "codebook": book}
            if any(attrs.get(k) != v for k, v in new.items()):
                attrs.update(new)
                changed = True
        return changed


def packed_bytes(graph: Graph) -> int:
    """Bytes of all weights at their code width (no padding between tensors)."""
    bits = 0
    for n in graph.nodes_of("const"):
        a = graph.attrs(n)
        bits += a.get("code_bits", 8) * a["values"].size
    return (bits + 7) // 8
