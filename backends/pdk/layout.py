"""RAM down to the byte: working registers, vectors, stack.

Order matters on pdk13: bit instructions (t0sn/t1sn/set0/set1) reach only the
first 16 bytes, so the weight-plane bytes the kernel tests and the accumulator
whose rounding bit is tested go first; idxm pointers need an even address in the
first 32 bytes; vectors follow (offsets from lifetimes, as plan-ram does); the
stack takes the top, sized from the call depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinycc_nn.errors import DoesNotFit
from tinycc_nn.passes.plan_ram import plan


@dataclass
class Layout:
    ram_bytes: int
    regs: dict = field(default_factory=dict)       # name -> (address, size)
    vectors: dict = field(default_factory=dict)    # value name -> (address, size)
    stack: tuple = (0, 0)                          # (base, bytes)
    top: int = 0

    def addr(self, name: str, byte: int = 0) -> int:
        base, size = self.regs[name]
        assert 0 <= byte < size, (name, byte, size)
        return base + byte

    def reg(self, name: str, size: int, *, align: int = 1) -> int:
        self.top += (-self.top) % align
        self.regs[name] = (self.top, size)
        self.top += size
        return self.regs[name][0]

    @property
    def used(self) -> int:
        return self.stack[0] + self.stack[1]

    def breakdown(self) -> dict:
        out = {name: size for name, (_, size) in self.regs.items() if size}
        out.update({f"%{n}": size for n, (_, size) in self.vectors.items()})
        out["stack"] = self.stack[1]
        return out


def place_vectors(layout: Layout, intervals: dict) -> None:
    offsets, peak = plan(intervals)
    base = layout.top
    for name, off in offsets.items():
        layout.vectors[name] = (base + off, intervals[name][2])
    layout.top = base + peak


def place_stack(layout: Layout, depth: int, part: str, rom_words: int | None = None) -> None:
    layout.stack = (layout.top, 2 * depth)
    if layout.used > layout.ram_bytes:
        big = sorted(layout.breakdown().items(), key=lambda kv: -kv[1])[:4]
        raise DoesNotFit(f"{part}: needs {layout.used} bytes of RAM, has {layout.ram_bytes} "
                         f"(largest: {', '.join(f'{k} {v}' for k, v in big)})")
