"""Weights as bit planes, packed the way the CH32V003 kernels read them.

A layer's weight values are written w = offset + scale * sum_k ratio**k * b_k with
bits b_k (k = 0 .. planes-1).  Then for one output neuron

    sum_i w_i * x_i = offset * X + scale * H,   H = sum_k ratio**k * P_k,
    P_k = sum of the x_i whose weight has bit k set,   X = sum of all x_i,

so the dot product needs no multiplication: H is evaluated by Horner's rule from
the top plane down (h = h * ratio + P_k, ratio 2 is a shift), and offset * X and
scale * (...) are constant multiplications done once per neuron or layer with
shifts and adds.  With ratio 2 every integer set fits (code = (w - min) / gcd of
the differences: binary, ternary, odd, int and uint codes); {-2,-1,+1,+2} and every
set of the form {d, d+1, d+r, d+r+1} * scale fits two planes with ratio r.

Two layouts (bit e of a byte or word is input e of its group):
  * `pack_groups8`: one byte per (group of 8 inputs, output, plane), planes from the
    top one down; a byte indexes the 256-entry subset-sum table of its 8 inputs.
  * `pack_words32`: one 32-bit word per (output, plane, 32 inputs), for the
    bit-serial kernel of layers whose inputs are wider than 8 bits.
Inputs past the end of the layer get zero bits.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np


@dataclass(frozen=True)
class PlaneCode:
    """w = offset + scale * sum_k ratio**k * b_k over `planes` bits."""
    offset: int
    scale: int
    ratio: int
    planes: int

    @classmethod
    def for_values(cls, values) -> "PlaneCode":
        vals = sorted({int(v) for v in np.asarray(values).ravel()})
        lo = vals[0]
        diffs = [v - lo for v in vals]
        step = 0
        for d in diffs:
            step = gcd(step, d)
        if step == 0:                      # one value: w = offset everywhere
            return cls(lo, 1, 2, 0)
        codes = [d // step for d in diffs]
        best = cls(lo, step, 2, max(codes).bit_length())
        top = max(codes)
        if best.planes > 2 and len(codes) <= 4 and set(codes) <= {0, 1, top - 1, top}:
            best = cls(lo, step, top - 1, 2)
        return best

    def bits(self, w) -> np.ndarray:
        """0/1 array [..., planes]: bit k of each weight's code."""
        v = (np.asarray(w, np.int64) - self.offset)
        if self.planes == 0:
            return np.zeros(v.shape + (0,), np.int64)
        if (v % self.scale).any():
            raise ValueError("weights are not on the code's grid")
        v = v // self.scale
        out = np.zeros(v.shape + (self.planes,), np.int64)
        for k in range(self.planes):
            out[..., k] = v % self.ratio
            v = v // self.ratio
        if (v != 0).any() or (out > 1).any():
            raise ValueError("weights are outside the code's value set")
        return out

    def values(self) -> list:
        """Every value a code can stand for (for checks)."""
        vals = set()
        for c in range(1 << self.planes):
            vals.add(self.offset + self.scale * sum(self.ratio ** k for k in range(self.planes)
                                                     if c >> k & 1))
        return sorted(vals)


def _padded_bits(code: PlaneCode, w: np.ndarray, multiple: int) -> np.ndarray:
    """Plane bits [n_in padded, n_out, planes], highest plane first on the last axis."""
    bits = code.bits(w)[..., ::-1]
    n_in = bits.shape[0]
    pad = -n_in % multiple
    if pad:
        bits = np.concatenate([bits, np.zeros((pad,) + bits.shape[1:], np.int64)])
    return bits


def pack_groups8(code: PlaneCode, w) -> np.ndarray:
    """uint8 [groups * n_out * planes]: byte (g, j, plane) = mask of inputs 8g..8g+7."""
    bits = _padded_bits(code, np.asarray(w), 8)
    n, n_out, planes = bits.shape
    grouped = bits.reshape(n // 8, 8, n_out, planes)
    weights = (1 << np.arange(8, dtype=np.int64))[None, :, None, None]
    return (grouped * weights).sum(axis=1).astype(np.uint8).ravel()


def pack_words32(code: PlaneCode, w) -> np.ndarray:
    """uint32 [n_out * planes * words]: word (j, plane, m) = bits of inputs 32m..32m+31."""
    bits = _padded_bits(code, np.asarray(w), 32)
    n, n_out, planes = bits.shape
    grouped = bits.reshape(n // 32, 32, n_out, planes).transpose(2, 3, 0, 1)
    weights = (1 << np.arange(32, dtype=np.uint64))
    return (grouped.astype(np.uint64) * weights).sum(axis=-1).astype(np.uint32).ravel()
