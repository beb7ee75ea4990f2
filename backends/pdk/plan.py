"""The plan of a Padauk program variant, before any code: what it refuses, the layers'
plans, the registers, and the RAM: whether the input stays in RAM or streams from
`_nn_read_input`, how many neurons share a read, and where a staged input group goes.

`plan_program(gen)` fills in the Codegen: `plans`, `input_name`, `acc_alias`, `layout`,
`input_in_ram`, `stage_base`, `widest`.  Registers are placed first (the bit-tested
ones low), then the vectors by lifetime; the first RAM shape that fits wins, in the
order of `attempts` (the input in RAM, else streamed with the widest sharing).
"""
from __future__ import annotations

from tinycc_nn import ir
from tinycc_nn.errors import TinyccError

from .layers import plan_dense, unsigned_bytes, widened
from .layout import Layout, place_stack, place_vectors
from . import inputs

INDEX_MAX = 0xFFFF        # input indices: inidx, and inhi above 255


def plan_program(gen) -> None:
    g = gen.graph
    order = g.order()
    refuse_unsupported(g, order)
    denses = [n for n in order if g.op(n) == "dense"]
    if not denses:
        raise TinyccError("the pdk backend needs at least one dense layer")
    for n in denses:
        gen.plans[n] = plan_dense(g, n, f"%{n} = dense")
        for user in g.users(n):
            if g.op(user) in ("dense", "argmax") and gen.plans[n].out_bytes != 1:
                raise TinyccError(f"%{n}: a {gen.plans[n].out_bytes}-byte vector feeds "
                                  f"%{user}; the pdk backend chains byte vectors only")
    inp = g.inputs()[0]
    gen.input_name = inp
    if g.type(inp).hi - g.type(inp).lo > 255:
        raise TinyccError(f"input %{inp}: {g.attrs(inp)['qdtype']} values do not fit a byte")
    if inputs.table_size(gen) > INDEX_MAX:
        raise TinyccError(f"input %{inp}: {g.type(inp).size} values, more than the "
                          f"{INDEX_MAX} a pdk program indexes")
    base = registers(gen)
    gen.argmax_base = 0
    place(gen, base, order, denses)
    if not gen.input_in_ram and any(g.op(u) != "dense" for u in g.users(inp)):
        raise TinyccError(f"input %{inp} is streamed (it does not fit in RAM), so only a "
                          "dense layer may read it")


def refuse_unsupported(g, order) -> None:
    for n in order:
        op = g.op(n)
        if op in ("input", "const", "output", "dense", "argmax"):
            continue
        if op in ir.WINDOWED or len(g.type(n).shape) > 1:
            raise TinyccError(
                f"%{n} = {op}: convolution and pooling layers have no Padauk code (this "
                f"model's RAM plan peaks at {g.ram_peak} bytes, with its feature maps); "
                "compile it for ch32v003, ch32v002 or python")
        what = {"add": "a residual add", "concat": "a concat", "gather": "a reordered copy"}.get(
            op, "this standalone elementwise op")
        raise TinyccError(f"%{n} = {op}: the pdk backend compiles dense layers and argmax; "
                          f"{what} has no pdk code yet (compile it for ch32v003, ch32v002 "
                          "or python)")


def registers(gen) -> Layout:
    """The registers every layer loop shares, the bit-tested ones first."""
    plans = list(gen.plans.values())
    # acc is plane 0's register when every layer weighs plane 0 by one
    gen.acc_alias = all(p.planes.count and p.planes.coefs[0] == 1 for p in plans)
    base = Layout(gen.ram_bytes, top=gen.ram_first)
    base.reg("wb", max(p.wbytes for p in plans))
    acc_bytes = max(p.acc_bytes for p in plans)
    planes = max(p.planes.count for p in plans)
    if gen.acc_alias:
        base.reg("p0", max(max(p.pb[0], p.acc_bytes) for p in plans))
        base.regs["acc"] = (base.regs["p0"][0], acc_bytes)
    else:
        base.reg("acc", acc_bytes)
    base.reg("ptr", 2, align=2)
    if inputs.wide(gen):    # the stream index's high byte (bit-tested by the harness)
        base.reg("inhi", 1)
    if base.top > gen.bit_reach:
        raise TinyccError(f"{gen.part}: {base.top} bytes of bit-tested registers, more than "
                          f"{gen.bit_reach}")
    for k in range(planes):
        if f"p{k}" not in base.regs:
            base.reg(f"p{k}", max((p.pb[k] for p in plans if k < p.planes.count), default=1))
    for name in ("oidx", "widx"):
        base.reg(name, 1)
    if any(p.has_u for p in plans):
        base.reg("u", acc_bytes)
    posts = [p for p in plans if p.post_mult != 1]
    if posts:      # the multiply after the combine: the constant, then the sum it scales
        base.reg("mtmp", max(p.acc_bytes for p in posts))
        if gen.opt != "speed":       # its loop shifts the multiplier out of RAM
            base.reg("mreg", max(unsigned_bytes(p.post_mult) for p in posts))
    # argmax runs after the last layer: it borrows the layer loop's registers
    base.regs["best"], base.regs["besti"] = base.regs["widx"], base.regs["acc"]
    return base


def place(gen, base: Layout, order, denses) -> None:
    """The first RAM shape that fits: the input in RAM, else streamed; with sharing of
    reads (`widened` plans) as wide as `gen.ways` allows, narrower when RAM runs out."""
    g, inp = gen.graph, gen.input_name
    # the input stays in RAM when it fits with everything else; else it is streamed
    gen.input_in_ram = False
    order_pos = {n: i for i, n in enumerate(order)}
    single = dict(gen.plans)
    attempts = [("ram", 1), ("stream", 4), ("stream", 2), ("stream", 1)]
    if gen.widen_all:
        attempts = [("ram", 4), ("ram", 2), ("stream", 4), ("stream", 2)]
    gen.layout = None
    for attempt, ways in attempts:
        if ways > gen.ways:
            continue
        gen.plans = dict(single)
        if ways > 1:     # streaming layers read each input once for several neurons
            readers = denses if gen.widen_all else g.users(inp)
            for u in readers:
                if u in gen.plans and widened(gen.plans[u], ways) is not None:
                    gen.plans[u] = widened(gen.plans[u], ways)
            if all(gen.plans[n] is single[n] for n in gen.plans):
                continue
        trial = Layout(base.ram_bytes, dict(base.regs), {}, (0, 0), base.top)
        if attempt == "ram":
            trial.reg("inidx", 1)
        elif not gen.stage:        # the streaming kernel does not use ptr
            trial.regs["inidx"] = (trial.regs["ptr"][0], 1)
        # the caller's call + one level below _nn_infer (a library build runs on the
        # firmware's stack: its header says how deep)
        place_stack(trial, depth=2 if gen.harness else 0)
        intervals, pinned = lifetimes(gen, attempt, order, order_pos, denses)
        try:
            place_vectors(trial, intervals, gen.part, pinned)
        except TinyccError:
            if ways == 1 and attempt == "stream":
                raise
            continue
        gen.input_in_ram = attempt == "ram"
        if "stage" in trial.vectors:
            stage_base, size = trial.vectors["stage"]
            gen.stage_base = stage_base
            trial.regs["inidx"] = (stage_base + size - 1, 1)
        gen.layout = trial
        gen.widest = max(p.ways for p in gen.plans.values())
        break
    if gen.layout is None:
        raise TinyccError(f"{gen.part}: no RAM for layers reading from RAM to share reads")


def lifetimes(gen, attempt: str, order, order_pos, denses) -> tuple[dict, dict]:
    """The RAM vectors of one attempt as (first use, last use, bytes), and the ones
    pinned to an offset."""
    g, inp = gen.graph, gen.input_name
    intervals = {}
    for n in denses:
        users = g.users(n)
        end = len(order) if any(g.op(u) == "output" for u in users) else \
            max(order_pos[u] for u in users)
        size = gen.plans[n].out_bytes * gen.plans[n].n
        reads = [gen.plans[u].padded_k for u in users if u in gen.plans]
        intervals[n] = (order_pos[n], end, max([size, *reads]))
    for n in denses:     # a layer spanning several tables counts them in RAM
        q = gen.plans[n]                                  # beside its vectors
        if q.units > q.per_segment and not gen.seg_copies:
            intervals[f"seg@{n}"] = (order_pos[n], order_pos[n], 1)
        if q.ways > 1:   # the other neurons' plane sums
            intervals[f"ways@{n}"] = (order_pos[n], order_pos[n],
                                      (q.ways - 1) * q.planes.count * q.pb_raw)
    readers = [gen.plans[u] for u in g.users(inp) if u in gen.plans]
    if attempt == "ram":
        in_users = [order_pos[u] for u in g.users(inp)]
        size = max([g.type(inp).size, *(p.padded_k for p in readers)])
        intervals[inp] = (order_pos[denses[0]], max(in_users), size)
        pinned = {}
    else:
        # kernel -> _nn_read_input: one more stack level while the input streams
        pinned = {}
        last = max(order_pos[p.name] for p in readers)
        if gen.harness:
            intervals["stack+"] = (0, last, 2)
            pinned = {"stack+": 0}
        if gen.stage:    # a group of inputs, then the stream index: pinned low
            intervals["stage"] = (0, last, max(p.group for p in readers) + 1)
            pinned["stage"] = 2 if gen.harness else 0   # (else first fit can
            # strand it between the vectors that outlive it)
    return intervals, pinned
