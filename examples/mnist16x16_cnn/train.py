"""CH32V003 model: 16x16 MNIST, a per-channel CNN (BitNetMCU's "sequential depthwise" shape).

    conv 3x3 1->64 (no padding)         16x16 -> 14x14   4-bit weights, one scale per channel
    depthwise 3x3, maxpool 2            14x14 -> 12x12 -> 6x6
    depthwise 3x3, maxpool 2             6x6  ->  4x4  -> 2x2   (4 features per channel)
    flatten 256 -> FC 96 -> FC 64 -> FC 10                  2-bit, then 4-bit weights

Channels stay independent until the flatten, so the part can run the conv stack one
channel at a time in a few hundred bytes of RAM.  Every activation is uint8 with a
power-of-two scale, so the compiled code is bit-exact with onnxruntime.

Recipe: fp32 twin (same shape, unquantized, He-initialised) trained first, then QAT starting
from its weights, distilled from it; each epoch half the 28x28 digits get a fresh random
rotation/zoom/shift and half are seen as they are; label smoothing and weight decay.

    python examples/mnist16x16_cnn/train.py          # the full recipe (100 + 40 epochs)

README.md gives the command of the committed model and its measured figures.
"""

import argparse
import copy as copy_module
import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from tinycc_nn.datasets import downscale, mnist, mnist_images
from tinycc_nn.qat import ActQuant, QLinear, export_onnx, torch_predict
from tinycc_nn.qat.augment import random_affine
from tinycc_nn.qat.budget import weight_bytes
from tinycc_nn.qat.conv import QConv2d, conv_weight_bytes
from tinycc_nn.qat.equalize import equalize_rows
from tinycc_nn.qat.quantizers import fake_quantize_weight
from tinycc_nn.qat.refine import refine_weights
from tinycc_nn.qat.schemes import get_scheme

HERE = Path(__file__).resolve().parent
CHANNELS, HIDDEN = 64, (96, 64)
FC_SCHEMES = ("odd2", "odd4", "odd4")


def build(quantized: bool, conv_scheme: str = "int4", fc_schemes=FC_SCHEMES,
          fc_per_channel: bool = False) -> nn.Sequential:
    """The QAT model, or (quantized=False) its fp32 twin with the same parameter names;
    `fc_per_channel` gives the FC layers one weight scale per output instead of one each."""
    c = CHANNELS

    def conv(cin, groups, first=False):
        if not quantized:
            return nn.Conv2d(cin, c, 3, groups=groups)
        quant = ActQuant(8, scale="fixed", log2_scale=-8) if first else ActQuant(8)
        return QConv2d(cin, c, 3, groups=groups, weight_scheme=conv_scheme, per_channel=True, input_quant=quant)

    def fc(a, b, scheme):
        if not quantized:
            return nn.Linear(a, b)
        return QLinear(a, b, weight_scheme=scheme, input_quant=ActQuant(8), per_channel=fc_per_channel)

    layers = [conv(1, 1, first=True), nn.ReLU(),
              conv(c, c), nn.ReLU(), nn.MaxPool2d(2),
              conv(c, c), nn.ReLU(), nn.MaxPool2d(2),
              nn.Flatten(),
              fc(4 * c, HIDDEN[0], fc_schemes[0]), nn.ReLU(),
              fc(HIDDEN[0], HIDDEN[1], fc_schemes[1]), nn.ReLU(),
              fc(HIDDEN[1], 10, fc_schemes[2])]
    if quantized:
        layers.append(ActQuant(8, signed=True, rounding="ceil"))
    return nn.Sequential(*layers)


class Ensemble(nn.Module):
    """The mean logits of several models: a distillation teacher stronger than any one twin."""

    def __init__(self, models):
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.models]).mean(dim=0)


def he_init(model: nn.Module) -> None:
    """He (Kaiming) normal weights and zero biases: torch's default init shrinks the signal
    about 2.4x per layer, ~200x over these six layers, and the twin then learns slowly."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def images_16(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(downscale(images, 16)).reshape(-1, 1, 16, 16)


def accuracy(model, x, y) -> float:
    return float((torch_predict(model, x)[1] == y).mean())


@dataclass(frozen=True)
class Recipe:
    """What a training phase draws and how it steps; the defaults are the committed recipe."""
    batch_size: int = 128
    rotate: float = 10.0  # degrees, uniform in +-rotate
    shift: float = 2.0  # pixels at 28x28, uniform in +-shift
    zoom: float = 0.1  # uniform in 1 +- zoom
    clean: float = 0.5  # fraction of each epoch's images left unaugmented
    weight_decay: float = 0.05  # decoupled (AdamW)
    label_smoothing: float = 0.1
    muon: bool = False


def epoch_images(rng, images, recipe: Recipe) -> torch.Tensor:
    """One epoch's inputs: a fresh random affine of every digit (the `clean` fraction kept as is)."""
    out = random_affine(rng, images, max_shift=recipe.shift, max_degrees=recipe.rotate,
                        scale=(1 - recipe.zoom, 1 + recipe.zoom))
    if recipe.clean:
        keep = rng.random(len(images)) < recipe.clean
        out[keep] = images[keep]
    return images_16(out)


@torch.no_grad()
def freeze_weights(layer: QLinear) -> None:
    """Fix a quantized layer at its current integer weights: the exponent pinned, the float
    shadow weights set to their quantized values (exact: small integers times a power of two),
    no more gradient, so the optimizers skip them."""
    e = layer.pin_weight_exponent()
    layer.weight.copy_(fake_quantize_weight(layer.weight, layer.scheme, e))
    layer.weight.requires_grad_(False)


def fix_scales(model: nn.Module) -> None:
    """Stop every scale from moving: the activation quantizers stop calibrating (their
    running maxima stay) and the weight exponents are pinned at their current values."""
    for m in model.modules():
        if isinstance(m, ActQuant):
            m.momentum = 0.0
        elif isinstance(m, (QLinear, QConv2d)):
            m.pin_weight_exponent()


def fit(model, images, labels, epochs, lr, seed, recipe=Recipe(), teacher=None, test=None,
        desc="train", ema: float = 0.0, freeze: tuple[int, nn.Module] | None = None,
        fixed_scales: int = 0) -> list[dict]:
    """AdamW (or Muon on the 2-D hidden weights), one-epoch warmup then cosine; fresh augmentation
    every epoch; with a teacher, 0.7 KL(T=3) to its soft outputs + 0.3 cross-entropy.

    With `ema` (e.g. 0.9995), the model ends with the exponential moving average of its
    parameters over the steps (updated after every step, the last few epochs weighing most):
    test accuracy swings by a tenth of a point from epoch to epoch, the average's less.  Only
    parameters are averaged (for a QAT model its float shadow weights); buffers such as the
    activation quantizers' ranges stay the model's own.

    With `freeze` = (n, layer), the layer's weights are fixed at their integers for the last n
    epochs (`freeze_weights`) and the other layers adapt to them: a 2-bit layer's weights
    keep flipping between levels to the very end, even as the learning rate runs out.
    With `fixed_scales` = n, every scale is fixed for the last n epochs (`fix_scales`), so no
    power of two can flip at a rounding boundary late in training (measured: the late swings
    stayed, so they come from the weights, not the scales)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = dict(model.named_parameters())
    hidden = [n for n, p in params.items() if p.ndim == 2 and p.shape[0] != 10] if recipe.muon else []
    opts = [torch.optim.AdamW([p for n, p in params.items() if n not in hidden], lr=lr,
                              weight_decay=recipe.weight_decay)]
    if hidden:
        opts.append(torch.optim.Muon([params[n] for n in hidden], lr=lr, adjust_lr_fn="match_rms_adamw"))
    batch_size = recipe.batch_size
    steps = math.ceil(len(images) / batch_size)
    total, warm = epochs * steps, steps
    factor = lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))  # noqa: E731
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in opts]
    y_all, log, start = torch.as_tensor(labels), [], time.time()
    averaged = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema))
                if ema else None)

    def with_average():  # the model with the averaged parameters and its own buffers
        copy = copy_module.deepcopy(model)
        copy.load_state_dict({**model.state_dict(), **dict(averaged.module.named_parameters())})
        return copy

    for epoch in range(epochs):
        if fixed_scales and epoch == epochs - fixed_scales:
            fix_scales(model)
        if freeze is not None and epoch == epochs - freeze[0]:
            freeze_weights(freeze[1])
        x_all = epoch_images(rng, images, recipe)
        model.train()
        order = torch.randperm(len(x_all))
        loss_sum = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = x_all[idx], y_all[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
            if teacher is not None:
                with torch.no_grad():
                    target = F.softmax(teacher(x) / 3.0, dim=1)
                soft = F.kl_div(F.log_softmax(logits / 3.0, dim=1), target, reduction="batchmean") * 9.0
                loss = 0.3 * loss + 0.7 * soft
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o, s in zip(opts, scheds):
                o.step()
                s.step()
            if averaged is not None:
                averaged.update_parameters(model)
            loss_sum += loss.item() * len(idx)
        entry = {"epoch": epoch + 1, "loss": loss_sum / len(order), "seconds": round(time.time() - start, 1)}
        if test is not None:
            entry["test_acc"] = accuracy(model, *test)
            if averaged is not None:
                entry["ema_test_acc"] = accuracy(with_average(), *test)
        log.append(entry)
        print(desc, entry, flush=True)
    if averaged is not None:
        model.load_state_dict(with_average().state_dict())
    return log


def train_twin(seed: int, args, recipe: Recipe, images=None, labels=None, test=None):
    """The fp32 twin of `seed` and its log: what `train.py --seed SEED` trains first, and
    reproducibly the same (the seed is set before the first initialisation).  Without data it
    loads its own, as it does in a process of its own (`--teacher-seeds`)."""
    if images is None:
        torch.set_num_threads(args.threads)
        images, labels = training_images(args.subset)
    torch.manual_seed(seed)
    twin = build(False)
    if args.init == "he":
        he_init(twin)
    log = fit(twin, images, labels, args.float_epochs, args.lr, seed, recipe, test=test,
              desc="fp32" if seed == args.seed else f"fp32 seed {seed}", ema=args.ema)
    return twin.eval(), log


def training_images(subset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_images("train")
    return (images[:subset], labels[:subset]) if subset else (images, labels)


def load_model(pt: Path) -> nn.Sequential:
    """The trained QAT model (eval mode) from a model.pt this script wrote, built with the
    options recorded in the results.json beside it."""
    args = json.loads(Path(pt).with_name("results.json").read_text())["args"]
    saved = torch.load(pt, weights_only=True)
    model = build(True, args["conv_scheme"], fc_per_channel=args["fc_per_channel"])
    model.load_state_dict(saved.get("refined", saved["qat"]))
    return model.eval()


def ort_predict(path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return tuple(session.run(["logits", "class"], {"input": x}))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--float-epochs", type=int, default=100)
    ap.add_argument("--qat-epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--qat-lr", type=float, default=7e-4)
    ap.add_argument("--conv-scheme", default="int4")
    ap.add_argument("--fc-per-channel", action="store_true",
                    help="one power-of-two weight scale per FC output (default: one per FC layer)")
    ap.add_argument("--equalize", action="store_true",
                    help="before QAT, rescale fc1's rows (and fc2's columns) so each row's best scale is one power of two")
    ap.add_argument("--freeze-fc1", type=int, default=0, metavar="N",
                    help="fix fc1's 2-bit weights for the last N QAT epochs; the other layers adapt to them")
    ap.add_argument("--fix-scales", type=int, default=0, metavar="N",
                    help="fix every activation range and weight exponent for the last N QAT epochs")
    ap.add_argument("--teachers", type=Path, nargs="+", default=[], metavar="MODEL_PT",
                    help="more fp32 twins (model.pt of other runs): QAT distils from the mean logits of all")
    ap.add_argument("--teacher-seeds", type=int, nargs="+", default=[], metavar="SEED",
                    help="also train the fp32 twins of these seeds, each in its own process beside this one's "
                         "(one core each), and distil QAT from the mean logits of all twins")
    ap.add_argument("--init", choices=("he", "torch"), default="he", help="the fp32 twin's initial weights")
    ap.add_argument("--no-distill", action="store_true")
    ap.add_argument("--muon", action="store_true", help="Muon on the hidden FC weights")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="each phase ends with the moving average of its weights, this decay per step (0: off)")
    ap.add_argument("--qat-ema", type=float, default=None, metavar="DECAY",
                    help="the moving average for the QAT phase only (default: --ema)")
    ap.add_argument("--batch-size", type=int, default=Recipe.batch_size)
    ap.add_argument("--rotate", type=float, default=Recipe.rotate, help="augmentation: +- degrees")
    ap.add_argument("--shift", type=float, default=Recipe.shift, help="augmentation: +- pixels at 28x28")
    ap.add_argument("--zoom", type=float, default=Recipe.zoom, help="augmentation: zoom in 1 +- ZOOM")
    ap.add_argument("--clean", type=float, default=Recipe.clean, help="fraction of images left unaugmented")
    ap.add_argument("--weight-decay", type=float, default=Recipe.weight_decay)
    ap.add_argument("--label-smoothing", type=float, default=Recipe.label_smoothing)
    ap.add_argument("--refine-passes", type=int, default=0,
                    help="after QAT, sweeps of integer coordinate descent on the FC weights (training loss)")
    ap.add_argument("--twin", type=Path,
                    help="start QAT from the fp32 twin saved in this model.pt (skips the fp32 phase)")
    ap.add_argument("--subset", type=int, default=0, help="train on the first N images (exploration)")
    ap.add_argument("--eval-every-epoch", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--qat-seed", type=int, default=None,
                    help="the seed of the QAT phase's draws (default: seed + 1)")
    # one thread: on a busy 2-core machine two threads ran 7x slower (they wait for each other)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    images, labels = training_images(args.subset)
    x_test, y_test = mnist(16, "test")
    x_test = x_test.reshape(-1, 1, 16, 16)
    test = (x_test, y_test) if args.eval_every_epoch else None
    recipe = Recipe(args.batch_size, args.rotate, args.shift, args.zoom, args.clean, args.weight_decay,
                    args.label_smoothing, args.muon)
    args.out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(len(args.teacher_seeds), mp_context=multiprocessing.get_context("spawn")) \
            if args.teacher_seeds else nullcontext() as pool:
        # the other twins train in their own processes while this one trains its own
        jobs = [pool.submit(train_twin, seed, args, recipe) for seed in args.teacher_seeds]
        if args.twin:
            twin = build(False)
            twin.load_state_dict(torch.load(args.twin)["twin"])
            fp32_log = []
        else:
            twin, fp32_log = train_twin(args.seed, args, recipe, images, labels, test)
            torch.save({"twin": twin.state_dict()}, args.out / "model.pt")  # QAT runs can start from it (--twin)
        seed_twins = [job.result() for job in jobs]
    if args.equalize:  # the same float function; its 2-bit fc1 quantizes better
        equalize_rows(twin[9], twin[11], get_scheme(FC_SCHEMES[0]), per_row=args.fc_per_channel)
    twin.eval()
    fp32_acc = accuracy(twin, x_test, y_test)
    print("fp32 accuracy", fp32_acc, flush=True)
    teacher, teacher_acc = twin, None
    others = [other for other, _ in seed_twins]
    for pt in args.teachers:
        others.append(build(False))
        others[-1].load_state_dict(torch.load(pt)["twin"])
    if others:
        teacher = Ensemble([twin, *others]).eval()
        teacher_acc = accuracy(teacher, x_test, y_test)
        print("teacher accuracy", teacher_acc, flush=True)
    model = build(True, args.conv_scheme, fc_per_channel=args.fc_per_channel)
    model.load_state_dict(twin.state_dict(), strict=False)  # same names; quantizer buffers stay
    qat_seed = args.seed + 1 if args.qat_seed is None else args.qat_seed
    qat_log = fit(model, images, labels, args.qat_epochs, args.qat_lr, qat_seed,
                  recipe, teacher=None if args.no_distill else teacher, test=test, desc="qat",
                  ema=args.ema if args.qat_ema is None else args.qat_ema,
                  freeze=(args.freeze_fc1, model[9]) if args.freeze_fc1 else None, fixed_scales=args.fix_scales)
    checkpoint = {"twin": twin.state_dict(), "qat": copy_module.deepcopy(model.state_dict()),
                  **({"teacher_twins": [o.state_dict() for o in others]} if others else {})}
    torch.save(checkpoint, args.out / "model.pt")
    unrefined_acc, refine_log = None, []
    if args.refine_passes:
        unrefined_acc = accuracy(model, x_test, y_test)
        refine_log = refine_weights(model, images_16(images), labels, passes=args.refine_passes, seed=args.seed)
        torch.save({**checkpoint, "refined": model.state_dict()}, args.out / "model.pt")
    train_seconds = round(time.time() - start)
    logits, classes = torch_predict(model, x_test)
    path = export_onnx(model, args.out / "model.onnx", (1, 16, 16))
    ort_logits, ort_classes = ort_predict(path, x_test)
    results = {
        "command": "python examples/mnist16x16_cnn/train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": {k: v for k, v in vars(args).items() if k != "out"},  # Paths: written as str
        "threads": torch.get_num_threads(),
        "conv_weight_bytes": conv_weight_bytes(model), "fc_weight_bytes": weight_bytes(model),
        "fp32_accuracy": fp32_acc, "teacher_accuracy": teacher_acc,
        "teacher_twins": [{"seed": seed, "fp32_accuracy": accuracy(other, x_test, y_test), "fp32_log": log}
                          for seed, (other, log) in zip(args.teacher_seeds, seed_twins)],
        "unrefined_accuracy": unrefined_acc,
        "qat_accuracy": float((classes == y_test).mean()),
        "ort_accuracy": float((ort_classes == y_test).mean()),
        "class_agreement": int((ort_classes == classes).sum()),
        "logits_bit_agreement": int((ort_logits.view(np.int32) == logits.view(np.int32)).all(axis=1).sum()),
        "train_seconds": train_seconds, "fp32_log": fp32_log, "qat_log": qat_log,
        "refine_log": refine_log,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print({k: v for k, v in results.items() if not k.endswith("_log")})
    return results


if __name__ == "__main__":
    main()
