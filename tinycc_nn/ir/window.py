"""Exact semantics of the 2-D window ops (conv, maxpool, sumpool) on integer maps.

A map is [C, H, W] in C order, as ONNX's NCHW without the batch.  `pads` are
[top, left, bottom, right] (ONNX writes [top, left, bottom, right] too, as
x1_begin, x2_begin, x1_end, x2_end).  Outside the map a conv or sumpool reads
`pad_value` (per input channel: the integer that stands for float 0.0, i.e. the
zero point), and maxpool reads nothing (ONNX pads MaxPool with -inf).  The output
size is floor((H + top + bottom - kernel) / stride) + 1 (ceil_mode 0).

These functions run on batches [n, C, H, W] of int64 and are copied verbatim into
the reference backend's model.py, so they use numpy only.
"""
from __future__ import annotations

import numpy as np


def window_out_hw(in_shape, kernel, strides, pads):
    """(Ho, Wo) of a window op."""
    _, h, w = in_shape
    return ((h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1,
            (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1)


def window_patches(x, in_shape, kernel, strides, pads, fill):
    """[n, C, Ho, Wo, kh, kw] views of the padded map; `fill` per channel (or scalar)."""
    c, h, w = in_shape
    x = np.asarray(x, np.int64).reshape(-1, c, h, w)
    fill = np.broadcast_to(np.asarray(fill, np.int64), (c,))
    xp = np.empty((x.shape[0], c, h + pads[0] + pads[2], w + pads[1] + pads[3]), np.int64)
    xp[...] = fill[None, :, None, None]
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + w] = x
    win = np.lib.stride_tricks.sliding_window_view(xp, tuple(kernel), axis=(2, 3))
    ho, wo = window_out_hw(in_shape, kernel, strides, pads)
    return win[:, :, :ho * strides[0]:strides[0], :wo * strides[1]:strides[1]][:, :, :ho, :wo]


def conv_values(x, w, in_shape, strides, pads, group, pad_value):
    """acc[n, m, oy, ox] = sum over m's group of input channels and the kernel taps of
    x_padded[n, c, oy*sh + ky - top, ox*sw + kx - left] * w[m, c', ky, kx]."""
    w = np.asarray(w, np.int64)
    m_out, cg, kh, kw = w.shape
    p = window_patches(x, in_shape, (kh, kw), strides, pads, pad_value)
    n, _, ho, wo = p.shape[:4]
    p = p.reshape(n, group, cg, ho, wo, kh, kw)
    wg = w.reshape(group, m_out // group, cg, kh, kw)
    out = np.einsum("ngcyxij,gmcij->ngmyx", p, wg, optimize=True)
    return out.reshape(n, m_out, ho, wo)


def maxpool_values(x, in_shape, kernel, strides, pads):
    """The largest element of each window that lies inside the map."""
    p = window_patches(x, in_shape, kernel, strides, pads, np.iinfo(np.int64).min)
    return p.max(axis=(4, 5))


def sumpool_values(x, in_shape, kernel, strides, pads, pad_value):
    """The sum of each window, `pad_value` counted for every tap outside the map."""
    p = window_patches(x, in_shape, kernel, strides, pads, pad_value)
    return p.sum(axis=(4, 5))
