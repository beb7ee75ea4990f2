"""The window ops' numpy semantics (ir/window.py) against plain loops over the ONNX
definitions, on random shapes, kernels, strides, pads, groups and pad values."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycc_nn.ir import conv_values, maxpool_values, sumpool_values, window_out_hw


def _padded(x, c, h, w, pads, fill):
    out = {}
    for ch in range(c):
        for y in range(-pads[0], h + pads[2]):
            for xx in range(-pads[1], w + pads[3]):
                inside = 0 <= y < h and 0 <= xx < w
                out[ch, y, xx] = x[ch, y, xx] if inside else fill(ch)
    return out


def _windows(c, h, w, kernel, strides, pads):
    ho, wo = window_out_hw((c, h, w), kernel, strides, pads)
    for oy in range(ho):
        for ox in range(wo):
            taps = [(oy * strides[0] + ky - pads[0], ox * strides[1] + kx - pads[1], ky, kx)
                    for ky in range(kernel[0]) for kx in range(kernel[1])]
            yield oy, ox, taps


shapes = st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 7), st.integers(1, 3),
                   st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
                   st.lists(st.integers(0, 2), min_size=4, max_size=4), st.integers(0, 2**31))


@settings(max_examples=60, deadline=None)
@given(shapes, st.integers(1, 3))
def test_conv_matches_the_definition(shape, groups_pick):
    c, h, w, kh, kw, sh, sw, pads, seed = shape
    kh, kw = min(kh, h + pads[0] + pads[2]), min(kw, w + pads[1] + pads[3])
    group = [g for g in range(1, c + 1) if c % g == 0][groups_pick % len([g for g in range(1, c + 1) if c % g == 0])]
    rng = np.random.default_rng(seed)
    m = group * int(rng.integers(1, 3))
    x = rng.integers(-128, 128, (c, h, w))
    wts = rng.integers(-8, 8, (m, c // group, kh, kw))
    pad_value = rng.integers(-5, 5, c)
    got = conv_values(x[None], wts, [c, h, w], [sh, sw], pads, group, pad_value.tolist())[0]
    xp = _padded(x, c, h, w, pads, lambda ch: pad_value[ch])
    for mo in range(m):
        g = mo // (m // group)
        for oy, ox, taps in _windows(c, h, w, (kh, kw), (sh, sw), pads):
            want = sum(xp[g * (c // group) + ci, y, xx] * wts[mo, ci, ky, kx]
                       for ci in range(c // group) for y, xx, ky, kx in taps)
            assert got[mo, oy, ox] == want


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_pools_match_the_definition(shape):
    c, h, w, kh, kw, sh, sw, pads, seed = shape
    pads = [min(p, k - 1) for p, k in zip(pads, (kh, kw, kh, kw))]
    kh, kw = min(kh, h), min(kw, w)
    pads = [min(p, k - 1) for p, k in zip(pads, (kh, kw, kh, kw))]
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (c, h, w))
    got_max = maxpool_values(x[None], [c, h, w], [kh, kw], [sh, sw], pads)[0]
    got_sum = sumpool_values(x[None], [c, h, w], [kh, kw], [sh, sw], pads, 3)[0]
    xp = _padded(x, c, h, w, pads, lambda ch: 3)
    for ch in range(c):
        for oy, ox, taps in _windows(c, h, w, (kh, kw), (sh, sw), pads):
            inside = [x[ch, y, xx] for y, xx, _, _ in taps if 0 <= y < h and 0 <= xx < w]
            assert got_max[ch, oy, ox] == max(inside)
            assert got_sum[ch, oy, ox] == sum(xp[ch, y, xx] for y, xx, _, _ in taps)
