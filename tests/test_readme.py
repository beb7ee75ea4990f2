"""README.md against behaviour: every command and option it documents, the figures it
quotes and the library snippet it shows, so the two cannot drift apart again.
"""
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinycc_nn.backend import available_targets, get_backend
from tinycc_nn.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def _section(title):
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _synopsis() -> dict:
    """Command -> the options its synopsis line shows."""
    block = _section("Command line").split("```\n", 1)[1].split("```", 1)[0]
    commands, current = {}, None
    for line in block.splitlines():
        words = line.split()
        if words and words[0] == "tinycc-nn":
            current = words[1]
            commands[current] = set()
        commands[current] |= set(re.findall(r"(?<![\w-])(-[a-z]|--[a-z][a-z-]*)", line))
    return commands


def _parser_options(command) -> set:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {s for a in sub._actions for s in a.option_strings if s not in ("-h", "--help")}


SHARED = {"--opt", "--option", "--dump-ir", "--verify-ir"}   # "all take ..." below the block


def test_the_synopsis_lists_every_option_and_only_real_ones():
    synopsis = _synopsis()
    assert set(synopsis) == {"compile", "ir", "targets", "verify", "run", "search"}
    assert "`compile`, `ir`, `verify` and `run` all take `--opt`, `--option`, `--dump-ir` and\n`--verify-ir`" in README
    for command, shown in synopsis.items():
        real = {o for o in _parser_options(command) if not o.startswith("--") or
                o not in {"--target", "--output"}}
        real = {"-t" if o == "--target" else "-o" if o == "--output" else o for o in real}
        documented = shown | (SHARED if command not in ("targets", "search") else set())
        assert documented == real, command


def test_the_two_commands_and_ci():
    first, second = [b.strip() for b in _blocks("sh")[:2]]
    assert first == ("scripts/install.sh && .venv/bin/tinycc-nn compile examples/pms150c_best/model.onnx "
                     "-t pms150c -o out/")
    assert second == "scripts/setup-dev.sh && .venv/bin/python -m pytest -n 2"
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(second)
    for script in ("install.sh", "setup-dev.sh"):
        assert os.access(ROOT / "scripts" / script, os.X_OK)
    assert "scripts/install.sh --dev" in (ROOT / "scripts" / "setup-dev.sh").read_text()


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_first_command_writes_what_it_says(cwd, capsys):
    assert main(["compile", "examples/pms150c_best/model.onnx", "-t", "pms150c", "-o", "out/"]) == 0
    capsys.readouterr()
    words, rom, ram_used, ram = map(int, re.search(
        r"\((\d+) of (\d+) words,\s+(\d+) of (\d+) bytes\)", README).groups())
    report = json.loads((cwd / "out" / "report.json").read_text())
    assert (report["rom_used"], report["rom_capacity"]) == (words, rom)
    assert (report["ram_used"], report["ram_capacity"]) == (ram_used, ram)
    files = {p.name for p in (cwd / "out").iterdir()}
    assert {"model.asm", "report.json"} <= files
    assert ("model.ihx" in files) == bool(shutil.which("sdaspdk13"))
    documented = re.search(r"and `report.json` \((.*?)plus", README, re.S).group(1)
    keys = set(re.findall(r"`(\w+)`", documented))
    assert len(keys) == 7 and keys <= set(report)
    assert report["files"] == sorted(files)


def test_opt_defaults_are_as_documented():
    size_on, speed_on = re.search(r"The\s+default is `(\w+)` on the Padauk and `python` targets "
                                  r"and `(\w+)` on `ch32v003`", README).groups()
    for name in available_targets():
        if name in ("python", "pms150c", "pfs154", "pdk13", "pdk14"):
            assert get_backend(name).options["opt"][0] == size_on, name
        elif name == "ch32v003":
            assert get_backend(name).options["opt"][0] == speed_on


def test_verify_json_and_run_limit_as_documented(cwd, capsys):
    rng = np.random.default_rng(0)
    np.save("x.npy", rng.random((12, 64), np.float32))
    model = "examples/mnist8x8/model.onnx"
    assert main(["verify", model, "-t", "python", "--inputs", "x.npy", "--limit", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    keys = re.search(r"`--json` prints one JSON object with (.*?)\.\n", README, re.S).group(1)
    assert set(re.findall(r"`(\w+)`", keys)) <= set(summary)
    assert summary["n"] == 5
    assert main(["run", model, "-t", "python", "--inputs", "x.npy", "--limit", "3", "-o", "y.npz"]) == 0
    with np.load("y.npz") as z:
        assert all(len(z[k]) == 3 for k in z.files)
    assert main(["run", model, "-t", "python", "--inputs", "x.npy", "-o", "y.txt"]) == 2
    assert not Path("y.txt").exists()
    assert main([]) == 2 and "usage: tinycc-nn" in capsys.readouterr().err


def test_the_library_snippet_runs(cwd, capsys):
    code = _blocks("python")[0]
    assert "tinycc_nn.compile(" in code
    np.save("x.npy", np.random.default_rng(1).random((4, 256), np.float32))
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "# tinycc-nn IR" in out
    assert sorted(p.name for p in (cwd / "build" / "model").iterdir()) == ["model.py", "report.json"]


def test_the_torch_export_snippets_compile_bit_exactly(cwd, capsys):
    """Each torch route "Bring your own model" shows writes models that verify with no mismatch."""
    for module in ("torch", "onnxscript", "torchao"):
        pytest.importorskip(module)
    section = _section("Bring your own model")
    snippets = [b for b in re.findall(r"```python\n(.*?)```", section, re.S)
                if "torch.onnx.export(" in b]
    assert len(snippets) == 3
    for code in snippets:
        exec(compile(code, "README.md", "exec"), {})
    written = sorted(p.name for p in cwd.glob("*.onnx"))
    assert written == ["net.onnx", "net_torchscript.onnx", "pt2e.onnx", "qat.onnx"]
    np.save("x.npy", np.random.default_rng(2).normal(0, 1, (200, 16)).astype(np.float32))
    for name in written:
        capsys.readouterr()
        assert main(["verify", name, "-t", "python", "--inputs", "x.npy", "--json"]) == 0, name
        assert json.loads(capsys.readouterr().out)["mismatches"] == 0


@pytest.mark.skipif(not shutil.which("riscv64-unknown-elf-gcc"), reason="needs the RISC-V gcc")
def test_ch32v003_stack_figure(cwd, capsys):
    doc = (ROOT / "backends" / "ch32v003" / "README.md").read_text()
    lo, hi = map(int, re.search(r"`ram_stack` in\s+the report: (\d+) to (\d+) bytes", doc).groups())
    assert main(["compile", "examples/mnist8x8/model.onnx", "-t", "ch32v003", "-o", "c"]) == 0
    assert lo <= json.loads((cwd / "c" / "report.json").read_text())["ram_stack"] <= hi
