"""Padauk backends: `pms150c` (pdk13, 1K words, 64 B) and `pfs154` (pdk14, 2K words, 128 B).

emit() writes `model.asm` (sdas syntax), assembles and links it with Debian's
sdaspdk13/14 + sdldpdk into `model.ihx` when they are installed, and reports ROM
words, RAM bytes (stack included) and cycles per inference measured on the
project's simulator.  load() runs the .ihx on that simulator, one reset per input,
patching the harness's `ret #k` input table instead of re-assembling.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tinycc_nn.backend import Backend, Program
from tinycc_nn.errors import DoesNotFit, TinyccError

from . import library, sdas
from .codegen import Codegen
from .isa import CORES
from .parts import PARTS
from .sim import Simulator


class PdkProgram(Program):
    def __init__(self, artifact, backend):
        self.backend = backend
        self.graph = artifact.graph
        self.meta = artifact.meta
        self.core = CORES[backend.core]
        self.assembly = artifact.assembly
        self.sim = Simulator.for_part(backend.part, self.assembly.words,
                                      stack_limit=self.meta["stack_end"],
                                      max_instructions=5_000_000)
        self.table = self.assembly.symbols["_nn_input_table"]
        self.ret_k = self.core.entry("ret #k")
        self.in_lo = self.graph.type(self.graph.inputs()[0]).lo

    def run_one(self, xq):
        for i, v in enumerate(xq):
            self.sim.write_rom(self.table + i, self.core.encode(self.ret_k, {"k": int(v) & 0xFF}))
        self.sim.reset()
        res = self.sim.run()
        if not res.ok:
            raise TinyccError(f"{self.backend.name}: simulator fault: {res.message} at pc {res.pc:#x}")
        return res

    def run(self, xq):
        xq = np.asarray(xq, np.int64)
        outs = self.graph.outputs()
        values = [np.zeros((len(xq), self.graph.type(self.graph.operands(o)[0]).size), np.int64)
                  for o in outs]
        cycles = np.zeros(len(xq), np.int64)
        instructions = np.zeros(len(xq), np.int64)
        for row, x in enumerate(xq):
            res = self.run_one(x)
            cycles[row], instructions[row] = res.cycles, res.instructions
            for k, o in enumerate(outs):
                src = self.graph.operands(o)[0]
                if self.graph.op(src) == "argmax":
                    values[k][row, 0] = res.a
                    continue
                base, nbytes, lo, size = self.meta["vectors"][src]
                raw = np.frombuffer(bytes(res.ram[base:base + nbytes * size]), np.uint8)
                raw = raw.reshape(size, nbytes).astype(np.int64)
                values[k][row] = (raw << (8 * np.arange(nbytes))).sum(axis=1) + lo
        return values, {"cycles": cycles, "instructions": instructions}


class PdkBackend(Backend):
    part = ""
    core = ""
    rom_unit = "words"
    has_multiply = False
    input_in_ram = False
    options = {"opt": ("size", "size|speed: speed inlines the kernel in every layer's loop and "
                               "gives each layer its own finish with the shift unrolled"),
               "reads_shared_by": (None, "1|2|4: neurons of a streaming layer that share each "
                                         "input read (default: chosen by --opt)"),
               "harness": (True, "add the reset stub and the ROM input table (simulator build); "
                                 "false: a library for SDCC firmware, with model.h")}

    def codegen(self, graph, options, stop_after=None) -> Codegen:
        """The program for `options`: `--opt size` takes the variant with the fewest words,
        `--opt speed` the fastest one that fits the ROM (variants differ in how many
        neurons share each read of a streamed input; `reads_shared_by` fixes it)."""
        spec = PARTS[self.part]
        opt = options.get("opt", "size")
        fixed = options.get("reads_shared_by")
        candidates = [int(fixed)] if fixed is not None else [4, 2, 1]
        if any(w not in (1, 2, 4) for w in candidates):
            raise TinyccError(f"--option reads_shared_by={fixed}: expected 1, 2 or 4")
        best = None
        for ways in candidates:       # fastest first
            gen = Codegen(graph, self.core, CORES[self.core], spec.name, spec.ram_bytes,
                          harness=bool(options.get("harness", True)), opt=opt, ways=ways)
            gen.stop_after = stop_after
            gen.source = gen.emit()
            if opt == "speed" and gen.asm.words <= spec.usable_rom_words:
                return gen
            if best is None or gen.asm.words < best.asm.words:
                best = gen
            if gen.widest < ways:     # nothing reads that wide: narrower is the same program
                break
        return best

    def emit(self, graph, options):
        spec = PARTS[self.part]
        gen = self.codegen(graph, options)
        source = gen.source
        lay = gen.layout
        words = gen.asm.section_words
        harness_words = words.get("harness", 0)
        model_words = gen.asm.words - harness_words
        if gen.asm.words > spec.usable_rom_words:
            big = sorted(((k, v) for k, v in words.items()), key=lambda kv: -kv[1])[:4]
            raise DoesNotFit(f"{spec.name}: needs {gen.asm.words} words of ROM, has "
                             f"{spec.usable_rom_words} (largest: "
                             + ", ".join(f"{k} {v}" for k, v in big) + f"); RAM {lay.used}/"
                             f"{spec.ram_bytes} bytes")
        files = {"model.asm": source}
        if not options.get("harness", True):
            files["model.h"] = library.header(gen)
        vectors = {}
        for name, plan in gen.plans.items():
            base, _ = lay.vectors[name]
            vectors[name] = (base, plan.out_bytes, plan.out_lo, plan.n)
        meta = {"vectors": vectors, "stack_end": lay.stack_end}
        report = {"rom_used": model_words, "rom_harness": harness_words,
                  "rom_capacity": spec.usable_rom_words, "ram_used": lay.used,
                  "ram_capacity": spec.ram_bytes, "ram_breakdown": lay.breakdown(),
                  "rom_breakdown": dict(words), "input": "ram" if gen.input_in_ram else "streamed",
                  "stack_bytes": library.stack_bytes(gen), "reads_shared_by": gen.widest,
                  "cycles_per_inference": None, "instructions_per_inference": None}
        self._last = (meta, None)
        if sdas.available(self.core) and options.get("harness", True):
            # a library build (harness=false) links into the user's firmware instead
            assembly = sdas.assemble(source, self.core)
            files["model.ihx"] = assembly.ihx
            self._last = (meta, assembly)
        return files, report

    def finish(self, artifact):
        """Attach what load() needs and measure cycles on one all-zero input."""
        meta, assembly = self._last
        artifact.meta, artifact.assembly = meta, assembly
        if assembly is not None and artifact.files.get("model.ihx") and \
                bool(artifact.options.get("harness", True)):
            zeros = np.zeros(artifact.graph.type(artifact.graph.inputs()[0]).size, np.int64)
            res = PdkProgram(artifact, self).run_one(zeros)
            artifact.report["cycles_per_inference"] = res.cycles
            artifact.report["instructions_per_inference"] = res.instructions
            artifact.report["stack_high_water"] = res.max_sp
            artifact.report["cycles_per_layer"] = self.cycles_per_layer(artifact, zeros, res.cycles)

    def cycles_per_layer(self, artifact, x, total) -> dict:
        """Cycles of each layer on input x: the same program halted after each layer in
        turn (the kernels' skips depend on the weights only, so this is the typical cost)."""
        g = artifact.graph
        layers = [n for n in g.order() if g.op(n) in ("dense", "argmax")]
        out, before = {}, 0
        same = dict(artifact.options, reads_shared_by=artifact.report["reads_shared_by"])
        for n in layers[:-1]:
            gen = self.codegen(g, same, stop_after=n)
            probe = SimpleNamespace(graph=g, meta=artifact.meta,
                                    assembly=sdas.assemble(gen.source, self.core))
            cycles = PdkProgram(probe, self).run_one(x).cycles
            out[n], before = cycles - before, cycles
        out[layers[-1]] = total - before
        return out

    def load(self, artifact):
        if getattr(artifact, "assembly", None) is None:
            raise TinyccError(f"{self.name}: running needs sdas{self.core[3:]} and sdldpdk "
                              "(Debian package sdcc)")
        return PdkProgram(artifact, self)


class Pms150cBackend(PdkBackend):
    name = "pms150c"
    part, core = "PMS150C", "pdk13"
    description = "Padauk PMS150C (pdk13): sdas assembly + .ihx, 1016 words ROM, 64 B RAM"
    rom_capacity, ram_capacity = PARTS["PMS150C"].usable_rom_words, PARTS["PMS150C"].ram_bytes
    word_bits = 13


class Pfs154Backend(PdkBackend):
    name = "pfs154"
    part, core = "PFS154", "pdk14"
    description = "Padauk PFS154 (pdk14): sdas assembly + .ihx, 2032 words ROM, 128 B RAM"
    rom_capacity, ram_capacity = PARTS["PFS154"].usable_rom_words, PARTS["PFS154"].ram_bytes
    word_bits = 14
