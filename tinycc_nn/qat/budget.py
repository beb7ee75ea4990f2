"""How many bytes a model's weights take packed, and hidden widths that fit a part.

The parts are tiny: a PMS150C keeps about 560 bytes of packed weights next to the code
and 64 bytes of RAM, so the hidden widths are chosen from the budget, not by taste.
Packed size counts each layer at its scheme's bits (ternary at 2, binary at 1), rounded
up to whole bytes per layer; biases are not weights and are counted apart.
"""

from __future__ import annotations

import itertools
import math

from torch import nn

from tinycc_nn.qat.layers import QLinear
from tinycc_nn.qat.schemes import get_scheme

# Packed-weight budgets (bytes) and hidden-width limits per part, from TARGETS.md and the
# backends' RAM plans: on a PMS150C two hidden layers of 32 and 16 bytes fill the RAM.
PART_BUDGETS = {
    "pms150c": {"weight_bytes": 560, "max_widths": (32, 16)},
    "pfs154": {"weight_bytes": 1536, "max_widths": (64, 32)},
    "ch32v003": {"weight_bytes": 14 * 1024, "max_widths": (256, 256, 256)},
}


def layer_bytes(n_in: int, n_out: int, scheme) -> int:
    """Packed bytes of one layer's weights."""
    return math.ceil(n_in * n_out * get_scheme(scheme).bits / 8)


def weight_bytes(model: nn.Module) -> int:
    """Packed bytes of all QLinear weights of `model`."""
    return sum(layer_bytes(m.in_features, m.out_features, m.scheme)
               for m in model.modules() if isinstance(m, QLinear))


def widths_bytes(widths, schemes) -> int:
    """Packed bytes of an MLP with `widths` = (inputs, hidden..., outputs)."""
    schemes = [schemes] * (len(widths) - 1) if isinstance(schemes, str) else schemes
    return sum(layer_bytes(a, b, s) for a, b, s in zip(widths[:-1], widths[1:], schemes))


def choose_widths(n_in: int, n_out: int, budget_bytes: int, schemes="pm2",
                  max_widths=(32, 16), step: int = 1) -> tuple[int, ...]:
    """The widest MLP (n_in, h1, ..., n_out) whose packed weights fit `budget_bytes`.

    One hidden layer per entry of `max_widths` (each at most that wide, never wider
    than the layer before).  Among those that fit, the one with the most weights wins,
    ties going to the wider later layers (they are the narrow bottleneck).
    """
    ranges = [range(step, cap + 1, step) for cap in max_widths]
    best, best_key = None, None
    for hidden in itertools.product(*ranges):
        if any(b > a for a, b in zip(hidden, hidden[1:])):
            continue
        widths = (n_in, *hidden, n_out)
        if widths_bytes(widths, schemes) > budget_bytes:
            continue
        count = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        key = (count, hidden[::-1])
        if best_key is None or key > best_key:
            best, best_key = widths, key
    if best is None:
        raise ValueError(f"no MLP {n_in}-...-{n_out} fits {budget_bytes} bytes")
    return best
