"""Padauk code generation: the IR after the common passes -> one sdas source file.

Program shape (all RAM addresses absolute, from `layout`):

  reset stub (--harness): set SP, call _nn_infer, stopsys
  _nn_infer::   per dense layer: u = constant + offset * (sum of its inputs), then a
                neuron loop; per group of inputs it fetches the packed weight-plane
                byte(s) into `wb` and calls the kernel; then the finish routine
  kernels       one group unrolled: the input byte (idxm from RAM, or for a streamed
                input a call to _nn_read_input), then per plane `t0sn wb, #bit / add / addc`
  finish        acc = P0 + u + sum_k coef_k * P_k, shifted right (count in A with
                --opt size; unrolled per layer with --opt speed), tie-corrected,
                clamped and stored; layers that differ only in the shift share it
  tables        weights and per-neuron constants as `ret #k` words behind `pcadd a`
  _nn_read_input (--harness): the input as a `ret #k` table; real firmware supplies
                its own routine with the same contract (index in A, byte in A)

A library build (harness off) is relocatable code for SDCC-built firmware: its RAM
starts above SDCC's pseudo-register `p` (0x00-0x01), it runs on the caller's stack,
and it reaches the firmware's C `nn_read_input(unsigned char)` through a two-word shim
that moves A into the function's parameter (SDCC's default, non-reentrant convention).

The kernel keeps the carry flag clear between planes: `inc` of the input pointer
clears it, a skipped `add` leaves it clear, and an executed `add`/`addc` chain
ends clear because interval analysis sized the plane sums not to overflow.
Loops end on an address compare (`ceqsn a, #end`), so no RAM goes to counters.
"""
from __future__ import annotations

from tinycc_nn import ir
from tinycc_nn.errors import TinyccError

from .asm import Asm, h
from .layers import TABLE_MAX, DensePlan, plan_dense, unsigned_bytes, widened
from . import finish, library, routines
from .layout import Layout, place_stack, place_vectors

SP = 0x02
RAM_FIRST_LIBRARY = 2     # SDCC keeps its pseudo-register p at 0x00-0x01
READ_SHIM = "__nn_read_input_a"
INDEX_MAX = 0xFFFF        # input indices: inidx, and inhi above 255


class Codegen:
    def __init__(self, graph, core_name: str, core, part: str, ram_bytes: int, harness: bool,
                 opt: str = "size", ways: int = 2, seg_copies: bool = False,
                 widen_all: bool = False, stage: bool = False):
        self.graph, self.core_name, self.part = graph, core_name, part
        self.opt = opt
        self.ways = ways          # at most this many neurons share a streamed input read
        self.widest = 1           # ... and this many do in the program written
        self.seg_copies = seg_copies  # a layer spanning several tables: a loop per table
        self.widen_all = widen_all    # layers reading RAM share reads too (where RAM allows)
        self.stage = stage and ways == 1  # a streamed input goes through RAM, a group at a
        self.stage_base = None            # time, so the RAM kernel serves it too
        self.stop_after = None    # set to a layer name to measure the program up to it
        self.asm = Asm(core)
        self.harness = harness
        self.ram_first = 0 if harness else RAM_FIRST_LIBRARY
        self.ram_bytes = ram_bytes
        self.bit_reach = 16 if core_name == "pdk13" else 64
        self.labels = 0
        self.plans = {}
        self.kernels = set()
        self.usums = set()
        self.stages = set()       # group sizes of the staging routines called
        self.finishers = {}       # finish_key -> (label, a plan with that key)
        self.tails = {}           # finish.Tail -> label of the shared finish tail
        self.tail_of = {}         # layer -> its finish.Tail
        self.tables = []          # (label, bytes): the last one is open while open_table
        self.open_table = False   # ... and later layers' rows may go on in it
        self.widx_at = None       # (table, entry) widx holds at this point of the program
        self.dispatchers = []     # (label, table labels) for layers spanning several tables
        self.deferred = []        # (layer, label, plan): group finishes shared by its loops

    # helpers -------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        self.labels += 1
        return f"{base}_{self.labels}"

    def op(self, text, comment="", symbols=()):
        self.asm.op(text, comment, symbols)

    def r(self, name, byte=0) -> str:
        return h(self.layout.addr(name, byte))

    def q(self, p: DensePlan, neuron: int, plane: int, byte: int) -> str:
        """Byte `byte` of plane `plane`'s sum of the `neuron`-th (>= 1) neuron of a group
        sharing input reads (the first one's sums are the plane registers)."""
        base = self.layout.vectors[f"ways@{p.name}"][0]
        return h(base + ((neuron - 1) * p.planes.count + plane) * p.pb_raw + byte)

    def seg(self, p: DensePlan) -> str:
        return h(self.layout.vectors[f"seg@{p.name}"][0])

    def movi(self, reg, value, byte=0, comment=""):
        if value & 0xFF == 0:
            self.op(f"clear {self.r(reg, byte)}", comment)
            return
        self.op(f"mov a, #{h(value & 0xFF)}", comment)
        self.op(f"mov {self.r(reg, byte)}, a")

    @property
    def seg_copies_used(self) -> bool:
        """Whether some layer spans several tables (so `seg_copies` changes the program)."""
        return any(q.units > q.per_segment for q in self.plans.values())

    def streamed(self, p: DensePlan) -> bool:
        return p.x == self.input_name and not self.input_in_ram

    def staged(self, p: DensePlan) -> bool:
        """Streamed through the staging buffer: `call stage`, then the RAM kernel."""
        return self.stage and self.streamed(p)

    # planning --------------------------------------------------------------------------
    def plan(self) -> None:
        g = self.graph
        order = g.order()
        for n in order:
            op = g.op(n)
            if op in ("input", "const", "output", "dense", "argmax"):
                continue
            if op in ir.WINDOWED or len(g.type(n).shape) > 1:
                raise TinyccError(
                    f"%{n} = {op}: convolution and pooling layers have no Padauk code (this "
                    f"model's RAM plan peaks at {g.ram_peak} bytes, with its feature maps); "
                    "compile it for ch32v003, ch32v002 or python")
            raise TinyccError(f"%{n} = {op}: the pdk backend compiles dense layers and argmax; "
                              "this standalone elementwise op has no pdk code yet")
        denses = [n for n in order if g.op(n) == "dense"]
        if not denses:
            raise TinyccError("the pdk backend needs at least one dense layer")
        for n in denses:
            self.plans[n] = plan_dense(g, n, f"%{n} = dense")
            for user in g.users(n):
                if g.op(user) in ("dense", "argmax") and self.plans[n].out_bytes != 1:
                    raise TinyccError(f"%{n}: a {self.plans[n].out_bytes}-byte vector feeds "
                                      f"%{user}; the pdk backend chains byte vectors only")
        inp = g.inputs()[0]
        self.input_name = inp
        if g.type(inp).hi - g.type(inp).lo > 255:
            raise TinyccError(f"input %{inp}: {g.attrs(inp)['qdtype']} values do not fit a byte")
        if self.input_table_size() > INDEX_MAX:
            raise TinyccError(f"input %{inp}: {g.type(inp).size} values, more than the "
                              f"{INDEX_MAX} a pdk program indexes")
        plans = list(self.plans.values())
        # acc is plane 0's register when every layer weighs plane 0 by one
        self.acc_alias = all(p.planes.count and p.planes.coefs[0] == 1 for p in plans)
        base = Layout(self.ram_bytes, top=self.ram_first)
        base.reg("wb", max(p.wbytes for p in plans))
        acc_bytes = max(p.acc_bytes for p in plans)
        planes = max(p.planes.count for p in plans)
        if self.acc_alias:
            base.reg("p0", max(max(p.pb[0], p.acc_bytes) for p in plans))
            base.regs["acc"] = (base.regs["p0"][0], acc_bytes)
        else:
            base.reg("acc", acc_bytes)
        base.reg("ptr", 2, align=2)
        if self.wide_input:     # the stream index's high byte (bit-tested by the harness)
            base.reg("inhi", 1)
        if base.top > self.bit_reach:
            raise TinyccError(f"{self.part}: {base.top} bytes of bit-tested registers, more than "
                              f"{self.bit_reach}")
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
            if self.opt != "speed":       # its loop shifts the multiplier out of RAM
                base.reg("mreg", max(unsigned_bytes(p.post_mult) for p in posts))
        # argmax runs after the last layer: it borrows the layer loop's registers
        base.regs["best"], base.regs["besti"] = base.regs["widx"], base.regs["acc"]
        self.argmax_base = 0
        # the input stays in RAM when it fits with everything else; else it is streamed
        self.input_in_ram = False
        order_pos = {n: i for i, n in enumerate(order)}
        first = order_pos[denses[0]]
        single = dict(self.plans)
        attempts = [("ram", 1), ("stream", 4), ("stream", 2), ("stream", 1)]
        if self.widen_all:
            attempts = [("ram", 4), ("ram", 2), ("stream", 4), ("stream", 2)]
        self.layout = None
        for attempt, ways in attempts:
            if ways > self.ways:
                continue
            self.plans = dict(single)
            if ways > 1:     # streaming layers read each input once for several neurons
                readers = denses if self.widen_all else g.users(inp)
                for u in readers:
                    if u in self.plans and widened(self.plans[u], ways) is not None:
                        self.plans[u] = widened(self.plans[u], ways)
                if all(self.plans[n] is single[n] for n in self.plans):
                    continue
            trial = Layout(base.ram_bytes, dict(base.regs), {}, (0, 0), base.top)
            if attempt == "ram":
                trial.reg("inidx", 1)
            elif not self.stage:        # the streaming kernel does not use ptr
                trial.regs["inidx"] = (trial.regs["ptr"][0], 1)
            # the caller's call + one level below _nn_infer (a library build runs on the
            # firmware's stack: its header says how deep)
            place_stack(trial, depth=2 if self.harness else 0)
            intervals = {}
            for n in denses:
                users = g.users(n)
                end = len(order) if any(g.op(u) == "output" for u in users) else \
                    max(order_pos[u] for u in users)
                size = self.plans[n].out_bytes * self.plans[n].n
                reads = [self.plans[u].padded_k for u in users if u in self.plans]
                intervals[n] = (order_pos[n], end, max([size, *reads]))
            for n in denses:     # a layer spanning several tables counts them in RAM
                q = self.plans[n]                                  # beside its vectors
                if q.units > q.per_segment and not self.seg_copies:
                    intervals[f"seg@{n}"] = (order_pos[n], order_pos[n], 1)
                if q.ways > 1:   # the other neurons' plane sums
                    intervals[f"ways@{n}"] = (order_pos[n], order_pos[n],
                                              (q.ways - 1) * q.planes.count * q.pb_raw)
            readers = [self.plans[u] for u in g.users(inp) if u in self.plans]
            if attempt == "ram":
                in_users = [order_pos[u] for u in g.users(inp)]
                size = max([g.type(inp).size, *(p.padded_k for p in readers)])
                intervals[inp] = (first, max(in_users), size)
                pinned = {}
            else:
                # kernel -> _nn_read_input: one more stack level while the input streams
                pinned = {}
                last = max(order_pos[p.name] for p in readers)
                if self.harness:
                    intervals["stack+"] = (0, last, 2)
                    pinned = {"stack+": 0}
                if self.stage:    # a group of inputs, then the stream index: pinned low
                    intervals["stage"] = (0, last, max(p.group for p in readers) + 1)
                    pinned["stage"] = 2 if self.harness else 0   # (else first fit can
                    # strand it between the vectors that outlive it)
            try:
                place_vectors(trial, intervals, self.part, pinned)
            except TinyccError:
                if ways == 1 and attempt == "stream":
                    raise
                continue
            self.input_in_ram = attempt == "ram"
            if "stage" in trial.vectors:
                base, size = trial.vectors["stage"]
                self.stage_base = base
                trial.regs["inidx"] = (base + size - 1, 1)
            self.layout = trial
            self.widest = max(p.ways for p in self.plans.values())
            break
        if self.layout is None:
            raise TinyccError(f"{self.part}: no RAM for layers reading from RAM to share reads")
        if not self.input_in_ram and any(g.op(u) != "dense" for u in g.users(inp)):
            raise TinyccError(f"input %{inp} is streamed (it does not fit in RAM), so only a "
                              "dense layer may read it")

    # emission --------------------------------------------------------------------------
    def emit(self) -> str:
        self.plan()
        self.tail_of = finish.plan_tails(self.plans.values(), self.opt == "speed")
        g, a = self.graph, self.asm
        a.comment(f"tinycc-nn: @{g.name} for {self.part} ({self.core_name}), --opt {self.opt}")
        a.comment("RAM map (byte addresses):")
        shown = {}
        for name, (base, size) in self.layout.regs.items():
            shown.setdefault((base, size), []).append(name)
        for (base, size), names in sorted(shown.items()):
            if size:
                a.comment(f"  {h(base)}..{h(base + size - 1)}  {' = '.join(names)}")
        sb, ss = self.layout.stack
        if ss:
            a.comment(f"  {h(sb)}..{h(sb + ss - 1)}  stack ({ss // 2} calls deep)")
        else:
            a.comment(f"  stack: the caller's, {library.stack_bytes(self)} bytes including the call")
        for name, (base, size) in sorted(self.layout.vectors.items(), key=lambda kv: kv[1]):
            what = "stack, one call deeper while the input streams" if name == "stack+" \
                else "input group staged for the RAM kernel, then the stream index" \
                if name == "stage" \
                else f"table segment of %{name[4:]}" if name.startswith("seg@") \
                else f"plane sums of neurons sharing reads in %{name[5:]}" if name.startswith("ways@") \
                else f"vector %{name}"
            a.comment(f"  {h(base)}..{h(base + size - 1)}  {what}")
        if self.harness:
            a.directive(".area CODE (ABS)")
            a.directive(".org 0x0000")
        else:
            a.directive(".area CODE")
        if self.harness:
            a.section("harness")
            a.label("__reset", "harness: one inference, then stopsys")
            self.op(f"mov a, #{h(self.layout.stack[0])}")
            self.op(f"mov.io {h(SP)}, a", "SP: the stack grows upward")
            self.op("call _nn_infer")
            self.op("stopsys")
        a.section("nn_infer")
        a.label("_nn_infer:", "returns the class in A (0 without argmax)")
        self.op(f"clear {self.r('ptr', 1)}", "idxm pointers are 16 bit: high byte 0")
        self.clear_sums()
        if self.input_in_ram:
            self.emit_load_input()
        result = None
        for n in g.order():
            if g.op(n) == "dense":
                a.section(n)
                self.emit_dense(self.plans[n])
            elif g.op(n) == "argmax":
                a.section(n)
                routines.argmax(self, n)
                result = n
            if n == self.stop_after:      # a measuring build: halt once this layer is done
                self.op("stopsys")
        a.section("nn_infer")
        if result is None:
            self.op("mov a, #0x00")
        else:
            self.op(f"mov a, {self.r('besti')}")
            if self.argmax_base:
                self.op(f"sub a, #{h(self.argmax_base)}", "address -> index")
        self.op("ret")
        for key in sorted(self.kernels, key=repr):
            a.section("kernels")
            routines.kernel(self, *key)
        for group in sorted(self.stages):
            a.section("kernels")
            routines.stage(self, group)
        for layer, label, plan in self.deferred:
            a.section(layer)
            a.label(label, f"finish the {plan.ways} neurons of a group of %{layer}")
            self.finish_group(plan, None)
            self.op("ret")
        for key in sorted(self.usums):
            a.section("input_sums")
            routines.input_sum(self, *key)
        for label, plan in self.finishers.values():
            a.section("finish")
            users = ", ".join(n for n, q in self.plans.items()
                              if self.finisher_key(q) == self.finisher_key(plan))
            a.label(label, f"finish a neuron of {users}")
            finish.emit(self, plan, self.tail_of[plan.name])
        for label, targets, seg in self.dispatchers:
            a.section("tables")
            a.label(label, "the current segment's table, at index widx")
            self.op(f"mov a, {seg}", "1, 2, 3, ...: a goto per segment")
            self.op("pcadd a")
            for t in targets:
                self.op(f"goto {t}")
        for label, data in self.tables:
            a.section("tables")
            a.label(label, "A = entry widx, widx += 1")
            self.op(f"mov a, {self.r('widx')}")
            self.op(f"inc {self.r('widx')}", "inc leaves A alone")
            self.op("pcadd a")
            for byte in data:
                self.op(f"ret #{h(int(byte))}")
        if not self.harness:
            a.section("nn_infer")
            a.label(READ_SHIM, "A (index) -> nn_read_input's parameter, then the C function")
            self.op("mov _nn_read_input_PARM_1, a", symbols=("_nn_read_input_PARM_1",))
            if self.wide_input:     # a 16-bit parameter, low byte first
                self.op(f"mov a, {self.r('inhi')}")
                self.op("mov _nn_read_input_PARM_1+1, a", symbols=("_nn_read_input_PARM_1+1",))
            self.op("goto _nn_read_input")
        if self.harness and self.wide_input:
            routines.wide_input_table(self)
        elif self.harness:
            a.section("harness")
            a.label("_nn_read_input:", "harness input: index in A, byte in A")
            self.op("add a, #0x01")
            self.op("pcadd a")
            a.label("_nn_input_table:")
            for _ in range(self.input_table_size()):
                self.op("ret #0x00")
        return a.render()

    def input_table_size(self) -> int:
        """Input indices the program reads: the streaming kernels read whole groups."""
        k = self.graph.type(self.input_name).size
        return max([k, *(p.padded_k for p in self.plans.values() if p.x == self.input_name)])

    def read_input(self) -> None:
        """A = input byte INIDX (offset binary), INIDX += 1 (which clears C)."""
        self.op(f"mov a, {self.r('inidx')}")
        self.read_input_a()
        self.op(f"inc {self.r('inidx')}", "also clears C" if not self.wide_input else "")
        if self.wide_input:
            self.op(f"addc {self.r('inhi')}", "carry into the high byte (clears C)")

    @property
    def wide_input(self) -> bool:
        """More input indices than a byte holds: the stream index has a high byte, `inhi`,
        which the input routine reads beside A."""
        return self.input_table_size() > 255

    def clear_inidx(self) -> None:
        self.op(f"clear {self.r('inidx')}")
        if self.wide_input:
            self.op(f"clear {self.r('inhi')}")

    def loop_until_inidx(self, end: int, loop: str, comment: str) -> None:
        """goto loop unless the stream index has reached `end`."""
        self.op(f"mov a, {self.r('inidx')}")
        self.op(f"ceqsn a, #{h(end & 0xFF)}", comment)
        self.op(f"goto {loop}")
        if self.wide_input:
            self.op(f"mov a, {self.r('inhi')}")
            self.op(f"ceqsn a, #{h(end >> 8)}")
            self.op(f"goto {loop}")

    def read_input_a(self) -> None:
        """A = input byte A (offset binary)."""
        self.op(f"call {'_nn_read_input' if self.harness else READ_SHIM}")
        lo = self.graph.type(self.input_name).lo
        if lo:
            self.op(f"add a, #{h((-lo) & 0xFF)}", "to offset binary")

    def emit_load_input(self) -> None:
        base, size = self.layout.vectors[self.input_name]
        self.asm.comment(f"load the {size}-byte input into RAM at {h(base)}")
        self.clear_inidx()
        self.copy_input(base, size)

    def copy_input(self, base: int, count: int) -> None:
        """The next `count` input bytes (offset binary, from INIDX on) to RAM at base;
        ptr ends at base + count."""
        self.movi("ptr", base)
        loop = self.fresh("copy")
        self.asm.label(loop)
        self.read_input()
        self.op(f"idxm {self.r('ptr')}, a")
        self.op(f"inc {self.r('ptr')}")
        self.op(f"mov a, {self.r('ptr')}")
        self.op(f"ceqsn a, #{h(base + count)}", "all copied?")
        self.op(f"goto {loop}")

    def emit_staged_usum(self, p: DensePlan) -> None:
        """u += offset * (sum of the streamed inputs), through the staging buffer."""
        self.clear_inidx()
        loop = self.fresh("usum_staged")
        self.asm.label(loop)
        self.op(f"call {self.stage_label(p)}")
        self.movi("wb", p.group)
        ukey = (False, p.acc_bytes, p.planes.offset)
        self.usums.add(ukey)
        self.op(f"call {routines.usum_label(*ukey)}", f"u += {p.planes.offset} * sum of the group")
        self.loop_until_inidx(p.k, loop, "all inputs summed?")

    def stage_label(self, p: DensePlan) -> str:
        self.stages.add(p.group)
        return routines.stage_label(p.group)

    def finisher_key(self, p: DensePlan) -> tuple:
        return finish.head_key(p, self.tail_of[p.name])

    def emit_dense(self, p: DensePlan) -> None:
        a = self.asm
        streamed = self.streamed(p)
        a.comment(f"dense %{p.name}: {p.k} -> {p.n}, " + (
                  "identity weights (a requant): neuron j reads x[j], " if p.diag else
                  f"{p.planes.count} weight planes {list(p.planes.coefs)} + {p.planes.offset}, "
                  f"{p.group} inputs per fetch, ") +
                  f"acc {8 * p.acc_bytes} bit, shift "
                  f"{p.shift if p.shifts is None else 'per neuron, from its row'} ({p.rounding})")
        out_base, _ = self.layout.vectors[p.name]
        x_base = None if streamed else self.layout.vectors[p.x][0]
        key = self.finisher_key(p)
        if p.has_u:     # u = the uniform constant + offset * U, U the sum of the inputs
            for b in range(p.acc_bytes):
                self.movi("u", p.u_value >> (8 * b), byte=b,
                          comment="u = constant" if b == 0 else "")
            if p.planes.offset and self.staged(p) and p.k % p.group == 0:
                self.emit_staged_usum(p)      # the RAM routine, a staged group at a time
            elif p.planes.offset:
                if streamed:
                    self.clear_inidx()
                else:
                    self.movi("ptr", x_base)
                ukey = (streamed, p.acc_bytes, p.planes.offset)
                self.usums.add(ukey)
                for done in range(0, p.k, 255):     # u += offset * sum is linear: a
                    self.movi("wb", min(255, p.k - done))    # byte count per call
                    self.op(f"call {routines.usum_label(*ukey)}",
                            f"u += {p.planes.offset} * sum of inputs")
        for s in range(1, p.ways):      # the other neurons' sums start at zero too
            for k in range(p.planes.count):
                for b in range(p.pb_raw):
                    self.op(f"clear {self.q(p, s, k, b)}")
        nseg = -(-p.units // p.per_segment)
        if key not in self.finishers:
            self.finishers[key] = (self.fresh("finish"), p)
        self.movi("oidx", out_base, comment="output address")
        if nseg > 1 and not self.seg_copies:     # one loop, segments through a dispatcher
            labels = []
            for s in range(nseg):
                rows = p.rows[s * p.per_segment:(s + 1) * p.per_segment]
                label = self.fresh(f"w_{p.name.replace('.', '_')}")
                self.tables.append((label, [int(v) for v in rows.reshape(-1)]))
                labels.append(label)
            fetch = self.fresh("fetch")
            self.dispatchers.append((fetch, labels, self.seg(p)))
            self.op("mov a, #0x01")
            self.op(f"mov {self.seg(p)}, a", "table segment")
            self.movi("widx", 1)
            self.neuron_loop(p, fetch, True, None, out_base + p.n * p.out_bytes)
            self.widx_at, self.open_table = None, False
            return
        # the rows go on in the open table while they fit (whole rows; a layer is split
        # only where it needs several tables anyway), and one copy of the neuron loop per
        # table calls it directly; widx runs on across layers sharing a table
        chunks = self.place_rows(p, nseg)
        post = None
        if len(chunks) > 1 and p.ways > 1 and p.uniform_const and streamed:
            post = self.fresh("finish_group")             # the long group finish, once
            self.deferred.append((p.name, post, p))       # (a streamed layer has the
        for label, start, end_unit, used in chunks:       # stack level for it)
            if label is not None and self.widx_at != (label, start):
                self.movi("widx", start, comment=f"%{p.name}'s rows start at entry {start}")
            self.neuron_loop(p, label, False, post, out_base + end_unit * p.ways * p.out_bytes)
            if label is not None:
                self.widx_at = (label, start + used)

    def place_rows(self, p: DensePlan, nseg: int) -> list[tuple]:
        """Put p's table rows in tables: [(label, first entry, units done after, bytes)]."""
        width = p.rows.shape[1]
        if width == 0:     # no weight planes and one constant: the layer reads no table
            return [(None, 0, p.units, 0)]
        flat = [int(v) for v in p.rows.reshape(-1)]
        room = (TABLE_MAX - len(self.tables[-1][1])) // width if self.open_table else 0
        if nseg == 1 and room < p.units or \
                nseg > 1 and room and 1 + -(-(p.units - room) // p.per_segment) > nseg:
            room = 0                    # do not split a layer into more loops than needed
        chunks, done = [], 0
        while done < p.units:
            if room == 0:
                self.tables.append((self.fresh(f"w_{p.name.replace('.', '_')}"), []))
                self.open_table = True
                room = TABLE_MAX // width
            take = min(room, p.units - done)
            label, data = self.tables[-1]
            chunks.append((label, 1 + len(data), done + take, take * width))
            data.extend(flat[done * width:(done + take) * width])
            done += take
            room -= take
        return chunks

    def neuron_loop(self, p: DensePlan, fetch: str, dispatch: bool, post: str | None,
                    end: int) -> None:
        """Neurons (groups of `ways`) until oidx reaches `end`: per input group the weight
        byte(s) and the kernel, then the finish (or `call post`, which holds it)."""
        a = self.asm
        streamed = self.streamed(p)
        x_base = None if streamed else self.layout.vectors[p.x][0]
        neuron, group = self.fresh("neuron"), self.fresh("group")
        a.label(neuron)       # the sums start at zero: cleared by the last finish
        if p.diag:            # neuron j's plane sum is x[j]: j from the output address
            out_base = self.layout.vectors[p.name][0]
            self.op(f"mov a, {self.r('oidx')}")
            if streamed:
                self.op(f"sub a, #{h(out_base)}", "the input's index")
                self.read_input_a()
            else:
                self.op(f"add a, #{h((x_base - out_base) & 0xFF)}", "the input's address")
                self.op(f"mov {self.r('ptr')}, a")
                self.op(f"idxm a, {self.r('ptr')}")
            self.op(f"mov {self.r('p0')}, a", "its plane sum")
        elif p.planes.count:
            if streamed:
                self.clear_inidx()
            else:
                self.movi("ptr", x_base)
            a.label(group)
            if self.staged(p):
                self.op(f"call {self.stage_label(p)}", f"the next {p.group} inputs into RAM")
            for b in range(p.wbytes):
                self.fetch_to(fetch, "wb", b)
            kkey = (p.planes.count, p.pb_raw, p.group, streamed and not self.staged(p),
                    (p.ways, self.layout.vectors[f"ways@{p.name}"][0]) if p.ways > 1 else None)
            if self.opt == "speed":      # the kernel inline: no call and return per group
                routines.kernel_body(self, *kkey)
            else:
                self.kernels.add(kkey)
                self.op(f"call {routines.kernel_label(*kkey)}")
            if streamed:
                self.loop_until_inidx(p.padded_k, group, "all groups done?")
            else:
                self.op(f"mov a, {self.r('ptr')}")
                self.op(f"ceqsn a, #{h(x_base + p.padded_k)}", "all groups done?")
                self.op(f"goto {group}")
        if post is not None:
            self.op(f"call {post}", f"finish these {p.ways} neurons")
        else:
            self.finish_group(p, fetch)
        if dispatch:
            same = self.fresh("sameseg")
            self.op(f"mov a, {self.r('widx')}")
            self.op(f"ceqsn a, #{h((1 + p.per_segment * p.rows.shape[1]) & 0xFF)}", "segment done?")
            self.op(f"goto {same}")
            self.op(f"inc {self.seg(p)}")
            self.movi("widx", 1)
            a.label(same)
        self.op(f"mov a, {self.r('oidx')}")
        self.op(f"ceqsn a, #{h(end)}", "all neurons done?")
        self.op(f"goto {neuron}")

    def finish_group(self, p: DensePlan, fetch: str) -> None:
        """Finish the `ways` neurons whose sums the group loop left (the first in the plane
        registers, the others in ways@ RAM): constant, shift, round, clamp, store each."""
        key = self.finisher_key(p)
        for s in range(p.ways):
            if s:            # the group's next neuron: its sums into the (zeroed) plane
                self.op("mov a, #0x00")                       # registers, zeros back
                for k in range(p.planes.count):
                    for b in range(p.pb_raw):
                        self.op(f"xch {self.q(p, s, k, b)}", f"A <-> neuron {s}'s sum")
                        self.op(f"xch {self.r(f'p{k}', b)}", "... A = 0 again")
            if p.post_mult != 1:         # the constant waits in mtmp for the multiply
                for b in range(p.acc_bytes):
                    if p.uniform_const:
                        self.movi("mtmp", p.uniform_value >> (8 * b), byte=b,
                                  comment="the constant, added after the multiply" if not b else "")
                    else:
                        self.fetch_to(fetch)
                        self.op(f"mov {self.r('mtmp', b)}, a", "the neuron's constant")
            elif not p.uniform_const:    # acc += this neuron's constant, from the table
                width = p.const_bytes or p.acc_bytes     # (its delta from the base in u)
                for b in range(width):
                    self.fetch_to(fetch)
                    self.op(f"add {self.r('acc', b)}, a", "+ the neuron's constant")
                    for c in range(b + 1, p.acc_bytes):
                        self.op(f"addc {self.r('acc', c)}")
                if width < p.acc_bytes:  # a negative delta: -1 in the bytes above it
                    self.op("sl a", "C = the delta's sign")
                    for c in range(width, p.acc_bytes):
                        self.op(f"subc {self.r('acc', c)}")
            param = finish.parameter(p, self.tail_of[p.name])
            if p.shifts is not None:     # per-channel scales: the count is in the row
                self.fetch_to(fetch)
            elif param is not None:
                self.op(f"mov a, #{h(param)}", "shift count" if param == p.shift else
                        f"shift {p.shift}" + (", not a tie" if param & 1 else "")
                        + (", the second bound" if param & 0x80 else ""))
            self.op(f"call {self.finishers[key][0]}", "combine, shift, round, clamp, store")

    def clear_sums(self) -> None:
        """Zero the plane sums and acc (RAM is undefined at reset; each finish re-zeroes)."""
        cleared = {self.layout.addr(r, b) for r in self.layout.regs
                   if r == "acc" or (r[0] == "p" and r[1:].isdigit())
                   for b in range(self.layout.regs[r][1])}
        for addr in sorted(cleared):
            self.op(f"clear {h(addr)}")

    def fetch_to(self, table: str, reg: str | None = None, byte: int = 0) -> None:
        """A (and reg, if given) = the next table byte; the table (or the dispatcher in
        front of it) reads widx and steps it, which clobbers C."""
        self.op(f"call {table}")
        if reg is not None:
            self.op(f"mov {self.r(reg, byte)}, a")
