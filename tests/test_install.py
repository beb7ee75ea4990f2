"""A regular (non-editable) install of tinycc-nn works from its own files.

The package directories are mapped in pyproject.toml (`backends/` -> tinycc_nn.backends,
`grammar/` -> tinycc_nn.grammar); an editable install hides mistakes in that mapping.
The repository root is copied first (package sources only), because pip builds in the
source tree and the checkout is shared.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "tinycc_nn", "backends", "grammar"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, src / name)
    site = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                        "--no-index", "--quiet", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return site


def _python(code, site, cwd):
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_installed_package_layout(installed):
    assert (installed / "tinycc_nn" / "__init__.py").is_file()
    assert (installed / "tinycc_nn" / "grammar" / "tir.lark").is_file()
    assert (installed / "tinycc_nn" / "backends" / "python" / "__init__.py").is_file()
    # backends/ is installed only as tinycc_nn.backends, never as a top-level package
    assert not (installed / "backends").exists()
    assert not (installed / "grammar").exists()
    eps = next(installed.glob("tinycc_nn-*.dist-info")) / "entry_points.txt"
    assert "python = tinycc_nn.backends.python:PythonBackend" in eps.read_text()


@pytest.mark.slow
def test_installed_package_runs_from_its_own_files(installed, tmp_path):
    (tmp_path / "m.tir").write_text(textwrap.dedent('''\
        graph @g {
          %x = input() {name = "x", dtype = "float32", shape = ["N", 2], qdtype = "int8", scale = 0.5, zero_point = 0} : i8[2] -128..127
          %w = const() {values = [[1], [-1]]} : i2[2, 1] -1..1
          %y = matmul(%x, %w) : i9[1] -255..255
          %o = output(%y) {name = "y", dtype = "float32", shape = ["N", 1], float_ops = [["dequantize", 0.25, 0]]}
        }
        '''))
    r = _python(f'''
        import sys
        from importlib import resources
        from pathlib import Path
        import numpy as np
        import tinycc_nn, tinycc_nn.parser, tinycc_nn.backends.python
        from tinycc_nn.backend import available_targets
        site = Path({str(installed)!r}).resolve()
        for mod in (tinycc_nn, tinycc_nn.parser, tinycc_nn.backends.python):
            assert site in Path(mod.__file__).resolve().parents, mod.__file__
        grammar = Path(str(resources.files("tinycc_nn.grammar").joinpath("tir.lark"))).resolve()
        assert site in grammar.parents, grammar
        g = tinycc_nn.parser.parse_file("m.tir")
        assert g.order() == ["x", "w", "y", "o"]
        assert "python" in available_targets()
        y = tinycc_nn.compile("m.tir", "python").run(np.array([[1.0, -0.5], [64.0, 0.0]], np.float32))
        assert y["y"].tolist() == [[0.75], [31.75]], y
        print("ok")
        ''', installed, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "ok"


@pytest.mark.slow
def test_installed_command_lists_targets(installed, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(installed))
    script = installed / "bin" / "tinycc-nn"
    assert script.is_file()
    r = subprocess.run([str(script), "targets"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "python" in [ln.split()[0] for ln in r.stdout.splitlines()]
