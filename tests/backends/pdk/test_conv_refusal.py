"""Padauk targets refuse conv models (and residual adds) by name, in one line, writing nothing."""
import subprocess
import sys

import onnx
import pytest

import qdq_conv
import tinycc_nn
from tinycc_nn import TinyccError


@pytest.mark.parametrize("target", ["pms150c", "pfs154", "pdk13"])
def test_conv_model_is_refused_in_one_line(rng, target):
    model = qdq_conv.sequential_depthwise_cnn(rng, channels=4)
    with pytest.raises(TinyccError) as e:
        tinycc_nn.compile(model, target)
    msg = str(e.value)
    assert "qconv" in msg and "no Padauk code" in msg and "ch32v003" in msg
    assert "\n" not in msg


def test_cli_exit_2_and_no_files(rng, tmp_path):
    path = tmp_path / "cnn.onnx"
    onnx.save(qdq_conv.sequential_depthwise_cnn(rng, channels=4), path)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "tinycc_nn.cli", "compile", str(path), "-t", "pms150c",
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("target", ["pms150c", "pfs154"])
def test_a_residual_mlp_is_refused_naming_the_add(target):
    """An Add of two vectors (a residual MLP) has no Padauk code either."""
    import numpy as np
    from onnx_cases import Net
    net = Net()
    xd = net.quant(net.input("x", ["N", 6]), 2 ** -5, 0, "int8")
    h = net.quant(net.matmul(xd, np.random.default_rng(0).integers(-8, 8, (6, 6))), 2 ** -3, 3)
    net.output(net.quant(net.add("Add", [h, xd]), 2 ** -2, -1), ["N", 6])
    with pytest.raises(TinyccError, match="= add: .*a residual add has no pdk code yet .*ch32v003"):
        tinycc_nn.compile(net.model(), target)
