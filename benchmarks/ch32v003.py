"""CH32V003 figures for the example MNIST models, and the generic-loop baseline.

For each example model (examples/mnist16x16/model.onnx, examples/mnist8x8/model.onnx;
a model that is missing is replaced by a random one of the same shape built with
tests/qdq.py, and the report says so):

  * flash and RAM of the generated code (the compile report: model.o, linked
    firmware, stack high-water mark measured in the emulator);
  * instructions and estimated cycles per inference, mean over the first N test
    images run one by one under unicorn (fresh RAM each);
  * bit-exactness against onnxruntime: on those N images under the emulator, and on
    the whole MNIST test set with the same model.c built for the host;
  * the baseline: benchmarks/ch32v003_generic_loop.c, a generic interpreter-style
    layer loop (per-weight unpacking and multiplier-free multiply) given the same
    layers as data, built with the same flags, run in the same emulator on the same
    images (and checked against our outputs); and our instruction ratio against it.

Writes benchmarks/results/ch32v003.md and prints it.

Usage: python benchmarks/ch32v003.py [--emulated N] [--test-limit M]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import qdq  # noqa: E402  (tests/qdq.py: hand-built QDQ models)
import qdq_conv  # noqa: E402  (tests/qdq_conv.py: hand-built QDQ CNNs)

import tinycc_nn  # noqa: E402
from tinycc_nn.progress import progress_bar  # noqa: E402
from tinycc_nn import datasets, ir  # noqa: E402
from tinycc_nn.backends.ch32v003 import firmware, toolchain  # noqa: E402
from tinycc_nn.backends.ch32v003.emulator import Ch32v003Emulator  # noqa: E402
from tinycc_nn.reference import onnxruntime_outputs  # noqa: E402
from tinycc_nn.verify import compare  # noqa: E402

# name, image size, the shape and weight values of the random stand-in if it is missing
# ("cnn": BitNetMCU's sequential-depthwise CNN, 64 channels), and the targets to run
EXAMPLES = (("mnist16x16", 16, [256, 64, 64, 64, 10], "odd4", ("ch32v003",)),
            ("mnist8x8", 8, [64, 24, 16, 10], "pm2", ("ch32v003",)),
            ("mnist8x8_ref", 8, [64, 16, 16, 16, 10], "pm2", ("ch32v003",)),
            ("mnist16x16_cnn", 16, "cnn", "int4", ("ch32v003", "ch32v002")))
# BitNetMCU's CNNs, for the CNN rows: published on a CH32V002 (hardware multiplier), and its
# own engine measured on the CH32V003 under this project's emulator (shared/TARGETS.md)
CNN_REFERENCE = ("BitNetMCU's 64-channel CNN (99.55%): 2.74M cycles published on a CH32V002 "
                 "(multiplier, 4 KB SRAM); on the CH32V003 its 32-channel CNN runs 29.9M cycles "
                 "and the 64-channel one does not run at all (its stack overruns 2 KB)")
GENERIC_C = Path(__file__).with_name("ch32v003_generic_loop.c")
RESULTS = Path(__file__).with_name("results") / "ch32v003.md"


def random_model(widths, values: str, seed: int = 0) -> onnx.ModelProto:
    """A random QDQ MLP of the example's shape and weight values (qdq.VALUE_SETS), int8
    input (scale 2^-7: MNIST pixels in [0, 1] map to 0..127, as in BitNetMCU), uint8 ReLU
    activations."""
    rng = np.random.default_rng(seed)
    layers, x_exp = [], -7
    typical = np.abs(qdq.VALUE_SETS[values]).mean()
    for k in range(len(widths) - 1):
        w = qdq.random_weights(rng, (widths[k], widths[k + 1]), values)
        out_exp = int(np.round(np.log2(np.sqrt(widths[k]) * typical * 32) + x_exp - 4 - 7))
        last = k == len(widths) - 2
        layers.append(qdq.Layer(w, -4, rng.integers(-2000, 2000, widths[k + 1]), relu=not last,
                                out_exp=out_exp, out_dtype="int8" if last else "uint8"))
        x_exp = out_exp
    return qdq.build(qdq.Model(layers, widths[0], in_exp=-7, in_dtype="int8", argmax=True))


# ---------------------------------------------------------------- generic-loop baseline

def _c_array(ctype: str, name: str, values) -> str:
    fmt = (lambda v: f"0x{v:08x}u") if ctype == "uint32_t" else str
    vals = ", ".join(fmt(int(v)) for v in values)
    return f"static const {ctype} {name}[] = {{{vals}}};\n"


def generic_header(graph: ir.Graph) -> str:
    """generic_model.h: the graph's dense chain as data for ch32v003_generic_loop.c."""
    layers = graph.nodes_of("dense")
    if graph.nodes_of("requant"):
        raise ValueError("the generic engine runs dense chains only (this graph has requant ops)")
    text, rows, widths = [], [], [graph.type(graph.inputs()[0]).size]
    for k, n in enumerate(layers):
        a = graph.attrs(n)
        x, w = graph.operands(n)
        if x != (layers[k - 1] if k else graph.inputs()[0]):
            raise ValueError(f"%{n}: not a chain of dense layers")
        n_out = graph.type(n).size
        mult, shift = ir.per_channel(a["mult"], n_out), ir.per_channel(a["shift"], n_out)
        if (mult != 1).any() or (shift != shift[0]).any():
            raise ValueError(f"%{n}: the generic engine needs mult 1 and one shift per layer")
        for v in (graph.inputs()[0], n):
            if not -(1 << 15) <= graph.type(v).lo <= graph.type(v).hi < (1 << 15):
                raise ValueError(f"%{v} does not fit the engine's int16 activations")
        wattrs = graph.attrs(w)
        values = np.asarray(wattrs["values"], np.int64)
        book = [int(v) for v in wattrs["codebook"]]
        bits = max(int(wattrs["code_bits"]), 1)
        per_word = 32 // bits
        codes = np.vectorize(book.index)(values.T)            # [n_out, n_in]
        words = []
        for row in codes:
            for s in range(0, len(row), per_word):
                word = 0
                for e, c in enumerate(row[s:s + per_word]):
                    word |= int(c) << (e * bits)
                words.append(word)
        bias = ir.per_channel(a["bias"], n_out) + ir.per_channel(a["rnd"], n_out)
        t = graph.type(n)
        lo = t.lo if a["lo"] is None else a["lo"]
        hi = t.hi if a["hi"] is None else a["hi"]
        rounding = {"floor": "NN_FLOOR", "half_even": "NN_HALF_EVEN", "half_odd": "NN_HALF_ODD"}[a["rounding"]]
        text += [_c_array("int8_t", f"decode{k}", book + [0] * ((1 << bits) - len(book))),
                 _c_array("uint32_t", f"weights{k}", words),
                 _c_array("int32_t", f"bias{k}", bias)]
        rows.append(f"    {{{values.shape[0]}, {n_out}, {bits}, {int(shift[0])}, {rounding}, {lo}, {hi}, "
                    f"decode{k}, weights{k}, bias{k}}},")
        widths.append(n_out)
    return ("/* generated by benchmarks/ch32v003.py */\n"
            f"#define NN_GENERIC_LAYERS {len(layers)}\n#define NN_GENERIC_MAX_WIDTH {max(widths)}\n"
            + "".join(text) + "static const nn_layer_t nn_layers[] = {\n" + "\n".join(rows) + "\n};\n")


def build_generic(art, out: Path) -> Path:
    src = out / "generic"
    src.mkdir(parents=True, exist_ok=True)
    (src / "model.h").write_text(art.files["model.h"])
    (src / "generic_model.h").write_text(generic_header(art.graph))
    return toolchain.build_firmware([GENERIC_C], [src], out / "generic-build",
                                    forbid_symbols=firmware.FORBIDDEN)


# ---------------------------------------------------------------- one model

def stand_in(name: str, widths, values: str, tmp: Path) -> tuple:
    path = tmp / f"{name}-random.onnx"
    if widths == "cnn":
        onnx.save(qdq_conv.sequential_depthwise_cnn(np.random.default_rng(0), channels=64,
                                                    fc=(96, 64, 10), conv_set=values), path)
        return path, (f"**random stand-in**: `examples/{name}/model.onnx` is missing, so a random "
                      f"64-channel sequential-depthwise CNN with {values} conv weights and an FC "
                      "256-96-64-10 head (tests/qdq_conv.py)")
    onnx.save(random_model(widths, values), path)
    return path, (f"**random stand-in**: `examples/{name}/model.onnx` is missing, so a random "
                  f"{'-'.join(map(str, widths))} QDQ model with {values} weights "
                  f"{qdq.VALUE_SETS[values][:3]}... and int8 input (tests/qdq.py)")


def bench(name: str, size: int, widths, values: str, target: str, emulated: int,
          test_limit: int | None, tmp: Path) -> dict:
    path = ROOT / "examples" / name / "model.onnx"
    source = f"`examples/{name}/model.onnx`"
    if not path.is_file():
        path, source = stand_in(name, widths, values, tmp)
    t0 = time.time()
    art = tinycc_nn.compile(str(path), target)
    host = tinycc_nn.compile(str(path), target, executor="host")
    compile_s = time.time() - t0
    x, labels = datasets.mnist(size, "test")
    if test_limit:
        x, labels = x[:test_limit], labels[:test_limit]
    inp = art.graph.attrs(art.graph.inputs()[0])
    ref = onnxruntime_outputs(path, x, inp)

    sample = x[:emulated]
    with progress_bar(len(sample), f"{name} on the emulator") as bar:
        ours, stats = art.run(sample, with_stats=True, progress=bar)
    bad_emu, _ = compare(ours, {k: v[:emulated] for k, v in ref.items()})
    t0 = time.time()
    full = host.run(x)
    host_s = time.time() - t0
    bad_host, detail = compare(full, ref)
    cls = next((v for v in full.values() if v.dtype.kind in "iu" and v.reshape(len(v), -1).shape[1] == 1), None)
    accuracy = None if cls is None else float((cls.reshape(-1) == labels).mean())

    row = {"name": name, "target": target, "source": source, "report": art.report,
           "compile_s": compile_s,
           "instr": float(np.mean(stats["instructions"])), "cycles": float(np.mean(stats["cycles"])),
           "instr_max": int(np.max(stats["instructions"])), "cycles_max": int(np.max(stats["cycles"])),
           "emulated": len(sample), "emu_exact": int((~bad_emu).sum()),
           "test_n": len(x), "host_exact": int((~bad_host).sum()), "host_s": host_s,
           "detail": detail, "accuracy": accuracy}
    if target != "ch32v003":
        row["generic"] = "not run: it is the CH32V003 baseline"
        return row
    try:
        elf = build_generic(art, tmp / name)
    except ValueError as e:
        row["generic"] = f"not run: {e}"
        return row
    emu = Ch32v003Emulator(elf)
    xq = art.quantize_inputs(sample).astype(emu.input_dtype)
    runs = emu.run_many(xq)
    theirs = runs.outputs.astype(np.int64)
    ours_q, _ = art.run_quantized(xq)
    vec = [v for v, o in zip(ours_q, art.graph.outputs())
           if art.graph.op(art.graph.operands(o)[0]) != "argmax"]
    agree = int((theirs == vec[0]).all(axis=1).sum()) if vec else None
    size_g = toolchain.firmware_size(elf)
    row["generic"] = {"instr": float(runs.instructions.mean()), "cycles": float(runs.cycles.mean()),
                      "agree": agree, "flash": size_g.flash_bytes,
                      "ram": size_g.ram_bytes + int(runs.stack_high_water.max()),
                      "faults": sum(1 for f in runs.faults if f)}
    return row


def markdown(rows, emulated: int) -> str:
    out = ["# CH32V003 (`-t ch32v003`) and CH32V002 (`-t ch32v002`)", "",
           "Generated by `python benchmarks/ch32v003.py`. Instructions and cycles: mean over the "
           f"first {emulated} MNIST test images, each run from a fresh RAM image in the unicorn "
           "emulator (`backends/ch32v003/emulator.py`; cycles are its estimate at 48 MHz with one "
           "flash wait state). Flash: `model.o` text+rodata+data (and the linked harness "
           "firmware). RAM: .data+.bss of the firmware (arena plus the harness's input/output "
           "buffers) plus the measured stack high-water mark. Bit-exact: every output equal to "
           "onnxruntime's (graph optimizations off).", ""]
    for r in rows:
        rep, g = r["report"], r["generic"]
        out += [f"## {r['name']} on {r['target']}", "", f"Model: {r['source']}.", "",
                "| | tinycc-nn | generic loop |", "|---|---|---|"]
        gi = isinstance(g, dict)
        out += [f"| flash (bytes of {rep['rom_capacity']}) | {rep['rom_used']} (firmware {rep['rom_firmware']}) | "
                + (f"{g['flash']} (firmware) |" if gi else "- |"),
                f"| RAM (bytes of {rep['ram_capacity']}) | {rep['ram_used']} (static {rep['ram_static']} + stack "
                f"{rep['ram_stack']}) | " + (f"{g['ram']} |" if gi else "- |"),
                f"| instructions / inference | {r['instr']:,.0f} | " + (f"{g['instr']:,.0f} |" if gi else "- |"),
                f"| cycles / inference (est.) | {r['cycles']:,.0f} | " + (f"{g['cycles']:,.0f} |" if gi else "- |"),
                f"| max over those images: instructions / cycles | {r['instr_max']:,} / "
                f"{r['cycles_max']:,} | - |"]
        out += ["", f"From the compile report (the larger of an all-zero and a random input over the whole "
                f"input range): {rep['instructions_per_inference']:,} instructions, "
                f"{rep['cycles_per_inference']:,} cycles.", ""]
        if gi:
            out.append(f"Instruction ratio tinycc-nn / generic loop: **{r['instr'] / g['instr']:.3f}** "
                       f"(cycles {r['cycles'] / g['cycles']:.3f}); the generic loop's outputs equal ours "
                       f"on {g['agree']}/{r['emulated']} images.")
        else:
            out.append(f"Generic loop {g}.")
        if r["name"].endswith("_cnn"):
            out += ["", f"Reference: {CNN_REFERENCE}."]
        out += ["", f"Bit-exact vs onnxruntime: {r['emu_exact']}/{r['emulated']} under the emulator, "
                f"{r['host_exact']}/{r['test_n']} on the test set with the host build "
                f"({r['host_s']:.2f} s)." + (f" First mismatch: {r['detail']}" if r["detail"] else "")]
        if r["accuracy"] is not None:
            out.append(f"Test accuracy (argmax output): {100 * r['accuracy']:.2f}%.")
        kernels = "; ".join(f"%{k}: {v}" for k, v in rep.get("layers", {}).items())
        out += ["", f"Kernels: {kernels}.", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emulated", type=int, default=100, help="images run under the emulator")
    p.add_argument("--test-limit", type=int, help="use only the first M test images")
    args = p.parse_args(argv)
    if not firmware.have_cross_compiler():
        print(f"{toolchain.GCC} is not installed; nothing to measure", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tinycc-nn-bench-") as tmp:
        rows = [bench(name, size, widths, values, target, args.emulated, args.test_limit, Path(tmp))
                for name, size, widths, values, targets in EXAMPLES for target in targets]
    text = markdown(rows, args.emulated)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    exact = all(r["host_exact"] == r["test_n"] and r["emu_exact"] == r["emulated"] for r in rows)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
