"""The model's C sources built for the host: the fast path for whole test sets.

The same `model.c` that goes into the firmware is compiled with the system gcc
into a shared library, together with a small C loop that calls `nn_infer` once
per row, so 10,000 images cost one ctypes call. The library reports
NN_INPUT_SIZE, NN_OUTPUT_SIZE and the element types from `model.h` itself, so
a caller's dtypes are checked rather than trusted.

`-funsigned-char` matches the RISC-V ABI, where plain `char` is unsigned (it is
signed on x86). The emulator remains the reference for what the chip computes:
code with undefined behaviour (signed overflow, oversized shifts) may still
differ between the two compilers.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

HOST_CFLAGS: tuple[str, ...] = ("-O2", "-shared", "-fPIC", "-ffreestanding", "-funsigned-char",
                                "-Wall", "-Wextra", "-Werror")

_BATCH_LOOP = r"""
#include "model.h"

#define KIND(type) ((int)sizeof(type) | (((type)-1 < (type)1) ? 0x100 : 0))

int nn_host_shape(int *shape)
{
    shape[0] = NN_INPUT_SIZE;
    shape[1] = KIND(nn_input_t);
    shape[2] = NN_OUTPUT_SIZE;
    shape[3] = KIND(nn_output_t);
    return 0;
}

void nn_host_infer_batch(const nn_input_t *inputs, nn_output_t *outputs, int *classes, long rows)
{
    for (long row = 0; row < rows; row++)
        classes[row] = nn_infer(inputs + row * NN_INPUT_SIZE, outputs + row * NN_OUTPUT_SIZE);
}
"""


class HostBuildError(RuntimeError):
    """The host compiler is missing or refused the sources."""


class HostModel:
    """`nn_infer` from `c_sources`, compiled for and run on the host."""

    def __init__(self, c_sources: Sequence[Path | str], include_dirs: Sequence[Path | str],
                 input_dtype: np.dtype | str | None = None,
                 output_dtype: np.dtype | str | None = None, cflags: Sequence[str] = HOST_CFLAGS):
        self._library = _build(c_sources, include_dirs, cflags)
        shape = (ctypes.c_int * 4)()
        self._library.nn_host_shape(shape)
        self.input_size, self.output_size = shape[0], shape[2]
        self.input_dtype = _checked_dtype(shape[1], input_dtype, "nn_input_t")
        self.output_dtype = _checked_dtype(shape[3], output_dtype, "nn_output_t")
        self._library.nn_host_infer_batch.restype = None
        self._library.nn_host_infer_batch.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]

    def infer(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classes (int32 [batch]) and outputs ([batch, NN_OUTPUT_SIZE]) for rows of `x`."""
        x = np.asarray(x)
        inputs = np.ascontiguousarray(x, dtype=self.input_dtype)
        if x.ndim != 2 or x.shape[1] != self.input_size or not np.array_equal(inputs, x):
            raise ValueError(f"x must be [batch, {self.input_size}] values of {self.input_dtype}")
        rows = len(inputs)
        outputs = np.zeros((rows, self.output_size), dtype=self.output_dtype)
        classes = np.zeros(rows, dtype=np.intc)
        self._library.nn_host_infer_batch(inputs.ctypes.data, outputs.ctypes.data,
                                          classes.ctypes.data, rows)
        return classes.astype(np.int32), outputs


def _build(c_sources: Sequence[Path | str], include_dirs: Sequence[Path | str],
           cflags: Sequence[str]) -> ctypes.CDLL:
    """Compile into a temporary .so and load it; the file can go once it is mapped."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise HostBuildError("gcc not found on PATH; on Debian/Ubuntu install `gcc`")
    with tempfile.TemporaryDirectory(prefix="tinycc-nn-host-") as tmp:
        loop, library = Path(tmp) / "batch_loop.c", Path(tmp) / "model.so"
        loop.write_text(_BATCH_LOOP)
        command = [gcc, *cflags, *(f"-I{Path(d).resolve()}" for d in include_dirs),
                   str(loop), *(str(s) for s in c_sources), "-o", str(library)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise HostBuildError(f"command failed ({result.returncode}): {' '.join(command)}\n"
                                 f"{result.stdout}{result.stderr}")
        return ctypes.CDLL(str(library))


def _checked_dtype(kind: int, requested: np.dtype | str | None, c_type: str) -> np.dtype:
    size, signed = kind & 0xFF, bool(kind & 0x100)
    actual = np.dtype(f"{'i' if signed else 'u'}{size}")
    if requested is not None and np.dtype(requested) != actual:
        raise ValueError(f"{c_type} is {actual} in model.h, not {np.dtype(requested)}")
    return actual
