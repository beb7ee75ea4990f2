"""The input of a Padauk program: read a byte by index, copy it to RAM, stream it.

Every input byte comes from `_nn_read_input` (index in A, byte in A), made offset
binary by the reader.  The stream index is `inidx`, with a high byte `inhi` when the
program reads more indices than a byte holds.

A library build (harness off) is relocatable code for SDCC-built firmware: its RAM
starts above SDCC's pseudo-register `p` (0x00-0x01), it runs on the caller's stack,
and it reaches the firmware's C `nn_read_input(unsigned char)` through a two-word shim
that moves A into the function's parameter (SDCC's default, non-reentrant convention).
"""
from __future__ import annotations

from .asm import h
from .layers import DensePlan
from . import routines

READ_SHIM = "__nn_read_input_a"


def table_size(gen) -> int:
    """Input indices the program reads: the streaming kernels read whole groups."""
    k = gen.graph.type(gen.input_name).size
    return max([k, *(p.padded_k for p in gen.plans.values() if p.x == gen.input_name)])


def wide(gen) -> bool:
    """More input indices than a byte holds: the stream index has a high byte, `inhi`,
    which the input routine reads beside A."""
    return table_size(gen) > 255


def read_input(gen) -> None:
    """A = input byte INIDX (offset binary), INIDX += 1 (which clears C)."""
    gen.op(f"mov a, {gen.r('inidx')}")
    read_input_a(gen)
    gen.op(f"inc {gen.r('inidx')}", "also clears C" if not wide(gen) else "")
    if wide(gen):
        gen.op(f"addc {gen.r('inhi')}", "carry into the high byte (clears C)")


def read_input_a(gen) -> None:
    """A = input byte A (offset binary)."""
    gen.op(f"call {'_nn_read_input' if gen.harness else READ_SHIM}")
    lo = gen.graph.type(gen.input_name).lo
    if lo:
        gen.op(f"add a, #{h((-lo) & 0xFF)}", "to offset binary")


def clear_inidx(gen) -> None:
    gen.op(f"clear {gen.r('inidx')}")
    if wide(gen):
        gen.op(f"clear {gen.r('inhi')}")


def loop_until_inidx(gen, end: int, loop: str, comment: str) -> None:
    """goto loop unless the stream index has reached `end`."""
    gen.op(f"mov a, {gen.r('inidx')}")
    gen.op(f"ceqsn a, #{h(end & 0xFF)}", comment)
    gen.op(f"goto {loop}")
    if wide(gen):
        gen.op(f"mov a, {gen.r('inhi')}")
        gen.op(f"ceqsn a, #{h(end >> 8)}")
        gen.op(f"goto {loop}")


def load_input(gen) -> None:
    """The whole input into its RAM vector (when it stays in RAM)."""
    base, size = gen.layout.vectors[gen.input_name]
    gen.asm.comment(f"load the {size}-byte input into RAM at {h(base)}")
    clear_inidx(gen)
    copy_input(gen, base, size)


def copy_input(gen, base: int, count: int) -> None:
    """The next `count` input bytes (offset binary, from INIDX on) to RAM at base;
    ptr ends at base + count."""
    gen.movi("ptr", base)
    loop = gen.fresh("copy")
    gen.asm.label(loop)
    read_input(gen)
    gen.op(f"idxm {gen.r('ptr')}, a")
    gen.op(f"inc {gen.r('ptr')}")
    gen.op(f"mov a, {gen.r('ptr')}")
    gen.op(f"ceqsn a, #{h(base + count)}", "all copied?")
    gen.op(f"goto {loop}")


def staged_usum(gen, p: DensePlan) -> None:
    """u += offset * (sum of the streamed inputs), through the staging buffer."""
    clear_inidx(gen)
    loop = gen.fresh("usum_staged")
    gen.asm.label(loop)
    gen.op(f"call {stage_label(gen, p)}")
    gen.movi("wb", p.group)
    ukey = (False, p.acc_bytes, p.planes.offset)
    gen.usums.add(ukey)
    gen.op(f"call {routines.usum_label(*ukey)}", f"u += {p.planes.offset} * sum of the group")
    loop_until_inidx(gen, p.k, loop, "all inputs summed?")


def stage_label(gen, p: DensePlan) -> str:
    """The staging routine for p's group size (emitted later, once per size)."""
    gen.stages.add(p.group)
    return routines.stage_label(p.group)


def library_shim(gen) -> None:
    """A (index) -> the C function's parameter, then a jump to it."""
    gen.asm.section("nn_infer")
    gen.asm.label(READ_SHIM, "A (index) -> nn_read_input's parameter, then the C function")
    gen.op("mov _nn_read_input_PARM_1, a", symbols=("_nn_read_input_PARM_1",))
    if wide(gen):     # a 16-bit parameter, low byte first
        gen.op(f"mov a, {gen.r('inhi')}")
        gen.op("mov _nn_read_input_PARM_1+1, a", symbols=("_nn_read_input_PARM_1+1",))
    gen.op("goto _nn_read_input")


def harness_table(gen) -> None:
    """The harness input: a `ret #k` table behind `pcadd a` (the simulator patches it)."""
    if wide(gen):
        wide_input_table(gen)
        return
    a = gen.asm
    a.section("harness")
    a.label("_nn_read_input:", "harness input: index in A, byte in A")
    gen.op("add a, #0x01")
    gen.op("pcadd a")
    a.label("_nn_input_table:")
    for _ in range(table_size(gen)):
        gen.op("ret #0x00")


def input_half_label(half: int) -> str:
    return "_nn_input_table" if half == 0 else f"_nn_input_h{half}"


def wide_input_table(gen) -> None:
    """The harness input for more than 255 indices (low byte in A, high byte in inhi):
    tables of 128 `ret #k` words, one per half page, picked by A's bit 7 (`add a,
    #0x80` moves it to C) and by inhi's bits; input i is at input_half_label(i // 128)
    + i % 128."""
    a, size = gen.asm, table_size(gen)
    pages = -(-size // 256)
    a.section("harness")
    a.label("_nn_read_input:", "harness input: index in A and inhi, byte in A")
    gen.op("add a, #0x80", "C = index bit 7; A = index ^ 0x80")
    upper = gen.fresh("in_upper")
    gen.op(f"t0sn.io {h(routines.FLAG)}, #{routines.C}")
    gen.op(f"goto {upper}")

    def node(page: int, bit: int, top: int) -> None:
        if bit < 0:
            half = 2 * page + top
            entries = min(128, size - 128 * half)
            # A = index + 128 (lower half) or index - 128 (upper): + 1 for pcadd
            gen.op(f"add a, #{h(0x01 if top else 0x81)}")
            gen.op("pcadd a")
            a.label(f"{input_half_label(half)}:")
            for _ in range(max(entries, 1)):
                gen.op("ret #0x00")
            return
        if page + (1 << bit) >= pages:       # no page with this bit set
            node(page, bit - 1, top)
            return
        one = gen.fresh("in_page")
        gen.op(f"t0sn {gen.r('inhi')}, #{bit}")
        gen.op(f"goto {one}")
        node(page, bit - 1, top)
        a.label(one)
        node(page + (1 << bit), bit - 1, top)

    bits = (pages - 1).bit_length()
    node(0, bits - 1, 0)
    a.label(upper)
    node(0, bits - 1, 1)
