"""The whole Padauk program, in order: `emit(gen)` plans the variant and writes it.

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

Each part comes from its own module: `plan` (registers and RAM), `inputs`, `layer_loop`,
`routines`, `finish`; the tables and dispatchers are the ones the layer loops filled in.
"""
from __future__ import annotations

from .asm import h
from .plan import plan_program
from . import finish, inputs, layer_loop, library, routines

SP = 0x02


def emit(gen) -> str:
    """Plan the variant, then write the program: RAM map, reset stub, _nn_infer, then the
    routines and tables the layer loops asked for."""
    plan_program(gen)
    gen.tail_of = finish.plan_tails(gen.plans.values(), gen.opt == "speed")
    g, a = gen.graph, gen.asm
    a.comment(f"tinycc-nn: @{g.name} for {gen.part} ({gen.core_name}), --opt {gen.opt}")
    ram_map(gen)
    if gen.harness:
        a.directive(".area CODE (ABS)")
        a.directive(".org 0x0000")
    else:
        a.directive(".area CODE")
    if gen.harness:
        reset_stub(gen)
    nn_infer(gen)
    subroutines(gen)
    tables(gen)
    if not gen.harness:
        inputs.library_shim(gen)
    else:
        inputs.harness_table(gen)
    return a.render()


def ram_map(gen) -> None:
    """The RAM map as comments: registers (aliases on one line), the stack, the vectors."""
    a = gen.asm
    a.comment("RAM map (byte addresses):")
    shown = {}
    for name, (base, size) in gen.layout.regs.items():
        shown.setdefault((base, size), []).append(name)
    for (base, size), names in sorted(shown.items()):
        if size:
            a.comment(f"  {h(base)}..{h(base + size - 1)}  {' = '.join(names)}")
    sb, ss = gen.layout.stack
    if ss:
        a.comment(f"  {h(sb)}..{h(sb + ss - 1)}  stack ({ss // 2} calls deep)")
    else:
        a.comment(f"  stack: the caller's, {library.stack_bytes(gen)} bytes including the call")
    for name, (base, size) in sorted(gen.layout.vectors.items(), key=lambda kv: kv[1]):
        what = "stack, one call deeper while the input streams" if name == "stack+" \
            else "input group staged for the RAM kernel, then the stream index" \
            if name == "stage" \
            else f"table segment of %{name[4:]}" if name.startswith("seg@") \
            else f"plane sums of neurons sharing reads in %{name[5:]}" if name.startswith("ways@") \
            else f"vector %{name}"
        a.comment(f"  {h(base)}..{h(base + size - 1)}  {what}")


def reset_stub(gen) -> None:
    a = gen.asm
    a.section("harness")
    a.label("__reset", "harness: one inference, then stopsys")
    gen.op(f"mov a, #{h(gen.layout.stack[0])}")
    gen.op(f"mov.io {h(SP)}, a", "SP: the stack grows upward")
    gen.op("call _nn_infer")
    gen.op("stopsys")


def nn_infer(gen) -> None:
    """The entry point: clear the sums, load the input (if it stays in RAM), the layers in
    graph order, then the class in A."""
    g, a = gen.graph, gen.asm
    a.section("nn_infer")
    a.label("_nn_infer:", "returns the class in A (0 without argmax)")
    gen.op(f"clear {gen.r('ptr', 1)}", "idxm pointers are 16 bit: high byte 0")
    gen.clear_sums()
    if gen.input_in_ram:
        inputs.load_input(gen)
    result = None
    for n in g.order():
        if g.op(n) == "dense":
            a.section(n)
            layer_loop.dense(gen, gen.plans[n])
        elif g.op(n) == "argmax":
            a.section(n)
            routines.argmax(gen, n)
            result = n
        if n == gen.stop_after:      # a measuring build: halt once this layer is done
            gen.op("stopsys")
    a.section("nn_infer")
    if result is None:
        gen.op("mov a, #0x00")
    else:
        gen.op(f"mov a, {gen.r('besti')}")
        if gen.argmax_base:
            gen.op(f"sub a, #{h(gen.argmax_base)}", "address -> index")
    gen.op("ret")


def subroutines(gen) -> None:
    """The routines the layer loops called, each once: kernels, staging, shared group
    finishes, input sums, finish heads (and their tails)."""
    a = gen.asm
    for key in sorted(gen.kernels, key=repr):
        a.section("kernels")
        routines.kernel(gen, *key)
    for group in sorted(gen.stages):
        a.section("kernels")
        routines.stage(gen, group)
    for layer, label, plan in gen.deferred:
        a.section(layer)
        a.label(label, f"finish the {plan.ways} neurons of a group of %{layer}")
        layer_loop.finish_group(gen, plan, None)
        gen.op("ret")
    for key in sorted(gen.usums):
        a.section("input_sums")
        routines.input_sum(gen, *key)
    for label, plan in gen.finishers.values():
        a.section("finish")
        same = layer_loop.finisher_key(gen, plan)
        users = ", ".join(n for n, q in gen.plans.items()
                          if layer_loop.finisher_key(gen, q) == same)
        a.label(label, f"finish a neuron of {users}")
        finish.emit(gen, plan, gen.tail_of[plan.name])


def tables(gen) -> None:
    """The segment dispatchers, then the weight tables (each steps widx itself)."""
    a = gen.asm
    for label, targets, seg in gen.dispatchers:
        a.section("tables")
        a.label(label, "the current segment's table, at index widx")
        gen.op(f"mov a, {seg}", "1, 2, 3, ...: a goto per segment")
        gen.op("pcadd a")
        for t in targets:
            gen.op(f"goto {t}")
    for label, data in gen.tables:
        a.section("tables")
        a.label(label, "A = entry widx, widx += 1")
        gen.op(f"mov a, {gen.r('widx')}")
        gen.op(f"inc {gen.r('widx')}", "inc leaves A alone")
        gen.op("pcadd a")
        for byte in data:
            gen.op(f"ret #{h(int(byte))}")
