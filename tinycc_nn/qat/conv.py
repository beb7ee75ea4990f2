"""QConv2d: a drop-in nn.Conv2d with quantized input, weights and bias, like QLinear.

Regular (groups=1) and depthwise (groups=in_channels=out_channels) convolutions, any
kernel, stride and zero padding.  The layer owns its input quantizer for the same reason
QLinear does: the bias lives on the accumulator grid s_in * s_w.  The weight scale is one
power of two per tensor, or one per output channel (`per_channel=True`), which suits
depthwise convolutions whose channels see very different ranges; the exporter then writes
per-axis (axis 0) weight and bias scales.

Zero padding pads the dequantized input with 0.0, which is code 0 of a zero-point-0
quantizer, so torch, onnxruntime and the integer program pad with the same value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinycc_nn.qat.layers import BIAS_RANGE, quantize_bias
from tinycc_nn.qat.quantizers import ActQuant, channel_exponents, fake_quantize_weight, weight_exponent
from tinycc_nn.qat.schemes import WeightScheme, get_scheme


@dataclass(frozen=True)
class QuantizedConv:
    """The integer content of a QConv2d: what the exporter writes, nothing else."""

    in_exponent: int
    in_bits: int
    in_signed: bool
    weight: np.ndarray  # int8 [out, in / groups, kh, kw]
    weight_exponent: np.ndarray  # int64 [out] (per channel) or [] (per tensor)
    bias: np.ndarray | None  # int32 [out], on the grid 2**(in_exponent + weight_exponent)
    scheme: WeightScheme
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


class QConv2d(nn.Module):
    """y = conv(q_in * s_in, q_w * s_w) + q_b * s_in * s_w, all scales powers of two.

    Arguments as nn.Conv2d (no dilation, zero padding only) plus QLinear's
    `weight_scheme`, `weight_scale`, `weight_exponent_offset`, `act_bits`, `act_signed`
    and `input_quant`; `per_channel` picks one weight exponent per output channel.
    In eval mode the bias is rounded (half to even) and saturated exactly as exported.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 bias=True, weight_scheme="int4", weight_scale="mse", per_channel=False,
                 act_bits=8, act_signed=False, input_quant=None, weight_exponent_offset=0):
        super().__init__()
        if groups not in (1, in_channels) or (groups > 1 and out_channels != in_channels):
            raise ValueError("QConv2d supports groups=1 and depthwise (groups=in_channels=out_channels)")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.scheme = get_scheme(weight_scheme)
        self.weight_scale, self.per_channel = weight_scale, per_channel
        self.weight_exponent_offset = int(weight_exponent_offset)
        self.input_quant = input_quant or ActQuant(bits=act_bits, signed=act_signed)
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None
        # nan: not pinned; one entry per output channel either way
        self.register_buffer("pinned_exponent", torch.full((out_channels,), float("nan")))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                f"bias={self.bias is not None}, weight_scheme={self.scheme.name}"
                + (", per_channel" if self.per_channel else "")
                + (f", weight_exponent_offset={self.weight_exponent_offset}" if self.weight_exponent_offset else ""))

    def weight_exponents(self) -> torch.Tensor:
        """Exponents e [out] (float) of the weight scales 2**e; all equal unless per_channel."""
        if not torch.isnan(self.pinned_exponent).any():
            return self.pinned_exponent.clone()
        if self.per_channel:
            e = channel_exponents(self.weight, self.scheme, self.weight_scale)
        else:
            e = torch.full((self.out_channels,), float(weight_exponent(self.weight, self.scheme, self.weight_scale)))
        return e + self.weight_exponent_offset

    def pin_weight_exponent(self, exponents=None) -> torch.Tensor:
        """Freeze the weight scales (default: the current ones); returns them."""
        e = self.weight_exponents() if exponents is None else torch.as_tensor(exponents, dtype=torch.float32)
        self.pinned_exponent.copy_(e.expand(self.out_channels))
        return self.pinned_exponent.clone()

    def _weight(self, e_w: torch.Tensor) -> torch.Tensor:
        return fake_quantize_weight(self.weight if self.training else self.weight.detach(), self.scheme, e_w)

    def _bias(self, acc_exponent: torch.Tensor) -> torch.Tensor | None:
        return quantize_bias(self.bias, acc_exponent, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        e_w = self.weight_exponents()
        b = self._bias(self.input_quant._log2_scale() + e_w)
        return F.conv2d(x, self._weight(e_w), b, self.stride, self.padding, 1, self.groups)

    @torch.no_grad()
    def quantized(self) -> QuantizedConv:
        """The integers and exponents of the eval-mode layer."""
        e_in, e_w = self.input_quant.exponent(), self.weight_exponents()
        w = self._weight(e_w) / torch.exp2(e_w)[:, None, None, None]
        b = None
        if self.bias is not None:
            b = torch.clamp(torch.round(self.bias / torch.exp2(e_in + e_w)), *BIAS_RANGE).numpy().astype(np.int32)
        e = e_w.numpy().astype(np.int64)
        return QuantizedConv(e_in, self.input_quant.bits, self.input_quant.signed, w.numpy().astype(np.int8),
                             e if self.per_channel else np.int64(e[0]), b, self.scheme,
                             self.stride, self.padding, self.groups)


def conv_weight_bytes(model: nn.Module) -> int:
    """Packed bytes of all QConv2d weights of `model`, each layer rounded up to whole bytes."""
    return sum(-(-m.weight.numel() * m.scheme.bits // 8) for m in model.modules() if isinstance(m, QConv2d))
