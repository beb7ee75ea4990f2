"""Data augmentation for 28x28 digits, in numpy, applied before downscaling.

Shifting by whole pixels at 28x28 is a shift by a fraction of a pixel after box
averaging to 8x8 or 16x16, so the small models see the sub-pixel jitter real digits
have.  Everything draws from one numpy Generator: a seed fixes the whole run.
"""

from __future__ import annotations

import numpy as np

CHUNK = 8192  # images per vectorized step: bounds the float64 temporaries to ~100 MB


def random_shift(rng: np.random.Generator, images: np.ndarray, max_shift: int = 2) -> np.ndarray:
    """Shift each uint8 image [N, H, W] by whole pixels in -max_shift..max_shift, zero fill."""
    if max_shift == 0:
        return images.copy()
    n, h, w = images.shape
    k = max_shift
    padded = np.pad(images, ((0, 0), (k, k), (k, k)))
    dy, dx = rng.integers(-k, k + 1, size=(2, n))
    out = np.empty_like(images)
    for sy in range(-k, k + 1):
        for sx in range(-k, k + 1):
            idx = np.flatnonzero((dy == sy) & (dx == sx))
            out[idx] = padded[idx, k - sy:k - sy + h, k - sx:k - sx + w]
    return out


def _bilinear(images: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample images [n, H, W] at float coordinates [n, H, W], zero outside."""
    n, h, w = images.shape
    # one zero border row/column makes "outside" a plain index into the padded image
    flat = np.pad(images, ((0, 0), (1, 1), (1, 1))).ravel()
    y0, x0 = np.floor(ys), np.floor(xs)
    # far outside: sample only the zero border (weight 0 on the neighbour inside)
    fy = np.where(y0 < -1, 0, ys - y0).astype(np.float32)
    fx = np.where(x0 < -1, 0, xs - x0).astype(np.float32)
    y0 = np.clip(y0, -1, h).astype(np.int64) + 1
    x0 = np.clip(x0, -1, w).astype(np.int64) + 1
    base = np.arange(n)[:, None, None] * ((h + 2) * (w + 2))
    at = base + y0 * (w + 2) + x0
    y1 = np.where(y0 <= h, w + 2, 0)  # step to the next row unless already on the border
    x1 = np.where(x0 <= w, 1, 0)
    top = flat[at] * (1 - fx) + flat[at + x1] * fx
    bottom = flat[at + y1] * (1 - fx) + flat[at + y1 + x1] * fx
    return top * (1 - fy) + bottom * fy


def random_affine(rng: np.random.Generator, images: np.ndarray, max_shift: float = 2.0,
                  max_degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1)) -> np.ndarray:
    """Rotate, scale and shift each uint8 image about its centre; bilinear, rounded to uint8.

    Each output pixel p takes the input at c + A^-1 (p - c - t), A the rotation by a
    uniform angle in +-max_degrees times a uniform zoom in `scale`, t a uniform shift.
    """
    n, h, w = images.shape
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n))
    zoom = rng.uniform(*scale, n)
    ty, tx = rng.uniform(-max_shift, max_shift, (2, n))
    cy, cx = (h - 1) / 2, (w - 1) / 2
    gy, gx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    out = np.empty_like(images)
    for lo in range(0, n, CHUNK):
        sl = slice(lo, lo + CHUNK)
        cos, sin, z, dy, dx = (v[sl, None, None].astype(np.float32)
                               for v in (np.cos(angle), np.sin(angle), zoom, ty, tx))
        py, px = gy[None] - cy - dy, gx[None] - cx - dx
        # inverse of zoom * rotation: rotate by -angle, divide by zoom
        ys = cy + (cos * py - sin * px) / z
        xs = cx + (sin * py + cos * px) / z
        sampled = _bilinear(images[sl].astype(np.float32), ys, xs)
        out[sl] = np.clip(np.rint(sampled), 0, 255).astype(np.uint8)
    return out
