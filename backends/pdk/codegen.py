"""Padauk code generation: the IR after the common passes -> one sdas source file.

`Codegen` is one program variant (code shape, read sharing, table layout, staging) and
the state its parts share while they write it: the assembler buffer, the layout, the
layer plans, and the routines and tables asked for so far.  The parts: `plan`
(registers, RAM: the input in RAM or streamed), `program` (the program in order),
`inputs` (reading, copying and streaming the input; the harness table and the library
shim), `layer_loop` (a dense layer's loops and tables), `routines` (kernels, staging,
input sums, argmax), `finish`, `library` (model.h).
"""
from __future__ import annotations

from .asm import Asm, h
from .layers import DensePlan
from . import program

RAM_FIRST_LIBRARY = 2     # SDCC keeps its pseudo-register p at 0x00-0x01


class Codegen:
    def __init__(self, graph, core_name: str, core, part: str, ram_bytes: int, harness: bool,
                 opt: str = "size", ways: int = 2, seg_copies: bool = False,
                 widen_all: bool = False, stage: bool = False):
        self.graph, self.core_name, self.part = graph, core_name, part
        self.opt = opt
        self.ways = ways          # at most this many neurons share a streamed input read
        self.widest = 1           # ... and this many do in the program written
        self.seg_copies = seg_copies  # a layer spanning several tables: a loop per table
        self.widen_all = widen_all    # layers reading RAM share reads too (where RAM allows)
        self.stage = stage and ways == 1  # a streamed input goes through RAM, a group at a
        self.stage_base = None            # time, so the RAM kernel serves it too
        self.stop_after = None    # set to a layer name to measure the program up to it
        self.asm = Asm(core)
        self.harness = harness
        self.ram_first = 0 if harness else RAM_FIRST_LIBRARY
        self.ram_bytes = ram_bytes
        self.bit_reach = 16 if core_name == "pdk13" else 64
        self.labels = 0
        self.plans = {}
        self.kernels = set()
        self.usums = set()
        self.stages = set()       # group sizes of the staging routines called
        self.finishers = {}       # finish_key -> (label, a plan with that key)
        self.tails = {}           # finish.Tail -> label of the shared finish tail
        self.tail_of = {}         # layer -> its finish.Tail
        self.tables = []          # (label, bytes): the last one is open while open_table
        self.open_table = False   # ... and later layers' rows may go on in it
        self.widx_at = None       # (table, entry) widx holds at this point of the program
        self.dispatchers = []     # (label, table labels) for layers spanning several tables
        self.deferred = []        # (layer, label, plan): group finishes shared by its loops

    def emit(self) -> str:
        """The program's sdas source (see `program`)."""
        return program.emit(self)

    # helpers -------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        self.labels += 1
        return f"{base}_{self.labels}"

    def op(self, text, comment="", symbols=()):
        self.asm.op(text, comment, symbols)

    def r(self, name, byte=0) -> str:
        return h(self.layout.addr(name, byte))

    def q(self, p: DensePlan, neuron: int, plane: int, byte: int) -> str:
        """Byte `byte` of plane `plane`'s sum of the `neuron`-th (>= 1) neuron of a group
        sharing input reads (the first one's sums are the plane registers)."""
        base = self.layout.vectors[f"ways@{p.name}"][0]
        return h(base + ((neuron - 1) * p.planes.count + plane) * p.pb_raw + byte)

    def seg(self, p: DensePlan) -> str:
        return h(self.layout.vectors[f"seg@{p.name}"][0])

    def movi(self, reg, value, byte=0, comment=""):
        if value & 0xFF == 0:
            self.op(f"clear {self.r(reg, byte)}", comment)
            return
        self.op(f"mov a, #{h(value & 0xFF)}", comment)
        self.op(f"mov {self.r(reg, byte)}, a")

    @property
    def seg_copies_used(self) -> bool:
        """Whether some layer spans several tables (so `seg_copies` changes the program)."""
        return any(q.units > q.per_segment for q in self.plans.values())

    def streamed(self, p: DensePlan) -> bool:
        return p.x == self.input_name and not self.input_in_ram

    def staged(self, p: DensePlan) -> bool:
        """Streamed through the staging buffer: `call stage`, then the RAM kernel."""
        return self.stage and self.streamed(p)

    def clear_sums(self) -> None:
        """Zero the plane sums and acc (RAM is undefined at reset; each finish re-zeroes)."""
        cleared = {self.layout.addr(r, b) for r in self.layout.regs
                   if r == "acc" or (r[0] == "p" and r[1:].isdigit())
                   for b in range(self.layout.regs[r][1])}
        for addr in sorted(cleared):
            self.op(f"clear {h(addr)}")
