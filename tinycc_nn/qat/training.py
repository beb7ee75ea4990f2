"""One training loop for all examples and the sweep: Adam (or Muon on the hidden layers),
cosine LR, fresh augmentation.

Each epoch re-augments the 28x28 training images (numpy, seeded) and downscales them
to the model's input size, so the network never sees the same jittered digit twice.
The loop is deliberately plain: the examples differ in model and recipe, not in code.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from tinycc_nn.datasets import downscale


@dataclass
class Recipe:
    """Hyper-parameters of one run; `augment(rng, images) -> images` or None."""

    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    warmup_epochs: float = 0.5
    augment: object = None
    seed: int = 0
    teacher: nn.Module | None = None  # distil from this (e.g. the fp32 twin) when given
    distill_weight: float = 0.7
    distill_temperature: float = 3.0
    muon: bool = False  # Muon on the hidden layers' weights (neither the first nor the last)
    log: list = field(default_factory=list)


def float_mlp(widths, bias=True) -> nn.Sequential:
    """The unquantized twin of `qat.mlp(widths)`: the fp32 reference accuracy."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def hidden_weights(model: nn.Module) -> list[str]:
    """The 2-D weights of the hidden layers: every matrix but the first and the last,
    where Muon's orthogonalized steps help (it is not meant for input or output layers)."""
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 2]
    return names[1:-1]


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _loss(logits, labels, x, recipe: Recipe) -> torch.Tensor:
    """Cross-entropy, mixed with the teacher's softened outputs when there is a teacher.

    Low-bit students learn much better from a float teacher's full output distribution
    than from the labels alone (Hinton et al. 2015; standard in ternary/2-bit QAT).
    """
    loss = F.cross_entropy(logits, labels)
    if recipe.teacher is None:
        return loss
    t, a = recipe.distill_temperature, recipe.distill_weight
    with torch.no_grad():
        target = F.softmax(recipe.teacher(x) / t, dim=1)
    soft = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean") * t * t
    return (1 - a) * loss + a * soft


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the eval-mode model (first maximal logit, as ONNX ArgMax)."""
    from tinycc_nn.qat import torch_predict

    return float((torch_predict(model, x)[1] == y).mean())


def fit(model: nn.Module, images: np.ndarray, labels: np.ndarray, size: int, recipe: Recipe,
        test: tuple[np.ndarray, np.ndarray] | None = None, desc: str = "train",
        progress: bool = True, crop: int = 28) -> list[dict]:
    """Train `model` on uint8 images [N, 28, 28] cropped to the centred `crop` x `crop`
    and downscaled to `size` (`tinycc_nn.datasets.downscale`); returns per-epoch logs."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    hidden = set(hidden_weights(model)) if recipe.muon else set()
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and n not in hidden]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    opts = [torch.optim.Adam([{"params": decay, "weight_decay": recipe.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=recipe.lr)]
    if hidden:
        params = dict(model.named_parameters())
        opts.append(torch.optim.Muon([params[n] for n in sorted(hidden)], lr=recipe.lr,
                                     weight_decay=recipe.weight_decay,
                                     adjust_lr_fn="match_rms_adamw"))
    steps_per_epoch = math.ceil(len(images) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warmup = int(recipe.warmup_epochs * steps_per_epoch)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: _lr_factor(s, total, warmup))
              for o in opts]
    y_all = torch.as_tensor(labels)
    bar = tqdm(range(recipe.epochs), desc=desc, unit="epoch", disable=not progress)
    start = time.time()
    for epoch in bar:
        batch = recipe.augment(rng, images) if recipe.augment else images
        x_all = torch.as_tensor(downscale(batch, size, crop))
        model.train()
        order = torch.randperm(len(x_all))
        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            logits = model(x_all[idx])
            loss = _loss(logits, y_all[idx], x_all[idx], recipe)
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o, sched in zip(opts, scheds):
                o.step()
                sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y_all[idx]).sum())
        entry = {"epoch": epoch + 1, "loss": loss_sum / len(order),
                 "train_acc": correct / len(order), "seconds": time.time() - start}
        if test is not None:
            entry["test_acc"] = accuracy(model, *test)
        recipe.log.append(entry)
        bar.set_postfix({k: f"{v:.4f}" for k, v in entry.items() if k.endswith(("loss", "acc"))})
    return recipe.log
