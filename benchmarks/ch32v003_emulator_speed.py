"""Speed of the CH32V003 emulator on loop-heavy C shaped like a small 2-bit model.

The model (256 int8 inputs -> 16 -> 10, weights 2-bit codes for {-2,-1,+1,+2} packed four
to a byte, unpacked in the inner loop with shifts and adds, no multiplier) is written out as
C, built with the project's toolchain, and run for a batch of random inputs through
`Ch32v003Emulator.run_many`. The host build runs the same inputs and every result must
agree. Printed: emulated instructions per second, instructions per inference, estimated
cycles at 48 MHz, and the host build's rate for comparison.

Usage: python benchmarks/ch32v003_emulator_speed.py [--inferences N]
Exit 1 if the emulator and the host build disagree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinycc_nn.backends.ch32v003 import toolchain
from tinycc_nn.backends.ch32v003.emulator import Ch32v003Emulator
from tinycc_nn.backends.ch32v003.hostbuild import HostModel

INPUTS, HIDDEN, OUTPUTS = 256, 16, 10

MODEL_H = f"""\
#include <stdint.h>
#define NN_INPUT_SIZE {INPUTS}
typedef int8_t nn_input_t;
#define NN_OUTPUT_SIZE {OUTPUTS}
typedef int32_t nn_output_t;
int nn_infer(const nn_input_t *input, nn_output_t *output);
"""

MODEL_C = """\
#include "model.h"

{tables}

/* Code c in 0..3 stands for weight {{-2, -1, +1, +2}}[c]. */
static int32_t layer_sum(const uint8_t *packed, const int32_t *x, int n)
{{
    int32_t acc = 0;
    for (int i = 0; i < n; i += 4) {{
        uint8_t bits = *packed++;
        for (int k = 0; k < 4; k++, bits >>= 2) {{
            int32_t v = x[i + k];
            int32_t twice = v << 1;
            switch (bits & 3) {{
            case 0: acc -= twice; break;
            case 1: acc -= v; break;
            case 2: acc += v; break;
            default: acc += twice; break;
            }}
        }}
    }}
    return acc;
}}

int nn_infer(const nn_input_t *input, nn_output_t *output)
{{
    int32_t x[{inputs}], hidden[{hidden}];
    for (int i = 0; i < {inputs}; i++)
        x[i] = input[i];
    for (int j = 0; j < {hidden}; j++) {{
        int32_t h = layer_sum(w1[j], x, {inputs}) >> 6;
        hidden[j] = h < 0 ? 0 : (h > 127 ? 127 : h);
    }}
    int best = 0;
    for (int j = 0; j < {outputs}; j++) {{
        output[j] = layer_sum(w2[j], hidden, {hidden});
        if (output[j] > output[best])
            best = j;
    }}
    return best;
}}
"""


def _table(name: str, codes: np.ndarray) -> str:
    packed = (codes[:, 0::4] | codes[:, 1::4] << 2 | codes[:, 2::4] << 4 | codes[:, 3::4] << 6)
    rows = ",\n".join("    {" + ", ".join(str(int(b)) for b in row) + "}" for row in packed)
    return f"static const uint8_t {name}[{packed.shape[0]}][{packed.shape[1]}] = {{\n{rows}\n}};"


def write_model(directory: Path, rng: np.random.Generator) -> Path:
    tables = "\n".join([_table("w1", rng.integers(0, 4, (HIDDEN, INPUTS))),
                        _table("w2", rng.integers(0, 4, (OUTPUTS, HIDDEN)))])
    (directory / "model.h").write_text(MODEL_H)
    source = directory / "model.c"
    source.write_text(MODEL_C.format(tables=tables, inputs=INPUTS, hidden=HIDDEN,
                                     outputs=OUTPUTS))
    return source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inferences", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as tmp:
        source = write_model(Path(tmp), rng)
        elf = toolchain.build_firmware([source], [tmp], Path(tmp) / "build",
                                       forbid_symbols=("__mulsi3",))
        size = toolchain.firmware_size(elf)
        emulator = Ch32v003Emulator(elf)
        host = HostModel([source], [tmp])
        x = rng.integers(-128, 128, (args.inferences, INPUTS), dtype=np.int8)

        emulator.run(x[0].tobytes())  # translate and decode every block once
        start = time.perf_counter()
        batch = emulator.run_many(x)
        emulated = time.perf_counter() - start

        start = time.perf_counter()
        classes, outputs = host.infer(x)
        hosted = time.perf_counter() - start

    instructions = int(batch.instructions.sum())
    agree = (np.array_equal(classes, batch.results) and np.array_equal(outputs, batch.outputs)
             and not any(batch.faults))
    print(f"firmware: {size.flash_bytes} B flash, {size.ram_bytes} B static RAM, "
          f"stack {int(batch.stack_high_water.max())} B")
    print(f"per inference: {batch.instructions.mean():,.0f} instructions, "
          f"{batch.cycles.mean():,.0f} cycles at 48 MHz "
          f"({batch.cycles.mean() / 48:,.0f} us on the chip)")
    print(f"emulator: {args.inferences} inferences in {emulated:.2f} s, "
          f"{instructions / emulated / 1e6:.2f} M instructions/s, "
          f"{emulated / args.inferences * 1e3:.2f} ms per inference")
    print(f"host build: {args.inferences / hosted:,.0f} inferences/s")
    print("emulator and host build agree" if agree else "MISMATCH between emulator and host build")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
