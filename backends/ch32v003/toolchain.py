"""Cross-compile model C for the CH32V003 and measure what the firmware costs.

`build_firmware` links the caller's C sources with the runtime in `runtime/`
(start.S, harness.c, link.ld) into one ELF that `emulator.py` can run, and
`firmware_size` reads flash and RAM use back out of that ELF.

Two libraries are linked by path, after the objects:
  * libgcc, for `__mulsi3`, `__divsi3` and friends. GCC 12's multilib table
    knows `rv32e/ilp32e` but does not match `-march=rv32ec_zicsr` to it (the
    `_zicsr` suffix defeats the match), so `-lgcc` finds only the rv64 default
    library, ld skips it as incompatible and `__mulsi3` stays undefined. The
    multilib is looked up with the base ISA string instead.
  * picolibc's libc.a for the same multilib, if installed: GCC requires even
    freestanding code to have memcpy, memmove, memset and memcmp, and emits
    calls to them itself (zeroing a local array, copying a struct). Being an
    archive, it contributes only what is referenced, usually nothing.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

GCC = "riscv64-unknown-elf-gcc"
DEBIAN_PACKAGE = "gcc-riscv64-unknown-elf"
PICOLIBC_PACKAGE = "picolibc-riscv64-unknown-elf"
PICOLIBC_LIB_ROOT = Path("/usr/lib/picolibc/riscv64-unknown-elf/lib")  # Debian's layout
RUNTIME_DIR = Path(__file__).with_name("runtime")
RUNTIME_SOURCES = (RUNTIME_DIR / "start.S", RUNTIME_DIR / "harness.c")
LINKER_SCRIPT = RUNTIME_DIR / "link.ld"

DEFAULT_CFLAGS: tuple[str, ...] = (
    "-march=rv32ec_zicsr", "-mabi=ilp32e", "-O2", "-ffreestanding", "-nostdlib",
    "-Wall", "-Wextra", "-Werror",
    # No .sdata/.sbss: there is no gp setup, and one RAM layout is easier to read.
    "-msmall-data-limit=0",
    # One section per function and object so --gc-sections drops what is unused.
    "-ffunction-sections", "-fdata-sections",
)
# Unreferenced sections go; linker warnings are errors, like compiler warnings.
LINK_FLAGS: tuple[str, ...] = ("-Wl,--gc-sections", "-Wl,--fatal-warnings")


class ToolchainError(RuntimeError):
    """The cross toolchain is missing or refused the sources."""


class ForbiddenSymbolError(ToolchainError):
    """The firmware links a routine the caller ruled out (e.g. `__mulsi3`)."""

    def __init__(self, symbols: Sequence[str], references: Sequence[str]):
        self.symbols = tuple(symbols)
        self.references = tuple(references)
        lines = [f"firmware references forbidden symbol(s): {', '.join(self.symbols)}"]
        lines += [f"  {line}" for line in self.references]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class FirmwareSize:
    """Bytes per kind of allocated section; .data lives in flash and in RAM."""

    text: int
    rodata: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram_bytes(self) -> int:
        """Static RAM only; the stack comes on top (see the emulator)."""
        return self.data + self.bss


def find_gcc() -> Path:
    path = shutil.which(GCC)
    if path is None:
        raise ToolchainError(
            f"{GCC} not found on PATH; on Debian/Ubuntu install it with "
            f"`apt-get install {DEBIAN_PACKAGE}`")
    return Path(path)


def _flag_value(flags: Iterable[str], name: str) -> str:
    values = [f.split("=", 1)[1] for f in flags if f.startswith(name + "=")]
    if not values:
        raise ToolchainError(f"cflags must contain {name}=...")
    return values[-1]


@functools.lru_cache(maxsize=None)
def multilib(march: str, mabi: str) -> str:
    """GCC's multilib directory for `march`/`mabi`, trying the ISA without `_z*` extensions."""
    gcc = str(find_gcc())
    for candidate in dict.fromkeys((march, march.split("_")[0])):
        directory = _run([gcc, f"-march={candidate}", f"-mabi={mabi}",
                          "-print-multi-directory"]).strip()
        if directory != ".":
            return directory
    raise ToolchainError(f"{GCC} has no multilib for -march={march} -mabi={mabi}")


@functools.lru_cache(maxsize=None)
def libgcc_path(march: str, mabi: str) -> Path:
    libgcc = Path(_run([str(find_gcc()), "-print-file-name=libgcc.a"]).strip())
    path = libgcc.parent / multilib(march, mabi) / "libgcc.a"
    if not path.is_file():
        raise ToolchainError(f"no libgcc for -march={march} -mabi={mabi} at {path}")
    return path


def picolibc_path(march: str, mabi: str) -> Path | None:
    path = PICOLIBC_LIB_ROOT / multilib(march, mabi) / "libc.a"
    return path if path.is_file() else None


def build_firmware(c_sources: Sequence[Path | str], include_dirs: Sequence[Path | str],
                   out_dir: Path | str, cflags: Sequence[str] = DEFAULT_CFLAGS,
                   forbid_symbols: Sequence[str] = (), linker_script: Path | str = LINKER_SCRIPT) -> Path:
    """Compile and link `c_sources` with the runtime into `out_dir/firmware.elf`.

    The include directories must provide `model.h` for the harness. Symbols in
    `forbid_symbols` (typically `("__mulsi3",)` on a multiplier-free core) must
    not end up in the linked ELF, or `ForbiddenSymbolError` names the functions
    that call them.  `linker_script` defaults to the CH32V003's memory map.
    """
    gcc = str(find_gcc())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    march, mabi = _flag_value(cflags, "-march"), _flag_value(cflags, "-mabi")
    libc = picolibc_path(march, mabi)
    libraries = [str(libgcc_path(march, mabi)), *([str(libc)] if libc else [])]
    includes = [f"-I{d}" for d in include_dirs]
    objects = []
    for source in [*RUNTIME_SOURCES, *map(Path, c_sources)]:
        obj = out_dir / f"{source.stem}.o"
        if obj in objects:
            obj = out_dir / f"{source.stem}_{len(objects)}.o"
        _run([gcc, *cflags, *includes, "-c", str(source), "-o", str(obj)])
        objects.append(obj)
    elf = out_dir / "firmware.elf"
    try:
        _run([gcc, *cflags, "-T", str(linker_script), *LINK_FLAGS,
              f"-Wl,-Map={out_dir / 'firmware.map'}", *map(str, objects),
              "-Wl,--start-group", *libraries, "-Wl,--end-group", "-o", str(elf)])
    except ToolchainError as error:
        if libc is None and "undefined reference to `mem" in str(error):
            raise ToolchainError(f"{error}\nGCC emitted a call to a mem* function; install "
                                 f"{PICOLIBC_PACKAGE} to provide it") from None
        raise
    present = sorted(set(forbid_symbols) & _defined_symbols(elf))
    if present:
        raise ForbiddenSymbolError(present, _callers(objects, present))
    return elf


def firmware_size(elf_path: Path | str) -> FirmwareSize:
    sizes = dict(text=0, rodata=0, data=0, bss=0)
    with open(elf_path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            flags = section["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or section["sh_size"] == 0:
                continue
            if section["sh_type"] == "SHT_NOBITS":
                kind = "bss"
            elif flags & SH_FLAGS.SHF_EXECINSTR:
                kind = "text"
            elif flags & SH_FLAGS.SHF_WRITE:
                kind = "data"
            else:
                kind = "rodata"
            sizes[kind] += section["sh_size"]
    return FirmwareSize(**sizes)


def _defined_symbols(elf_path: Path) -> set[str]:
    with open(elf_path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name for s in symtab.iter_symbols() if s["st_shndx"] != "SHN_UNDEF"}


def _callers(objects: Sequence[Path], symbols: Sequence[str]) -> list[str]:
    """`file: function -> symbol` for each relocation against `symbols`.

    -ffunction-sections puts each function in `.text.<name>`, so the section a
    relocation patches names the calling function.
    """
    found = []
    for obj in objects:
        with open(obj, "rb") as f:
            elf = ELFFile(f)
            symtab = elf.get_section_by_name(".symtab")
            for section in elf.iter_sections():
                if section["sh_type"] != "SHT_RELA":
                    continue
                caller = section.name.removeprefix(".rela").removeprefix(".text.")
                for reloc in section.iter_relocations():
                    name = symtab.get_symbol(reloc["r_info_sym"]).name
                    entry = f"{obj.name}: {caller} -> {name}"
                    if name in symbols and entry not in found:
                        found.append(entry)
    return found


def _run(command: Sequence[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolchainError(f"command failed ({result.returncode}): {' '.join(command)}\n"
                             f"{result.stdout}{result.stderr}")
    return result.stdout
