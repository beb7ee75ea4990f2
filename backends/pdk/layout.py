"""RAM down to the byte: working registers, vectors, stack.

Order matters on pdk13: bit instructions (t0sn/t1sn/set0/set1) reach only the
first 16 bytes, so the weight-plane bytes the kernel tests and the accumulator
whose rounding bit is tested go first; idxm pointers need an even address in the
first 32 bytes; the stack follows, sized from the call depth outside streamed
layers; the vectors come last (offsets from lifetimes, as plan-ram does).  A layer
that streams its input calls one level deeper (kernel -> input routine): that stack
slot is a vector pinned at the start of the vector area, live only while such layers
run, so it shares RAM with vectors that are dead by then.
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

    stack_extra: int = 0                           # bytes of the pinned deep slot

    @property
    def used(self) -> int:
        return max(self.top, self.stack[0] + self.stack[1])

    @property
    def stack_end(self) -> int:
        return self.stack[0] + self.stack[1] + self.stack_extra

    def breakdown(self) -> dict:
        out = {name: size for name, (_, size) in self.regs.items() if size}
        out.update({(n if "@" in n else f"%{n}"): size
                    for n, (_, size) in self.vectors.items()})
        out.pop("%stack+", None)
        out["stack"] = self.stack[1] + self.stack_extra
        return out


def place_stack(layout: Layout, depth: int) -> None:
    layout.stack = (layout.top, 2 * depth)
    layout.top += 2 * depth


def place_vectors(layout: Layout, intervals: dict, part: str, pinned: dict | None = None) -> None:
    offsets, peak = plan(intervals, pinned)
    base = layout.top
    for name, off in offsets.items():
        layout.vectors[name] = (base + off, intervals[name][2])
    layout.top = base + peak
    if "stack+" in intervals:
        layout.stack_extra = intervals["stack+"][2]
    if layout.used > layout.ram_bytes:
        big = sorted(layout.breakdown().items(), key=lambda kv: -kv[1])[:4]
        raise DoesNotFit(f"{part}: needs {layout.used} bytes of RAM, has {layout.ram_bytes} "
                         f"(largest: {', '.join(f'{k} {v}' for k, v in big)})")
