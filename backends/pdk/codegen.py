"""Padauk code generation: the IR after the common passes -> one sdas source file.

Program shape (all RAM addresses absolute, from `layout`):

  reset stub (--harness): set SP, call _nn_infer, stopsys
  _nn_infer::   per dense layer a neuron loop; per group of 8 inputs it fetches the
                weight-plane bytes, calls the layer's kernel, then combines the plane
                sums, rounds, shifts, clamps and stores the output byte
  kernels       8 inputs unrolled: idxm load (or, for a streamed input with --opt speed,
                a call to _nn_read_input), then per plane `t0sn wb, #i / add / addc`
  tables        weights and per-neuron constants as `ret #k` words behind `pcadd a`
  _nn_read_input (--harness): the input as a `ret #k` table; real firmware supplies
                its own routine with the same contract (index in A, byte in A)

The kernel keeps the carry flag clear between planes: `inc` of the input pointer
clears it, a skipped `add` leaves it clear, and an executed `add`/`addc` chain
ends clear because interval analysis sized the plane sums not to overflow.
"""
from __future__ import annotations

from tinycc_nn.errors import TinyccError

from .asm import Asm, h
from .layers import GROUP, DensePlan, plan_dense
from .layout import Layout, place_stack, place_vectors

FLAG, SP = 0x00, 0x02
Z, C = 0, 1


class Codegen:
    def __init__(self, graph, core_name: str, core, part: str, ram_bytes: int, harness: bool,
                 opt: str = "size"):
        self.graph, self.core_name, self.part = graph, core_name, part
        self.opt = opt
        self.stop_after = None    # set to a layer name to measure the program up to it
        self.asm = Asm(core)
        self.harness = harness
        self.ram_bytes = ram_bytes
        self.labels = 0
        self.plans = {}
        self.kernels = set()
        self.finishers = {}       # finish_key -> (label, a plan with that key)
        self.tables = []          # (label, bytes)

    # helpers -------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        self.labels += 1
        return f"{base}_{self.labels}"

    def op(self, text, comment=""):
        self.asm.op(text, comment)

    def r(self, name, byte=0) -> str:
        return h(self.layout.addr(name, byte))

    def movi(self, reg, value, byte=0, comment=""):
        if value & 0xFF == 0:
            self.op(f"clear {self.r(reg, byte)}", comment)
            return
        self.op(f"mov a, #{h(value & 0xFF)}", comment)
        self.op(f"mov {self.r(reg, byte)}, a")

    # planning --------------------------------------------------------------------------
    def plan(self) -> None:
        g = self.graph
        order = g.order()
        for n in order:
            op = g.op(n)
            if op in ("input", "const", "output", "dense", "argmax"):
                continue
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
        if g.type(inp).hi - g.type(inp).lo > 255:
            raise TinyccError(f"input %{inp}: {g.attrs(inp)['qdtype']} values do not fit a byte")
        plans = list(self.plans.values())
        lay = Layout(self.ram_bytes)
        planes = max(p.planes.count for p in plans)
        lay.reg("wb", planes)
        lay.reg("acc", max(p.acc_bytes for p in plans))
        if lay.top > 16:
            raise TinyccError(f"{self.part}: {lay.top} bytes of bit-tested registers, more than 16")
        lay.reg("ptr", 2, align=2)
        lay.reg("oidx", 1)        # output address; stores go through ptr (free by then)
        for k in range(planes):
            lay.reg(f"p{k}", max((p.pb[k] for p in plans if k < p.planes.count), default=1))
        if any(p.planes.offset for p in plans):
            lay.reg("u", max(p.acc_bytes for p in plans if p.planes.offset))
        names = ["ncnt", "gcnt", "widx", "inidx", "tmp"]
        if any(p.n > p.per_segment for p in plans):    # a layer spans several tables
            names += ["seg", "segcnt"]
        for name in names:
            lay.reg(name, 1)
        # argmax runs after the last layer: it borrows the layer loop's registers
        lay.regs["best"], lay.regs["besti"] = lay.regs["widx"], lay.regs["inidx"]
        # the input stays in RAM when it fits with everything else; else it is streamed
        self.input_in_ram = False
        order_pos = {n: i for i, n in enumerate(order)}
        first = order_pos[denses[0]]
        k_in = g.type(inp).size
        for attempt in ("ram", "stream"):
            trial = Layout(lay.ram_bytes, dict(lay.regs), {}, (0, 0), lay.top)
            intervals = {}
            for n in denses:
                users = g.users(n)
                end = len(order) if any(g.op(u) == "output" for u in users) else \
                    max(order_pos[u] for u in users)
                pad = self.plans[n].out_bytes * self.plans[n].n
                intervals[n] = (order_pos[n], end, pad)
            in_users = [order_pos[u] for u in g.users(inp)]
            if attempt == "ram":
                intervals[inp] = (first, max(in_users), k_in)
            elif self.opt == "size":
                intervals["stage"] = (first, first, GROUP)
            place_vectors(trial, intervals)
            try:
                # the caller's call plus one nested call (kernel, table, input routine);
                # a kernel that reads a streamed input calls one level deeper
                deep = attempt == "stream" and self.opt == "speed"
                place_stack(trial, depth=3 if deep else 2, part=self.part)
            except TinyccError:
                if attempt == "stream":
                    raise
                continue
            self.input_in_ram = attempt == "ram"
            self.layout = trial
            break
        if not self.input_in_ram and any(g.op(u) != "dense" for u in g.users(inp)):
            raise TinyccError(f"input %{inp} is streamed (it does not fit in RAM), so only a "
                              "dense layer may read it")
        self.input_name = inp

    # emission --------------------------------------------------------------------------
    def emit(self) -> str:
        self.plan()
        g, a = self.graph, self.asm
        a.comment(f"tinycc-nn: @{g.name} for {self.part} ({self.core_name})")
        a.comment("RAM map (byte addresses):")
        for name, (base, size) in sorted(self.layout.regs.items(), key=lambda kv: kv[1]):
            if size and name not in ("best", "besti"):
                a.comment(f"  {h(base)}..{h(base + size - 1)}  {name}")
        for name, (base, size) in sorted(self.layout.vectors.items(), key=lambda kv: kv[1]):
            a.comment(f"  {h(base)}..{h(base + size - 1)}  vector %{name}")
        sb, ss = self.layout.stack
        a.comment(f"  {h(sb)}..{h(sb + ss - 1)}  stack ({ss // 2} calls deep)")
        a.directive(".area CODE (ABS)")
        a.directive(".org 0x0000")
        if self.harness:
            a.section("harness")
            a.label("__reset", "harness: one inference, then stopsys")
            self.op(f"mov a, #{h(self.layout.stack[0])}")
            self.op(f"mov.io {h(SP)}, a", "SP: the stack grows upward")
            self.op("call _nn_infer")
            self.op("stopsys")
        a.section("nn_infer")
        a.label("_nn_infer:", "returns the class in A (0 without argmax)")
        if self.input_in_ram:
            self.emit_load_input()
        result = None
        for n in g.order():
            if g.op(n) == "dense":
                a.section(n)
                self.emit_dense(self.plans[n])
            elif g.op(n) == "argmax":
                a.section(n)
                self.emit_argmax(n)
                result = n
            if n == self.stop_after:      # a measuring build: halt once this layer is done
                self.op("stopsys")
        a.section("nn_infer")
        if result is None:
            self.op("mov a, #0x00")
        else:
            self.op(f"mov a, {self.r('besti')}")
        self.op("ret")
        for key in sorted(self.kernels):
            a.section("kernels")
            self.emit_kernel(*key)
        for label, plan in self.finishers.values():
            a.section("finish")
            a.label(label, f"finish a neuron of {', '.join(n for n, q in self.plans.items() if q.finish_key() == plan.finish_key())}")
            self.emit_combine(plan)
            self.emit_requant(plan)
            self.op("ret")
        for label, data in self.tables:
            a.section("tables")
            a.label(label)
            self.op("pcadd a")
            for byte in data:
                self.op(f"ret #{h(int(byte))}")
        if self.harness:
            a.section("harness")
            a.label("_nn_read_input:", "harness input: index in A, byte in A")
            self.op("add a, #0x01")
            self.op("pcadd a")
            a.label("_nn_input_table:")
            for _ in range(self.input_table_size()):
                self.op("ret #0x00")
        return a.render()

    def input_table_size(self) -> int:
        k = self.graph.type(self.input_name).size
        return -(-k // GROUP) * GROUP

    def read_input(self, dest_ptr: bool = False) -> None:
        """A = input byte INIDX (offset binary), INIDX += 1."""
        self.op(f"mov a, {self.r('inidx')}")
        self.op("call _nn_read_input")
        lo = self.graph.type(self.input_name).lo
        if lo:
            self.op(f"add a, #{h((-lo) & 0xFF)}", "to offset binary")
        self.op(f"inc {self.r('inidx')}", "also clears C")

    def emit_load_input(self) -> None:
        base, size = self.layout.vectors[self.input_name]
        self.asm.comment(f"load the {size}-byte input into RAM at {h(base)}")
        self.op(f"clear {self.r('inidx')}")
        self.copy_input(base, size, "load")

    def copy_input(self, base: int, count: int, what: str) -> None:
        """The next `count` input bytes into RAM from `base` (ptr ends past them)."""
        self.movi("ptr", base)
        self.movi("tmp", count)
        loop = self.fresh(what)
        self.asm.label(loop)
        self.read_input()
        self.op(f"idxm {self.r('ptr')}, a")
        self.op(f"inc {self.r('ptr')}")
        self.op(f"dzsn {self.r('tmp')}")
        self.op(f"goto {loop}")

    def add_to(self, reg: str, nbytes: int, src_nbytes: int = 1, src=None) -> None:
        """reg += A (src None) or reg += src (multi-byte, unsigned), carries through."""
        for b in range(nbytes):
            if src is not None and b < src_nbytes:
                self.op(f"mov a, {self.r(src, b)}")
                self.op(f"{'add' if b == 0 else 'addc'} {self.r(reg, b)}, a")
            elif src is None and b == 0:
                self.op(f"add {self.r(reg, 0)}, a")
            else:
                self.op(f"addc {self.r(reg, b)}")

    def emit_dense(self, p: DensePlan) -> None:
        a = self.asm
        streamed = p.x == self.input_name and not self.input_in_ram
        a.comment(f"dense %{p.name}: {p.k} -> {p.n}, {p.planes.count} weight planes "
                  f"{list(p.planes.coefs)} + {p.planes.offset}, acc {8 * p.acc_bytes} bit, "
                  f"shift {p.shift} ({p.rounding})")
        out_base, _ = self.layout.vectors[p.name]
        x_base = None if streamed else self.layout.vectors[p.x][0]
        self.movi("oidx", out_base, comment="output address")
        if p.planes.offset:
            self.emit_input_sum(p, streamed, x_base)
        nseg = -(-p.n // p.per_segment)
        labels = []
        for s in range(nseg):
            rows = p.rows[s * p.per_segment:(s + 1) * p.per_segment]
            label = self.fresh(f"w_{p.name.replace('.', '_')}")
            self.tables.append((label, rows.reshape(-1)))
            labels.append(label)
        fetch = labels[0]
        if nseg > 1:
            fetch = self.fresh("fetch")
            self.movi("seg", 1)
            self.movi("segcnt", p.per_segment)
        self.movi("widx", 1)
        self.movi("ncnt", p.n)
        neuron, group = self.fresh("neuron"), self.fresh("group")
        a.label(neuron)
        for k in range(p.planes.count):
            for b in range(self.layout.regs[f"p{k}"][1]):
                self.op(f"clear {self.r(f'p{k}', b)}")
        if streamed:
            self.op(f"clear {self.r('inidx')}")
        else:
            self.movi("ptr", x_base)
        full, rest = divmod(p.k, GROUP)
        if p.planes.count and full:
            self.movi("gcnt", full)
            a.label(group)
            self.emit_group(p, fetch, streamed, GROUP)
            self.op(f"dzsn {self.r('gcnt')}")
            self.op(f"goto {group}")
        if p.planes.count and rest:
            self.emit_group(p, fetch, streamed, rest)
        if p.uniform_const:
            for b in range(p.acc_bytes):
                self.movi("acc", (p.consts[0] >> (8 * b)) & 0xFF, byte=b)
        else:
            for b in range(p.acc_bytes):
                self.fetch_to(fetch, "acc", b)
        key = p.finish_key()
        if key not in self.finishers:
            self.finishers[key] = (self.fresh("finish"), p)
        self.op(f"call {self.finishers[key][0]}", "combine, round, shift, clamp, store")
        if nseg > 1:
            same = self.fresh("sameseg")
            self.op(f"dzsn {self.r('segcnt')}")
            self.op(f"goto {same}")
            self.op(f"inc {self.r('seg')}")
            self.movi("segcnt", p.per_segment)
            self.movi("widx", 1)
            a.label(same)
        self.op(f"dzsn {self.r('ncnt')}")
        self.op(f"goto {neuron}")
        if nseg > 1:
            end = self.fresh("layer_end")
            self.op(f"goto {end}")
            a.label(fetch, "table of the current segment")
            self.op(f"mov {self.r('tmp')}, a")
            self.op(f"mov a, {self.r('seg')}")
            self.op("pcadd a")
            for label in labels:
                self.op(f"goto {label}_pre")
            for label in labels:   # each segment table re-reads the saved index
                a.label(f"{label}_pre")
                self.op(f"mov a, {self.r('tmp')}")
                self.op(f"goto {label}")
            a.label(end)

    def emit_group(self, p: DensePlan, fetch: str, streamed: bool, count: int) -> None:
        """Plane sums over the next `count` (<= 8) inputs."""
        direct = streamed and self.opt == "speed"
        if streamed and not direct:
            self.emit_stage()
        for k in range(p.planes.count):
            self.fetch_to(fetch, "wb", k)
        key = (p.planes.count, p.pb_raw, count, direct)
        self.kernels.add(key)
        self.op(f"call {self.kernel_label(*key)}")

    def fetch_to(self, table: str, reg: str, byte: int) -> None:
        self.op(f"mov a, {self.r('widx')}")
        self.op(f"call {table}")
        self.op(f"mov {self.r(reg, byte)}, a")
        self.op(f"inc {self.r('widx')}")

    def emit_input_sum(self, p: DensePlan, streamed: bool, x_base) -> None:
        """u = offset * (sum of the layer's input bytes): the weights' constant term, the
        same for every neuron, so it is computed once per layer (acc is the scratch)."""
        self.asm.comment(f"u = {p.planes.offset} * sum of the inputs")
        for b in range(p.acc_bytes):
            self.op(f"clear {self.r('acc', b)}")
            self.op(f"clear {self.r('u', b)}")
        if streamed:
            self.op(f"clear {self.r('inidx')}")
        else:
            self.movi("ptr", x_base)
        self.movi("tmp", p.k)
        loop = self.fresh("usum")
        self.asm.label(loop)
        if streamed:
            self.read_input()
        else:
            self.op(f"idxm a, {self.r('ptr')}")
            self.op(f"inc {self.r('ptr')}")
        self.add_to("acc", p.acc_bytes)
        self.op(f"dzsn {self.r('tmp')}")
        self.op(f"goto {loop}")
        self.muladd("u", p.acc_bytes, "acc", p.acc_bytes, p.planes.offset)

    def emit_stage(self) -> None:
        """Copy the next 8 input bytes into the staging buffer; point the kernel at it.
        (--opt size: one shared RAM kernel; --opt speed reads inputs inside the kernel.)"""
        base, _ = self.layout.vectors["stage"]
        self.copy_input(base, GROUP, "stage")
        self.movi("ptr", base)

    @staticmethod
    def kernel_label(planes: int, pb: int, count: int, streamed: bool) -> str:
        return f"kernel_{'s' if streamed else 'm'}{planes}_{pb}_{count}"

    def emit_kernel(self, planes: int, pb: int, count: int, streamed: bool) -> None:
        a = self.asm
        source = "from _nn_read_input" if streamed else "at [ptr]"
        a.label(self.kernel_label(planes, pb, count, streamed),
                f"{count} inputs {source}, {planes} planes, {8 * pb}-bit sums")
        for i in range(count):
            if streamed:
                self.read_input()      # ends with inc inidx, which clears C
            else:
                self.op(f"idxm a, {self.r('ptr')}", f"input {i}")
                self.op(f"inc {self.r('ptr')}", "also clears C")
            for k in range(planes):
                self.op(f"t0sn {self.r('wb', k)}, #{i}")
                self.op(f"add {self.r(f'p{k}')}, a")
                for b in range(1, pb):
                    self.op(f"addc {self.r(f'p{k}', b)}")
        self.op("ret")

    def muladd(self, dst: str, dst_bytes: int, src: str, src_bytes: int, coef: int) -> None:
        """dst += coef * src (src non-negative, shifted in place), by shifts and adds."""
        neg, m = coef < 0, abs(coef)
        while m:
            if m & 1:
                for b in range(dst_bytes):
                    if b < src_bytes:
                        self.op(f"mov a, {self.r(src, b)}")
                        op = ("sub" if neg else "add") if b == 0 else ("subc" if neg else "addc")
                        self.op(f"{op} {self.r(dst, b)}, a")
                    else:
                        self.op(f"{'subc' if neg else 'addc'} {self.r(dst, b)}")
            m >>= 1
            if m:
                self.op(f"sl {self.r(src, 0)}")
                for b in range(1, src_bytes):
                    self.op(f"slc {self.r(src, b)}")

    def emit_combine(self, p: DensePlan) -> None:
        """acc = constant + sum_k coef_k * P_k + offset * U; negative terms first, so the
        partial sums never leave the range the accumulator was sized for."""
        self.asm.comment("acc = constant + sum_k coef_k * P_k + offset * U")
        terms = [(coef, k) for k, coef in enumerate(p.planes.coefs)]
        if p.planes.offset:
            terms.append((p.planes.offset, "u"))
        for coef, k in sorted(terms, key=lambda t: t[0] > 0):
            if k == "u":        # offset * U, precomputed for the layer
                for b in range(p.acc_bytes):
                    self.op(f"mov a, {self.r('u', b)}")
                    self.op(f"{'add' if b == 0 else 'addc'} {self.r('acc', b)}, a")
            else:
                self.muladd("acc", p.acc_bytes, f"p{k}", p.pb[k], coef)

    def emit_requant(self, p: DensePlan) -> None:
        n, s = p.acc_bytes, p.shift
        if p.rounding != "floor" and s > 0:
            # round(t / 2^s) = floor((t + 2^(s-1) - 1 + bit_s(t)) / 2^s), ties to even;
            # floor((t + 2^(s-1) - bit_s(t)) / 2^s), ties to odd
            self.asm.comment(f"round half to {'even' if p.rounding == 'half_even' else 'odd'}")
            self.op(f"clear {self.r('tmp')}")
            self.op(f"t0sn {self.r('acc', s // 8)}, #{s % 8}")
            self.op(f"inc {self.r('tmp')}")
            half = (1 << (s - 1)) - (1 if p.rounding == "half_even" else 0)
            for b in range(n):
                self.op(f"mov a, #{h((half >> (8 * b)) & 0xFF)}")
                self.op(f"{'add' if b == 0 else 'addc'} {self.r('acc', b)}, a")
            sign = "add" if p.rounding == "half_even" else "sub"
            self.op(f"mov a, {self.r('tmp')}")
            self.op(f"{sign} {self.r('acc', 0)}, a")
            for b in range(1, n):
                self.op(f"{sign}c {self.r('acc', b)}")
        if s:
            self.asm.comment(f"arithmetic shift right by {s}")
            if s > 2:
                self.movi("tmp", s)
                loop = self.fresh("shr")
                self.asm.label(loop)
            for _ in range(1 if s > 2 else s):
                self.op(f"mov a, {self.r('acc', n - 1)}")
                self.op("sl a", "C = sign")
                for b in reversed(range(n)):
                    self.op(f"src {self.r('acc', b)}")
            if s > 2:
                self.op(f"dzsn {self.r('tmp')}")
                self.op(f"goto {loop}")
        if p.clamp_low:
            ok = self.fresh("nonneg")
            self.op(f"t1sn {self.r('acc', n - 1)}, #7", "clamp below")
            self.op(f"goto {ok}")
            for b in range(n):
                self.op(f"clear {self.r('acc', b)}")
            self.asm.label(ok)
        if p.clamp_high is not None:
            hi = p.clamp_high
            ok, sat = self.fresh("le"), self.fresh("sat")
            if n > p.out_bytes:
                self.op(f"mov a, {self.r('acc', p.out_bytes)}", "clamp above")
                for b in range(p.out_bytes + 1, n):
                    self.op(f"or a, {self.r('acc', b)}")
                self.op(f"t1sn.io {h(FLAG)}, #{Z}")
                self.op(f"goto {sat}")
            if p.out_bytes == 1 and hi < 255:
                self.op(f"mov a, #{h(hi)}")
                self.op(f"sub a, {self.r('acc', 0)}", "C when acc > bound")
                self.op(f"t1sn.io {h(FLAG)}, #{C}")
                self.op(f"goto {ok}")
            elif p.out_bytes > 1:
                raise TinyccError(f"%{p.name}: a saturating multi-byte output is not supported by "
                                  "the pdk backend")
            else:
                self.op(f"goto {ok}")
            self.asm.label(sat)
            self.op(f"mov a, #{h(hi & 0xFF)}")
            self.op(f"mov {self.r('acc', 0)}, a")
            self.asm.label(ok)
        for b in range(p.out_bytes):
            self.op(f"mov a, {self.r('oidx')}")
            self.op(f"mov {self.r('ptr')}, a")
            self.op(f"mov a, {self.r('acc', b)}")
            self.op(f"idxm {self.r('ptr')}, a", "store")
            self.op(f"inc {self.r('oidx')}")

    def emit_argmax(self, name: str) -> None:
        g = self.graph
        src = g.operands(name)[0]
        base, size = self.layout.vectors[src]
        last = g.attrs(name)["last"]
        self.asm.comment(f"argmax over %{src} ({'last' if last else 'first'} maximum)")
        self.movi("ptr", base)
        self.op(f"idxm a, {self.r('ptr')}")
        self.op(f"mov {self.r('best')}, a")
        self.op(f"clear {self.r('besti')}")
        self.op(f"clear {self.r('tmp')}")
        count = g.type(src).size - 1
        if count == 0:
            return
        self.movi("gcnt", count)
        loop, keep = self.fresh("amax"), self.fresh("keep")
        self.asm.label(loop)
        self.op(f"inc {self.r('ptr')}")
        self.op(f"inc {self.r('tmp')}")
        self.op(f"idxm a, {self.r('ptr')}")
        self.op(f"mov {self.r('ncnt')}, a")
        if last:   # take it when x >= best: x - best does not borrow
            self.op(f"sub a, {self.r('best')}")
            self.op(f"t0sn.io {h(FLAG)}, #{C}")
        else:      # take it when x > best: best - x borrows
            self.op(f"mov a, {self.r('best')}")
            self.op(f"sub a, {self.r('ncnt')}")
            self.op(f"t1sn.io {h(FLAG)}, #{C}")
        self.op(f"goto {keep}")
        self.op(f"mov a, {self.r('ncnt')}")
        self.op(f"mov {self.r('best')}, a")
        self.op(f"mov a, {self.r('tmp')}")
        self.op(f"mov {self.r('besti')}, a")
        self.asm.label(keep)
        self.op(f"dzsn {self.r('gcnt')}")
        self.op(f"goto {loop}")
