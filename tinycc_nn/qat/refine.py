"""Greedy coordinate descent on the integer weights themselves, after QAT.

QAT trains float shadows of the weights through a straight-through estimator, so its
result is good but not a local optimum of the integer model it exports: with 2-bit
weights, single steps of one weight to a neighbouring level often still lower the
training loss.  `refine_weights` tries, for every weight in turn, the neighbouring
levels of its scheme and keeps a step when the eval-mode model's training loss drops.

A step of weight (j, i) changes column j of that layer's accumulator by (level step) *
2**e_w * x_i, exactly (every term is a multiple of the accumulator grid), and only on
the rows where the quantized input x_i is not zero.  Only those rows go through the rest
of the network; their losses before and after are compared, so a step costs a small fraction of a forward pass over the training set.

The weight exponents are pinned first (`QLinear.pin_weight_exponent`), so weights stay on
their grid (level * 2**e_w), every quantizer keeps its exponent, and the refined model
exports exactly like any other.  Biases are not touched.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tinycc_nn.qat.export import sequence
from tinycc_nn.qat.layers import QLinear
from tinycc_nn.qat.quantizers import fake_quantize_weight


def snap_weights(model: nn.Module) -> None:
    """Pin every QLinear's weight exponent and set its float weights to their quantized
    values: the eval output is unchanged, and a weight set to another level stays there."""
    for m in model.modules():
        if isinstance(m, QLinear):
            with torch.no_grad():
                e = m.pin_weight_exponent()
                m.weight.copy_(fake_quantize_weight(m.weight.detach(), m.scheme, e))


def _forward(layers: list[nn.Module], start: int, h: torch.Tensor) -> torch.Tensor:
    for m in layers[start:]:
        h = m(h)
    return h


def _head_input(layers: list[nn.Module], x: torch.Tensor, batch: int = 2048) -> tuple[int, torch.Tensor]:
    """(k, input of layers[k]) for the first QLinear k: a convolution stack's output over the
    whole training set is far smaller than its feature maps, so it runs in batches, once."""
    k = next(i for i, m in enumerate(layers) if isinstance(m, QLinear))
    if k == 0:
        return 0, x
    return k, torch.cat([_forward(layers[:k], 0, x[i:i + batch]) for i in range(0, len(x), batch)])


def _row_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy (several times faster than F.cross_entropy for 10 classes)."""
    return torch.logsumexp(logits, dim=1) - logits.gather(1, labels[:, None])[:, 0]


def _gain(new: torch.Tensor, old: torch.Tensor, labels: torch.Tensor) -> float:
    """Summed loss change from logits `old` to `new`; exactly 0 where they are equal
    (both go through one cross_entropy call, so no batch-size-dependent rounding)."""
    both = _row_losses(torch.cat([new, old]), torch.cat([labels, labels]))
    return float((both[:len(new)] - both[len(new):]).sum())


@torch.no_grad()
def refine_weights(model: nn.Module, x: np.ndarray, y: np.ndarray, passes: int = 2,
                   seed: int = 0, progress: bool = True) -> list[dict]:
    """Coordinate descent on the integer weights of every QLinear, `passes` sweeps at most
    (convolution weights stay as they are).

    Stops early after a sweep that changes nothing.  Returns one entry per sweep:
    {"pass", "loss" (mean training cross-entropy after it), "moves" (weights changed)},
    after an entry for pass 0 with the loss before.
    """
    model.eval()
    snap_weights(model)
    layers = sequence(model)
    x = torch.as_tensor(np.asarray(x, np.float32))
    labels = torch.as_tensor(np.asarray(y, np.int64))
    gen = torch.Generator().manual_seed(seed)
    first, head_x = _head_input(layers, x)
    log = [{"pass": 0, "loss": float(_row_losses(_forward(layers, first, head_x), labels).mean()), "moves": 0}]
    n_weights = sum(m.weight.numel() for m in layers if isinstance(m, QLinear))
    for sweep in range(1, passes + 1):
        moves, h = 0, head_x
        with tqdm(total=n_weights, desc=f"refine {sweep}/{passes}", unit="weight", disable=not progress) as bar:
            for k, layer in enumerate(layers[first:], first):
                if isinstance(layer, QLinear):
                    moves += _refine_layer(layers, k, h, labels, gen, bar)
                h = layer(h)
            log.append({"pass": sweep, "loss": float(_row_losses(_forward(layers, first, head_x), labels).mean()),
                        "moves": moves})
            bar.set_postfix(loss=f"{log[-1]['loss']:.4f}", moves=moves)
        if moves == 0:
            break
    return log


def _refine_layer(layers, k: int, h: torch.Tensor, labels: torch.Tensor, gen, bar) -> int:
    """One sweep over the weights of layers[k] (input h); returns how many changed."""
    layer: QLinear = layers[k]
    s_w = torch.exp2(layer.weight_exponents())  # [out]: one scale per output row
    levels = list(layer.scheme.levels)
    xq = layer.input_quant(h)
    pre = layer(h)
    logits = _forward(layers, k + 1, pre)
    rows_of = [torch.nonzero(xq[:, i]).flatten() for i in range(xq.shape[1])]
    codes = torch.round(layer.weight / s_w[:, None]).to(torch.int64)
    n_in = codes.shape[1]
    moves = 0
    order = torch.randperm(codes.numel(), generator=gen).tolist()
    for flat in order:
        bar.update()
        j, i = divmod(flat, n_in)
        rows = rows_of[i]
        if len(rows) == 0:
            continue
        at = levels.index(int(codes[j, i]))
        for nxt in (at - 1, at + 1):
            if not 0 <= nxt < len(levels):
                continue
            trial = pre[rows]
            trial[:, j] += (levels[nxt] - levels[at]) * s_w[j] * xq[rows, i]  # exact: on the grid
            new_logits = _forward(layers, k + 1, trial)
            if _gain(new_logits, logits[rows], labels[rows]) < 0:
                pre[rows, j] = trial[:, j]
                logits[rows] = new_logits
                codes[j, i] = levels[nxt]
                layer.weight[j, i] = levels[nxt] * s_w[j]
                moves += 1
                break
    return moves
