"""Weights as bit planes: the multiplier-free dot product of the Padauk backend.

A weight code with bits b_k stands for w = sum_k a_k * b_k + d.  Then for one neuron

    sum_i w_i * u_i = sum_k a_k * P_k + d * U,   P_k = sum of u_i with b_k(w_i) = 1,
                                                  U   = sum of all u_i,

and P_k costs one bit test and one add per input: no multiplication, no decoding.
U is the same for every neuron of a layer.  Every value set has such a form:
two's complement, unsigned, odd and binary codes are affine in their bits; so are
{-2,-1,+1,+2} (codes in value order: w = 3*b1 + b0 - 2) and {-1,0,+1} (codes
0,1,2: w = b0 + 2*b1 - 1).  When that needs more planes than the set has non-zero
values, one plane per non-zero value is cheaper (w = sum_v v * [w == v], d = 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Planes:
    coefs: tuple          # a_k per plane
    offset: int           # d
    bits: np.ndarray      # [planes, K, N] of 0/1

    @property
    def count(self) -> int:
        return len(self.coefs)


def _affine_fit(values, codes, nbits):
    """Coefficients (a_k, d) with value == sum a_k*bit_k(code) + d for all, or None."""
    rows = np.array([[(c >> k) & 1 for k in range(nbits)] + [1] for c in codes], np.float64)
    sol, *_ = np.linalg.lstsq(rows, np.array(values, np.float64), rcond=None)
    coef = np.rint(sol).astype(np.int64)
    if not np.array_equal(rows.astype(np.int64) @ coef, np.array(values, np.int64)):
        return None
    return [int(a) for a in coef[:-1]], int(coef[-1])


def choose_code(values: list) -> tuple | None:
    """(value -> code, coefs, offset) for a bit-affine code of the value set, or None."""
    values = sorted(set(values))
    nbits = max((len(values) - 1).bit_length(), 1)
    candidates = []
    if values:
        # natural codes: value order (with odd-value spacing), and two's complement
        lo = values[0]
        step = 2 if all(v % 2 for v in values) and len(values) > 1 else 1
        width = max(((values[-1] - lo) // step).bit_length(), 1)
        candidates.append(({v: (v - lo) // step for v in values}, width))
        span = max(abs(v) for v in values)
        width2 = max(span.bit_length() + 1, 1)
        candidates.append(({v: v & ((1 << width2) - 1) for v in values}, width2))
    candidates.append(({v: i for i, v in enumerate(values)}, nbits))
    best = None
    for mapping, width in candidates:
        fit = _affine_fit([v for v in values], [mapping[v] for v in values], width)
        if fit is None:
            continue
        coefs, d = fit
        used = [k for k in range(width) if coefs[k] != 0]
        if best is None or len(used) < len(best[1]):
            best = (mapping, used, coefs, d)
    if best is None:
        return None
    mapping, used, coefs, d = best
    return mapping, used, [coefs[k] for k in used], d


def decompose(weights: np.ndarray) -> Planes:
    """Bit planes of an integer weight matrix [K, N]."""
    w = np.asarray(weights, np.int64)
    values = sorted(set(w.ravel().tolist()))
    code = choose_code(values)
    nonzero = [v for v in values if v != 0]
    if code is not None and len(code[1]) <= len(nonzero):
        mapping, used, coefs, d = code
        codes = np.vectorize(mapping.get, otypes=[np.int64])(w) if w.size else w
        bits = np.stack([(codes >> k) & 1 for k in used]) if used else np.zeros((0,) + w.shape, np.int64)
        planes = Planes(tuple(coefs), d, bits.astype(np.uint8))
    else:
        bits = np.stack([(w == v) for v in nonzero]).astype(np.uint8)
        planes = Planes(tuple(nonzero), 0, bits)
    recon = np.tensordot(np.array(planes.coefs, np.int64), planes.bits.astype(np.int64), axes=1) \
        if planes.count else np.zeros_like(w)
    assert np.array_equal(recon + planes.offset, w), "bit-plane decomposition is not exact"
    return planes


def group_shape(planes: int) -> tuple[int, int]:
    """(inputs per kernel call, table bytes per call) for `planes` bit planes.

    With 1, 2 or 4 planes one byte holds every plane of 8, 4 or 2 inputs (one table
    fetch, one bit-tested register); otherwise each plane gets a byte of 8 inputs.
    """
    if planes in (1, 2, 4, 8):
        return 8 // planes, 1
    return 8, max(planes, 1)


def bit_of(plane: int, i: int, group: int) -> tuple[int, int]:
    """(byte, bit) of plane `plane`, input `i` of a group in the packed bytes."""
    return divmod(plane * group + i, 8)


def pack_groups(bits: np.ndarray, group: int = 8) -> np.ndarray:
    """[planes, K, N] bits -> bytes [N, groups, bytes per group] (layout of `bit_of`)."""
    p, k, n = bits.shape
    groups = -(-k // group)
    nbytes = -(-p * group // 8)
    padded = np.zeros((p, groups * group, n), np.int64)
    padded[:, :k, :] = bits
    out = np.zeros((n, groups, nbytes), np.int64)
    for plane in range(p):
        for i in range(group):
            byte, bit = bit_of(plane, i, group)
            out[:, :, byte] |= padded[plane, i::group, :].T << bit
    return out
