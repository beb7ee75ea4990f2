"""Speed of the Padauk simulator on a loop-heavy program shaped like generated inference code.

The program (PMS150C, pdk13) computes 10 neurons x 16 inputs of 16-bit multiply-accumulate:
weights and inputs are ``ret #k`` tables reached through ``call``/``pcadd``, the 8x8 multiply
is a shift-and-add loop, results are stored through ``idxm``. It is assembled with sdas and
linked with sdldpdk, and every result is checked against Python.

Two measurements:
* steady: one run of many inferences back to back (translation cost amortised);
* patched: one inference per run, with the 16 input-table words patched by ``write_rom`` and
  the simulator reset before each, as a test harness does over a data set.

Usage: python benchmarks/pdk_sim_speed.py [--reps N] [--inferences N] [--no-write]
Writes benchmarks/results/pdk_sim_speed.md unless --no-write. Exit 1 if a result is wrong.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from tinycc_nn.backends.pdk import isa, sdas
from tinycc_nn.backends.pdk.sim import Simulator

NEURONS, INPUTS = 10, 16
RESULTS = Path(__file__).resolve().parent / "results" / "pdk_sim_speed.md"

PROGRAM = """\
        .area CODE (ABS)
        .org 0
        mov a, #0x38
        mov.io sp, a        ; stack 0x38..0x3f
        mov a, #{reps}
        mov 0x1c, a         ; repetitions
rep:
        clear 0x10          ; weight index
        mov a, #0x20
        mov 0x1e, a         ; output pointer (idxm), high byte 0x1f
        clear 0x1f
        mov a, #{neurons}
        mov 0x11, a
neuron:
        clear 0x18          ; accumulator low
        clear 0x19          ; accumulator high
        clear 0x1a          ; input index
        mov a, #{inputs}
        mov 0x12, a
input:
        mov a, 0x10
        inc 0x10
        call weights
        mov 0x13, a         ; multiplicand
        mov a, 0x1a
        inc 0x1a
        call inputs
        mov 0x14, a         ; multiplier
        clear 0x15          ; product low
        clear 0x16          ; product high
        mov a, #8
        mov 0x17, a
mul:
        sl 0x15
        slc 0x16
        sl 0x14             ; next multiplier bit into C
        t1sn.io f, c
        goto nobit
        mov a, 0x13
        add 0x15, a
        addc 0x16
nobit:
        dzsn 0x17
        goto mul
        mov a, 0x15
        add 0x18, a
        mov a, 0x16
        addc 0x19, a
        dzsn 0x12
        goto input
        mov a, 0x18
        idxm 0x1e, a
        inc 0x1e
        mov a, 0x19
        idxm 0x1e, a
        inc 0x1e
        dzsn 0x11
        goto neuron
        dzsn 0x1c
        goto rep
        stopsys
weights:
        add a, #1           ; pcadd lands on its own address + A
        pcadd a
{weight_table}
inputs::
        add a, #1
        pcadd a
{input_table}
"""


def source(reps: int, weights: list[int], inputs: list[int]) -> str:
    table = lambda values: "\n".join(f"        ret #0x{v:02x}" for v in values)
    return PROGRAM.format(reps=reps, neurons=NEURONS, inputs=INPUTS,
                          weight_table=table(weights), input_table=table(inputs))


def expected(weights: list[int], inputs: list[int]) -> list[int]:
    return [sum(weights[n * INPUTS + i] * inputs[i] for i in range(INPUTS)) & 0xFFFF
            for n in range(NEURONS)]


def outputs(result) -> list[int]:
    return [result.ram[0x20 + 2 * n] | result.ram[0x21 + 2 * n] << 8 for n in range(NEURONS)]


def steady(reps: int, weights, inputs) -> dict:
    words = sdas.assemble(source(reps, weights, inputs), "pdk13").words
    sim = Simulator.for_part("PMS150C", words)
    start = time.perf_counter()
    first = sim.run()
    first_seconds = time.perf_counter() - start
    sim.reset()
    start = time.perf_counter()
    result = sim.run()
    seconds = time.perf_counter() - start
    assert result.ok and outputs(result) == expected(weights, inputs), result.message
    return {"words": len(words), "instructions": result.instructions, "cycles": result.cycles,
            "seconds": seconds, "first_seconds": first_seconds, "first_ok": first.ok}


def patched(inferences: int, weights, rng: random.Random) -> dict:
    assembly = sdas.assemble(source(1, weights, [0] * INPUTS), "pdk13")
    table = assembly.symbols["inputs"] + 2  # after `add a, #1` and `pcadd a`
    sim = Simulator.for_part("PMS150C", assembly.words)
    core = isa.PDK13
    ret = core.entry("ret #k")
    instructions = cycles = 0
    start = time.perf_counter()
    for _ in range(inferences):
        inputs = [rng.randrange(256) for _ in range(INPUTS)]
        for i, value in enumerate(inputs):
            sim.write_rom(table + i, core.encode(ret, {"k": value}))
        sim.reset()
        result = sim.run()
        if not result.ok or outputs(result) != expected(weights, inputs):
            raise AssertionError(f"wrong result: {result.message}")
        instructions += result.instructions
        cycles += result.cycles
    seconds = time.perf_counter() - start
    return {"instructions": instructions, "cycles": cycles, "seconds": seconds,
            "per_inference": (instructions // inferences, cycles // inferences)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=100, help="inferences in the steady run (1..255)")
    parser.add_argument("--inferences", type=int, default=300, help="patched single runs")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args(argv)
    if not sdas.available("pdk13"):
        print("sdaspdk13/sdldpdk not found (Debian package sdcc): nothing to measure")
        return 0
    rng = random.Random(1)
    weights = [rng.randrange(256) for _ in range(NEURONS * INPUTS)]
    inputs = [rng.randrange(256) for _ in range(INPUTS)]
    try:
        s = steady(args.reps, weights, inputs)
        p = patched(args.inferences, weights, rng)
    except AssertionError as error:
        print(f"FAIL: {error}")
        return 1
    lines = [
        "# Padauk simulator speed",
        "",
        f"Program: {NEURONS}x{INPUTS} 8x8->16-bit MAC, `ret #k` weight and input tables via "
        f"call/pcadd, shift-add multiply, idxm stores; {s['words']} words on PMS150C.",
        "",
        "| run | instructions | cycles | seconds | instructions/s |",
        "|---|---|---|---|---|",
        f"| steady, {args.reps} inferences in one run | {s['instructions']:,} | {s['cycles']:,} "
        f"| {s['seconds']:.3f} | {s['instructions'] / s['seconds']:,.0f} |",
        f"| same, first run (includes translation) | {s['instructions']:,} | {s['cycles']:,} "
        f"| {s['first_seconds']:.3f} | {s['instructions'] / s['first_seconds']:,.0f} |",
        f"| patched: {args.inferences} inferences, 16 input words patched + reset each "
        f"| {p['instructions']:,} | {p['cycles']:,} | {p['seconds']:.3f} "
        f"| {p['instructions'] / p['seconds']:,.0f} |",
        "",
        f"Per inference: {p['per_inference'][0]:,} instructions, {p['per_inference'][1]:,} cycles. "
        f"Python {sys.version.split()[0]}; command: `python benchmarks/pdk_sim_speed.py`.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
