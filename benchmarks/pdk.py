"""Padauk figures: ROM words, RAM bytes, cycles per inference, simulator speed and the
bit-exact count against onnxruntime, for each example model on PMS150C and PFS154, and
for models the project has never seen: the reference shape (64-16-16-16-10,
{-2,-1,+1,+2}) built the way other tools write it (int8 input and activations, a
weight scale per layer, biases; tests/qdq.py `unseen_reference_shape`, seeds 1-3).

    python benchmarks/pdk.py [--limit N] [--rom-limit W] [--models examples/mnist8x8/model.onnx ...]
                             [--unseen 1 2 3]

Writes benchmarks/results/pdk.md.  The full MNIST test set (10,000 images) is the
default; every image runs on the simulator from a fresh reset.  The unseen models
have random weights: their accuracy means nothing, their bit-exact count does.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import qdq  # noqa: E402  (tests/qdq.py: hand-built QDQ models)

import tinycc_nn  # noqa: E402
from tinycc_nn.errors import TinyccError  # noqa: E402
from tinycc_nn.progress import progress_bar  # noqa: E402
from tinycc_nn.reference import onnxruntime_outputs  # noqa: E402
from tinycc_nn.verify import compare  # noqa: E402

# BitNetPDK, hand-written for the PMS150C (figures from ../shared/TARGETS.md, measured there
# from its published source): the point of comparison for examples/mnist8x8_ref.
REFERENCE = [
    "## Hand-written reference (BitNetPDK, same 64-16-16-16-10 {-2,-1,+1,+2} shape)", "",
    "| | ROM words | RAM bytes | instructions / inference | cycles / inference | accuracy |",
    "|---|---|---|---|---|---|",
    "| published claim | 972 of 1024 (256 of them 4 test images) | 59 (stack not counted) "
    "| | | 90.07% |",
    "| its published source, measured | 1051 (does not fit) | 72 with the stack | about 41,700 "
    "| 45,000-52,000 | 9.2% (weight-export bug), 88.51% fixed |", "",
]
DEFAULT_MODELS = ["examples/pms150c_best/model.onnx", "examples/mnist8x8/model.onnx",
                  "examples/mnist8x8_ref/model.onnx"]


def images(model_path, limit):
    from tinycc_nn.datasets import mnist, view_of
    size, crop = view_of(onnx.load(model_path))  # the view it was trained on
    x, y = mnist(size, "test", crop)
    return x[:limit], y[:limit]


def measure(model_path, target, opt, x, y, trained=True, **options):
    try:
        art = tinycc_nn.compile(model_path, target, opt=opt, **options)
    except TinyccError as e:
        return {"target": target, "error": str(e)}
    t0 = time.perf_counter()
    with progress_bar(len(x), f"{target} {opt}") as bar:
        outs, stats = art.run(x, with_stats=True, progress=bar)
    seconds = time.perf_counter() - t0
    inp = art.graph.attrs(art.graph.inputs()[0])
    ref = onnxruntime_outputs(model_path, x, inp)
    bad, _ = compare(outs, ref)
    cls = next(v for v in outs.values() if v.dtype.kind in "iu").reshape(-1)
    r = art.report
    return {"target": target, "rom": f"{r['rom_used']} (+{r['rom_harness']} harness) / {r['rom_capacity']}",
            "ram": f"{r['ram_used']} / {r['ram_capacity']}", "input": r["input"],
            "cycles_mean": float(stats["cycles"].mean()), "cycles_max": int(stats["cycles"].max()),
            "instr_mean": float(stats["instructions"].mean()),
            "sim_mips": float(stats["instructions"].sum() / seconds / 1e6),
            "exact": f"{len(x) - int(bad.sum())}/{len(x)}",
            "variant": f"{r['code_shape']} shape, {r['reads_shared_by']} per read"
                       + (", loop per table" if r["loop_per_table"] else "")
                       + (", RAM layers share reads" if r["ram_layers_share_reads"] else "")
                       + (", input staged through RAM" if r.get("input_staged") else ""),
            "code": r["rom_used"] - r["rom_table_data"],
            "accuracy": f"{100.0 * float((cls == y).mean()):.2f}%" if trained else "(random)"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--unseen", nargs="*", type=int, default=[1, 2, 3],
                    help="seeds of the unseen reference-shape models to add")
    ap.add_argument("--rom-limit", type=int, default=760,
                    help="also the fastest PMS150C program within this many words")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/pdk.md"))
    args = ap.parse_args()
    command = f"python benchmarks/pdk.py --limit {args.limit} --rom-limit {args.rom_limit}"
    if args.unseen != [1, 2, 3]:
        command += " --unseen " + " ".join(map(str, args.unseen))
    lines = ["# Padauk benchmark", "",
             f"`{command}`; every image from a fresh reset; cycles per the ISA table's model "
             "(backends/pdk/isa.py), simulator speed in millions of simulated instructions per "
             "second on this machine.", ""]
    scratch = tempfile.TemporaryDirectory(prefix="tinycc_nn_unseen_")
    models = [(m, ROOT / m, True) for m in args.models]
    for seed in args.unseen:
        path = Path(scratch.name) / f"unseen{seed}.onnx"
        onnx.save(qdq.build(qdq.unseen_reference_shape(np.random.default_rng(seed))), path)
        models.append((f"unseen reference-shape model, seed {seed} (int8 input and "
                       "activations, a weight scale per layer, biases; random weights)", path, False))
    for model, path, trained in models:
        if not path.exists():
            print(f"skip {model}: not found")
            continue
        x, y = images(path, args.limit)
        lines += [f"## {model} ({len(x)} test images)", "",
                  "| target | options | variant kept | ROM words | code words (outside the weight "
                  "and constant tables) | RAM bytes | input | cycles mean | "
                  "cycles max | instructions mean | sim MIPS | bit-exact | accuracy |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for target, opt, extra in (("pms150c", "size", {}), ("pms150c", "speed", {}),
                                   ("pms150c", "speed", {"rom_limit": args.rom_limit}),
                                   ("pfs154", "size", {}), ("pfs154", "speed", {})):
            m = measure(path, target, opt, x, y, trained, **extra)
            shown = f"--opt {opt}" + "".join(f" --option {k}={v}" for k, v in extra.items())
            print(model, shown, m)
            if "error" in m and extra:   # the bounded row only where a program fits the bound
                continue
            if "error" in m:
                lines.append(f"| {target} | {shown} | {m['error']} |||||||||||")
                continue
            lines.append(f"| {target} | {shown} | {m['variant']} | {m['rom']} | {m['code']} | {m['ram']} "
                         f"| {m['input']} "
                         f"| {m['cycles_mean']:.0f} "
                         f"| {m['cycles_max']} | {m['instr_mean']:.0f} | {m['sim_mips']:.2f} "
                         f"| {m['exact']} | {m['accuracy']} |")
        lines.append("")
    scratch.cleanup()
    lines += REFERENCE
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
