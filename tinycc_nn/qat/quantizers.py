"""Fake quantizers with straight-through estimators and power-of-two scales.

Why powers of two: an integer times a power of two is exact in float32, so the torch
eval model, onnxruntime and the integer code on the part compute the very same numbers,
and rescaling between layers is a shift on a part without a multiplier.

In training mode the quantizers pass gradients straight through (weights: identity;
activations: identity inside the representable range, zero where they saturate).
In eval mode they compute exactly what ONNX QuantizeLinear/DequantizeLinear compute:
x / s, round half to even (torch.round), saturate, times s.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from tinycc_nn.qat.schemes import WeightScheme

SCALE_SEARCH = 10  # how many powers of two below the no-clipping one `weight_exponent` tries


@functools.lru_cache(maxsize=None)
def _table(levels: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    table = torch.tensor(levels, dtype=dtype)
    return table, (table[1:] + table[:-1]) / 2


def quantize_levels(x: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """Nearest value of `levels` for each element (ties go to the lower level), as float."""
    table, mids = _table(levels, x.dtype)
    return table[torch.bucketize(x, mids)]


def squared_error(w: torch.Tensor, s: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """Sum over the last axis of (w snapped to levels * s - w)**2, for every scale s
    broadcast against w (e.g. s [k, 1] against w [1, n]: one error per candidate scale)."""
    return ((quantize_levels(w / s, levels) * s - w) ** 2).sum(dim=-1)


def weight_exponent(w: torch.Tensor, scheme: WeightScheme, mode: str = "mse") -> int:
    """The power-of-two weight scale exponent e for tensor `w` (scale = 2**e).

    `max`: the smallest scale that clips nothing.  `mse`: among that one and the
    SCALE_SEARCH smaller ones, the one with the least squared quantization error, which
    for 1- and 2-bit schemes clips the tails much like BitNet's mean-|w| scaling does.
    """
    w = w.detach()
    amax = float(w.abs().max())
    if amax == 0.0:
        return 0
    top = math.ceil(math.log2(amax / scheme.max_level))
    if mode == "max":
        return top
    if mode != "mse":
        raise ValueError(f"weight scale mode {mode!r}: choose 'mse' or 'max'")
    exponents = torch.arange(top, top - SCALE_SEARCH - 1, -1, dtype=w.dtype)
    s = torch.exp2(exponents)[:, None]
    flat = w.reshape(1, -1)
    errors = squared_error(flat, s, scheme.levels)
    return int(exponents[int(torch.argmin(errors))])  # first minimum: the larger scale


def channel_exponents(w: torch.Tensor, scheme: WeightScheme, mode: str = "mse") -> torch.Tensor:
    """`weight_exponent` of each output channel w[c], in one vectorized step (float [out])."""
    w = w.detach().reshape(len(w), -1)
    amax = w.abs().amax(dim=1).clamp_min(1e-30)
    top = torch.ceil(torch.log2(amax / scheme.max_level))
    if mode == "max":
        return top
    if mode != "mse":
        raise ValueError(f"weight scale mode {mode!r}: choose 'mse' or 'max'")
    exponents = top[None, :] - torch.arange(SCALE_SEARCH + 1, dtype=w.dtype)[:, None]  # [k, out]
    s = torch.exp2(exponents)[:, :, None]
    errors = squared_error(w[None], s, scheme.levels)
    return exponents.gather(0, errors.argmin(dim=0, keepdim=True))[0]  # first minimum: larger scale


def fake_quantize_weight(w: torch.Tensor, scheme: WeightScheme, exponent: int | torch.Tensor) -> torch.Tensor:
    """w snapped to levels * 2**exponent; in training the gradient passes unchanged.

    `exponent` is one int for the tensor, or a tensor [out] of one per output channel
    (w's first dimension)."""
    if isinstance(exponent, torch.Tensor):
        s = torch.exp2(exponent.to(w.dtype)).reshape(-1, *[1] * (w.ndim - 1))
    else:
        s = 2.0**exponent
    snapped = quantize_levels(w.detach() / s, scheme.levels) * s
    return w + (snapped - w).detach() if w.requires_grad else snapped


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even forward, identity backward."""
    return x + (torch.round(x) - x).detach()


class ActQuant(nn.Module):
    """Activation fake quantizer: int8 (`signed`) or uint8 container, `bits` <= 8 used.

    The scale is 2**e with e chosen by `scale`:
      * "running_max": e = round(log2(m / qmax)) (or ceil, `rounding="ceil"`, never
        clips the calibrated maximum), m an exponential running mean of the batch max;
      * "learned": e = round(p), p trained by the LSQ gradient through the STE;
      * "fixed": e = `log2_scale`, e.g. -8 for inputs in [0, 1] as uint8.
    Zero point is always 0: unsigned after ReLU, symmetric otherwise.
    """

    def __init__(self, bits=8, signed=False, scale="running_max", log2_scale=None,
                 momentum=0.1, rounding="nearest"):
        super().__init__()
        if not 2 <= bits <= 8:
            raise ValueError(f"activation bits must be 2..8, got {bits}")
        if scale not in ("running_max", "learned", "fixed"):
            raise ValueError(f"activation scale {scale!r}: running_max, learned or fixed")
        if (scale == "fixed") != (log2_scale is not None):
            raise ValueError("give log2_scale exactly when scale='fixed'")
        self.bits, self.signed, self.mode = bits, signed, scale
        self.momentum, self.rounding = momentum, rounding
        self.qmin = -(2 ** (bits - 1)) if signed else 0
        self.qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
        self.register_buffer("running_max", torch.tensor(0.0))
        self.register_buffer("calibrated", torch.tensor(scale == "fixed"))
        self.log2_s = nn.Parameter(torch.tensor(float(log2_scale or 0.0)),
                                   requires_grad=scale == "learned")

    def extra_repr(self) -> str:
        kind = "int" if self.signed else "uint"
        return f"{kind}{self.bits} in {kind}8, scale={self.mode}"

    def _calibrate(self, x: torch.Tensor) -> None:
        m = float(x.detach().abs().max() if self.signed else x.detach().clamp_min(0).max())
        m = max(m, 1e-8)
        if not bool(self.calibrated):
            self.running_max.fill_(m)
            self.log2_s.data.fill_(math.log2(m / self.qmax))
            self.calibrated.fill_(True)
        elif self.mode == "running_max":
            self.running_max.mul_(1 - self.momentum).add_(self.momentum * m)

    def _log2_scale(self) -> torch.Tensor:
        """The exponent as a float tensor; with the learned STE gradient when training."""
        if self.mode == "running_max":
            ratio = math.log2(float(self.running_max) / self.qmax)
            e = math.ceil(ratio) if self.rounding == "ceil" else round(ratio)
            return torch.tensor(float(e))
        return round_ste(self.log2_s) if self.mode == "learned" else self.log2_s.detach()

    def exponent(self) -> int:
        """The integer e of the current scale 2**e (what export writes)."""
        if not bool(self.calibrated):
            raise RuntimeError("ActQuant has no scale yet: run the model in training mode on data first")
        return int(self._log2_scale().detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.mode != "fixed":
            self._calibrate(x)
        if not self.training:
            s = 2.0 ** self.exponent()
            # + 0.0 turns round()'s -0.0 into the +0.0 DequantizeLinear gives for code 0
            return (torch.clamp(torch.round(x / s), self.qmin, self.qmax) + 0.0) * s
        s = torch.exp2(self._log2_scale()).to(x.dtype)
        return round_ste(torch.clamp(x / s, self.qmin, self.qmax)) * s
