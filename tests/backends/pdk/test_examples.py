"""The committed Padauk example the README leads with: it fits as its README says and its
compiled program matches onnxruntime on test digits of the view it was trained on."""
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

import tinycc_nn
from tinycc_nn.backends.pdk import sdas
from tinycc_nn.datasets import mnist, view_of
from tinycc_nn.verify import verify_artifact

ROOT = Path(__file__).resolve().parents[3]
BEST = ROOT / "examples" / "pms150c_best"


@pytest.fixture(scope="module")
def art():
    return tinycc_nn.compile(str(BEST / "model.onnx"), "pms150c", opt="size")


def test_the_search_winner_fits_as_its_readme_says(art):
    readme = (BEST / "README.md").read_text()
    rom, rom_cap = map(int, re.search(r"\| (\d+) of (\d+) words \|", readme).groups())
    ram, ram_cap = map(int, re.search(r"\| RAM \| (\d+) of (\d+) bytes \|", readme).groups())
    assert (art.report["rom_used"], art.report["rom_capacity"]) == (rom, rom_cap)
    assert (art.report["ram_used"], art.report["ram_capacity"]) == (ram, ram_cap)
    assert rom <= rom_cap == 1016 and ram <= ram_cap == 64


@pytest.mark.skipif(not sdas.available("pdk13"), reason="needs SDCC's sdaspdk13")
def test_the_search_winner_is_bit_exact_on_its_own_view(art):
    model = onnx.load(BEST / "model.onnx")
    size, crop = view_of(model)
    assert (size, crop) == (8, 20)  # the README's "centred 20x20 box-averaged to 8x8"
    x, y = mnist(size, "test", crop)
    result = verify_artifact(art, str(BEST / "model.onnx"), x[:40])
    assert result.mismatches == 0, result.detail
    assert (np.asarray(result.outputs["class"]).reshape(-1) == y[:40]).mean() > 0.8
