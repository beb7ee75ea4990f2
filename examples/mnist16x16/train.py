"""CH32V003 model: 16x16 MNIST, 256-64-64-64-10, 4-bit weights (odd values -15..15).

BitNetMCU's shape and weight values (it reports 99.02%), here with power-of-two scales
and static 8-bit activations so the compiled C is bit-exact with onnxruntime.  25,216
weights pack into 12,608 bytes, leaving room for code in the part's 16 KB of flash.

    python examples/mnist16x16/train.py            # about 16 minutes on one core
"""

import argparse
import sys
from pathlib import Path

import torch

from tinycc_nn.qat.experiment import Experiment, run, write_readme

HERE = Path(__file__).resolve().parent


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--float-epochs", type=int, default=60)
    ap.add_argument("--qat-epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    exp = Experiment(size=16, widths=(256, 64, 64, 64, 10), schemes="odd4", act_bits=8,
                     float_epochs=args.float_epochs, qat_epochs=args.qat_epochs,
                     augment={"kind": "affine", "max_shift": 2.0, "max_degrees": 10.0, "scale": (0.9, 1.1)})
    results = run(exp, args.out)
    command = "python examples/mnist16x16/train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_readme(args.out, "MNIST 16x16 for the CH32V003",
                 "A 4-bit fully connected network for the CH32V003 (16 KB flash, 2 KB RAM), "
                 "trained with random rotations, zooms and shifts of the 28x28 digits before "
                 "box-averaging them to 16x16.", command.strip(), exp, results)
    print({k: v for k, v in results.items() if k != "epochs_log"})
    return results


if __name__ == "__main__":
    main()
