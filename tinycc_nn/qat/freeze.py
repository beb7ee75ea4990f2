"""torch.ao fake quantizers as fixed ops, so that torch's dynamo exporter can write them.

A trained `torch.ao.quantization.FakeQuantize` (and its subclasses: the fused
moving-average one `get_default_qat_qconfig` uses, FixedQParams) decides in Python,
from tensors it holds, whether to observe and whether to quantize
(`if self.observer_enabled[0] == 1`).  torch.export traces with symbolic values and
cannot branch on them, so `torch.onnx.export(..., dynamo=True)` stops with
"Could not guard on data-dependent expression".  Once training is over the branch
is decided and the scale is fixed: each quantizer then is one
`fake_quantize_per_tensor_affine` (or `_per_channel_`) call with constant arguments,
which the exporter writes as QuantizeLinear -> DequantizeLinear.

    torch.onnx.export(freeze_fake_quant(model), (x,), "model.onnx", dynamo=True)
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.ao.quantization import FakeQuantizeBase


class FrozenFakeQuant(nn.Module):
    """The eval-mode computation of one fake quantizer, its scale and zero point fixed."""

    def __init__(self, fq: FakeQuantizeBase):
        super().__init__()
        self.quant_min, self.quant_max = int(fq.quant_min), int(fq.quant_max)
        scale, zero_point = fq.scale.detach().float(), fq.zero_point.detach().round().int()
        self.axis = int(fq.ch_axis) if getattr(fq, "is_per_channel", scale.numel() > 1) else None
        if self.axis is None:
            self.scale, self.zero_point = float(scale.reshape(-1)[0]), int(zero_point.reshape(-1)[0])
        else:
            self.register_buffer("scale", scale.clone())
            self.register_buffer("zero_point", zero_point.clone())

    def extra_repr(self) -> str:
        where = "per tensor" if self.axis is None else f"per channel, axis {self.axis}"
        return f"{where}, [{self.quant_min}, {self.quant_max}]"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis is None:
            return torch.fake_quantize_per_tensor_affine(
                x, self.scale, self.zero_point, self.quant_min, self.quant_max)
        return torch.fake_quantize_per_channel_affine(
            x, self.scale, self.zero_point, self.axis, self.quant_min, self.quant_max)


def freeze_fake_quant(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every torch.ao fake quantizer fixed at its current
    scale and zero point (one with fake quantization switched off becomes an Identity).

    The copy computes exactly what the model computes in eval mode with its observers
    off (`model.apply(torch.ao.quantization.disable_observer)`); the model is not changed.
    """
    frozen = copy.deepcopy(model).eval()
    for name, module in list(frozen.named_modules()):
        if isinstance(module, FakeQuantizeBase) and name:
            parent, _, leaf = name.rpartition(".")
            enabled = bool(module.fake_quant_enabled[0])
            setattr(frozen.get_submodule(parent), leaf,
                    FrozenFakeQuant(module) if enabled else nn.Identity())
    return frozen
