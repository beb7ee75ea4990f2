"""Sizes no target can hold, refused before anything is allocated.

The largest part tinycc-nn compiles for is the CH32V003 (16 KB of flash, 2 KB of SRAM);
the reference target has no capacity of its own but stands for those parts.  A tensor of
more than MAX_TENSOR_VALUES values, or a model file larger than MAX_MODEL_BYTES, cannot
become a program for any of them, even at one bit per weight; checking the declared sizes
first turns what was minutes of swapping (a [N, 1e9] input, a 100 MB model) into a
one-line refusal with the numbers.
"""
from __future__ import annotations

MAX_TENSOR_VALUES = 1 << 20        # 128 KB at one bit a value: eight times the largest flash
MAX_MODEL_BYTES = 64 << 20         # float32 weights of 16M values: a thousand times too many
MAX_INT_BITS = 64                  # the widest integer the IR's arithmetic holds (int64)
LARGEST_PART = "the largest part, the CH32V003, has 16 KB of flash and 2 KB of RAM"


def too_many_values(count: int, what: str) -> str | None:
    """A refusal naming `what` when `count` values cannot fit any part, else None."""
    if count > MAX_TENSOR_VALUES:
        return (f"{what} holds {count} values; tinycc-nn accepts at most {MAX_TENSOR_VALUES} "
                f"per tensor ({LARGEST_PART})")
    return None
