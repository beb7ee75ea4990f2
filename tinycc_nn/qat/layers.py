"""QLinear, a drop-in nn.Linear with quantized input, weights and bias, and `mlp`.

QLinear owns the quantizer of its own input because the bias lives on the accumulator
grid s_in * s_w: the layer needs s_in, and the exporter maps one QLinear onto
QuantizeLinear/DequantizeLinear -> MatMul -> Add without guessing.  A network is then an
ordinary nn.Sequential: QLinear, ReLU, QLinear, ..., ActQuant (the logits quantizer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinycc_nn.qat.quantizers import ActQuant, channel_exponents, fake_quantize_weight, round_ste, weight_exponent
from tinycc_nn.qat.schemes import WeightScheme, get_scheme

# Biases saturate where float32 stops holding every integer, so that the saturated value
# is the same in torch, in the int32 initializer and on the part.
BIAS_RANGE = (-(2**24 - 1), 2**24 - 1)


def quantize_bias(bias, acc_exponent: torch.Tensor, training: bool):
    """The bias on the accumulator grid 2**acc_exponent, saturated to BIAS_RANGE: rounded
    through a straight-through estimator in training, half to even (as exported) in eval."""
    if bias is None:
        return None
    s = torch.exp2(acc_exponent)
    if training:
        return round_ste(torch.clamp(bias / s, *BIAS_RANGE)) * s
    return torch.clamp(torch.round(bias.detach() / s), *BIAS_RANGE) * s


@dataclass(frozen=True)
class QuantizedLinear:
    """The integer content of a QLinear: what the exporter writes, nothing else."""

    in_exponent: int
    in_bits: int
    in_signed: bool
    weight: np.ndarray  # int8 [out, in]
    weight_exponent: int | np.ndarray  # int, or int64 [out] for a per-channel layer
    bias: np.ndarray | None  # int32 [out], on the grid 2**(in_exponent + weight_exponent)
    scheme: WeightScheme


class QLinear(nn.Module):
    """y = (q_in * s_in) @ (q_w * s_w).T + q_b * s_in * s_w, all scales powers of two.

    `weight_scheme` names a scheme in `SCHEMES`; `weight_scale` is "mse" or "max" (see
    `weight_exponent`), and `weight_exponent_offset` is added to the exponent it picks:
    -1 halves the scale, so more weights sit on the outer levels (for 2-bit weights QAT
    ends markedly better that way); `input_quant` defaults to ActQuant(act_bits, act_signed).
    `pin_weight_exponent()` freezes the exponent (saved in the state dict), e.g. before
    weights are set to integers by hand, which the offset would otherwise rescale.
    `per_channel=True` picks one exponent per output (row of the weight), which 2-bit
    rows of very different norms need; `weight_exponents()` gives them (all equal
    otherwise) and the exporter writes per-axis weight and bias scales.
    In eval mode the bias is rounded (half to even) and saturated to BIAS_RANGE exactly
    as the exported int32 initializer stores it, so torch eval == onnxruntime bit for bit.
    """

    def __init__(self, in_features, out_features, bias=True, weight_scheme="pm2",
                 weight_scale="mse", act_bits=8, act_signed=False, input_quant=None,
                 weight_exponent_offset=0, per_channel=False):
        super().__init__()
        self.in_features, self.out_features, self.per_channel = in_features, out_features, bool(per_channel)
        self.scheme = get_scheme(weight_scheme)
        self.weight_scale = weight_scale
        self.weight_exponent_offset = int(weight_exponent_offset)
        self.input_quant = input_quant or ActQuant(bits=act_bits, signed=act_signed)
        ref = nn.Linear(in_features, out_features, bias=bias)  # nn.Linear's own init
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None
        # nan: not pinned; one entry per output when per_channel
        self.register_buffer("pinned_exponent", torch.full((out_features,) if per_channel else (), float("nan")))

    def extra_repr(self) -> str:
        offset = f", weight_exponent_offset={self.weight_exponent_offset}" if self.weight_exponent_offset else ""
        return (f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
                f"weight_scheme={self.scheme.name}{offset}" + (", per_channel" if self.per_channel else ""))

    def weight_exponent(self) -> int:
        """The exponent of a per-tensor layer's weight scale 2**e."""
        if self.per_channel:
            raise ValueError("a per-channel QLinear has one weight exponent per output: use weight_exponents()")
        if not torch.isnan(self.pinned_exponent):
            return int(self.pinned_exponent)
        return weight_exponent(self.weight, self.scheme, self.weight_scale) + self.weight_exponent_offset

    def weight_exponents(self) -> torch.Tensor:
        """Exponents e [out] (float) of the weight scales 2**e; all equal unless per_channel."""
        if not self.per_channel:
            return torch.full((self.out_features,), float(self.weight_exponent()))
        if not torch.isnan(self.pinned_exponent).any():
            return self.pinned_exponent.clone()
        return channel_exponents(self.weight, self.scheme, self.weight_scale) + self.weight_exponent_offset

    def _exponent(self) -> int | torch.Tensor:
        return self.weight_exponents() if self.per_channel else self.weight_exponent()

    def pin_weight_exponent(self, exponent: int | torch.Tensor | None = None) -> int | torch.Tensor:
        """Freeze the weight scale(s) at 2**exponent (default: the current ones); returns
        them (an int, or per channel a float tensor [out])."""
        e = self._exponent() if exponent is None else exponent
        if self.per_channel:
            self.pinned_exponent.copy_(torch.as_tensor(e, dtype=torch.float32).expand(self.out_features))
            return self.pinned_exponent.clone()
        self.pinned_exponent.fill_(float(int(e)))
        return int(e)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before exponents could be pinned have no such entry
        state_dict.setdefault(prefix + "pinned_exponent", torch.full_like(self.pinned_exponent, float("nan")))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _bias(self, acc_exponent: torch.Tensor) -> torch.Tensor | None:
        return quantize_bias(self.bias, acc_exponent, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        e_w = self._exponent()
        w = fake_quantize_weight(self.weight if self.training else self.weight.detach(),
                                 self.scheme, e_w)
        b = self._bias(self.input_quant._log2_scale() + e_w)
        return F.linear(x, w, b)

    @torch.no_grad()
    def quantized(self) -> QuantizedLinear:
        """The integers and exponents of the eval-mode layer."""
        e_in, e_w = self.input_quant.exponent(), self.weight_exponents()
        scale = torch.exp2(e_w)
        w = fake_quantize_weight(self.weight.detach(), self.scheme, e_w) / scale[:, None]
        b = None
        if self.bias is not None:
            b = torch.clamp(torch.round(self.bias / (scale * 2.0**e_in)), *BIAS_RANGE)
            b = b.numpy().astype(np.int32)
        e = e_w.numpy().astype(np.int64) if self.per_channel else int(e_w[0])
        return QuantizedLinear(e_in, self.input_quant.bits, self.input_quant.signed,
                               w.numpy().astype(np.int8), e, b, self.scheme)


def mlp(widths, weight_schemes="pm2", bias=True, act_bits=8, input_bits=8,
        output_bits=8, act_scale="running_max", weight_exponent_offset=0, per_channel=False) -> nn.Sequential:
    """QLinear/ReLU stack for `widths` = (inputs, hidden..., classes), ending in ActQuant.

    `weight_schemes` is one name or one per layer.  Hidden activations are unsigned
    `act_bits`; inputs unsigned `input_bits`; logits signed `output_bits` whose scale is
    rounded up so that the calibrated largest logit is never clipped.
    `weight_exponent_offset` and `per_channel` (see QLinear) apply to every layer.
    """
    n = len(widths) - 1
    schemes = [weight_schemes] * n if isinstance(weight_schemes, str) else list(weight_schemes)
    if len(schemes) != n:
        raise ValueError(f"{n} layers but {len(schemes)} weight schemes")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        quant = ActQuant(bits=input_bits if i == 0 else act_bits, scale=act_scale)
        layers.append(QLinear(a, b, bias=bias, weight_scheme=schemes[i], input_quant=quant,
                              weight_exponent_offset=weight_exponent_offset, per_channel=per_channel))
        if i < n - 1:
            layers.append(nn.ReLU())
    layers.append(ActQuant(bits=output_bits, signed=True, rounding="ceil"))
    return nn.Sequential(*layers)
