"""Translate a run of ROM words (a basic block) into one Python function.

Why: dispatching every instruction through Python calls tops out near a few hundred
thousand instructions per second; a block of straight-line code compiled once runs each
instruction as a handful of local-variable operations. The statements come from the ISA
table (`isa_forms`), so the translator adds only what depends on the part or on a concrete
address: I/O and flag-register access, stack and RAM bound checks, and control flow.

The generated function takes and returns the CPU registers::

    def _block(a, z, c, ac, ov):
        ...
        return next_pc, a, z, c, ac, ov, instructions, cycles

and reaches RAM ``m``, I/O ``io`` and the stack high-water mark ``hw`` as globals of the
simulator's namespace. Stops and faults raise ``_Halt(reason, message, pc, a, z, c, ac, ov,
instructions, cycles)``, counting only the instructions completed before the one that halted.
A flag assignment whose value is overwritten before anything reads it is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .isa import Core, IllegalOpcode

FLAGS = ("z", "c", "ac", "ov")
FLAG_BYTE = "(z | c << 1 | ac << 2 | ov << 3)"
MAX_BLOCK = 64
_FLAG_USE = re.compile(r"\b(z|c|ac|ov)\b")


@dataclass(frozen=True)
class Layout:
    """What the translator needs to know about the part and the loaded program."""

    rom_words: int
    ram_bytes: int
    stack_limit: int


@dataclass
class _Line:
    text: str
    defines: str | None = None   # the flag this line assigns, if it only assigns a flag
    uses: frozenset = frozenset()


def _line(text: str) -> _Line:
    target, _, expr = text.partition(" = ")
    uses = frozenset(_FLAG_USE.findall(expr if expr else text))
    if target in FLAGS and expr:
        return _Line(text, target, uses)
    return _Line(text, None, uses)


class _Block:
    """Generated lines of one block, with the bookkeeping for fault reports."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.lines: list[_Line] = []
        self.pc = 0          # address of the instruction being translated
        self.done = 0        # instructions completed before it
        self.cycles = 0      # their cycles
        self.own_cycles = 0  # cycles of the instruction being translated
        self.skip_cycles = 0

    def emit(self, text: str) -> None:
        self.lines.append(_line(text))

    def halt(self, reason: str, message: str, *, completed: bool = False) -> str:
        n = self.done + completed
        cy = self.cycles + (self.own_cycles if completed else 0)
        return f"raise _Halt({reason!r}, {message}, {self.pc}, a, z, c, ac, ov, {n}, {cy})"

    def fault_if(self, condition: str, message: str) -> None:
        self.lines.append(_Line(f"if {condition}: {self.halt('fault', message)}", None, frozenset(FLAGS)))

    def ret(self, target: str, extra_cycles: int = 0) -> str:
        cycles = self.cycles + self.own_cycles + extra_cycles
        return f"return ({target}, a, z, c, ac, ov, {self.done + 1}, {cycles})"

    # --- the capitalised words of the semantics ---------------------------------------
    def io_read(self, io: int) -> str:
        return FLAG_BYTE if io == 0 else f"io[{io}]"

    def set_flags(self, value: str) -> None:
        self.emit(f"w = {value}")
        for bit, flag in enumerate(FLAGS):
            self.emit(f"{flag} = w >> {bit} & 1")

    def io_write(self, io: int, value: str) -> None:
        if io == 0:
            self.set_flags(value)
        elif io == 2:
            self.emit(f"s = {value}")
            self.fault_if(f"s > {self.layout.stack_limit}",
                          f"'SP set to %d, beyond the stack limit {self.layout.stack_limit}' % s")
            self.emit("io[2] = s")
            self.emit("if s > hw[0]: hw[0] = s")
        else:
            self.emit(f"io[{io}] = {value}")

    def push(self, low: str, high: str) -> None:
        self.emit("s = io[2]")
        self.fault_if(f"s + 1 >= {self.layout.stack_limit}",
                      f"'stack overflow: push at SP=%d, limit {self.layout.stack_limit}' % s")
        self.emit(f"m[s] = {low}")
        self.emit(f"m[s + 1] = {high}")
        self.emit("io[2] = s + 2")
        self.emit("if s + 2 > hw[0]: hw[0] = s + 2")

    def pop(self, low: str, high: str) -> None:
        self.emit("s = io[2] - 2")
        self.fault_if("s < 0", "'stack underflow: pop at SP=%d' % (s + 2)")
        self.emit(f"{low} = m[s]")
        self.emit(f"{high} = m[s + 1]")
        self.emit("io[2] = s")

    def jump_checked(self, target: str, what: str) -> None:
        self.emit(f"t = {target}")
        self.fault_if(f"t >= {self.layout.rom_words}", f"'{what} to %d, outside ROM' % t")
        self.emit(self.ret("t"))


def _statement(block: _Block, text: str, io: int | None) -> bool:
    """Translate one semantics statement; True when it ends the block."""
    if io is not None:
        text = text.replace("IOR", block.io_read(io))
    text = text.replace("RAM_BYTES", str(block.layout.ram_bytes))
    text = re.sub(r"\bFLAGS\b(?! =)", FLAG_BYTE, text)
    head, _, rest = text.partition(" ")
    rom = block.layout.rom_words
    if text.startswith("IOW = "):
        block.io_write(io, text[6:])
    elif text.startswith("FLAGS = "):
        block.set_flags(text[8:])
    elif head == "CHECK":
        condition, _, message = rest.partition(", ")
        block.fault_if(f"not ({condition})", message)
    elif head == "PUSH":
        block.push(*rest.split(", "))
    elif head == "POP":
        block.pop(*rest.split(", "))
    elif text.startswith("SKIP = "):
        skip_target = block.pc + 2
        taken = (block.ret(str(skip_target), block.skip_cycles) if skip_target < rom else
                 block.halt("fault", f"'skip to {skip_target}, outside ROM'", completed=True))
        block.lines.append(_Line(f"if {text[7:]}: {taken}", None, frozenset(FLAGS)))
        block.emit(block.ret(str(block.pc + 1)))
        return True
    elif head in ("GOTO", "CALL"):
        if head == "CALL":
            back = block.pc + 1
            block.push(str(back & 0xFF), str(back >> 8))
        block.emit(block.ret(rest))
        return True
    elif head == "RET":
        block.pop("p", "q")
        block.jump_checked("p | q << 8", "return")
        return True
    elif head == "PCADD":
        block.jump_checked(f"{block.pc} + a", "pcadd")
        return True
    elif head == "STOP":
        block.emit(block.halt("stopsys", "None", completed=True))
        return True
    elif head == "FAULT":
        block.emit(block.halt("fault", rest))
        return True
    else:
        block.emit(text)
    return False


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


def block_source(core: Core, rom: list[int | None], start: int, layout: Layout,
                 max_len: int = MAX_BLOCK) -> tuple[str, list[int]]:
    """Python source of the block starting at `start`, and the addresses it covers."""
    block = _Block(layout)
    covered = []
    pc = start
    while True:
        block.pc = pc
        covered.append(pc)
        word = rom[pc]
        ended = True
        if word is None:
            block.emit(block.halt("fault", f"'executing unprogrammed ROM word {pc}'"))
        else:
            try:
                entry, operands = core.decode(word)
            except IllegalOpcode:
                entry = None
            if entry is None:
                block.emit(block.halt("fault", f"'illegal opcode 0x{word:04x} at {pc}'"))
            elif (problem := _operand_fault(entry, operands, layout)) is not None:
                block.emit(block.halt("fault", repr(problem)))
            else:
                block.skip_cycles = entry.skip_cycles
                block.own_cycles = entry.cycles
                io = operands.get("IO")
                ended = False
                for statement in entry.semantics or ():
                    if _statement(block, statement.format(**operands), io):
                        ended = True
                        break
                block.done += 1
                block.cycles += entry.cycles
        if ended:
            break
        pc += 1
        if pc >= layout.rom_words:
            block.pc = pc
            block.emit(block.halt("fault", f"'pc ran past the end of ROM ({pc})'"))
            break
        if len(covered) >= max_len:
            block.emit(f"return ({pc}, a, z, c, ac, ov, {block.done}, {block.cycles})")
            break
    body = _drop_dead_flags(block.lines)
    return "def _block(a, z, c, ac, ov):\n" + "".join(f"    {l.text}\n" for l in body), covered


def _drop_dead_flags(lines: list[_Line]) -> list[_Line]:
    live = set(FLAGS)  # every exit returns or reports all four flags
    kept = []
    for line in reversed(lines):
        if line.defines is not None:
            if line.defines not in live:
                continue
            live.discard(line.defines)
        live |= line.uses
        kept.append(line)
    kept.reverse()
    return kept
