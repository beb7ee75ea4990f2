"""The loops of a dense layer: per neuron (or group of `ways` neurons sharing reads),
per group of inputs the packed weight-plane byte(s) into `wb` and the kernel, then the
finish: the constant from the row (unless uniform), the shift parameter, a call.

Weights and per-neuron constants sit in tables of `ret #k` words behind `pcadd a`; a
table steps `widx` itself.  Rows go on in the open table while they fit, and a layer
whose rows span several tables gets a loop per table (`seg_copies`) or one loop whose
fetches go through a dispatcher on a segment counter in RAM.

Loops end on an address compare (`ceqsn a, #end`), so no RAM goes to counters.
"""
from __future__ import annotations

from .asm import h
from .layers import TABLE_MAX, DensePlan
from . import finish, inputs, routines


def finisher_key(gen, p: DensePlan) -> tuple:
    """Layers with equal keys share a finish routine (its head)."""
    return finish.head_key(p, gen.tail_of[p.name])


def dense(gen, p: DensePlan) -> None:
    """One dense layer: u, the other neurons' sums cleared, then its neuron loop(s)."""
    a = gen.asm
    streamed = gen.streamed(p)
    a.comment(f"dense %{p.name}: {p.k} -> {p.n}, " + (
              "identity weights (a requant): neuron j reads x[j], " if p.diag else
              f"{p.planes.count} weight planes {list(p.planes.coefs)} + {p.planes.offset}, "
              f"{p.group} inputs per fetch, ") +
              f"acc {8 * p.acc_bytes} bit, shift "
              f"{p.shift if p.shifts is None else 'per neuron, from its row'} ({p.rounding})")
    out_base, _ = gen.layout.vectors[p.name]
    x_base = None if streamed else gen.layout.vectors[p.x][0]
    key = finisher_key(gen, p)
    if p.has_u:     # u = the uniform constant + offset * U, U the sum of the inputs
        for b in range(p.acc_bytes):
            gen.movi("u", p.u_value >> (8 * b), byte=b,
                     comment="u = constant" if b == 0 else "")
        if p.planes.offset and gen.staged(p) and p.k % p.group == 0:
            inputs.staged_usum(gen, p)      # the RAM routine, a staged group at a time
        elif p.planes.offset:
            if streamed:
                inputs.clear_inidx(gen)
            else:
                gen.movi("ptr", x_base)
            ukey = (streamed, p.acc_bytes, p.planes.offset)
            gen.usums.add(ukey)
            for done in range(0, p.k, 255):     # u += offset * sum is linear: a
                gen.movi("wb", min(255, p.k - done))    # byte count per call
                gen.op(f"call {routines.usum_label(*ukey)}",
                       f"u += {p.planes.offset} * sum of inputs")
    for s in range(1, p.ways):      # the other neurons' sums start at zero too
        for k in range(p.planes.count):
            for b in range(p.pb_raw):
                gen.op(f"clear {gen.q(p, s, k, b)}")
    nseg = -(-p.units // p.per_segment)
    if key not in gen.finishers:
        gen.finishers[key] = (gen.fresh("finish"), p)
    gen.movi("oidx", out_base, comment="output address")
    if nseg > 1 and not gen.seg_copies:     # one loop, segments through a dispatcher
        labels = []
        for s in range(nseg):
            rows = p.rows[s * p.per_segment:(s + 1) * p.per_segment]
            label = gen.fresh(f"w_{p.name.replace('.', '_')}")
            gen.tables.append((label, [int(v) for v in rows.reshape(-1)]))
            labels.append(label)
        fetch = gen.fresh("fetch")
        gen.dispatchers.append((fetch, labels, gen.seg(p)))
        gen.op("mov a, #0x01")
        gen.op(f"mov {gen.seg(p)}, a", "table segment")
        gen.movi("widx", 1)
        neuron_loop(gen, p, fetch, True, None, out_base + p.n * p.out_bytes)
        gen.widx_at, gen.open_table = None, False
        return
    # the rows go on in the open table while they fit (whole rows; a layer is split
    # only where it needs several tables anyway), and one copy of the neuron loop per
    # table calls it directly; widx runs on across layers sharing a table
    chunks = place_rows(gen, p, nseg)
    post = None
    if len(chunks) > 1 and p.ways > 1 and p.uniform_const and streamed:
        post = gen.fresh("finish_group")              # the long group finish, once
        gen.deferred.append((p.name, post, p))        # (a streamed layer has the
    for label, start, end_unit, used in chunks:       # stack level for it)
        if label is not None and gen.widx_at != (label, start):
            gen.movi("widx", start, comment=f"%{p.name}'s rows start at entry {start}")
        neuron_loop(gen, p, label, False, post, out_base + end_unit * p.ways * p.out_bytes)
        if label is not None:
            gen.widx_at = (label, start + used)


def place_rows(gen, p: DensePlan, nseg: int) -> list[tuple]:
    """Put p's table rows in tables: [(label, first entry, units done after, bytes)]."""
    width = p.rows.shape[1]
    if width == 0:     # no weight planes and one constant: the layer reads no table
        return [(None, 0, p.units, 0)]
    flat = [int(v) for v in p.rows.reshape(-1)]
    room = (TABLE_MAX - len(gen.tables[-1][1])) // width if gen.open_table else 0
    if nseg == 1 and room < p.units or \
            nseg > 1 and room and 1 + -(-(p.units - room) // p.per_segment) > nseg:
        room = 0                    # do not split a layer into more loops than needed
    chunks, done = [], 0
    while done < p.units:
        if room == 0:
            gen.tables.append((gen.fresh(f"w_{p.name.replace('.', '_')}"), []))
            gen.open_table = True
            room = TABLE_MAX // width
        take = min(room, p.units - done)
        label, data = gen.tables[-1]
        chunks.append((label, 1 + len(data), done + take, take * width))
        data.extend(flat[done * width:(done + take) * width])
        done += take
        room -= take
    return chunks


def neuron_loop(gen, p: DensePlan, fetch: str, dispatch: bool, post: str | None,
                end: int) -> None:
    """Neurons (groups of `ways`) until oidx reaches `end`: per input group the weight
    byte(s) and the kernel, then the finish (or `call post`, which holds it)."""
    a = gen.asm
    streamed = gen.streamed(p)
    x_base = None if streamed else gen.layout.vectors[p.x][0]
    neuron, group = gen.fresh("neuron"), gen.fresh("group")
    a.label(neuron)       # the sums start at zero: cleared by the last finish
    if p.diag:            # neuron j's plane sum is x[j]: j from the output address
        out_base = gen.layout.vectors[p.name][0]
        gen.op(f"mov a, {gen.r('oidx')}")
        if streamed:
            gen.op(f"sub a, #{h(out_base)}", "the input's index")
            inputs.read_input_a(gen)
        else:
            gen.op(f"add a, #{h((x_base - out_base) & 0xFF)}", "the input's address")
            gen.op(f"mov {gen.r('ptr')}, a")
            gen.op(f"idxm a, {gen.r('ptr')}")
        gen.op(f"mov {gen.r('p0')}, a", "its plane sum")
    elif p.planes.count:
        if streamed:
            inputs.clear_inidx(gen)
        else:
            gen.movi("ptr", x_base)
        a.label(group)
        if gen.staged(p):
            gen.op(f"call {inputs.stage_label(gen, p)}", f"the next {p.group} inputs into RAM")
        for b in range(p.wbytes):
            fetch_to(gen, fetch, "wb", b)
        kkey = (p.planes.count, p.pb_raw, p.group, streamed and not gen.staged(p),
                (p.ways, gen.layout.vectors[f"ways@{p.name}"][0]) if p.ways > 1 else None)
        if gen.opt == "speed":      # the kernel inline: no call and return per group
            routines.kernel_body(gen, *kkey)
        else:
            gen.kernels.add(kkey)
            gen.op(f"call {routines.kernel_label(*kkey)}")
        if streamed:
            inputs.loop_until_inidx(gen, p.padded_k, group, "all groups done?")
        else:
            gen.op(f"mov a, {gen.r('ptr')}")
            gen.op(f"ceqsn a, #{h(x_base + p.padded_k)}", "all groups done?")
            gen.op(f"goto {group}")
    if post is not None:
        gen.op(f"call {post}", f"finish these {p.ways} neurons")
    else:
        finish_group(gen, p, fetch)
    if dispatch:
        same = gen.fresh("sameseg")
        gen.op(f"mov a, {gen.r('widx')}")
        gen.op(f"ceqsn a, #{h((1 + p.per_segment * p.rows.shape[1]) & 0xFF)}", "segment done?")
        gen.op(f"goto {same}")
        gen.op(f"inc {gen.seg(p)}")
        gen.movi("widx", 1)
        a.label(same)
    gen.op(f"mov a, {gen.r('oidx')}")
    gen.op(f"ceqsn a, #{h(end)}", "all neurons done?")
    gen.op(f"goto {neuron}")


def finish_group(gen, p: DensePlan, fetch: str) -> None:
    """Finish the `ways` neurons whose sums the group loop left (the first in the plane
    registers, the others in ways@ RAM): constant, shift, round, clamp, store each."""
    key = finisher_key(gen, p)
    for s in range(p.ways):
        if s:            # the group's next neuron: its sums into the (zeroed) plane
            gen.op("mov a, #0x00")                        # registers, zeros back
            for k in range(p.planes.count):
                for b in range(p.pb_raw):
                    gen.op(f"xch {gen.q(p, s, k, b)}", f"A <-> neuron {s}'s sum")
                    gen.op(f"xch {gen.r(f'p{k}', b)}", "... A = 0 again")
        if p.post_mult != 1:         # the constant waits in mtmp for the multiply
            for b in range(p.acc_bytes):
                if p.uniform_const:
                    gen.movi("mtmp", p.uniform_value >> (8 * b), byte=b,
                             comment="the constant, added after the multiply" if not b else "")
                else:
                    fetch_to(gen, fetch)
                    gen.op(f"mov {gen.r('mtmp', b)}, a", "the neuron's constant")
        elif not p.uniform_const:    # acc += this neuron's constant, from the table
            width = p.const_bytes or p.acc_bytes     # (its delta from the base in u)
            for b in range(width):
                fetch_to(gen, fetch)
                gen.op(f"add {gen.r('acc', b)}, a", "+ the neuron's constant")
                for c in range(b + 1, p.acc_bytes):
                    gen.op(f"addc {gen.r('acc', c)}")
            if width < p.acc_bytes:  # a negative delta: -1 in the bytes above it
                gen.op("sl a", "C = the delta's sign")
                for c in range(width, p.acc_bytes):
                    gen.op(f"subc {gen.r('acc', c)}")
        param = finish.parameter(p, gen.tail_of[p.name])
        if p.shifts is not None:     # per-channel scales: the count is in the row
            fetch_to(gen, fetch)
        elif param is not None:
            gen.op(f"mov a, #{h(param)}", "shift count" if param == p.shift else
                   f"shift {p.shift}" + (", not a tie" if param & 1 else "")
                   + (", the second bound" if param & 0x80 else ""))
        gen.op(f"call {gen.finishers[key][0]}", "combine, shift, round, clamp, store")


def fetch_to(gen, table: str, reg: str | None = None, byte: int = 0) -> None:
    """A (and reg, if given) = the next table byte; the table (or the dispatcher in
    front of it) reads widx and steps it, which clobbers C."""
    gen.op(f"call {table}")
    if reg is not None:
        gen.op(f"mov {gen.r(reg, byte)}, a")
