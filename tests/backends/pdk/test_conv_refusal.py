"""Padauk targets refuse conv models by name, in one line, writing nothing."""
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
