"""Accuracy against packed weight bytes on 8x8 MNIST, across widths and weight schemes.

    python benchmarks/sweep.py                 # short: QAT from scratch, 2 epochs each
    python benchmarks/sweep.py --long          # fp32 twin then QAT, 15 + 15 epochs each

Every model is exported and compiled for the PMS150C, PFS154 and CH32V003: a model
"fits" a part when `tinycc-nn compile` accepts it (ROM/flash and RAM, code included),
not by a weight-byte estimate.  Writes benchmarks/results/sweep_8x8.png (each point's
marker: the cheapest part the model fits; the parts' packed-weight budgets from
tinycc_nn.qat.budget as dashed lines), sweep_8x8.md with each model's ROM and RAM per
part, and the rows as sweep_8x8.json (`--replot` redraws from it).  Short runs understate
what a model reaches; they show the shape of the trade-off in minutes.  No refinement sweeps.
One training process, one thread.
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import tinycc_nn  # noqa: E402
from tinycc_nn.qat.budget import PART_BUDGETS  # noqa: E402
from tinycc_nn.qat.experiment import Experiment, run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = [(64, 16, 10), (64, 16, 16, 10), (64, 24, 16, 10), (64, 32, 16, 10), (64, 64, 32, 10),
          (64, 128, 64, 10)]
SCHEMES = ["binary", "pm2", "int4", "int8"]
PARTS = {"PMS150C": "pms150c", "PFS154": "pfs154", "CH32V003": "ch32v003"}


def fit_report(path: Path) -> dict:
    """For each part: (fits, "ROM used/capacity unit, RAM used/capacity") from a real compile."""
    out = {}
    for part, target in PARTS.items():
        try:
            r = tinycc_nn.compile(str(path), target).report
            out[part] = (True, f"{r['rom_used']}/{r['rom_capacity']} {r['rom_unit']}, "
                               f"{r['ram_used']}/{r['ram_capacity']} B")
        except tinycc_nn.DoesNotFit as e:
            out[part] = (False, str(e).split(": ", 1)[-1].split(" (largest")[0])
    return out


def sweep(float_epochs: int, qat_epochs: int, act_bits: int) -> list[dict]:
    rows = []
    for widths, scheme in itertools.product(WIDTHS, SCHEMES):
        t0 = time.time()
        exp = Experiment(size=8, widths=widths, schemes=scheme, act_bits=act_bits,
                         float_epochs=float_epochs, qat_epochs=qat_epochs,
                         lr=3e-3, qat_lr=1e-3 if float_epochs else 3e-3)
        with tempfile.TemporaryDirectory() as tmp:
            res = run(exp, out_dir=tmp, progress=False)
            fits = fit_report(Path(tmp) / "model.onnx")
        rows.append({"widths": "-".join(map(str, widths)), "scheme": scheme, "bytes": res["weight_bytes"],
                     "accuracy": res["torch_accuracy"], "fp32": res["fp32_accuracy"], "fits": fits,
                     "seconds": time.time() - t0})
        marks = " ".join(part for part, (ok, _) in fits.items() if ok)
        print(f"{rows[-1]['widths']:>14} {scheme:>7} {res['weight_bytes']:>6} B  "
              f"{100 * res['torch_accuracy']:.2f}%  fits: {marks or '-'}  ({rows[-1]['seconds']:.0f} s)", flush=True)
    return rows


MARKERS = {"PMS150C": "o", "PFS154": "s", "CH32V003": "^", None: "x"}


def smallest_part(row: dict) -> str | None:
    """The cheapest part the model fits (the parts are in order of size), or None."""
    return next((part for part in PARTS if row["fits"][part][0]), None)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy against packed weight bytes, one line per weight scheme; each point's
    marker is the cheapest part the compiled model fits (from the real compiles)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for scheme in SCHEMES:
        pts = sorted((r["bytes"], r["accuracy"], smallest_part(r)) for r in rows if r["scheme"] == scheme)
        if not pts:
            continue
        line, = ax.plot([b for b, _, _ in pts], [100 * a for _, a, _ in pts], "-", label=scheme)
        for b, a, part in pts:
            ax.plot(b, 100 * a, MARKERS[part], color=line.get_color(), markersize=7)
    for name, budget in PART_BUDGETS.items():
        ax.axvline(budget["weight_bytes"], color="grey", linestyle="--", linewidth=1)
        ax.text(budget["weight_bytes"], ax.get_ylim()[0], f" {name.upper()}\n {budget['weight_bytes']} B",
                color="grey", fontsize=8, va="bottom")
    for part, marker in MARKERS.items():
        ax.plot([], [], marker, color="black", label=f"fits {part}" if part else "fits none")
    ax.set_xscale("log")
    ax.set_xlabel("packed weight bytes (dashed: the parts' weight budgets)")
    ax.set_ylabel("test accuracy (%), 10,000 images")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="weights / cheapest part it fits", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="fp32 twin + QAT, 15 + 15 epochs per model")
    ap.add_argument("--act-bits", type=int, default=8, help="hidden activation bits")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the plot and table from the last run's sweep_8x8.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    float_epochs, qat_epochs = (15, 15) if args.long else (0, 2)
    saved = args.out / "sweep_8x8.json"
    if args.replot:
        run_info = json.loads(saved.read_text())
        rows, (float_epochs, qat_epochs) = run_info["rows"], run_info["epochs"]
        args.long, args.act_bits = run_info["long"], run_info["act_bits"]
    else:
        rows = sweep(float_epochs, qat_epochs, args.act_bits)
        args.out.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"rows": rows, "epochs": [float_epochs, qat_epochs],
                                     "long": args.long, "act_bits": args.act_bits}, indent=1) + "\n")
    kind = f"{float_epochs} fp32 + {qat_epochs} QAT epochs" if float_epochs else f"{qat_epochs} QAT epochs from scratch"
    title = f"8x8 MNIST: accuracy vs packed weights ({kind}, uint{args.act_bits} activations)"
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / "sweep_8x8.png", title)
    command = "python benchmarks/sweep.py" + (" --long" if args.long else "") + \
        (f" --act-bits {args.act_bits}" if args.act_bits != 8 else "")
    lines = [f"# {title}", "", f"Generated by `{command}`; see sweep_8x8.png. Accuracy: torch QAT eval "
             "on the full test set (equal to onnxruntime's). Each part's cell is what `tinycc-nn compile` "
             "reported: ROM (words on the Padauk parts, bytes of flash on the CH32V003) and RAM used / "
             "available when the model fits, the shortfall when it does not.", "",
             "| widths | weights | packed bytes | test accuracy | " + " | ".join(PARTS) + " | seconds |",
             "|---|---|---|---|" + "---|" * len(PARTS) + "---|"]
    for r in rows:
        cells = " | ".join(("fits: " if ok else "**no**: ") + text for ok, text in r["fits"].values())
        lines.append(f"| {r['widths']} | {r['scheme']} | {r['bytes']} | {100 * r['accuracy']:.2f}% | {cells} "
                     f"| {r['seconds']:.0f} |")
    (args.out / "sweep_8x8.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
