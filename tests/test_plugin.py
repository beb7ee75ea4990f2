"""tinycc_nn/backend.py: a backend installed as a separate package is found by its entry point.

tests/plugin_example is a tiny package registering target `echo-python` under the group
`tinycc_nn.backends`.  It is installed into a temporary folder (copied first, so the
build leaves nothing in the checkout) and the `tinycc-nn` command runs with that folder
on PYTHONPATH.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import qdq

TESTS = Path(__file__).resolve().parent
PLUGIN = TESTS / "plugin_example"


def _cli(*argv, site, cwd):
    exe = Path(sys.executable).with_name("tinycc-nn")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tinycc_nn.cli"]
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("TINYCC_NN_DEBUG", None)
    return subprocess.run(cmd + list(argv), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                        "--no-index", "--quiet", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return site


@pytest.mark.slow
def test_plugin_is_listed_compiles_and_verifies(plugin_site, tmp_path):
    assert (plugin_site / "tinycc_nn_echo" / "__init__.py").is_file()
    r = _cli("targets", site=plugin_site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    assert "python" in rows and "echo-python" in rows
    assert "plugin example" in rows["echo-python"]

    rng = np.random.default_rng(11)
    m = qdq.random_mlp(rng, max_width=10, max_depth=2)
    m.argmax = True
    onnx.save(qdq.build(m), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", qdq.random_inputs(rng, m, 20))

    r = _cli("compile", "m.onnx", "-t", "echo-python", "-o", "out", site=plugin_site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model_echo.py", "report.json"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["target"] == "echo-python" and report["rom_used"] > 0

    r = _cli("verify", "m.onnx", "-t", "echo-python", "--inputs", "x.npy", "--json",
             site=plugin_site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["n"], s["mismatches"], s["argmax_agree"], s["target"]) == (20, 0, 20, "echo-python")


@pytest.mark.slow
def test_without_the_plugin_the_target_is_unknown(tmp_path):
    onnx.save(qdq.build(qdq.random_mlp(np.random.default_rng(0), max_width=4, max_depth=1)),
              tmp_path / "m.onnx")
    r = _cli("compile", "m.onnx", "-t", "echo-python", site=tmp_path, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("tinycc-nn: error: unknown target 'echo-python'; available: ")
    assert "python" in r.stderr
