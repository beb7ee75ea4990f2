"""The Padauk parts tinycc-nn targets: core and memory sizes (TARGETS.md).

The last words of ROM hold factory/writer data (8 on the PMS150C, 16 on the PFS154):
`usable_rom_words` is what a program may occupy; the simulator models the whole ROM.
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
