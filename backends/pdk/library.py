"""model.h for a library build (`--option harness=false`): what SDCC firmware needs to
link the model: the prototypes, the RAM it owns, the stack it needs, where outputs are.
"""
from __future__ import annotations

from .asm import h
from . import inputs


def stack_bytes(gen) -> int:
    """Stack bytes one inference needs, its own call included (a library build's
    firmware adds what its nn_read_input uses)."""
    streams = any(gen.streamed(p) for p in gen.plans.values())
    return 2 * (3 if streams else 2)


def header(gen, symbol_prefix: str = "NN") -> str:
    """model.h for a library build: the prototypes and where the model lives."""
    g, lay = gen.graph, gen.layout
    k = g.type(gen.input_name).size
    lines = [f"/* tinycc-nn: @{g.name} for {gen.part} ({gen.core_name}), library build.",
             " * Link: sdcc -m" + gen.core_name + f" --data-loc {h(lay.used)} main.c model.rel",
             " * (model.rel: sdas" + gen.core_name + " -plosgffw model.asm). The model owns RAM",
             f" * {h(gen.ram_first)}..{h(lay.used - 1)} (SDCC's p stays at 0x00-0x01) and "
             "runs on your stack. */",
             "#ifndef TINYCC_NN_MODEL_H", "#define TINYCC_NN_MODEL_H", "",
             f"#define {symbol_prefix}_INPUT_SIZE {k}",
             f"#define {symbol_prefix}_INPUT_READS {inputs.table_size(gen)}"
             "  /* indices nn_read_input may be asked for; past INPUT_SIZE, any value */",
             f"#define {symbol_prefix}_RAM_FIRST {h(gen.ram_first)}",
             f"#define {symbol_prefix}_RAM_END {h(lay.used)}  /* pass to --data-loc */",
             f"#define {symbol_prefix}_STACK_BYTES {stack_bytes(gen)}"
             "  /* with the call, beyond what nn_read_input itself needs */", ""]
    for name, plan in gen.plans.items():
        if any(g.op(u) == "output" for u in g.users(name)):
            macro = "".join(c if c.isalnum() else "_" for c in name).upper()
            base, _ = lay.vectors[name]
            lines.append(f"/* %{name}: {plan.n} values, element i = RAM[{h(base)} + i] + "
                         f"({plan.out_lo}) after nn_infer returns */")
            lines.append(f"#define {symbol_prefix}_OUT_{macro} ((volatile unsigned char *){h(base)})")
    lo = g.type(gen.input_name).lo
    lines += ["",
              "/* One inference; returns the class index (0 if the model has no ArgMax). */",
              "unsigned char nn_infer(void);",
              f"/* Yours: the quantized input element `index` ({g.attrs(gen.input_name)['qdtype']}, "
              f"as QuantizeLinear gives it{'; the model adds ' + str(-lo) + ' itself' if lo else ''}).",
              " * Called with SDCC's default (non-reentrant) convention; it may be asked for an",
              " * index more than once, so return the same value each time. */",
              f"unsigned char nn_read_input(unsigned {'int' if inputs.wide(gen) else 'char'} index);",
              "", "#endif", ""]
    return "\n".join(lines)

