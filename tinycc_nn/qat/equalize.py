"""Cross-layer rescaling of a float network so that its rows suit power-of-two weight scales.

A ReLU is positively homogeneous: relu(a * x) = a * relu(x) for a > 0.  So in
`first -> ReLU [-> MaxPool] -> second`, multiplying row j of `first` (and its bias) by
alpha_j and dividing column j of `second` by alpha_j leaves the float function unchanged.

A low-bit layer with one power-of-two weight scale quantizes every row on the same grid,
although each row has its own best scale: with 2-bit weights (no zero level), a row whose
weights are a third of the others' becomes +-1 steps of a grid far too coarse for it, and
one with larger weights clips.  `equalize_rows` picks alpha_j so that each row's own best
continuous scale lands on one common power of two (or, `per_row=True`, on its nearest one,
for layers with per-output exponents), within `limits` so that no row or column is pushed
to an extreme.  It is meant for the fp32 twin just before QAT: the quantized network then
starts much closer to the twin (the MNIST CNN's 2-bit fc1: 97.2% -> 98.6% before any QAT,
twin 99.56%).
"""

from __future__ import annotations

import torch
from torch import nn

from tinycc_nn.qat.quantizers import squared_error
from tinycc_nn.qat.schemes import WeightScheme

SCALE_STEPS = 64  # candidate continuous scales per octave in `row_scales`


def row_scales(w: torch.Tensor, scheme: WeightScheme, octaves: int = 12) -> torch.Tensor:
    """The least-squares continuous scale s_j of each row w[j] on `scheme`'s levels, from a
    log grid of SCALE_STEPS per octave over `octaves` octaves below the no-clipping scale."""
    w = w.detach().reshape(len(w), -1)
    top = torch.log2(w.abs().amax(dim=1).clamp_min(1e-30) / scheme.max_level)
    steps = torch.arange(octaves * SCALE_STEPS + 1, dtype=w.dtype) / SCALE_STEPS
    best = torch.empty_like(top)
    for j, row in enumerate(w):  # [candidates, in] per row keeps memory at one row's worth
        s = torch.exp2(top[j] - steps)[:, None]
        errors = squared_error(row[None], s, scheme.levels)
        best[j] = s[int(torch.argmin(errors)), 0]
    return best


@torch.no_grad()
def equalize_rows(first: nn.Module, second: nn.Module, scheme: WeightScheme, *, per_row: bool = False,
                  limits: tuple[float, float] = (0.25, 4.0)) -> torch.Tensor:
    """Rescale `first`'s output rows and `second`'s matching input columns (see the module
    docstring); returns alpha [out of first].  `first` and `second` are nn.Linear-like
    (weight [out, in], optional bias) with only a ReLU or a max-pool between them.

    The common target is the median row's best scale rounded to a power of two, so most
    rows move little; all-zero rows keep alpha = 1."""
    w1, w2 = first.weight, second.weight
    if w1.ndim != 2 or w2.ndim != 2 or w2.shape[1] != w1.shape[0]:
        raise ValueError(f"equalize_rows: {tuple(w1.shape)} then {tuple(w2.shape)} are not two chained dense layers")
    log_s = torch.log2(row_scales(w1, scheme))
    target = torch.round(log_s) if per_row else torch.round(log_s.median())
    alpha = torch.exp2(target - log_s).clamp(*limits)
    alpha[w1.abs().amax(dim=1) == 0] = 1.0
    w1.mul_(alpha[:, None])
    if first.bias is not None:
        first.bias.mul_(alpha)
    w2.div_(alpha[None, :])
    return alpha
