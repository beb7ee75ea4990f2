"""Build the harness firmware around model.c, measure it, and say when it does not fit.

Flash is reported for the model alone (text + rodata + data of model.o, the same
flags as the firmware build) and for the linked harness firmware (plus start.S and
the harness, about 150 bytes).  RAM is what one inference really uses: .data + .bss of
the linked firmware (arena and the harness's input/output buffers) plus the stack
high-water mark the emulator measured.  Cycles and instructions are the emulator's,
the larger of an all-zero input and a seeded random input over the input's range.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile

from ...errors import DoesNotFit, TinyccError
from . import toolchain
from .emulator import Ch32v003Emulator

FORBIDDEN = ("__mulsi3", "__muldi3")     # the QingKe V2A has no multiplier (the V2C: no call either)
FLASH, RAM = 16 * 1024, 2 * 1024


@dataclass(frozen=True)
class Part:
    """What the firmware build and the emulator need to know about a chip."""
    name: str
    flash: int
    ram: int
    march: str
    multiply: bool

    @property
    def cflags(self) -> tuple:
        return tuple(f"-march={self.march}" if f.startswith("-march=") else f
                     for f in toolchain.DEFAULT_CFLAGS)

    def linker_script(self, directory: Path) -> Path:
        """The runtime's link.ld with this part's flash and RAM sizes."""
        text = toolchain.LINKER_SCRIPT.read_text()
        text = text.replace("LENGTH = 16K", f"LENGTH = {self.flash // 1024}K")
        text = text.replace("LENGTH = 2K", f"LENGTH = {self.ram // 1024}K")
        path = directory / f"link-{self.name}.ld"
        path.write_text(text)
        return path

    def emulator(self, elf: Path) -> Ch32v003Emulator:
        return Ch32v003Emulator(elf, sram_size=self.ram, multiply=self.multiply)


CH32V003 = Part("ch32v003", FLASH, RAM, "rv32ec_zicsr", False)
# QingKe V2C: RV32EC + Zmmul.  GCC 12 accepts rv32ec_zmmul but never emits mul (Zmmul code
# generation came with GCC 13), so the M extension is named; nothing in model.c divides,
# and the emulator refuses div/rem, so the firmware stays within Zmmul.
CH32V002 = Part("ch32v002", 16 * 1024, 4 * 1024, "rv32emc_zicsr", True)


def have_cross_compiler() -> bool:
    return shutil.which(toolchain.GCC) is not None


def write_sources(files: dict, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("model.c", "model.h"):
        (directory / name).write_text(files[name])
    return directory / "model.c"


def symbol_sizes(obj: Path) -> list:
    """[(bytes, name, 'flash'|'ram')] of the functions and objects defined in an object file."""
    out = []
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        sections = list(elf.iter_sections())
        for s in elf.get_section_by_name(".symtab").iter_symbols():
            if s["st_info"]["type"] not in ("STT_FUNC", "STT_OBJECT") or not s["st_size"]:
                continue
            if not isinstance(s["st_shndx"], int):
                continue
            sec = sections[s["st_shndx"]].name
            out.append((int(s["st_size"]), s.name, "ram" if sec.startswith((".bss", ".data")) else "flash"))
    return sorted(out, reverse=True)


def _consumers(sizes: list, count: int = 4) -> str:
    return ", ".join(f"{name} {size} B ({where})" for size, name, where in sizes[:count])


def does_not_fit(flash: int, ram: int, sizes: list, what: str = "", part: Part = CH32V003) -> DoesNotFit:
    return DoesNotFit(f"the model needs {flash} bytes of flash ({part.flash} available) and {ram} bytes "
                      f"of RAM ({part.ram} available){what}; biggest: {_consumers(sizes)}")


def static_ram(cmodel, input_bytes: int, output_bytes: int) -> int:
    """RAM for the arena and the caller's input and output buffers (no stack)."""
    return cmodel.arena_bytes + input_bytes + output_bytes


def check_static(cmodel, input_bytes: int, output_bytes: int, part: Part = CH32V003) -> None:
    """Refuse before compiling when the constant data or the buffers alone are too big."""
    ram = static_ram(cmodel, input_bytes, output_bytes)
    flash = sum(cmodel.flash_arrays.values())
    if flash > part.flash or ram > part.ram:
        sizes = sorted([(b, n, "flash") for n, b in cmodel.flash_arrays.items()]
                       + [(cmodel.arena_bytes, "nn_arena", "ram"), (input_bytes, "input buffer", "ram")],
                       reverse=True)
        raise does_not_fit(flash, ram, sizes, " before code and stack", part)


def build(files: dict, out_dir: Path, part: Part = CH32V003) -> Path:
    """firmware.elf for the sources; DoesNotFit when the linker runs out of flash or RAM."""
    source = write_sources(files, out_dir / "src")
    try:
        return toolchain.build_firmware([source], [source.parent], out_dir / "build",
                                        cflags=part.cflags, forbid_symbols=FORBIDDEN,
                                        linker_script=part.linker_script(out_dir))
    except toolchain.ForbiddenSymbolError:
        raise
    except toolchain.ToolchainError as e:
        obj = out_dir / "build" / "model.o"
        if "overflowed" in str(e) and obj.exists():
            size = toolchain.firmware_size(obj)
            raise does_not_fit(size.flash_bytes, size.ram_bytes, symbol_sizes(obj),
                               " without start-up code and stack", part) from None
        raise TinyccError(f"ch32v003: the generated C did not build:\n{e}") from None


def probe_inputs(emu: Ch32v003Emulator, lo: int, hi: int, rng_seed: int = 0) -> np.ndarray:
    """An all-zero (or all-`lo`) input and a seeded random one over the input's range."""
    rng = np.random.default_rng(rng_seed)
    rand = rng.integers(lo, hi, emu.input_size, endpoint=True, dtype=np.int64)
    base = np.full(emu.input_size, min(max(0, lo), hi), np.int64)
    return np.stack([base, rand]).astype(emu.input_dtype)


def measure(elf: Path, input_range: tuple, part: Part = CH32V003) -> dict:
    """The report's measured fields for a built firmware (raises DoesNotFit on RAM)."""
    obj = elf.parent / "model.o"
    model = toolchain.firmware_size(obj)
    whole = toolchain.firmware_size(elf)
    emu = part.emulator(elf)
    runs = emu.run_many(probe_inputs(emu, *input_range))
    stack = int(runs.stack_high_water.max())
    ram = whole.ram_bytes + stack
    faults = [f for f in runs.faults if f]
    sizes = symbol_sizes(obj) + [(stack, "stack", "ram")]
    if any("stack overflow" in f for f in faults):
        # the stack filled all the RAM left and went on into .bss: its depth is not known,
        # so the consumers named are the static ones (the firmware's, harness buffers too)
        sizes = [s for s in symbol_sizes(elf) if s[2] == "ram"] + [s for s in sizes if s[2] == "flash"]
        raise DoesNotFit(
            f"the model needs {whole.flash_bytes} bytes of flash ({part.flash} available) and more than "
            f"{part.ram} bytes of RAM: {whole.ram_bytes} static, and the stack overran the "
            f"{part.ram - whole.ram_bytes} bytes left; biggest: {_consumers(sizes)}")
    if ram > part.ram:
        raise does_not_fit(whole.flash_bytes, ram, sizes, part=part)
    if faults:
        raise TinyccError(f"ch32v003: the firmware faulted in the emulator: {faults[0]}")
    return {
        "rom_used": model.flash_bytes,
        "rom_measure": "model.o text+rodata+data (the linked harness firmware is rom_firmware)",
        "rom_firmware": whole.flash_bytes,
        "ram_used": ram,
        "ram_measure": "linked firmware .data+.bss (arena, harness input/output) + stack high-water mark",
        "ram_static": whole.ram_bytes,
        "ram_stack": stack,
        "cycles_per_inference": int(runs.cycles.max()),
        "instructions_per_inference": int(runs.instructions.max()),
        "cycles_measure": "emulator estimate at 48 MHz (1 flash wait state), max of an all-zero "
                          "and a seeded random input",
        "input_range": [int(v) for v in input_range],
        "cycles_by_input": {"zero": int(runs.cycles[0]), "random": int(runs.cycles[1])},
        "instructions_by_input": {"zero": int(runs.instructions[0]), "random": int(runs.instructions[1])},
    }


def build_and_measure(files: dict, input_range: tuple, part: Part = CH32V003) -> tuple:
    """(firmware ELF bytes, report fields); `input_range` is the input's (lo, hi)."""
    with tempfile.TemporaryDirectory(prefix="tinycc-nn-ch32v003-") as tmp:
        elf = build(files, Path(tmp), part)
        return elf.read_bytes(), measure(elf, input_range, part)
