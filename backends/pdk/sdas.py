"""Assemble and link Padauk source with SDCC's sdas and sdld (Debian ``sdcc`` 4.2).

Why a wrapper: sdas reports errors in its listing and on stdout while often still writing a
file, numbers in the listing are byte addresses with unrelocated ``goto``/``call`` words, and
the .ihx holds little-endian words at byte addresses. `assemble` turns all that into words by
word address, global labels by word address, and an exception on any error.

Source conventions the tools impose (checked with sdas 4.2): ``.org`` and label values are
*byte* addresses (word * 2), while a numeric ``goto``/``call`` operand is a *word* address;
``.area CODE (ABS)`` then ``.org 0`` places code at reset; a label ending in ``::`` is global
and so appears in `Assembly.symbols`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from intelhex import IntelHex


class AssemblerError(RuntimeError):
    """sdas or sdldpdk rejected the source; the message carries their output."""


@dataclass(frozen=True)
class Assembly:
    words: dict[int, int]      # program words by word address
    ihx: str                   # Intel HEX text as sdldpdk wrote it
    listing: str               # sdas listing (.lst), byte addresses
    symbols: dict[str, int]    # global labels by word address


def load_ihx(source: str | Path) -> dict[int, int]:
    """Program words by word address from an Intel HEX file or its text (byte address =
    word * 2, little-endian words, as sdldpdk writes them)."""
    text = str(source)
    hexfile = IntelHex(StringIO(text) if text.lstrip().startswith(":") else text)
    by_word: dict[int, int] = {}
    for address in hexfile.addresses():
        word = by_word.get(address // 2, 0)
        by_word[address // 2] = word | hexfile[address] << (8 * (address % 2))
    return by_word


def assembler(core: str) -> str:
    return f"sdas{core}"


def available(core: str = "pdk13") -> bool:
    """True when the sdas for `core` and sdldpdk are on PATH."""
    return shutil.which(assembler(core)) is not None and shutil.which("sdldpdk") is not None


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Error" in output:
        raise AssemblerError(f"{' '.join(command)} failed:\n{output}")
    return output


def _symbols(map_text: str) -> dict[str, int]:
    """Global labels from the linker map, skipping the linker's own ``.ABS.`` section
    (area starts and lengths such as ``s_CODE``)."""
    found = {}
    for section in map_text.split("\nArea ")[1:]:
        area = re.search(r"(?m)^-+.*\n(\S+)", section)
        if area is None or area.group(1) == ".":
            continue
        for value, name in re.findall(r"(?m)^\s+([0-9A-F]{8})\s+(\S+)\s*$", section):
            found[name] = int(value, 16) // 2
    return found


def assemble(source: str, core: str, *, linker_options: tuple[str, ...] = ()) -> Assembly:
    """Assemble and link `source` for `core` ("pdk13" / "pdk14")."""
    with tempfile.TemporaryDirectory(prefix="tinycc-nn-sdas-") as tmp:
        work = Path(tmp)
        (work / "prog.asm").write_text(source)
        _run([assembler(core), "-plosgffw", "prog.asm"], work)
        listing = (work / "prog.lst").read_text()
        _run(["sdldpdk", "-nmuwx", "-i", "prog.ihx", *linker_options, "prog.rel", "-e"], work)
        ihx = (work / "prog.ihx").read_text()
        symbols = _symbols((work / "prog.map").read_text())
    return Assembly(load_ihx(ihx), ihx, listing, symbols)
