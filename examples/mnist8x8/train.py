"""PMS150C model: 8x8 MNIST in 520 bytes of 2-bit weights and 64 bytes of RAM.

The Padauk backend streams the 64 input pixels, keeps two adjacent hidden vectors in RAM
(here 24 and 16 bytes, next to its registers and stack) and the packed weights in ROM
next to the code.  2-bit weights {-2,-1,+1,+2} need no multiplier: each is "add x" or
"add 2x", with or without a sign.  No biases: they would cost ROM and the fp32 twin
does not need them.

The recipe: an fp32 twin, QAT from its weights with the weight scale one power of two
below the MSE choice (more weights on +-2: markedly better 2-bit models), then greedy
coordinate descent on the integer weights (`tinycc_nn.qat.refine`).

    python examples/mnist8x8/train.py          # the committed model (minutes, one core)
    python examples/mnist8x8/train.py --ref    # BitNetPDK's shape, into ../mnist8x8_ref
"""

import argparse
import sys
from pathlib import Path

import torch

from tinycc_nn.qat.budget import PART_BUDGETS, widths_bytes
from tinycc_nn.qat.experiment import Experiment, run, write_readme

HERE = Path(__file__).resolve().parent
BUDGET = PART_BUDGETS["pms150c"]

MODEL = dict(widths=(64, 24, 16, 10), schemes="pm2", bias=False, act_bits=8)
# BitNetPDK, hand-written for the PMS150C: 64-16-16-16-10, {-2,-1,+1,+2}, no biases, 90.07%
REFERENCE = dict(widths=(64, 16, 16, 16, 10), schemes="pm2", bias=False, act_bits=8)

INTRO = ("A 2-bit fully connected network for the Padauk PMS150C (1K words ROM, 64 bytes RAM), "
         "trained on the 28x28 digits box-averaged to 8x8 (`tinycc_nn.datasets.downscale`). "
         "`tinycc-nn compile model.onnx -t pms150c` fits it in the part.")
REF_INTRO = ("The shape of the hand-written BitNetPDK reference for the PMS150C (64-16-16-16-10, "
             "weights {-2,-1,+1,+2}, no biases, published at 90.07% test accuracy), trained with "
             "this toolkit for a like-for-like comparison.")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", action="store_true", help="BitNetPDK's shape, written to examples/mnist8x8_ref")
    ap.add_argument("--float-epochs", type=int, default=30)
    ap.add_argument("--qat-epochs", type=int, default=30)
    ap.add_argument("--qat-lr", type=float, default=3e-3)
    ap.add_argument("--refine-passes", type=int, default=6, help="integer coordinate-descent sweeps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = REFERENCE if args.ref else MODEL
    out = args.out or (HERE.parent / "mnist8x8_ref" if args.ref else HERE)
    size = widths_bytes(shape["widths"], shape["schemes"])
    if size > BUDGET["weight_bytes"] or any(w > m for w, m in zip(shape["widths"][1:3], BUDGET["max_widths"])):
        raise SystemExit(f"{shape} does not fit the PMS150C budget {BUDGET}")
    exp = Experiment(size=8, float_epochs=args.float_epochs, qat_epochs=args.qat_epochs,
                     qat_lr=args.qat_lr, weight_exponent_offset=-1, refine_passes=args.refine_passes,
                     **shape)
    results = run(exp, out)
    command = "python examples/mnist8x8/train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    title = "MNIST 8x8, BitNetPDK's shape" if args.ref else "MNIST 8x8 for the PMS150C"
    write_readme(out, title, REF_INTRO if args.ref else INTRO, command.strip(), exp, results)
    print({k: v for k, v in results.items() if k not in ("epochs_log", "refine_log")})
    return results


if __name__ == "__main__":
    main()
