"""The search space: one optuna trial -> one `Experiment` (architecture and recipe).

The space depends on the target's family. A Padauk part has about 1 K words of ROM and
64-128 bytes of RAM, but its input is streamed (read once per pass, never held in RAM), so
a larger input costs ROM for the first layer's weights and nothing else: the space offers
every input size the MNIST loader has up to 16x16 (each from the whole 28x28 digit or
from a centred crop of it, which spends the few pixels on the digit rather than on its
blank border), one or two narrow hidden layers and
1- or 2-bit weights in the first layer, where most of the weights are. The RISC-V parts and
the reference target get wider and deeper networks and every weight scheme. Inputs stay 8-bit: a narrower input quantizer needs a Clip before the
model's first QuantizeLinear, which the compiler refuses.

Every dimension can be pinned (`fixed`, the CLI's `--fix NAME=VALUE`): a pinned one is not
suggested to optuna, so it is not searched, and the Experiment records its value.
"""
from __future__ import annotations

import dataclasses

from tinycc_nn.datasets import CROPS, SIZES
from tinycc_nn.errors import TinyccError
from tinycc_nn.qat.experiment import Experiment

PADAUK_TARGETS = ("pms150c", "pfs154", "pdk13", "pdk14")
AUGMENTS = {"none": None, "shift": {"kind": "shift", "max_shift": 1},
            "affine": {"kind": "affine", "max_shift": 1.5, "max_degrees": 10.0}}


@dataclasses.dataclass(frozen=True)
class Space:
    """The choices of one search; `fixed` pins dimensions by name."""

    sizes: tuple
    depths: tuple  # hidden layers
    widths: tuple  # choices for each hidden layer
    first_schemes: tuple  # weight scheme of the first layer
    schemes: tuple  # weight schemes of the later layers
    crops: tuple = (28, 24, 22, 20)  # centred crops before downscaling (not below 28x28 inputs)
    act_bits: tuple = (2, 3, 4, 8)
    float_epochs: tuple = (0, 10, 20, 30)
    qat_epochs: tuple = (10, 20, 30)
    refine_passes: tuple = (0, 2, 4)
    epochs_scale: float = 1.0  # multiplies every epoch count (at least 1 where not 0)
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0
    fixed: dict = dataclasses.field(default_factory=dict)

    def names(self, depth: int | None = None) -> list[str]:
        """The dimensions' names (each hidden layer's width and scheme for `depth` layers)."""
        depth = max(self.depths) if depth is None else depth
        per_layer = [f"{kind}_{i}" for i in range(depth) for kind in ("width", "scheme")]
        return ["size", "crop", "depth", *per_layer, f"scheme_{depth}", "bias", "act_bits",
                "float_epochs", "qat_epochs", "lr", "qat_lr", "distill", "augment",
                "weight_exponent_offset", "refine_passes"]


def space_for(target: str, sizes=None, fixed=None, **settings) -> Space:
    """The default space of `target`'s family, restricted to `sizes` if given."""
    if target in PADAUK_TARGETS:
        space = Space(sizes=(8, 10, 12, 14, 16), depths=(1, 2), widths=(8, 12, 16, 20, 24, 32),
                      first_schemes=("binary", "ternary", "pm2"),
                      schemes=("binary", "ternary", "pm2", "odd2", "int4"))
    else:
        space = Space(sizes=(8, 10, 12, 14, 16, 28), depths=(1, 2, 3),
                      widths=(16, 24, 32, 48, 64, 96, 128),
                      first_schemes=("binary", "ternary", "pm2", "odd2", "int4", "int8"),
                      schemes=("binary", "ternary", "pm2", "odd2", "odd4", "int4", "int8"))
    if sizes:
        bad = [s for s in sizes if s not in SIZES]
        if bad:
            raise TinyccError(f"--size {bad[0]}: the MNIST loader offers {', '.join(map(str, SIZES))}")
        space = dataclasses.replace(space, sizes=tuple(sizes))
    space = dataclasses.replace(space, fixed=dict(fixed or {}), **settings)
    known = set(space.names())
    for name in space.fixed:
        if name not in known:
            raise TinyccError(f"--fix {name}: not a dimension of the search; "
                              f"the dimensions are {', '.join(space.names())}")
    if "size" in space.fixed and space.fixed["size"] not in SIZES:
        raise TinyccError(f"--fix size={space.fixed['size']}: the MNIST loader offers "
                          f"{', '.join(map(str, SIZES))}")
    if "crop" in space.fixed and space.fixed["crop"] not in CROPS:
        raise TinyccError(f"--fix crop={space.fixed['crop']}: the MNIST loader crops to "
                          f"{', '.join(map(str, CROPS))}")
    if not 0 < space.epochs_scale <= 10:
        raise TinyccError(f"--epochs-scale {space.epochs_scale:g}: must be above 0 and at most 10")
    return space


def _epochs(n: int, scale: float) -> int:
    return 0 if n == 0 else max(1, round(n * scale))


def suggest(trial, space: Space) -> Experiment:
    """The Experiment of this trial: each dimension pinned or suggested to optuna."""
    def pick(name, choices):
        return space.fixed[name] if name in space.fixed else trial.suggest_categorical(name, choices)

    def log_uniform(name, low, high):
        return space.fixed[name] if name in space.fixed else trial.suggest_float(name, low, high, log=True)

    size = pick("size", space.sizes)
    crop = 28 if size == 28 else pick("crop", space.crops)  # a 28x28 input is the whole digit
    depth = pick("depth", space.depths)
    hidden = [pick(f"width_{i}", space.widths) for i in range(depth)]
    schemes = [pick("scheme_0", space.first_schemes)]
    schemes += [pick(f"scheme_{i}", space.schemes) for i in range(1, depth + 1)]
    float_epochs = _epochs(pick("float_epochs", space.float_epochs), space.epochs_scale)
    return Experiment(
        size=size, crop=crop, widths=(size * size, *hidden, 10), schemes=tuple(schemes),
        bias=pick("bias", (True, False)), act_bits=pick("act_bits", space.act_bits),
        float_epochs=float_epochs,
        qat_epochs=_epochs(pick("qat_epochs", space.qat_epochs), space.epochs_scale),
        lr=log_uniform("lr", 1e-3, 1e-2), qat_lr=log_uniform("qat_lr", 3e-4, 3e-3),
        distill=bool(float_epochs) and pick("distill", (True, False)),
        augment=AUGMENTS[pick("augment", tuple(AUGMENTS))],
        weight_exponent_offset=pick("weight_exponent_offset", (-1, 0)),
        refine_passes=pick("refine_passes", space.refine_passes), seed=space.seed,
        train_limit=space.train_limit, test_limit=space.test_limit)
