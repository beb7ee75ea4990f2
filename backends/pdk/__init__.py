"""Padauk backends: `pms150c` (pdk13, 1K words, 64 B) and `pfs154` (pdk14, 2K words, 128 B),
and `pdk13` / `pdk14` for any other part with those cores (`--option rom=N ram=N`).

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
from tinycc_nn.passes.requant_as_dense import RequantAsDense

from . import inputs, library, sdas
from .codegen import Codegen
from .isa import CORES
from .parts import CORE_LIMITS, PARTS, Part, generic
from .sim import Simulator


class PdkProgram(Program):
    def __init__(self, artifact, backend):
        self.backend = backend
        self.graph = artifact.graph
        self.meta = artifact.meta
        self.core = CORES[backend.core]
        self.assembly = artifact.assembly
        self.sim = Simulator.for_part(self.meta["part"], self.assembly.words,
                                      stack_limit=self.meta["stack_end"],
                                      max_instructions=5_000_000)
        symbols = self.assembly.symbols
        self.table = symbols["_nn_input_table"]
        # more than 255 inputs: tables of 128 words, one per half page
        self.halves = []
        while "_nn_input_h1" in symbols and inputs.input_half_label(len(self.halves)) in symbols:
            self.halves.append(symbols[inputs.input_half_label(len(self.halves))])
        self.ret_k = self.core.entry("ret #k")
        self.in_lo = self.graph.type(self.graph.inputs()[0]).lo

    def run_one(self, xq):
        for i, v in enumerate(xq):
            at = self.halves[i >> 7] + (i & 127) if self.halves else self.table + i
            self.sim.write_rom(at, self.core.encode(self.ret_k, {"k": int(v) & 0xFF}))
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
    options = {"opt": ("size", "size|speed: size takes the program with the fewest words; speed "
                               "the one with the fewest cycles (measured on the simulator) that "
                               "fits, trying inline kernels and unrolled shifts too"),
               "reads_shared_by": (None, "1|2|4: neurons of a streaming layer that share each "
                                         "input read (default: chosen by --opt)"),
               "rom_limit": (None, "at most this many words for the model (e.g. to leave room "
                                   "for your firmware); default: the part's ROM"),
               "harness": (True, "add the reset stub and the ROM input table (simulator build); "
                                 "false: a library for SDCC firmware, with model.h")}

    def spec(self, options) -> Part:
        """The part compiled for (a generic target's comes from its options)."""
        return PARTS[self.part]

    def passes(self, options) -> list:
        return [RequantAsDense()]      # a standalone requant runs as an identity layer

    def rom_limit(self, options) -> int:
        spec = self.spec(options)
        limit = options.get("rom_limit")
        if limit is None:
            return spec.usable_rom_words
        try:
            limit = int(limit)
        except ValueError:
            raise TinyccError(f"--option rom_limit={limit}: expected a number of words") from None
        if not 0 < limit <= spec.usable_rom_words:
            raise TinyccError(f"--option rom_limit={limit}: expected 1..{spec.usable_rom_words} "
                              f"(the {spec.name}'s usable ROM)")
        return limit

    def variant(self, graph, options, shape: str, ways: int, copies: bool,
                widen_all: bool = False, stage: bool = False, stop_after=None) -> Codegen:
        spec = self.spec(options)
        gen = Codegen(graph, self.core, CORES[self.core], spec.name, spec.ram_bytes,
                      harness=bool(options.get("harness", True)), opt=shape, ways=ways,
                      seg_copies=copies, widen_all=widen_all, stage=stage)
        gen.stop_after = stop_after
        gen.part_spec = spec
        gen.source = gen.emit()
        return gen

    def codegen(self, graph, options) -> Codegen:
        """The program for `options`. Variants differ in the code shape (`size`: shared
        kernel and finish routines; `speed`: kernels inline, shifts unrolled), in how many
        neurons share each read of a streamed input (`reads_shared_by` fixes it), and for
        layers whose weights span several tables, in one loop per table vs a dispatcher.
        A streamed input may also go through RAM a group at a time, so that one kernel
        serves every layer (fewer words, more cycles). With `--opt speed`, layers
        reading RAM may share reads too, where RAM allows.
        `--opt size` takes the fewest words; `--opt speed` the fewest cycles on one
        inference in the simulator among those that fit `rom_limit` (without the
        assembler, or for a library build, the first that fits in the order
        fastest-expected first)."""
        opt = options.get("opt", "size")
        limit = self.rom_limit(options)
        fixed = options.get("reads_shared_by")
        if fixed is not None and str(fixed) not in ("1", "2", "4"):
            raise TinyccError(f"--option reads_shared_by={fixed}: expected 1, 2 or 4")
        candidates = [int(fixed)] if fixed is not None else [4, 2, 1]
        shapes = ("speed", "size") if opt == "speed" else ("size",)
        gens = []
        for shape in shapes:
            for ways in candidates:       # fastest first
                widest = ways
                for copies in (True, False):
                    gen = self.variant(graph, options, shape, ways, copies)
                    gens.append(gen)
                    widest = gen.widest
                    if not gen.seg_copies_used:   # no layer spans several tables
                        break
                if widest < ways:     # nothing reads that wide: narrower is the same program
                    break
        if fixed is None or int(fixed) == 1:     # a streamed input staged through RAM
            for copies in (True, False):
                try:
                    gen = self.variant(graph, options, "size", 1, copies, stage=True)
                except TinyccError:               # no RAM for the staging buffer
                    break
                if gen.stage_base is None:        # nothing streams
                    break
                gens.append(gen)
                if not gen.seg_copies_used:
                    break
        if opt == "speed":
            for ways in [w for w in candidates if w > 1]:     # layers reading RAM share too
                try:
                    gen = self.variant(graph, options, "speed", ways, True, widen_all=True)
                except TinyccError:       # no RAM for it
                    continue
                if any(q.ways > 1 and not gen.streamed(q) for q in gen.plans.values()):
                    gens.append(gen)
            usable = self.spec(options).usable_rom_words
            fitting = [g for g in gens if g.asm.words <= usable and
                       g.asm.words - g.asm.section_words.get("harness", 0) <= limit]
            # the speed shape beats the size shape, and a loop per table beats the
            # dispatcher, at equal sharing: measure only the best that fits per sharing
            best = {}
            for g in fitting:
                best.setdefault((g.ways, g.widen_all), g)
            fitting = list(best.values())
            if fitting and not (options.get("harness", True) and sdas.available(self.core)):
                return fitting[0]
            if len(fitting) > 1:
                return min(fitting, key=lambda g: (self.measure(graph, g).cycles, g.asm.words))
            if fitting:
                return fitting[0]
        return min(gens, key=lambda g: g.asm.words)

    def program_of(self, graph, gen) -> PdkProgram:
        """`gen`'s program, assembled and loaded on the simulator (any variant, not only
        the one emit() kept)."""
        vectors = {n: (gen.layout.vectors[n][0], q.out_bytes, q.out_lo, q.n)
                   for n, q in gen.plans.items()}
        probe = SimpleNamespace(graph=graph, meta={"vectors": vectors, "part": gen.part_spec,
                                                   "stack_end": gen.layout.stack_end},
                                assembly=sdas.assemble(gen.source, self.core))
        return PdkProgram(probe, self)

    def measure(self, graph, gen):
        """One inference of `gen`'s program on an all-zero input (the kernels' skips depend
        on the weights only, so this is the typical cost)."""
        zeros = np.zeros(graph.type(graph.inputs()[0]).size, np.int64)
        return self.program_of(graph, gen).run_one(zeros)

    def rom_with_ram_to_spare(self, graph, options) -> int | None:
        """Words of the `--opt size` program on a part with RAM to spare (the address
        space of a byte), or None: what a RAM refusal adds about ROM."""
        spec = self.spec(options)
        try:
            gen = Codegen(graph, self.core, CORES[self.core], spec.name, 256,
                          harness=bool(options.get("harness", True)), opt="size", ways=1,
                          seg_copies=True)
            gen.emit()
        except TinyccError:
            return None
        return gen.asm.words

    def emit(self, graph, options):
        spec = self.spec(options)
        try:
            gen = self.codegen(graph, options)
        except DoesNotFit as e:         # RAM: say whether the ROM would not fit either
            words = self.rom_with_ram_to_spare(graph, options)
            if words is not None and words > spec.usable_rom_words:
                raise DoesNotFit(f"{e}; and ROM: needs about {words} words, has "
                                 f"{spec.usable_rom_words}") from None
            raise
        source = gen.source
        lay = gen.layout
        words = gen.asm.section_words
        harness_words = words.get("harness", 0)
        model_words = gen.asm.words - harness_words
        limit = self.rom_limit(options)
        if gen.asm.words > spec.usable_rom_words or model_words > limit:
            big = sorted(((k, v) for k, v in words.items()), key=lambda kv: -kv[1])[:4]
            need, has = (gen.asm.words, spec.usable_rom_words) if gen.asm.words > \
                spec.usable_rom_words else (model_words, limit)
            what = "ROM" if has == spec.usable_rom_words else f"ROM (rom_limit={limit})"
            raise DoesNotFit(f"{spec.name}: needs {need} words of {what}, has {has} (largest: "
                             + ", ".join(f"{k} {v}" for k, v in big) + f"); RAM {lay.used}/"
                             f"{spec.ram_bytes} bytes")
        files = {"model.asm": source}
        if not options.get("harness", True):
            files["model.h"] = library.header(gen)
        vectors = {}
        for name, plan in gen.plans.items():
            base, _ = lay.vectors[name]
            vectors[name] = (base, plan.out_bytes, plan.out_lo, plan.n)
        meta = {"vectors": vectors, "stack_end": lay.stack_end, "part": spec,
                "variant": (gen.opt, gen.ways, gen.seg_copies, gen.widen_all, gen.stage)}
        report = {"rom_used": model_words, "rom_harness": harness_words,
                  "rom_capacity": spec.usable_rom_words, "ram_used": lay.used,
                  "ram_capacity": spec.ram_bytes, "ram_breakdown": lay.breakdown(),
                  "rom_breakdown": dict(words),
                  "rom_table_data": sum(len(data) for _, data in gen.tables),
                  "input": "ram" if gen.input_in_ram else "streamed",
                  "stack_bytes": library.stack_bytes(gen), "reads_shared_by": gen.widest,
                  "code_shape": gen.opt, "loop_per_table": gen.seg_copies and gen.seg_copies_used,
                  "ram_layers_share_reads": gen.widen_all,
                  "input_staged": gen.stage_base is not None,
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
        for n in layers[:-1]:
            gen = self.variant(g, artifact.options, *artifact.meta["variant"], stop_after=n)
            probe = SimpleNamespace(graph=g, meta=artifact.meta,
                                    assembly=sdas.assemble(gen.source, self.core))
            cycles = PdkProgram(probe, self).run_one(x).cycles
            out[n], before = cycles - before, cycles
        out[layers[-1]] = total - before
        return out

    def load(self, artifact):
        if getattr(artifact, "assembly", None) is None:
            raise TinyccError(f"{self.name}: running needs {sdas.assembler(self.core)} and sdldpdk "
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


class GenericPdkBackend(PdkBackend):
    """Any part with this core: its usable ROM words and RAM bytes are options (e.g. a
    PMS152: `-t pdk14 --option rom=1264 --option ram=80`, leaving its writer words).
    A subclass names the core; the target is named after it."""
    options = {**PdkBackend.options,
               "rom": (None, "usable program memory in words (default: all the core "
                             "addresses; leave out the words your part reserves)"),
               "ram": (None, "RAM in bytes (default: all the core addresses)")}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = cls.part = cls.core
        cls.rom_capacity, cls.ram_capacity = CORE_LIMITS[cls.core]
        cls.description = (f"any Padauk {cls.core} part (--option rom=WORDS ram=BYTES, at "
                           f"most {cls.rom_capacity} and {cls.ram_capacity})")

    def spec(self, options) -> Part:
        try:
            return generic(self.core, options.get("rom"), options.get("ram"))
        except ValueError as e:
            raise TinyccError(f"--option {e}") from None


class Pdk13Backend(GenericPdkBackend):
    core, word_bits = "pdk13", 13


class Pdk14Backend(GenericPdkBackend):
    core, word_bits = "pdk14", 14
