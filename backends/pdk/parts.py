"""The Padauk parts tinycc-nn targets: core and memory sizes (TARGETS.md).

The last words of ROM hold factory/writer data (8 on the PMS150C, 16 on the PFS154):
`usable_rom_words` is what a program may occupy; the simulator models the whole ROM.
The generic `pdk13` / `pdk14` targets describe any part with one of these cores by
its ROM and RAM sizes (`generic`), within what the core's instructions address.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    name: str
    core: str
    rom_words: int
    usable_rom_words: int
    ram_bytes: int


PARTS: dict[str, Part] = {
    "PMS150C": Part("PMS150C", "pdk13", rom_words=1024, usable_rom_words=1016, ram_bytes=64),
    "PFS154": Part("PFS154", "pdk14", rom_words=2048, usable_rom_words=2032, ram_bytes=128),
}

# what each core's instructions address: program words (goto/call), RAM bytes (M operand)
CORE_LIMITS = {"pdk13": (1024, 64), "pdk14": (2048, 128)}


def generic(core: str, rom=None, ram=None) -> Part:
    """A part with core `core`, `rom` usable program words and `ram` bytes (defaults:
    all the core addresses).  Raises ValueError naming the bound a size breaks."""
    max_rom, max_ram = CORE_LIMITS[core]
    sizes = []
    for key, value, default in (("rom", rom, max_rom), ("ram", ram, max_ram)):
        try:
            sizes.append(default if value is None else int(value))
        except ValueError:
            raise ValueError(f"{key}={value}: expected a number") from None
    rom, ram = sizes
    if not 16 <= rom <= max_rom:
        raise ValueError(f"rom={rom}: a {core} part has 16..{max_rom} words of program memory")
    if not 8 <= ram <= max_ram:
        raise ValueError(f"ram={ram}: a {core} part has 8..{max_ram} bytes of RAM")
    return Part(core, core, rom_words=rom, usable_rom_words=rom, ram_bytes=ram)
