"""tinycc_nn/cli.py: the `tinycc-nn` command, in-process through main(argv) and as a script."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import qdq
import tinycc_nn
from onnx_cases import Net, f32, float_inputs
from tinycc_nn import backend as backend_mod
from tinycc_nn.backends.python import PythonBackend, PythonProgram
from tinycc_nn.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PASSES = ["import", "fuse-dense", "lower-elementwise", "pack-weights", "schedule-channels",
          "plan-ram"]
REPORT_KEYS = {"target", "rom_used", "rom_capacity", "rom_unit", "ram_used", "ram_capacity",
               "cycles_per_inference"}


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A model with a logits output and an ArgMax output, inputs for it, cwd = tmp_path."""
    rng = np.random.default_rng(5)
    m = qdq.random_mlp(rng, max_width=12, max_depth=3)
    m.argmax, m.batch = True, "N"
    onnx.save(qdq.build(m), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", qdq.random_inputs(rng, m, 30))
    np.save(tmp_path / "x_bad.npy", np.zeros((4, m.in_features + 1), np.float32))
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf\n")
    (tmp_path / "adir.npy").mkdir()
    net = Net()
    y = net.add("Sigmoid", [net.quant(net.input("x", ["N", 4]), 2 ** -5)], out="sig")
    net.output(net.quant(y, 2 ** -7), ["N", 4])
    onnx.save(net.model(), tmp_path / "sigmoid.onnx")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_ok(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def run_error(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinycc-nn: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_compile_writes_model_and_report(work, capsys):
    out, _ = run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "build")
    assert "wrote" in out and "build" in out
    assert sorted(p.name for p in (work / "build").iterdir()) == ["model.py", "report.json"]
    report = json.loads((work / "build" / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["target"] == "python" and report["rom_unit"] == "bytes"
    art = tinycc_nn.compile("m.onnx", "python")
    assert report["rom_used"] == art.report["rom_used"] and report["ram_used"] == art.graph.ram_peak
    # the written module runs on its own
    ns = {}
    exec(compile((work / "build" / "model.py").read_text(), "model.py", "exec"), ns)
    x = np.load("x.npy")
    for (name, want), got in zip(art.run(x).items(), [ns["infer_all"](x)[k] for k in art.run(x)]):
        assert np.array_equal(got, want), name


def test_compile_default_output_folder(work, capsys):
    run_ok(capsys, "compile", "m.onnx", "-t", "python")
    assert (work / "m.python" / "model.py").is_file()


def test_compile_into_an_earlier_output_replaces_it_whole(work, capsys):
    # an earlier target's files went on living beside the new ones (model.py by model.asm)
    run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "out")
    (work / "out" / "extra.bin").write_bytes(b"")
    json_path = work / "out" / "report.json"
    report = json.loads(json_path.read_text())
    report["files"].append("extra.bin")         # as if an earlier target had written it
    json_path.write_text(json.dumps(report))
    run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "out")
    assert sorted(p.name for p in (work / "out").iterdir()) == ["model.py", "report.json"]
    assert json.loads(json_path.read_text())["files"] == ["model.py", "report.json"]
    assert not [p for p in work.iterdir() if p.name.startswith(".")]


def test_compile_refuses_a_folder_holding_other_files(work, capsys):
    (work / "out").mkdir()
    (work / "out" / "keep.txt").write_text("mine")
    line = run_error(capsys, "compile", "m.onnx", "-t", "python", "-o", "out")
    assert "out: folder holds keep.txt, not written by tinycc-nn" in line
    assert [p.name for p in (work / "out").iterdir()] == ["keep.txt"]
    run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "new")
    (work / "new" / "keep.txt").write_text("mine")
    run_error(capsys, "compile", "m.onnx", "-t", "python", "-o", "new")
    assert (work / "new" / "keep.txt").read_text() == "mine"


def test_output_modes_follow_the_umask(work, capsys):
    old = os.umask(0o027)
    try:
        run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "out")
        run_ok(capsys, "run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "y.npy")
    finally:
        os.umask(old)
    assert (work / "out").stat().st_mode & 0o777 == 0o750
    assert (work / "out" / "model.py").stat().st_mode & 0o777 == 0o640
    assert (work / "y.npy").stat().st_mode & 0o777 == 0o640


def test_ir_prints_the_final_ir(work, capsys):
    out, _ = run_ok(capsys, "ir", "m.onnx")
    assert out.startswith("# tinycc-nn IR\ngraph @qdq_mlp {")
    assert "ram_offset" in out and "encoding" in out
    assert out == tinycc_nn.compile("m.onnx", "python").ir_text


@pytest.mark.parametrize("after", PASSES)
def test_ir_after_each_pass(work, capsys, after):
    out, _ = run_ok(capsys, "ir", "m.onnx", "--after", after)
    assert out == tinycc_nn.compile("m.onnx", "python", stop_after=after).ir_text


def test_dump_ir_all(work, capsys):
    out, err = run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "o", "--dump-ir", "all")
    headers = [ln for ln in err.splitlines() if ln.startswith("# IR after ")]
    assert headers == [f"# IR after {p}" for p in PASSES]
    assert err.count("# tinycc-nn IR") == len(PASSES)


def test_dump_ir_selected_passes(work, capsys):
    _, err = run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "o",
                    "--dump-ir", "import,plan-ram", "--dump-ir", "fuse-dense")
    headers = [ln for ln in err.splitlines() if ln.startswith("# IR after ")]
    assert headers == ["# IR after import", "# IR after fuse-dense", "# IR after plan-ram"]


@pytest.mark.parametrize("stop", PASSES)
def test_stop_after_every_pass_writes_nothing(work, capsys, stop):
    _, err = run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "o", "--stop-after", stop,
                    "--dump-ir", stop)
    assert f"# IR after {stop}" in err
    assert f"stopped after {stop}" in err
    assert not (work / "o").exists()


def test_verify_ir_flag(work, capsys):
    run_ok(capsys, "compile", "m.onnx", "-t", "python", "-o", "o", "--verify-ir")


def test_targets(work, capsys):
    out, _ = run_ok(capsys, "targets")
    names = [ln.split()[0] for ln in out.splitlines()]
    assert "python" in names
    assert any(ln.startswith("python ") and "reference" in ln for ln in out.splitlines())


def test_verify_json(work, capsys):
    out, _ = run_ok(capsys, "verify", "m.onnx", "-t", "python", "--inputs", "x.npy", "--json")
    lines = out.strip().splitlines()
    assert len(lines) == 1
    s = json.loads(lines[0])
    assert {"n", "mismatches", "argmax_agree", "cycles_mean"} <= set(s)
    assert (s["n"], s["mismatches"], s["argmax_agree"]) == (30, 0, 30)
    assert s["cycles_mean"] is None         # the reference backend does not count cycles


@pytest.mark.parametrize("extra", [[], ["--ort-optimized"], ["--limit", "7"]])
def test_verify_text(work, capsys, extra):
    out, _ = run_ok(capsys, "verify", "m.onnx", "-t", "python", "--inputs", "x.npy", *extra)
    n = 7 if "--limit" in extra else 30
    assert out.startswith(f"python: {n} inputs, 0 mismatches vs onnxruntime, argmax agree {n}/{n}")


def test_run_npy_and_npz(work, capsys):
    x = np.load("x.npy")
    want = tinycc_nn.compile("m.onnx", "python").run(x)
    run_ok(capsys, "run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "y.npz")
    with np.load("y.npz") as z:
        assert sorted(z.files) == sorted(want)
        for k in want:
            assert z[k].dtype == want[k].dtype and np.array_equal(z[k], want[k])
    _, err = run_ok(capsys, "run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "y.npy",
                    "--limit", "5")
    assert "5 inputs -> y.npy" in err
    assert np.array_equal(np.load("y.npy"), want["logits"][:5])
    assert not [p for p in work.iterdir() if p.name.startswith(".y")]     # no temporary left


def test_run_npy_saves_the_first_onnx_output(work, capsys):
    rng = np.random.default_rng(0)
    net = Net()
    h = net.quant(net.add("Relu", [net.matmul(net.quant(net.input("x", ["N", 6]), 2 ** -5),
                                              rng.integers(-8, 8, (6, 5)))]), 2 ** -3)
    net.output(net.quant(net.matmul(h, rng.integers(-8, 8, (5, 3))), 2 ** -2), ["N", 3])
    net.output(h, ["N", 5])
    model = net.model()
    onnx.save(model, "two.onnx")
    x = float_inputs(rng, 10, [6], 2 ** -5)
    np.save("x2.npy", x)
    run_ok(capsys, "run", "two.onnx", "-t", "python", "--inputs", "x2.npy", "-o", "y.npy")
    first = model.graph.output[0].name
    assert np.array_equal(np.load("y.npy"), tinycc_nn.compile(model, "python").run(x)[first])


def test_verify_a_model_with_a_scalar_input(tmp_path, capsys):
    # onnxruntime takes a 0-d array, not the numpy scalar x[i] reshaped to [] (exit 3 before)
    net = Net()
    y = net.add("Mul", [net.quant(net.input("x", []), 2 ** -5), net.const(f32(0.5))])
    net.output(net.quant(y, 2 ** -5), [])
    onnx.save(net.model(), tmp_path / "scalar.onnx")
    np.save(tmp_path / "xs.npy", float_inputs(np.random.default_rng(3), 40, [], 2 ** -5))
    out, _ = run_ok(capsys, "verify", str(tmp_path / "scalar.onnx"), "-t", "python",
                    "--inputs", str(tmp_path / "xs.npy"))
    assert "40 inputs, 0 mismatches" in out


@pytest.mark.parametrize("form", ["reshape-to-1", "batch-last", "batch-merged"])
def test_verify_when_the_batch_dimension_does_not_pass_through(tmp_path, capsys, form):
    # a symbolic batch that onnxruntime cannot batch (a Reshape to [1, K]), or that leaves the
    # front of an output (Transpose, Reshape to [-1]): verify exited 3 or compared wrongly
    k, n = 6, 5
    net = Net()
    xd = net.quant(net.input("x", ["N", k]), 2 ** -5)
    if form == "reshape-to-1":
        xd = net.add("Reshape", [xd, net.const(np.array([1, k], np.int64))])
    w = net.add("DequantizeLinear", [net.const(np.arange(k * n).reshape(k, n).astype(np.int8) % 7 - 3),
                                     net.const(f32(0.25))])
    y = net.quant(net.add("MatMul", [xd, w]), 2 ** -3)
    if form == "reshape-to-1":
        net.output(y, [1, n])
    elif form == "batch-last":
        net.output(net.add("Transpose", [y], perm=[1, 0]), [n, "N"])
    else:
        net.output(net.add("Reshape", [y, net.const(np.array([-1], np.int64))]), ["M"])
    onnx.save(net.model(), tmp_path / "b.onnx")
    np.save(tmp_path / "xb.npy", float_inputs(np.random.default_rng(4), 30, [k], 2 ** -5))
    out, _ = run_ok(capsys, "verify", str(tmp_path / "b.onnx"), "-t", "python",
                    "--inputs", str(tmp_path / "xb.npy"))
    assert "30 inputs, 0 mismatches" in out


# errors: exit 2, one line, no traceback, nothing written ------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["compile", "nothere.onnx", "-t", "python", "-o", "o"], "nothere.onnx: no such file"),
    (["compile", "junk.onnx", "-t", "python", "-o", "o"], "junk.onnx: not an ONNX model"),
    (["compile", "m.onnx", "-t", "z80", "-o", "o"], "unknown target 'z80'"),
    (["compile", "m.onnx", "-t", "python", "-o", "o", "--stop-after", "fuse"], "no pass named 'fuse'"),
    (["compile", "m.onnx", "-t", "python", "-o", "o", "--dump-ir", "nope"], "no pass named 'nope'"),
    (["ir", "m.onnx", "--after", "nope"], "no pass named 'nope'"),
    (["compile", "m.onnx", "-t", "python", "-o", "o", "--option", "speed"], "expected KEY=VALUE"),
    (["compile", "m.onnx", "-t", "python", "-o", "o", "--option", "colour=red"], "no option(s) colour"),
    (["compile", "m.onnx", "-t", "python", "-o", "o", "--opt", "fast"], "invalid choice"),
    (["verify", "m.onnx", "-t", "python", "--inputs", "nothere.npy"], "nothere.npy: no such file"),
    (["verify", "m.onnx", "-t", "python", "--inputs", "junk.onnx"], "junk.onnx: not a .npy array"),
    (["verify", "m.onnx", "-t", "python", "--inputs", "x_bad.npy"], "inputs of shape [4, "),
    (["run", "m.onnx", "-t", "python", "--inputs", "x_bad.npy", "-o", "y.npy"], "inputs of shape [4, "),
    (["verify", "m.onnx", "-t", "python", "--inputs", "x.npy", "--limit", "0"], "--limit must be at least 1"),
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "y.npy", "--limit", "0"], "--limit"),
    (["verify", "m.onnx", "-t", "python", "--inputs", "x.npy", "--stop-after", "import"], "unrecognized"),
    (["compile", "sigmoid.onnx", "-t", "python", "-o", "o"], "Sigmoid 'sig_node': operator Sigmoid"),
    (["compile", "m.onnx"], "required: -t/--target"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "no command; usage: tinycc-nn [-h] [--version] {compile,ir,targets,verify,run,search}"),
    (["verify", "m.onnx", "-t", "python", "--inputs", "m.onnx"], "m.onnx: not a .npy array (save the"),
    # run -o writes exactly the path given, .npy or .npz (y.txt was left empty, the data hidden)
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "y.txt"], "y.txt: the output name must end in .npy or .npz"),
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "y"], "y: the output name must end in"),
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "nodir/y.npy"], "folder"),
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "x.npy/y.npy"], "x.npy is not a folder"),
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "adir.npy"], "adir.npy: is a folder"),
    (["compile", "m.onnx", "-t", "python", "-o", "x.npy"], "x.npy: exists and is not a folder"),
    (["compile", "m.onnx", "-t", "python", "-o", "x.npy/o"], "x.npy is not a folder"),
    (["compile", "m.onnx", "-t", "python", "-o", "/proc/tinycc-nn-o"], "/proc/tinycc-nn-o: cannot write"),
])
def test_error_paths(work, capsys, argv, fragment):
    line = run_error(capsys, *argv)
    assert fragment in line
    assert not (work / "o").exists() and not (work / "y.npy").exists()
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []
    assert not (work / "y.txt").exists() and not (work / "y").exists()
    assert sorted(p.name for p in (work / "adir.npy").iterdir()) == []


def test_failed_compile_leaves_an_existing_folder_alone(work, capsys):
    (work / "o").mkdir()
    (work / "o" / "model.py").write_text("previous")
    run_error(capsys, "compile", "sigmoid.onnx", "-t", "python", "-o", "o")
    assert [p.name for p in (work / "o").iterdir()] == ["model.py"]
    assert (work / "o" / "model.py").read_text() == "previous"


# mismatches: exit 1 ----------------------------------------------------------------------------

@pytest.fixture
def corrupt_program(monkeypatch):
    """The reference program, but the first value of the first output of sample 3 is off by one."""
    real_run = PythonProgram.run

    def run(self, xq):
        values, stats = real_run(self, xq)
        values = [v.copy() for v in values]
        if len(values[0]) > 3:
            values[0][3, 0] += 1
        return values, stats
    monkeypatch.setattr(PythonProgram, "run", run)


def test_verify_mismatch_exits_1(work, capsys, corrupt_program):
    code = main(["verify", "m.onnx", "-t", "python", "--inputs", "x.npy", "--json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    s = json.loads(out)
    assert s["mismatches"] == 1 and s["first_mismatch"] == 3 and s["n"] == 30
    code = main(["verify", "m.onnx", "-t", "python", "--inputs", "x.npy"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "1 mismatches" in out and "first mismatch: output 'logits' sample 3" in out


class _CorruptBackend(PythonBackend):
    name = "corrupt"

    def load(self, artifact):
        program = super().load(artifact)
        real_run = program.run

        def run(xq):
            values, stats = real_run(xq)
            values[0] = values[0] + 1
            return values, stats
        program.run = run
        return program


class _EntryPoint:
    def __init__(self, cls):
        self.cls, self.value = cls, f"{cls.__module__}:{cls.__name__}"

    def load(self):
        return self.cls


@pytest.fixture
def corrupt_target(monkeypatch):
    targets = dict(backend_mod.available_targets())
    targets["corrupt"] = _EntryPoint(_CorruptBackend)
    monkeypatch.setattr(backend_mod, "available_targets", lambda: targets)


def test_verify_of_a_tir_compares_with_the_python_reference(work, capsys, corrupt_target):
    out, _ = run_ok(capsys, "ir", "m.onnx", "--after", "import")
    Path("m.tir").write_text(out)
    out, _ = run_ok(capsys, "verify", "m.tir", "-t", "python", "--inputs", "x.npy")
    assert out.startswith("python: 30 inputs, 0 mismatches vs python reference, argmax agree 30/30")
    code = main(["verify", "m.tir", "-t", "corrupt", "--inputs", "x.npy", "--json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert json.loads(out)["mismatches"] == 30


def test_internal_error_is_one_line_exit_3(work, capsys, monkeypatch):
    def boom(self, graph, options):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(PythonBackend, "emit", boom)
    monkeypatch.delenv("TINYCC_NN_DEBUG", raising=False)
    code = main(["compile", "m.onnx", "-t", "python", "-o", "o"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.splitlines() == ["tinycc-nn: internal error: RuntimeError: kaboom "
                                "(set TINYCC_NN_DEBUG=1 for the traceback)"]
    assert not (work / "o").exists()


# the installed script, in a subprocess ----------------------------------------------------------

def _script(*argv, cwd):
    exe = Path(sys.executable).with_name("tinycc-nn")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tinycc_nn.cli"]
    env = dict(os.environ)
    env.pop("TINYCC_NN_DEBUG", None)
    return subprocess.run(cmd + list(argv), cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_script_compile_and_error(work):
    r = _script("compile", "m.onnx", "-t", "python", "-o", "sub", cwd=work)
    assert r.returncode == 0, r.stderr
    assert json.loads((work / "sub" / "report.json").read_text())["target"] == "python"
    r = _script("compile", "sigmoid.onnx", "-t", "python", "-o", "bad", cwd=work)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("tinycc-nn: error: ")
    assert "Traceback" not in r.stderr and not (work / "bad").exists()


# one line, whatever the names and inputs hold ----------------------------------------------

def test_control_characters_in_names_are_escaped(tmp_path, capsys):
    net = Net()
    y = net.add("Sigmoid", [net.quant(net.input("x", ["N", 4]), 2 ** -5)], out="s\n\x1b[31mred\u202e")
    net.output(net.quant(y, 2 ** -7), ["N", 4])
    onnx.save(net.model(), tmp_path / "names.onnx")
    line = run_error(capsys, "compile", str(tmp_path / "names.onnx"), "-t", "python",
                     "-o", str(tmp_path / "o"))
    assert "\x1b" not in line and "\u202e" not in line
    assert "s\\n\\x1b[31mred\\u202e" in line


def test_huge_inputs_give_no_numpy_warnings(work, capsys):
    # float64 inputs beyond float32 saturate like onnxruntime's; numpy's RuntimeWarnings leaked
    np.save("xh.npy", np.full((3, np.load("x.npy").shape[1]), 1e300))
    out, err = run_ok(capsys, "verify", "m.onnx", "-t", "python", "--inputs", "xh.npy")
    assert err == "" and "0 mismatches" in out


@pytest.mark.parametrize("values", [np.full((3, 5), "a"), np.full((3, 5), 1 + 2j)])
def test_inputs_that_are_not_real_numbers(work, capsys, values):
    np.save("xw.npy", values)
    line = run_error(capsys, "verify", "m.onnx", "-t", "python", "--inputs", "xw.npy")
    assert f"xw.npy: holds {values.dtype} values" in line


# tools that are missing, targets that cannot run ---------------------------------------------

class _NoLoadBackend(PythonBackend):
    """A plugin as its README allows: emit() only, no load()."""
    name = "noload"
    load = backend_mod.Backend.load


def test_verify_on_a_target_without_load(work, capsys, monkeypatch):
    targets = dict(backend_mod.available_targets())
    targets["noload"] = _EntryPoint(_NoLoadBackend)
    monkeypatch.setattr(backend_mod, "available_targets", lambda: targets)
    run_ok(capsys, "compile", "m.onnx", "-t", "noload", "-o", "o")
    line = run_error(capsys, "verify", "m.onnx", "-t", "noload", "--inputs", "x.npy")
    assert "target 'noload' cannot run its programs" in line


def test_host_executor_without_gcc(work, capsys, monkeypatch):
    import shutil
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "gcc" else which(name, *a, **k))
    line = run_error(capsys, "verify", "m.onnx", "-t", "ch32v003", "--option", "executor=host",
                     "--inputs", "x.npy", "--limit", "2")
    assert "ch32v003: --option executor=host: gcc not found on PATH" in line


def test_without_the_riscv_compiler_the_summary_says_what_was_not_measured(work, capsys, monkeypatch):
    from tinycc_nn.backends.ch32v003 import firmware
    monkeypatch.setattr(firmware, "have_cross_compiler", lambda: False)
    out, err = run_ok(capsys, "compile", "m.onnx", "-t", "ch32v003", "-o", "o")
    assert "None" not in out and "ROM" not in out
    assert "not installed: C files written, flash/RAM/cycles not measured" in err


def test_without_sdcc_the_message_names_sdaspdk13(work, capsys, monkeypatch):
    from tinycc_nn.backends.pdk import sdas
    monkeypatch.setattr(sdas, "available", lambda core="pdk13": False)
    line = run_error(capsys, "verify", "m.onnx", "-t", "pms150c", "--inputs", "x.npy", "--limit", "1")
    assert "running needs sdaspdk13 and sdldpdk" in line


def test_an_option_that_cannot_apply_is_reported(work, capsys):
    # the 8x8 example's layers cannot share reads on the PFS154: the option was silently dropped
    model = str(EXAMPLES / "mnist8x8" / "model.onnx")
    _, err = run_ok(capsys, "compile", model, "-t", "pfs154", "-o", "o", "--option", "reads_shared_by=4")
    assert json.loads((work / "o" / "report.json").read_text())["reads_shared_by"] == 1
    assert err == ("tinycc-nn: warning: --option reads_shared_by=4 could not apply to this model "
                   "on pfs154; the program has reads_shared_by=1\n")


# progress on a terminal only --------------------------------------------------------------------

@pytest.mark.parametrize("argv, bar", [
    (["verify", "m.onnx", "-t", "python", "--inputs", "x.npy"], True),
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", "y.npz"], True),
    (["verify", "m.onnx", "-t", "python", "--inputs", "x.npy", "--json"], False),
])
def test_a_progress_bar_on_a_terminal(work, capsys, monkeypatch, argv, bar):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    out, err = run_ok(capsys, *argv)
    assert ("/30 [" in err) == bar
    assert ("python: verify:" in err or "python: run:" in err) == bar
    if "--json" in argv:
        assert json.loads(out)["mismatches"] == 0
    if "run" in argv:
        with np.load("y.npz") as z:
            want = tinycc_nn.compile("m.onnx", "python").run(np.load("x.npy"))
            assert all(np.array_equal(z[k], want[k]) for k in want)


def test_no_progress_bar_when_stderr_is_not_a_terminal(work, capsys):
    _, err = run_ok(capsys, "verify", "m.onnx", "-t", "python", "--inputs", "x.npy")
    assert err == ""


@pytest.mark.parametrize("argv, fragment", [
    (["verify", "m.onnx", "-t", "python", "--inputs", "x0.npy"], "x0.npy: holds no inputs (shape [0, "),
    (["run", "m.onnx", "-t", "python", "--inputs", "x0.npy", "-o", "y.npy"], "x0.npy: holds no inputs"),
    (["compile", "m.onnx", "-t", "python", "-o", ""], "-o: an empty folder name"),
    (["run", "m.onnx", "-t", "python", "--inputs", "x.npy", "-o", ""], "-o: an empty file name"),
    (["compile", "m.onnx", "-t", "python", "-o", "o", "--option", "opt=fast"], "opt='fast': expected size or speed"),
])
def test_more_user_errors(work, capsys, argv, fragment):
    np.save("x0.npy", np.zeros((0, 5), np.float32))
    assert fragment in run_error(capsys, *argv)
    assert not (work / "o").exists() and not (work / "m.python").exists()


def test_ort_optimized_on_a_tir_says_it_has_no_effect(work, capsys):
    Path("m.tir").write_text(tinycc_nn.compile("m.onnx", "python", stop_after="import").ir_text)
    _, err = run_ok(capsys, "verify", "m.tir", "-t", "python", "--inputs", "x.npy", "--ort-optimized")
    assert "warning: --ort-optimized: a .tir model is compared with the python reference" in err
