"""The shared subroutines of a Padauk program: kernels, staging, input sums, argmax.

Each is emitted once per distinct key and called from the layer loops that `layer_loop`
writes; `gen` is the Codegen (its layout, assembler buffer and options).

The kernel keeps the carry flag clear between planes: `inc` of the input pointer
clears it, a skipped `add` leaves it clear, and an executed `add`/`addc` chain
ends clear because interval analysis sized the plane sums not to overflow.
"""
from __future__ import annotations

from .asm import h
from .planes import bit_of
from . import inputs

FLAG = 0x00
Z, C = 0, 1


def kernel_label(planes: int, pb: int, group: int, streamed: bool, ways) -> str:
    wide = "" if ways is None else f"x{ways[0]}_{ways[1]:02x}"
    return f"kernel_{'s' if streamed else 'm'}{planes}_{pb}_{group}{wide}"


def kernel(gen, planes: int, pb: int, group: int, streamed: bool, ways) -> None:
    a = gen.asm
    source = "from _nn_read_input" if streamed else "at [ptr]"
    a.label(kernel_label(planes, pb, group, streamed, ways),
            f"{group} inputs {source}, {planes} planes, {8 * pb}-bit sums"
            + ("" if ways is None else f", {ways[0]} neurons (the others' sums from {h(ways[1])})"))
    kernel_body(gen, planes, pb, group, streamed, ways)
    gen.op("ret")


def kernel_body(gen, planes: int, pb: int, group: int, streamed: bool, ways=None) -> None:
    """Per input: read it, then per neuron and plane `t0sn wb, #bit / add / addc`.
    `ways` = (neurons, address): neuron s > 0 of a group sharing the reads has bits
    s * planes + k and its sums in RAM from that address on."""
    count, base = ways if ways is not None else (1, None)
    for i in range(group):
        if streamed:
            inputs.read_input(gen)      # ends with inc inidx, which clears C
        else:
            gen.op(f"idxm a, {gen.r('ptr')}", f"input {i}")
            gen.op(f"inc {gen.r('ptr')}", "also clears C")
        for s in range(count):
            for k in range(planes):
                byte, bit = bit_of(k + planes * s, i, group)
                dest = [h(base + ((s - 1) * planes + k) * pb + b) for b in range(pb)] if s else \
                    [gen.r(f"p{k}", b) for b in range(pb)]
                gen.op(f"t0sn {gen.r('wb', byte)}, #{bit}")
                gen.op(f"add {dest[0]}, a")
                for b in range(1, pb):
                    gen.op(f"addc {dest[b]}")


def stage_label(group: int) -> str:
    return f"stage_{group}"


def stage(gen, group: int) -> None:
    """The next `group` streamed input bytes (offset binary) into the staging buffer,
    and ptr back at its start: the RAM kernel then reads them like any vector."""
    base = gen.stage_base
    gen.asm.label(stage_label(group), f"inputs inidx.. into {h(base)}..{h(base + group - 1)}, "
                                      f"ptr = {h(base)}")
    inputs.copy_input(gen, base, group)
    gen.movi("ptr", base)
    gen.op("ret")


def usum_label(streamed: bool, nbytes: int, offset: int) -> str:
    return f"usum_{'s' if streamed else 'm'}{nbytes}_{'n' if offset < 0 else 'p'}{abs(offset)}"


def input_sum(gen, streamed: bool, nbytes: int, offset: int) -> None:
    """u += offset * (sum of WB input bytes), from [ptr] or the input routine."""
    a = gen.asm
    a.label(usum_label(streamed, nbytes, offset),
            f"u += {offset} * (sum of wb inputs {'from _nn_read_input' if streamed else 'at [ptr]'})")
    repeat = abs(offset) if abs(offset) <= 2 else 0
    if not repeat:               # sum into acc, then u += offset * acc by shift-and-add
        for b in range(nbytes):
            gen.op(f"clear {gen.r('acc', b)}")
    loop = gen.fresh("usum")
    a.label(loop)
    if streamed:
        inputs.read_input(gen)
    else:
        gen.op(f"idxm a, {gen.r('ptr')}")
        gen.op(f"inc {gen.r('ptr')}")
    dst = "u" if repeat else "acc"
    add, addc = ("sub", "subc") if repeat and offset < 0 else ("add", "addc")
    for _ in range(max(repeat, 1)):
        gen.op(f"{add} {gen.r(dst, 0)}, a")
        for b in range(1, nbytes):
            gen.op(f"{addc} {gen.r(dst, b)}")
    gen.op(f"dzsn {gen.r('wb')}")
    gen.op(f"goto {loop}")
    if not repeat:
        muladd(gen, "u", nbytes, "acc", nbytes, offset)
        for b in range(nbytes):
            gen.op(f"clear {gen.r('acc', b)}", "the sums start at zero")
    gen.op("ret")


def muladd(gen, dst: str, dst_bytes: int, src: str, src_bytes: int, coef: int) -> None:
    """dst += coef * src (src non-negative, shifted in place), by shifts and adds."""
    neg, m = coef < 0, abs(coef)
    while m:
        if m & 1:
            for b in range(dst_bytes):
                if b < src_bytes:
                    gen.op(f"mov a, {gen.r(src, b)}")
                    op = ("sub" if neg else "add") if b == 0 else ("subc" if neg else "addc")
                    gen.op(f"{op} {gen.r(dst, b)}, a")
                else:
                    gen.op(f"{'subc' if neg else 'addc'} {gen.r(dst, b)}")
        m >>= 1
        if m:
            gen.op(f"sl {gen.r(src, 0)}")
            for b in range(1, src_bytes):
                gen.op(f"slc {gen.r(src, b)}")


def argmax(gen, name: str) -> None:
    """besti = the address of the maximum: a scan that lets an equal value replace the
    best so far, forwards for the last maximum and backwards for the first; the caller
    turns the address into the index (`gen.argmax_base`)."""
    g = gen.graph
    src = g.operands(name)[0]
    base, _ = gen.layout.vectors[src]
    last = g.attrs(name)["last"]
    count = g.type(src).size
    first, end = (base, base + count - 1) if last else (base + count - 1, base)
    gen.asm.comment(f"argmax over %{src} ({'last' if last else 'first'} maximum): "
                    f"scan {'forwards' if last else 'backwards'}, x >= best replaces it")
    gen.argmax_base = base
    # best = 0 and the scan starts one before the first element, which then always
    # replaces it (the bytes are offset binary, so no value is below 0)
    gen.op(f"clear {gen.r('best')}")
    gen.movi("ptr", first + (-1 if last else 1))
    loop, keep = gen.fresh("amax"), gen.fresh("keep")
    gen.asm.label(loop)
    gen.op(f"{'inc' if last else 'dec'} {gen.r('ptr')}")
    gen.op(f"idxm a, {gen.r('ptr')}")
    gen.op(f"sub a, {gen.r('best')}", "x - best: C when x < best")
    gen.op(f"t0sn.io {h(FLAG)}, #{C}")
    gen.op(f"goto {keep}")
    gen.op(f"add a, {gen.r('best')}", "x again")
    gen.op(f"mov {gen.r('best')}, a")
    gen.op(f"mov a, {gen.r('ptr')}")
    gen.op(f"mov {gen.r('besti')}, a")
    gen.asm.label(keep)
    gen.op(f"mov a, {gen.r('ptr')}")
    gen.op(f"ceqsn a, #{h(end)}", "all compared?")
    gen.op(f"goto {loop}")
