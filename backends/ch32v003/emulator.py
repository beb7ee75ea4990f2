"""Run CH32V003 firmware under unicorn: results, instructions, cycles, stack.

The firmware comes from `toolchain.build_firmware` (start.S + harness.c + the
model). At construction the real start.S runs once, up to `main`; the RAM it
leaves behind (.data copied, .bss zeroed), plus a fill pattern between the end
of .bss and the top of the stack, is the snapshot every run starts from. A run
writes the input into `nn_harness_input`, starts at `main` with fresh registers
and stops when `main` returns to `_halt`. Counts therefore cover `main` and the
inference, not the one-off startup.

The stack high-water mark is the distance from the top of SRAM to the deepest
byte of the fill pattern that was overwritten: stack space reserved but never
written is not seen. When the stack reaches .bss (every fill byte overwritten,
or the stack pointer below the end of .bss when a run faults) the run is reported
as a stack overflow (and the mark is only a lower bound).

Only what the chip has is mapped: 16 KB of flash (read/execute) and one 4 KB
page of SRAM of which the first 2 KB exist. Touching the other 2 KB, unmapped
memory or flash for writing, executing an instruction the core lacks, or
running past the instruction limit ends the run with `fault` set; none of them
raise. Unicorn emulates a full RV32 (with M and 32 registers); the block decoder
below rejects M/A/F/D instructions, it does not check for registers x16..x31.

Counting costs one Python call per basic block, not per instruction: each
block (unicorn's translation block, which ends at every branch or jump) is
decoded once and cached with its instruction count and cycle cost.

Cycle model (`CYCLES`): per instruction class, for the 16-bit (RVC) and the
32-bit encoding, at a given system clock. The WCH QingKe V2 manual only says
"2-stage pipeline, static branch prediction"; the numbers come from cpldcpu's
measurements on a CH32V003 (github.com/cpldcpu/DRAM_exploration,
instruction_timing/README.md), which found:
  * 48 MHz from flash (1 wait state): flash delivers 32 bits per 2 cycles, so
    a 16-bit instruction averages 1 cycle and a 32-bit one 2 cycles;
  * from SRAM (no wait state) both take 1 cycle;
  * branches are predicted not taken: a taken branch flushes the pipeline,
    +2 cycles, and from flash the refetch costs 2 more (a taken c.bnez loop
    with one c.addi: 4 cycles from SRAM, 6 from flash);
  * a store occupies the bus for a second cycle (c.sw: 2 cycles).
Assumed, not measured: the CH32V002's multiply (QingKe V2C, Zmmul) issues like an ALU
instruction (WCH documents the multiplier, not its timing); loads cost like stores; a 32-bit load or store adds the
bus cycle to its 2-cycle fetch; jumps cost like taken branches; flash at
24 MHz (0 wait states, per the reference manual's FLASH_ACTLR LATENCY field)
behaves like SRAM at 48 MHz. Not modelled: extra wait states of data loads from
flash (weights in .rodata), the 2-cycle granularity of flash fetches (the
model uses the average), interrupts.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import unicorn
import unicorn.riscv_const as rv
from elftools.elf.elffile import ELFFile

FLASH_BASE, FLASH_SIZE = 0x0800_0000, 16 * 1024
SRAM_BASE, SRAM_SIZE = 0x2000_0000, 2 * 1024
SRAM_PAGE = 4 * 1024  # unicorn maps whole 4 KB pages
STACK_FILL = 0xA5
DEFAULT_MAX_INSTRUCTIONS = 10_000_000

#                    cycles (16-bit, 32-bit encoding)
CYCLES = {
    48: {  # 1 flash wait state
        "alu": (1, 2),
        "load": (2, 3),
        "store": (2, 3),
        "branch": (1, 2),        # not taken
        "branch-taken": (5, 6),
        "jump": (5, 6),
        "system": (1, 2),        # csr*, fence, ecall, ebreak
        "mul": (1, 2),           # CH32V002 only; assumed like an ALU op (see below)
    },
    24: {  # 0 flash wait states
        "alu": (1, 1),
        "load": (2, 2),
        "store": (2, 2),
        "branch": (1, 1),
        "branch-taken": (3, 3),
        "jump": (3, 3),
        "system": (1, 1),
        "mul": (1, 1),
    },
}

_MEMORY_ACCESS = {
    unicorn.UC_MEM_READ: "read", unicorn.UC_MEM_WRITE: "write",
    unicorn.UC_MEM_FETCH: "fetch", unicorn.UC_MEM_READ_UNMAPPED: "read from unmapped",
    unicorn.UC_MEM_WRITE_UNMAPPED: "write to unmapped",
    unicorn.UC_MEM_FETCH_UNMAPPED: "fetch from unmapped",
    unicorn.UC_MEM_WRITE_PROT: "write to read-only", unicorn.UC_MEM_READ_PROT: "read from unreadable",
    unicorn.UC_MEM_FETCH_PROT: "fetch from non-executable",
}
_REGISTERS = [getattr(rv, f"UC_RISCV_REG_X{i}") for i in range(1, 32)]


class FirmwareError(ValueError):
    """The ELF is not a CH32V003 harness firmware, or its startup fails."""


@dataclass(frozen=True)
class RunResult:
    result: int
    output: bytes
    instructions: int
    cycles: int
    stack_high_water: int
    fault: str | None


@dataclass(frozen=True)
class BatchResult:
    results: np.ndarray           # int32 [n]
    outputs: np.ndarray           # output dtype [n, NN_OUTPUT_SIZE]
    instructions: np.ndarray      # int64 [n]
    cycles: np.ndarray            # int64 [n]
    stack_high_water: np.ndarray  # int64 [n]
    faults: list[str | None]


def classify(word: int, multiply: bool = False) -> tuple[str, int]:
    """Class and byte length of the instruction whose low bits are in `word`.

    The class is a `CYCLES` key, or "illegal" for encodings the QingKe V2A
    (RV32EC + Zicsr) does not implement; with `multiply` (the QingKe V2C of the
    CH32V002: RV32EC + Zmmul) mul, mulh, mulhsu and mulhu are "mul", and the
    divisions stay illegal.
    """
    if word & 3 == 3:
        opcode = word & 0x7F
        if opcode == 0x03:
            return "load", 4
        if opcode == 0x23:
            return "store", 4
        if opcode == 0x63:
            return "branch", 4
        if opcode in (0x67, 0x6F):
            return "jump", 4
        if opcode in (0x0F, 0x73):
            return "system", 4
        if opcode == 0x33 and word >> 25 == 1:
            # M extension: Zmmul is funct3 0-3 (mul, mulh, mulhsu, mulhu); 4-7 divide
            return ("mul" if multiply and (word >> 12) & 7 < 4 else "illegal"), 4
        if opcode in (0x13, 0x17, 0x33, 0x37):
            return "alu", 4
        return "illegal", 4
    quadrant, funct3 = word & 3, (word >> 13) & 7
    if word & 0xFFFF == 0:
        return "illegal", 2
    if quadrant == 0:
        return {0: "alu", 2: "load", 6: "store"}.get(funct3, "illegal"), 2
    if quadrant == 1:
        return {1: "jump", 5: "jump", 6: "branch", 7: "branch"}.get(funct3, "alu"), 2
    if funct3 == 4:
        rd, rs2 = (word >> 7) & 0x1F, (word >> 2) & 0x1F
        if rs2 != 0:
            return "alu", 2  # c.mv, c.add
        return ("system" if rd == 0 else "jump"), 2  # c.ebreak; c.jr, c.jalr
    return {0: "alu", 2: "load", 6: "store"}.get(funct3, "illegal"), 2


class _BlockCounter:
    """Instruction and cycle counts of one run, fed by unicorn's block hook.

    The hook runs once per executed block and costs about a microsecond, most
    of it the ctypes call itself; the body is kept to one cached lookup and a
    few additions. Each block is a tuple (size, instructions, cycles with a
    final branch not taken, fall-through address, extra cycles if that branch
    is taken, fault). The instruction limit is left to unicorn's `count`.
    """

    __slots__ = ("uc", "cycle_table", "sram_size", "multiply", "blocks", "instructions", "cycles", "fall_through",
                 "taken_extra", "last_block", "fault")

    def __init__(self, uc: unicorn.Uc, cycle_table: dict[str, tuple[int, int]],
                 sram_size: int = SRAM_SIZE, multiply: bool = False):
        self.uc, self.cycle_table = uc, cycle_table
        self.sram_size, self.multiply = sram_size, multiply
        self.blocks: dict[int, tuple[int, int, int, int, int, str | None]] = {}
        self.reset()

    def reset(self) -> None:
        self.instructions = self.cycles = self.fall_through = self.taken_extra = 0
        self.last_block = 0
        self.fault: str | None = None

    def settle_branch(self, address: int) -> None:
        """Charge the taken-branch penalty if the previous block did not fall through."""
        if address != self.fall_through:
            self.cycles += self.taken_extra
        self.taken_extra = 0

    def on_block(self, _handle: object, address: int, size: int, _data: object) -> None:
        try:
            block = self.blocks.get(address)
            if block is None or block[0] != size:
                block = self.blocks[address] = self.decode(address, size)
            _, instructions, cycles, fall_through, taken_extra, fault = block
            if address != self.fall_through:
                cycles += self.taken_extra
            self.instructions += instructions
            self.cycles += cycles
            self.fall_through, self.taken_extra, self.last_block = fall_through, taken_extra, address
            if fault is not None:
                self.stop(fault)
        except Exception as error:  # a raw ctypes callback must not raise
            self.stop(f"emulator error in block hook: {error!r}")

    def stop(self, fault: str) -> None:
        self.fault = self.fault or fault
        self.uc.emu_stop()

    def decode(self, address: int, size: int) -> tuple[int, int, int, int, int, str | None]:
        code = bytes(self.uc.mem_read(address, size))
        count = cycles = offset = length = 0
        kind, fault = "alu", None
        if SRAM_BASE + self.sram_size <= address < SRAM_BASE + SRAM_PAGE:
            fault = f"fetch at 0x{address:08x}, beyond the {self.sram_size // 1024} KB of SRAM"
        while offset < size:
            word = int.from_bytes(code[offset:offset + 4].ljust(4, b"\0"), "little")
            kind, length = classify(word, self.multiply)
            if kind == "illegal":
                fault = fault or (f"instruction 0x{word & (0xFFFF if length == 2 else 0xFFFFFFFF):x}"
                                  f" at 0x{address + offset:08x} is not implemented by the "
                                  f"QingKe {'V2C' if self.multiply else 'V2A'}")
            else:
                cycles += self.cycle_table[kind][length // 4]
            count += 1
            offset += length
        taken_extra = 0
        if kind == "branch":
            taken = self.cycle_table["branch-taken"][length // 4]
            taken_extra = taken - self.cycle_table["branch"][length // 4]
        return size, count, cycles, address + size, taken_extra, fault


class Ch32v003Emulator:
    """One firmware image, ready to run inferences; reuse it for many inputs."""

    def __init__(self, elf_path: Path | str, clock_mhz: int = 48,
                 max_instructions: int = DEFAULT_MAX_INSTRUCTIONS, sram_size: int = SRAM_SIZE,
                 multiply: bool = False):
        """`sram_size` (2 KB; 4 KB for the CH32V002) and `multiply` (accept Zmmul) describe
        the part."""
        if not 0 < sram_size <= SRAM_PAGE:
            raise ValueError(f"sram_size must be 1..{SRAM_PAGE}")
        self.sram_size = sram_size
        if clock_mhz not in CYCLES:
            raise ValueError(f"clock_mhz must be one of {sorted(CYCLES)}")
        if max_instructions < 1:
            raise ValueError("max_instructions must be positive (unicorn reads 0 as no limit)")
        self._symbols, segments, kinds = _read_elf(Path(elf_path))
        self.input_dtype, self.output_dtype = (_dtype(k) for k in kinds)
        self.input_size = self._symbols["nn_harness_input"][1] // self.input_dtype.itemsize
        self.output_size = self._symbols["nn_harness_output"][1] // self.output_dtype.itemsize
        self.max_instructions = max_instructions
        self._uc = self._create_machine(segments)
        self._counter = _BlockCounter(self._uc, CYCLES[clock_mhz], sram_size, multiply)
        self._hook = _add_block_hook(self._uc, self._counter.on_block)
        self._ram_snapshot, self._registers = self._run_startup()

    def run(self, input_bytes: bytes) -> RunResult:
        address, size = self._symbols["nn_harness_input"]
        if len(input_bytes) != size:
            raise ValueError(f"input must be {size} bytes, got {len(input_bytes)}")
        uc = self._uc
        uc.mem_write(SRAM_BASE, self._ram_snapshot)
        uc.mem_write(address, bytes(input_bytes))
        uc.context_restore(self._registers)
        fault = self._execute(self._symbols["main"][0], self._symbols["_halt"][0])
        high_water, overflow = self._stack_high_water()
        sp = uc.reg_read(rv.UC_RISCV_REG_SP)
        if fault and sp < self._stack_floor():
            # a frame that jumped over the fill (a big local array) faults below SRAM or
            # in .bss before it has overwritten every fill byte: the stack pointer tells
            overflow, high_water = True, max(high_water, SRAM_BASE + self.sram_size - sp)
        if overflow:
            # a stack that reached .bss overwrote data (return addresses, pointers): a fault
            # after that, e.g. a jump to a garbage address, is its consequence
            fault = (f"stack overflow: the stack grew into .bss (below 0x{self._stack_floor():08x})"
                     + (f", then {fault}" if fault else ""))
        address, size = self._symbols["nn_harness_output"]
        return RunResult(
            result=int.from_bytes(uc.mem_read(self._symbols["nn_harness_result"][0], 4),
                                  "little", signed=True),
            output=bytes(uc.mem_read(address, size)), instructions=self._counter.instructions,
            cycles=self._counter.cycles, stack_high_water=high_water, fault=fault)

    def run_many(self, inputs: np.ndarray) -> BatchResult:
        """One run per row of `inputs` (shape [n, NN_INPUT_SIZE], values fitting nn_input_t)."""
        x = np.asarray(inputs)
        typed = x.astype(self.input_dtype)
        if x.ndim != 2 or x.shape[1] != self.input_size or not np.array_equal(typed, x):
            raise ValueError(f"inputs must be [n, {self.input_size}] values of {self.input_dtype}")
        runs = [self.run(row.tobytes()) for row in typed]
        return BatchResult(
            results=np.array([r.result for r in runs], dtype=np.int32),
            outputs=np.frombuffer(b"".join(r.output for r in runs), dtype=self.output_dtype)
            .reshape(len(runs), self.output_size).copy(),
            instructions=np.array([r.instructions for r in runs], dtype=np.int64),
            cycles=np.array([r.cycles for r in runs], dtype=np.int64),
            stack_high_water=np.array([r.stack_high_water for r in runs], dtype=np.int64),
            faults=[r.fault for r in runs])

    def _create_machine(self, segments: list[tuple[int, bytes]]) -> unicorn.Uc:
        uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
        uc.mem_map(FLASH_BASE, FLASH_SIZE, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
        uc.mem_map(SRAM_BASE, SRAM_PAGE, unicorn.UC_PROT_ALL)
        for address, data in segments:
            if not FLASH_BASE <= address <= address + len(data) <= FLASH_BASE + FLASH_SIZE:
                raise FirmwareError(f"segment at 0x{address:08x} ({len(data)} bytes) is not in flash")
            uc.mem_write(address, data)
        if self.sram_size < SRAM_PAGE:
            uc.hook_add(unicorn.UC_HOOK_MEM_READ | unicorn.UC_HOOK_MEM_WRITE, self._on_missing_sram,
                        begin=SRAM_BASE + self.sram_size, end=SRAM_BASE + SRAM_PAGE - 1)
        uc.hook_add(unicorn.UC_HOOK_MEM_INVALID, self._on_invalid_access)
        return uc

    def _run_startup(self) -> tuple[bytes, object]:
        """Run start.S up to main; return the RAM image and registers every run starts from."""
        fault = self._execute(self._symbols["_start"][0], self._symbols["main"][0])
        if fault is not None:
            raise FirmwareError(f"startup code failed before main: {fault}")
        uc = self._uc
        floor = self._stack_floor()
        uc.mem_write(floor, bytes([STACK_FILL]) * (SRAM_BASE + self.sram_size - floor))
        for register in _REGISTERS:
            uc.reg_write(register, 0)
        uc.reg_write(rv.UC_RISCV_REG_SP, SRAM_BASE + self.sram_size)
        uc.reg_write(rv.UC_RISCV_REG_RA, self._symbols["_halt"][0])
        return bytes(uc.mem_read(SRAM_BASE, SRAM_PAGE)), uc.context_save()

    def _execute(self, begin: int, until: int) -> str | None:
        counter = self._counter
        counter.reset()
        self._access_detail: str | None = None
        try:
            self._uc.emu_start(begin, until, count=self.max_instructions)
        except unicorn.UcError as error:
            pc = self._uc.reg_read(rv.UC_RISCV_REG_PC)
            counter.fault = (f"{self._access_detail or error} (pc 0x{pc:08x}, "
                             f"in or after the block at 0x{counter.last_block:08x})")
        pc = self._uc.reg_read(rv.UC_RISCV_REG_PC)
        if counter.fault is None and pc != until:
            counter.fault = (f"instruction limit of {self.max_instructions} reached "
                             f"(pc 0x{pc:08x}): runaway code?")
        counter.settle_branch(pc)
        return counter.fault

    def _on_missing_sram(self, uc: unicorn.Uc, access: int, address: int, size: int,
                         _value: int, _data: object) -> None:
        pc = uc.reg_read(rv.UC_RISCV_REG_PC)
        self._counter.stop(f"{_MEMORY_ACCESS[access]} of {size} bytes at 0x{address:08x}, beyond "
                           f"the {self.sram_size // 1024} KB of SRAM (pc 0x{pc:08x})")

    def _on_invalid_access(self, uc: unicorn.Uc, access: int, address: int, size: int,
                           _value: int, _data: object) -> bool:
        self._access_detail = f"{_MEMORY_ACCESS[access]} memory at 0x{address:08x} ({size} bytes)"
        return False

    def _stack_floor(self) -> int:
        return self._symbols["__bss_end"][0]

    def _stack_high_water(self) -> tuple[int, bool]:
        """Bytes from the deepest overwritten fill byte to the stack top, and whether all were."""
        floor = self._stack_floor()
        gap = bytes(self._uc.mem_read(floor, SRAM_BASE + self.sram_size - floor))
        used = len(gap.lstrip(bytes([STACK_FILL])))
        return used, 0 < len(gap) == used


def _add_block_hook(uc: unicorn.Uc, on_block) -> object:
    """Call `on_block(handle, address, size, data)` at the start of every executed block.

    unicorn's public `hook_add` wraps each call in two more Python frames, which
    nearly doubles the cost per block (measured 1.7 vs 0.9 us); with unicorn 2.1's
    ctypes layer the callback is registered directly. Returns the ctypes
    callback, which must stay referenced while the hook lives.
    """
    try:
        from unicorn.unicorn_py3.unicorn import HOOK_CODE_CFUNC, uc_hook_h, uclib
        handle = uc._uch  # noqa: SLF001 - unicorn's engine handle, needed by uclib
    except (ImportError, AttributeError):
        return uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    callback, hook = HOOK_CODE_CFUNC(on_block), uc_hook_h()
    status = uclib.uc_hook_add(handle, ctypes.byref(hook), unicorn.UC_HOOK_BLOCK, callback,
                               None, ctypes.c_uint64(1), ctypes.c_uint64(0))
    if status != unicorn.UC_ERR_OK:
        raise unicorn.UcError(status)
    return callback


_REQUIRED = ("_start", "main", "_halt", "__bss_end", "nn_harness_input", "nn_harness_output",
             "nn_harness_result", "nn_harness_input_kind", "nn_harness_output_kind")


def _read_elf(path: Path) -> tuple[dict[str, tuple[int, int]], list[tuple[int, bytes]], tuple[int, int]]:
    """Harness symbols (address, size), loadable flash segments, element kinds."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if elf["e_machine"] != "EM_RISCV" or elf.elfclass != 32:
            raise FirmwareError(f"{path} is not a 32-bit RISC-V ELF")
        symbols = {s.name: (s["st_value"], s["st_size"])
                   for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}
        missing = [name for name in _REQUIRED if name not in symbols]
        if missing:
            raise FirmwareError(f"{path} lacks {', '.join(missing)}: not built with the harness")
        segments = [(seg["p_paddr"], seg.data()) for seg in elf.iter_segments()
                    if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]]
    kinds = tuple(_read_word(segments, symbols[f"nn_harness_{side}_kind"][0])
                  for side in ("input", "output"))
    return symbols, segments, kinds


def _read_word(segments: list[tuple[int, bytes]], address: int) -> int:
    for start, data in segments:
        if start <= address and address + 4 <= start + len(data):
            return int.from_bytes(data[address - start:address - start + 4], "little")
    raise FirmwareError(f"no loaded data at 0x{address:08x}")


def _dtype(kind: int) -> np.dtype:
    size, signed = kind & 0xFF, bool(kind & 0x100)
    if size not in (1, 2, 4):
        raise FirmwareError(f"unsupported element size {size}")
    return np.dtype(f"<{'i' if signed else 'u'}{size}")
