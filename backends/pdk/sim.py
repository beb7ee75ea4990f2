"""Instruction-set simulator for Padauk pdk13 / pdk14 programs.

Runs a program from reset (pc 0) until ``stopsys`` and reports A, flags, RAM, instruction
and cycle counts, or the first fault: illegal or unprogrammed word, RAM address beyond the
part, stack push at or past ``stack_limit``, SP set beyond it, pc outside ROM, or more than
``max_instructions``. Faults are results, never exceptions.

Speed comes from `translate`: the code reachable from each entry address (following gotos,
calls and both sides of skips, looping back to the entry) becomes one compiled Python
function, made on first execution and cached until `write_rom` changes one of its words.
Compiling is the slow part of translation, so integer literals are lifted out of the source
into closure parameters and the remaining *shape* keys a process-wide cache of compiled code:
a patched ``ret #k`` table entry, or the same code at another address, compiles nothing new;
and each simulator remembers the function made for each (entry, words read), so a table
entry patched back to a value it held before costs nothing. Semantics and cycles all come
from the ISA table.

The CPU state lives on the object between runs: set ``a``, ``flags``, ``pc``, ``ram`` or
``io`` before `run` to start elsewhere than reset; `run` continues from where the last run
stopped (after a runaway stop, with the next instruction); `reset` restores power-on state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .isa import CORES
from .parts import PARTS
from .translate import MAX_REGION, Layout, region_source

_CODE_CACHE: dict[str, object] = {}
_CODE_CACHE_LIMIT = 20_000
_MEMO_LIMIT = 100_000
_LITERAL = re.compile(r"('[^']*'|\"[^\"]*\")|\b(\d+)\b")


def _lift_literals(source: str) -> tuple[str, list[int]]:
    """Replace each distinct integer literal outside string literals by a name K0, K1, ..."""
    names: dict[int, str] = {}

    def name(match: re.Match) -> str:
        if match.group(1):
            return match.group(1)
        return names.setdefault(int(match.group(2)), f"K{len(names)}")

    shape = _LITERAL.sub(name, source)
    return shape, list(names)


def _factory(shape: str, count: int) -> str:
    params = ", ".join(f"K{i}" for i in range(count))
    body = "".join(f"    {line}\n" for line in shape.splitlines())
    return f"def _make({params}):\n{body}    return _block\n"


class _Halt(Exception):
    def __init__(self, reason, message, pc, a, z, c, ac, ov, instructions, cycles):
        super().__init__(message)
        self.reason, self.message, self.pc = reason, message, pc
        self.regs = (a, z, c, ac, ov)
        self.instructions, self.cycles = instructions, cycles


@dataclass(frozen=True)
class Result:
    """How a run ended and the machine state at that point."""

    reason: str             # "stopsys" or "fault"
    message: str | None     # what went wrong, for faults
    pc: int                 # the stopsys, or the instruction that faulted
    instructions: int       # completed in this run (the stopsys counts, a faulting one not)
    cycles: int
    a: int
    flags: int              # Z bit 0, C bit 1, AC bit 2, OV bit 3
    ram: bytes
    io: bytes
    max_sp: int             # highest value SP held (stack high-water mark)

    @property
    def ok(self) -> bool:
        return self.reason == "stopsys"

    def flag(self, name: str) -> int:
        return self.flags >> ("z", "c", "ac", "ov").index(name) & 1


class Simulator:
    """One part with one program in ROM.

    `program` is a list of words from address 0 or a dict {word address: word}; words not
    given are unprogrammed and fault if executed. `stack_limit` (default: all RAM) is the
    first RAM address the stack may not write; `ram_fill` the power-on RAM byte (run twice
    with different fills to catch reads of uninitialised RAM).
    """

    def __init__(self, core: str, program, *, rom_words: int, ram_bytes: int,
                 stack_limit: int | None = None, ram_fill: int = 0,
                 max_instructions: int = 50_000_000):
        self.core = CORES[core]
        if stack_limit is None:
            stack_limit = ram_bytes
        if not 0 < stack_limit <= ram_bytes:
            raise ValueError(f"stack_limit {stack_limit} outside 1..{ram_bytes}")
        if not 0 <= ram_fill <= 255:
            raise ValueError(f"ram_fill {ram_fill} is not a byte")
        self.layout = Layout(rom_words, ram_bytes, stack_limit)
        self.ram_fill = ram_fill
        self.max_instructions = max_instructions
        self.rom: list[int | None] = [None] * rom_words
        words = program.items() if isinstance(program, dict) else enumerate(program)
        for address, word in words:
            self._check_word(address, word)
            self.rom[address] = word
        self.ram = [ram_fill] * ram_bytes
        self.io = [0] * 64
        self._hw = [0]
        self._namespace = {"m": self.ram, "io": self.io, "hw": self._hw, "_Halt": _Halt}
        self._blocks: list = [None] * rom_words
        self._singles: dict[int, object] = {}
        self._makers: dict[str, object] = {}  # shape -> factory bound to this namespace
        self._region_cover: dict[tuple, tuple] = {}  # (entry, limit) -> addresses last read
        self._memo: dict[tuple, object] = {}
        self._covers: dict[int, set[int]] = {}
        self.reset()

    @classmethod
    def for_part(cls, part, program, **options) -> "Simulator":
        """A simulator for `part`: a name in PARTS or a Part (e.g. a generic one)."""
        spec = PARTS[part] if isinstance(part, str) else part
        return cls(spec.core, program, rom_words=spec.rom_words, ram_bytes=spec.ram_bytes, **options)

    @classmethod
    def from_ihx(cls, source: str | Path, part, **options) -> "Simulator":
        """A simulator for `part` loaded with an Intel HEX file (or its text)."""
        from .sdas import load_ihx
        return cls.for_part(part, load_ihx(source), **options)

    def _check_word(self, address: int, word: int) -> None:
        if not 0 <= address < len(self.rom):
            raise ValueError(f"program word at {address}, outside the {len(self.rom)}-word ROM")
        if not 0 <= word < 1 << self.core.word_bits:
            raise ValueError(f"program word 0x{word:x} at {address} wider than {self.core.word_bits} bits")

    def reset(self) -> None:
        """Power-on state: pc 0, A and flags 0, RAM filled with `ram_fill`, I/O zero. ROM stays."""
        self.pc = 0
        self.a = 0
        self.flags = 0
        self.ram[:] = [self.ram_fill] * len(self.ram)
        self.io[:] = [0] * len(self.io)
        self._hw[0] = 0

    def write_rom(self, address: int, word: int | None) -> None:
        """Patch one program word (None: unprogrammed); code translated from it is dropped."""
        if word is not None:
            self._check_word(address, word)
        if self.rom[address] == word:
            return
        self.rom[address] = word
        for start in self._covers.pop(address, ()):
            self._blocks[start] = None
        self._singles.pop(address, None)

    def _translate(self, pc: int, limit: int = MAX_REGION):
        """The function for the region entered at `pc`. A region's code depends only on the
        words it read, so functions are remembered by (entry, addresses read, their words):
        a patched table entry that returns to an earlier value reuses its old function."""
        cover = self._region_cover.get((pc, limit))
        function = None
        if cover is not None:
            function = self._memo.get((pc, limit, cover, tuple(self.rom[x] for x in cover)))
        if function is None:
            source, covered = region_source(self.core, self.rom, pc, self.layout, limit)
            function = self._compile(source)
            cover = self._region_cover[(pc, limit)] = tuple(sorted(covered))
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[(pc, limit, cover, tuple(self.rom[x] for x in cover))] = function
        if limit == 1:
            self._singles[pc] = function
        else:
            self._blocks[pc] = function
            for address in cover:
                self._covers.setdefault(address, set()).add(pc)
        return function

    def _compile(self, source: str):
        shape, values = _lift_literals(source)
        maker = self._makers.get(shape)
        if maker is None:
            code = _CODE_CACHE.get(shape)
            if code is None:
                if len(_CODE_CACHE) >= _CODE_CACHE_LIMIT:
                    _CODE_CACHE.clear()
                code = _CODE_CACHE[shape] = compile(_factory(shape, len(values)), "<pdk region>", "exec")
            exec(code, self._namespace)
            maker = self._makers[shape] = self._namespace.pop("_make")
        return maker(*values)

    def run(self, max_instructions: int | None = None) -> Result:
        """Run from the current state until stopsys, a fault, or `max_instructions` (default:
        the simulator's) instructions, which is reported as a runaway fault."""
        budget = self.max_instructions if max_instructions is None else max_instructions
        f = self.flags
        a, z, c, ac, ov = self.a, f & 1, f >> 1 & 1, f >> 2 & 1, f >> 3 & 1
        pc, count, cycles = self.pc, 0, 0
        self._hw[0] = max(self._hw[0], self.io[2])
        blocks, soft_limit = self._blocks, budget - MAX_REGION
        reason, message = "fault", None
        try:
            while count <= soft_limit:  # a region returns within MAX_REGION past its budget
                block = blocks[pc] or self._translate(pc)
                pc, a, z, c, ac, ov, n, cy = block(a, z, c, ac, ov, soft_limit - count)
                count += n
                cycles += cy
            while count < budget:  # near the limit: one instruction at a time
                single = self._singles.get(pc) or self._translate(pc, 1)
                pc, a, z, c, ac, ov, n, cy = single(a, z, c, ac, ov, 0)
                count += n
                cycles += cy
            message = f"runaway program: {budget} instructions executed without stopsys"
        except _Halt as halt:
            reason, message, pc = halt.reason, halt.message, halt.pc
            a, z, c, ac, ov = halt.regs
            count += halt.instructions
            cycles += halt.cycles
        self.pc, self.a = pc, a
        self.flags = int(z) | int(c) << 1 | int(ac) << 2 | int(ov) << 3
        return Result(reason, message, pc, count, cycles, a, self.flags, bytes(self.ram),
                      bytes(self.io), self._hw[0])
