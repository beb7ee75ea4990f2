"""The `ch32v003` target: model-specialized, multiplier-free C for the WCH CH32V003.

`emit` writes model.c and model.h (codegen.py; the C API is in README.md) and, when
riscv64-unknown-elf-gcc is installed, links them with the harness runtime into
firmware.elf, runs it in the unicorn emulator and reports flash, RAM (stack
included), instructions and cycles.  Without the cross compiler the C files are still
written and those report fields are null.  A model that does not fit 16 KB of flash
and 2 KB of RAM raises DoesNotFit.

`load` returns a Program executing the firmware under the emulator (fresh RAM for
every input; stats: cycles and instructions per input), or, with the option
executor="host", the same model.c compiled for the host and called through ctypes:
no counts, but whole test sets in a second.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...backend import Backend, Program
from ...errors import TinyccError
from . import firmware
from .codegen import generate
from .csource import SIZEOF


STACK_RESERVE = 256      # bytes of RAM kept for the stack when choosing the faster, bigger layout
# (generate() options, report note): each layout needs less RAM than the one before
_LAYOUTS = [
    ({}, None),
    # a conv whose sums need 32 bits packs its input in the map's own type, not in words
    ({"narrow": True}, "convolutions with 32-bit sums pack their input in its own type (RAM)"),
    # a conv packs its input one group at a time instead of all channels at once: the
    # packed input no longer lives through the whole channel loop
    ({"narrow": True, "prepack": False}, "convolutions repack their input for every output channel (RAM)"),
    # the dense layers' lookup tables take 512 bytes of RAM; the bit-serial kernel none
    ({"narrow": True, "prepack": False, "tables": False},
     "bit-serial kernels: the 512-byte lookup tables do not fit in RAM"),
]


class _Outputs:
    """Maps the firmware's (class, output vector) to the graph's output nodes."""

    def __init__(self, graph):
        self.kinds = ["class" if graph.op(graph.operands(o)[0]) == "argmax" else "vector"
                      for o in graph.outputs()]

    def values(self, classes, vectors) -> list:
        n = len(classes)
        return [np.asarray(classes, np.int64).reshape(n, 1) if k == "class"
                else np.asarray(vectors, np.int64).reshape(n, -1) for k in self.kinds]


def _checked_input(xq, dtype, size) -> np.ndarray:
    xq = np.asarray(xq, np.int64)
    info = np.iinfo(dtype)
    if xq.ndim != 2 or xq.shape[1] != size:
        raise TinyccError(f"ch32v003: inputs must be [n, {size}], got {list(xq.shape)}")
    if xq.size and (xq.min() < info.min or xq.max() > info.max):
        raise TinyccError(f"ch32v003: inputs must be {dtype} values")
    return xq.astype(dtype)


class EmulatorProgram(Program):
    """The harness firmware in the unicorn emulator, one fresh run per input."""

    def __init__(self, graph, elf: bytes, part=firmware.CH32V003):
        self.outputs = _Outputs(graph)
        with tempfile.TemporaryDirectory(prefix="tinycc-nn-ch32v003-") as tmp:
            path = Path(tmp) / "firmware.elf"
            path.write_bytes(elf)
            self.emulator = part.emulator(path)

    def run(self, xq):
        emu = self.emulator
        batch = emu.run_many(_checked_input(xq, emu.input_dtype, emu.input_size))
        for i, fault in enumerate(batch.faults):
            if fault:
                raise TinyccError(f"ch32v003: input {i}: the firmware faulted: {fault}")
        return (self.outputs.values(batch.results, batch.outputs),
                {"cycles": batch.cycles, "instructions": batch.instructions})


class HostProgram(Program):
    """model.c compiled with the host gcc (hostbuild.py): the fast path for test sets."""

    def __init__(self, graph, files: dict):
        from .hostbuild import HostBuildError, HostModel
        self.outputs = _Outputs(graph)
        with tempfile.TemporaryDirectory(prefix="tinycc-nn-ch32v003-host-") as tmp:
            source = firmware.write_sources(files, Path(tmp))
            try:
                self.model = HostModel([source], [source.parent])
            except HostBuildError as e:
                if shutil.which("gcc"):     # gcc refused model.c: that is a bug of ours
                    raise
                raise TinyccError(f"ch32v003: --option executor=host: {str(e).splitlines()[0]}; "
                                  "or leave the option out to run on the emulator") from None

    def run(self, xq):
        m = self.model
        classes, vectors = m.infer(_checked_input(xq, m.input_dtype, m.input_size))
        return self.outputs.values(classes, vectors), {}


class Ch32v003Backend(Backend):
    name = "ch32v003"
    description = "WCH CH32V003 (RV32EC, 16 KB flash, 2 KB RAM): multiplier-free C, emulator-checked"
    rom_unit = "bytes"
    rom_capacity = firmware.FLASH
    ram_capacity = firmware.RAM
    word_bits = 32
    has_multiply = False
    part = firmware.CH32V003
    input_in_ram = False          # nn_infer reads the caller's input buffer
    options = {
        "opt": ("speed", "speed|size: size drops the two-neuron unrolling of the lookup loops "
                         "and the skipping of all-zero input groups"),
        "executor": ("emulator", "emulator|host: run the firmware under unicorn (counts cycles) "
                                 "or model.c built for the host (fast, no counts)"),
    }

    def emit(self, graph, options):
        opt, executor = options.get("opt", "speed"), options.get("executor", "emulator")
        if opt not in ("speed", "size"):
            raise TinyccError(f"ch32v003: opt must be speed or size, not {opt!r}")
        if executor not in ("emulator", "host"):
            raise TinyccError(f"ch32v003: executor must be emulator or host, not {executor!r}")
        settings = dict(unroll=2 if opt == "speed" else 1, zero_skip=opt == "speed")
        settings["multiply"] = self.has_multiply
        ram = self.part.ram
        # The fastest layout first, then ones that trade cycles for RAM, until the static
        # RAM leaves the stack its reserve (the stack measured later is 140-180 B for
        # CNNs; less would overrun .bss); if none does, DoesNotFit gives the last one's needs.
        for extra, note in _LAYOUTS:
            cm = generate(graph, **settings, **extra)
            in_bytes = graph.type(graph.inputs()[0]).size * SIZEOF[cm.input_ctype]
            out_bytes = cm.output_size * SIZEOF[cm.output_ctype]
            if firmware.static_ram(cm, in_bytes, out_bytes) + STACK_RESERVE <= ram:
                break
        firmware.check_static(cm, in_bytes, out_bytes, self.part)
        files = {"model.c": cm.model_c, "model.h": cm.model_h}
        report = {"rom_used": None, "ram_used": None, "cycles_per_inference": None,
                  "instructions_per_inference": None, "arena_bytes": cm.arena_bytes,
                  "flash_data_bytes": sum(cm.flash_arrays.values()), "layers": cm.layers}
        if note:
            report["kernel_note"] = note
        if firmware.have_cross_compiler():
            t = graph.type(graph.inputs()[0])
            elf, measured = firmware.build_and_measure(files, (t.lo, t.hi), self.part)
            files["firmware.elf"] = elf
            report.update(measured)
        else:
            report["note"] = (f"{firmware.toolchain.GCC} not installed: C files written, "
                              "flash/RAM/cycles not measured")
        return files, report

    def load(self, artifact):
        if artifact.options.get("executor", "emulator") == "host":
            return HostProgram(artifact.graph, artifact.files)
        elf = artifact.files.get("firmware.elf")
        if elf is None:
            raise TinyccError(f"ch32v003: no firmware to emulate ({firmware.toolchain.GCC} not "
                              "installed?); compile with executor='host' to run model.c on the host")
        return EmulatorProgram(artifact.graph, elf, self.part)


class Ch32v002Backend(Ch32v003Backend):
    """The same C for the WCH CH32V002 (QingKe V2C: RV32EC + Zmmul, 16 KB flash, 4 KB SRAM):
    convolutions multiply weights from a table instead of dispatching per weight value,
    and the emulator accepts the multiply instructions (and charges them)."""
    name = "ch32v002"
    description = "WCH CH32V002 (RV32EC + Zmmul, 16 KB flash, 4 KB RAM): C using the multiplier, emulator-checked"
    rom_capacity = firmware.CH32V002.flash
    ram_capacity = firmware.CH32V002.ram
    has_multiply = True
    part = firmware.CH32V002
