"""Translate the code reachable from one ROM address (a region) into one Python function.

Why: dispatching every instruction through a Python call tops out near a few hundred
thousand instructions per second, and Padauk basic blocks are short (every skip ends one).
So a region follows ``goto`` and ``call`` targets and both paths of every skip inside one
function, and a jump back to the region's entry becomes a ``continue`` of an internal loop:
a multiply loop runs to completion in one call. Paths end at dynamic jumps (``ret``,
``pcadd``), at code already on the path, after `MAX_REGION` instructions, or when the region
has grown to `CODE_PER_PATH` times that.

The statements come from the ISA table (`isa_forms`); the translator adds only what
depends on the part or on a concrete address: I/O and flag-register access, stack and RAM
bound checks, and control flow. The generated function::

    def _block(a, z, c, ac, ov, budget):
        ...
        return next_pc, a, z, c, ac, ov, instructions, cycles

reaches RAM ``m``, I/O ``io`` and the stack high-water mark ``hw`` as globals of the
simulator's namespace, and leaves its internal loop once it has executed ``budget``
instructions (it may then run up to `MAX_REGION` more before returning). Stops and faults
raise ``_Halt(reason, message, pc, a, z, c, ac, ov, instructions, cycles)``, counting the
instructions completed before the one that halted. Flag assignments overwritten before
anything reads them are dropped within each straight-line stretch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .isa import Core, IllegalOpcode

FLAGS = ("z", "c", "ac", "ov")
FLAG_BYTE = "(z | c << 1 | ac << 2 | ov << 3)"
MAX_REGION = 64    # instructions on one path through a region
CODE_PER_PATH = 4  # a region translates at most this many times MAX_REGION instructions
_FLAG_USE = re.compile(r"\b(z|c|ac|ov)\b")


@dataclass(frozen=True)
class Layout:
    """What the translator needs to know about the part."""

    rom_words: int
    ram_bytes: int
    stack_limit: int


@dataclass
class _Line:
    text: str
    defines: str | None   # the flag this line only assigns, if any
    uses: frozenset


def _line(text: str, uses_all: bool = False) -> _Line:
    target, _, expr = text.partition(" = ")
    uses = frozenset(FLAGS) if uses_all else frozenset(_FLAG_USE.findall(expr or text))
    return _Line(text, target if target in FLAGS and expr and not uses_all else None, uses)


def _drop_dead_flags(lines: list[_Line]) -> list[_Line]:
    live = set(FLAGS)  # whatever follows a stretch may read any flag
    kept = []
    for line in reversed(lines):
        if line.defines is not None:
            if line.defines not in live:
                continue
            live.discard(line.defines)
        live |= line.uses
        kept.append(line)
    return kept[::-1]


class _Path:
    """Where translation stands on one path: the instruction and what precedes it."""

    def __init__(self, pc: int, done: int, cycles: int, visited: frozenset):
        self.pc, self.done, self.cycles, self.visited = pc, done, cycles, visited
        self.own_cycles = self.skip_cycles = 0


class _Region:
    def __init__(self, core: Core, rom: list, layout: Layout, entry: int, limit: int):
        self.core, self.rom, self.layout = core, rom, layout
        self.entry, self.limit = entry, limit   # instructions on one path
        self.code_limit = limit * CODE_PER_PATH  # instructions in the whole region
        self.out: list[tuple[int, str]] = []  # (indent, text) of finished lines
        self.stretch: list[_Line] = []
        self.indent = 1
        self.translated = 0
        self.covered: set[int] = set()
        self.loops = False

    # --- emitting ---------------------------------------------------------------------
    def emit(self, text: str, uses_all: bool = False) -> None:
        self.stretch.append(_line(text, uses_all))

    def flush(self) -> None:
        self.out.extend((self.indent, l.text) for l in _drop_dead_flags(self.stretch))
        self.stretch = []

    def leave(self, text: str) -> None:
        """End a path with a return, raise or continue."""
        self.emit(text, uses_all=True)
        self.flush()

    def counts(self, p: _Path, completed: bool) -> str:
        """Instructions and cycles so far, with or without the one being translated."""
        n = p.done + completed
        cycles = p.cycles + (p.own_cycles if completed else 0)
        return f"n + {n}, cy + {cycles}"

    def halt(self, p: _Path, reason: str, message: str, completed: bool = False) -> str:
        return f"raise _Halt({reason!r}, {message}, {p.pc}, a, z, c, ac, ov, {self.counts(p, completed)})"

    def exit_to(self, p: _Path, target: str) -> None:
        self.leave(f"return ({target}, a, z, c, ac, ov, {self.counts(p, True)})")

    def fault_if(self, p: _Path, condition: str, message: str) -> None:
        self.emit(f"if {condition}: {self.halt(p, 'fault', message)}", uses_all=True)

    # --- the capitalised words of the semantics ---------------------------------------
    def set_flags(self, value: str) -> None:
        self.emit(f"w = {value}")
        for bit, flag in enumerate(FLAGS):
            self.emit(f"{flag} = w >> {bit} & 1")

    def io_write(self, p: _Path, io: int, value: str) -> None:
        limit = self.layout.stack_limit
        if io == 0:
            self.set_flags(value)
        elif io == 2:
            self.emit(f"s = {value}")
            self.fault_if(p, f"s > {limit}", f"'SP set to %d, beyond the stack limit {limit}' % s")
            self.emit("io[2] = s")
            self.emit("if s > hw[0]: hw[0] = s")
        else:
            self.emit(f"io[{io}] = {value}")

    def push(self, p: _Path, low: str, high: str) -> None:
        limit = self.layout.stack_limit
        self.emit("s = io[2]")
        self.fault_if(p, f"s + 1 >= {limit}", f"'stack overflow: push at SP=%d, limit {limit}' % s")
        self.emit(f"m[s] = {low}")
        self.emit(f"m[s + 1] = {high}")
        self.emit("io[2] = s + 2")
        self.emit("if s + 2 > hw[0]: hw[0] = s + 2")

    def pop(self, p: _Path, low: str, high: str) -> None:
        self.emit("s = io[2] - 2")
        self.fault_if(p, "s < 0", "'stack underflow: pop at SP=%d' % (s + 2)")
        self.emit(f"{low} = m[s]")
        self.emit(f"{high} = m[s + 1]")
        self.emit("io[2] = s")

    def jump_checked(self, p: _Path, target: str, what: str) -> None:
        self.emit(f"t = {target}")
        self.fault_if(p, f"t >= {self.layout.rom_words}", f"'{what} to %d, outside ROM' % t")
        self.exit_to(p, "t")

    # --- walking the code -------------------------------------------------------------
    def walk(self, p: _Path) -> None:
        """Translate the path from `p` until every branch of it has left the function."""
        while True:
            if p.pc >= self.layout.rom_words:
                return self.leave(self.halt(p, "fault", f"'pc ran past the end of ROM ({p.pc})'"))
            if p.pc == self.entry and p.visited and self.limit > 1:
                self.loops = True
                self.emit(f"n += {p.done}")
                self.emit(f"cy += {p.cycles}")
                self.emit(f"if n >= budget: return ({p.pc}, a, z, c, ac, ov, n, cy)", uses_all=True)
                return self.leave("continue")
            if p.pc in p.visited or len(p.visited) >= self.limit or self.translated >= self.code_limit:
                return self.leave(f"return ({p.pc}, a, z, c, ac, ov, {self.counts(p, False)})")
            self.translated += 1
            self.covered.add(p.pc)
            p.visited = p.visited | {p.pc}
            if not self.instruction(p):
                return

    def instruction(self, p: _Path) -> bool:
        """Translate the instruction at p.pc; True if its path goes on (p is advanced)."""
        word = self.rom[p.pc]
        if word is None:
            self.leave(self.halt(p, "fault", f"'executing unprogrammed ROM word {p.pc}'"))
            return False
        try:
            entry, operands = self.core.decode(word)
        except IllegalOpcode:
            self.leave(self.halt(p, "fault", f"'illegal opcode 0x{word:04x} at {p.pc}'"))
            return False
        problem = _operand_fault(entry, operands, self.layout)
        if problem is not None:
            self.leave(self.halt(p, "fault", repr(problem)))
            return False
        p.own_cycles, p.skip_cycles = entry.cycles, entry.skip_cycles
        io = operands.get("IO")
        values = dict(operands)
        if "M" in operands:
            values["M1"] = operands["M"] + 1
        if "k" in operands:
            values["k15"] = operands["k"] & 15
        if "n" in operands:
            values["bit"], values["nbit"] = 1 << operands["n"], 255 ^ 1 << operands["n"]
        for statement in entry.semantics or ():
            next_pc = self.statement(p, statement.format(**values), io)
            if next_pc is None:
                return False
            if next_pc >= 0:
                return self.advance(p, next_pc)
        return self.advance(p, p.pc + 1)

    def advance(self, p: _Path, next_pc: int) -> bool:
        p.done, p.cycles, p.pc = p.done + 1, p.cycles + p.own_cycles, next_pc
        return True

    def statement(self, p: _Path, text: str, io: int | None) -> int | None:
        """Translate one statement: -1 to go on, a pc to continue the path at, None if the
        path has left the function."""
        if io is not None:
            text = text.replace("IOR", FLAG_BYTE if io == 0 else f"io[{io}]")
        text = text.replace("RAM_BYTES", str(self.layout.ram_bytes))
        text = re.sub(r"\bFLAGS\b(?! =)", FLAG_BYTE, text)
        head, _, rest = text.partition(" ")
        if text.startswith("IOW = "):
            self.io_write(p, io, text[6:])
        elif text.startswith("FLAGS = "):
            self.set_flags(text[8:])
        elif head == "CHECK":
            condition, _, message = rest.partition(", ")
            self.fault_if(p, f"not ({condition})", message)
        elif head in ("PUSH", "POP"):
            (self.push if head == "PUSH" else self.pop)(p, *rest.split(", "))
        elif text.startswith("SKIP = "):
            self.emit(f"if {text[7:]}:", uses_all=True)
            self.flush()
            taken = _Path(p.pc + 2, p.done + 1, p.cycles + p.own_cycles + p.skip_cycles, p.visited)
            self.indent += 1
            self.walk(taken)
            self.indent -= 1
            return p.pc + 1
        elif head in ("GOTO", "CALL"):
            if head == "CALL":
                back = p.pc + 1
                self.push(p, str(back & 0xFF), str(back >> 8))
            return int(rest)
        elif head == "RET":
            self.jump_checked(p, rest, "return")
            return None
        elif head == "PCADD":
            self.jump_checked(p, f"{p.pc} + a", "pcadd")
            return None
        elif head == "STOP":
            self.leave(self.halt(p, "stopsys", "None", completed=True))
            return None
        elif head == "FAULT":
            self.leave(self.halt(p, "fault", rest))
            return None
        else:
            self.emit(text)
        return -1

    def source(self) -> str:
        head = ["def _block(a, z, c, ac, ov, budget):", "    n = cy = 0"]
        if self.loops:
            head.append("    while True:")
        shift = 1 if self.loops else 0
        return "\n".join(head + ["    " * (i + shift) + t for i, t in self.out]) + "\n"


def _operand_fault(entry, operands: dict, layout: Layout) -> str | None:
    """A RAM or code address the part does not have, known before running."""
    ram = operands.get("M")
    if ram is not None:
        top = ram + 1 if entry.mnemonic in ("idxm", "ldt16", "stt16") else ram
        if top >= layout.ram_bytes:
            return f"RAM address 0x{top:02x} beyond the part's {layout.ram_bytes} bytes"
    if entry.mnemonic in ("goto", "call") and operands["k"] >= layout.rom_words:
        return f"{entry.mnemonic} to {operands['k']}, outside ROM"
    return None


def region_source(core: Core, rom: list[int | None], entry: int, layout: Layout,
                  limit: int = MAX_REGION) -> tuple[str, set[int]]:
    """Python source of the region entered at `entry`, and the addresses it translated."""
    region = _Region(core, rom, layout, entry, limit)
    region.walk(_Path(entry, 0, 0, frozenset()))
    return region.source(), region.covered
