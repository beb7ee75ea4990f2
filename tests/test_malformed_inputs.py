"""Malformed inputs through the command line: every one is a user error (exit 2, one line,
nothing written), never a crash (exit 3), a hang or a memory blow-up.

The corpus: truncated and bit-flipped protobufs, cycles, missing initializers, wrong
element types, bad scales, huge dimensions, external data outside the model's folder,
files too large for any part, and bad .tir text.
"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnx_cases import Net, f32
from tinycc_nn.cli import main
from tinycc_nn.limits import MAX_MODEL_BYTES


def _matmul_net(scale_x=2 ** -5, scale_w=0.25, scale_y=2 ** -3, w_dtype=np.int8, in_features=4):
    net = Net()
    xq = net.quant(net.input("x", ["N", in_features]), scale_x)
    w = net.add("DequantizeLinear", [net.const(np.ones((in_features, 3), w_dtype), "w"),
                                     net.const(f32(scale_w), "ws")])
    net.output(net.quant(net.add("MatMul", [xq, w]), scale_y), ["N", 3])
    return net


def _good() -> bytes:
    return _matmul_net().model().SerializeToString()


def _with(edit) -> bytes:
    model = _matmul_net().model()
    edit(model)
    return model.SerializeToString()


def _cycle(m):
    # the MatMul reads the output of the requantization that follows it
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    mm.input[0] = m.graph.node[-1].output[0]


def _missing_initializer(m):
    del m.graph.initializer[-1]


def _float64_weights(m):
    w = next(t for t in m.graph.initializer if t.name.startswith("w"))
    w.CopyFrom(onnx.numpy_helper.from_array(np.ones((4, 3), np.float64), w.name))


def _int32_input(m):
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.INT32


def _scale(value):
    def edit(m):
        s = next(t for t in m.graph.initializer if t.name.startswith("s"))
        s.CopyFrom(onnx.numpy_helper.from_array(f32(value), s.name))
    return edit


def _huge_input(m):
    for vi in (*m.graph.input,):
        vi.type.tensor_type.shape.dim[1].dim_value = 10 ** 9


def _huge_constant_of_shape(m):
    shape = helper.make_tensor("big_shape", TensorProto.INT64, [2], [100000, 100000])
    m.graph.initializer.append(shape)
    m.graph.node.append(helper.make_node("ConstantOfShape", ["big_shape"], ["big"]))
    m.graph.output.append(helper.make_tensor_value_info("big", TensorProto.FLOAT, None))


def _empty_graph(m):
    del m.graph.node[:]


MODELS = {
    "empty file": b"",
    "text": b"not a protobuf\n",
    "truncated": _good()[:len(_good()) // 2],
    "truncated by one": _good()[:-1],
    "cycle": _with(_cycle),
    "missing initializer": _with(_missing_initializer),
    "float64 weights": _with(_float64_weights),
    "int32 input": _with(_int32_input),
    "zero scale": _with(_scale(0.0)),
    "negative scale": _with(_scale(-0.25)),
    "nan scale": _with(_scale(np.nan)),
    "inf scale": _with(_scale(np.inf)),
    "huge input": _with(_huge_input),
    "huge ConstantOfShape": _with(_huge_constant_of_shape),
    "no nodes": _with(_empty_graph),
}


def _compile(capsys, path, out):
    code = main(["compile", str(path), "-t", "python", "-o", str(out)])
    err = capsys.readouterr().err
    return code, err


def _assert_user_error(code, err, out):
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("tinycc-nn: error: "), err
    assert not out.exists()


@pytest.mark.parametrize("case", sorted(MODELS))
def test_malformed_model(tmp_path, capsys, case):
    path = tmp_path / "m.onnx"
    path.write_bytes(MODELS[case])
    code, err = _compile(capsys, path, tmp_path / "o")
    _assert_user_error(code, err, tmp_path / "o")
    assert str(path) in err or "tensor" in err or "node" in err or "'" in err


@pytest.mark.parametrize("seed", range(40))
def test_bit_flipped_model_compiles_or_is_refused(tmp_path, capsys, seed):
    data = bytearray(_good())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(data), 1 + seed % 3):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    path = tmp_path / "m.onnx"
    path.write_bytes(bytes(data))
    code, err = _compile(capsys, path, tmp_path / "o")
    if code != 0:
        _assert_user_error(code, err, tmp_path / "o")


def test_external_data_outside_the_folder(tmp_path, capsys):
    model = _matmul_net().model()
    (tmp_path / "sub").mkdir()
    np.ones(12, np.int8).tofile(tmp_path / "outside.bin")
    w = next(t for t in model.graph.initializer if t.name.startswith("w"))
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../outside.bin"
    onnx.save(model, tmp_path / "sub" / "m.onnx")
    code, err = _compile(capsys, tmp_path / "sub" / "m.onnx", tmp_path / "o")
    _assert_user_error(code, err, tmp_path / "o")
    assert f"tensor '{w.name}' keeps its data in '../outside.bin', outside the model's folder" in err
    # beside the model it loads, and a missing file is named
    np.ones(12, np.int8).tofile(tmp_path / "sub" / "w.bin")
    entry.value = "w.bin"
    onnx.save(model, tmp_path / "sub" / "m.onnx")
    code, err = _compile(capsys, tmp_path / "sub" / "m.onnx", tmp_path / "o")
    assert code == 0, err
    entry.value = "gone.bin"
    onnx.save(model, tmp_path / "sub" / "m.onnx")
    code, err = _compile(capsys, tmp_path / "sub" / "m.onnx", tmp_path / "o2")
    _assert_user_error(code, err, tmp_path / "o2")
    assert "'gone.bin', which does not exist" in err


def test_a_model_file_too_large_for_any_part_is_refused_before_reading(tmp_path, capsys):
    # a 105 MB model took 78 s and 7.6 GB before its refusal
    path = tmp_path / "big.onnx"
    with open(path, "wb") as f:
        f.truncate(MAX_MODEL_BYTES + 1)          # sparse: nothing to read
    code, err = _compile(capsys, path, tmp_path / "o")
    _assert_user_error(code, err, tmp_path / "o")
    assert f"{MAX_MODEL_BYTES + 1} bytes; tinycc-nn reads models of at most {MAX_MODEL_BYTES}" in err


def _tir(capsys, tmp_path):
    assert main(["ir", _write_model(tmp_path), "--after", "import"]) == 0
    return capsys.readouterr().out


def _write_model(tmp_path):
    onnx.save(_matmul_net().model(), tmp_path / "m.onnx")
    return str(tmp_path / "m.onnx")


TIR_EDITS = {
    "not UTF-8": lambda t: b"\xff\xfe" + t.encode(),
    "nested 3000 deep": lambda t: t.replace("{name =", "{deep = " + "[" * 3000 + "1" + "]" * 3000
                                            + ", name =", 1).encode(),
    "type i999": lambda t: t.replace(": u8[4]", ": i999[4]", 1).replace(": i8[4]", ": i999[4]", 1).encode(),
    "type i0": lambda t: t.replace(": i8[4]", ": i0[4]", 1).replace(": u8[4]", ": u0[4]", 1).encode(),
    "type i8[1e12]": lambda t: t.replace("[4]", "[1000000000000]", 1).encode(),
    "garbage": lambda t: t[: len(t) // 2].encode(),
    "empty": lambda t: b"",
}


@pytest.mark.parametrize("case", sorted(TIR_EDITS))
def test_malformed_tir(tmp_path, capsys, case):
    text = _tir(capsys, tmp_path)
    data = TIR_EDITS[case](text)
    assert data != text.encode()
    path = tmp_path / "m.tir"
    path.write_bytes(data)
    code = main(["compile", str(path), "-t", "python", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"tinycc-nn: error: {path}")
    assert "Traceback" not in err and not (tmp_path / "o").exists()


# under a memory limit: what exhausted memory now compiles or is refused ---------------------------

def _int16_multiplier_model():
    # an int16 output finer than the accumulator unit needs a multiplier over 65535 levels:
    # the fit allocated levels x levels (32 GiB) and died with exit 3
    net = Net()
    xq = net.quant(net.input("x", ["N", 1]), 2 ** -1, dtype="int16")
    w = net.add("DequantizeLinear", [net.const(np.array([[3]], np.int8), "w"), net.const(f32(0.25), "ws")])
    net.output(net.quant(net.add("MatMul", [xq, w]), 2 ** -4, dtype="int16"), ["N", 1])
    return net.model()


_LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from tinycc_nn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("case, code", [("int16 multiplier", 0), ("huge input", 2),
                                        ("huge ConstantOfShape", 2), ("tir i8[1e12]", 2),
                                        ("big file", 2)])
def test_under_a_memory_limit(tmp_path, case, code):
    import subprocess
    import sys
    if case == "int16 multiplier":
        path = tmp_path / "m.onnx"
        onnx.save(_int16_multiplier_model(), path)
    elif case == "tir i8[1e12]":
        path = tmp_path / "m.tir"
        path.write_text('graph @g {\n  %x = input() {name = "x", dtype = "float32", shape = ["N", '
                        '1000000000000], qdtype = "int8", scale = 0.5, zero_point = 0} : '
                        'i8[1000000000000] -128..127\n}\n')
    elif case == "big file":
        path = tmp_path / "m.onnx"
        with open(path, "wb") as f:
            f.truncate(MAX_MODEL_BYTES * 2)
    else:
        path = tmp_path / "m.onnx"
        path.write_bytes(MODELS[case])
    r = subprocess.run([sys.executable, "-c", _LIMITED, "compile", str(path), "-t", "python",
                        "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == code, r.stderr
    assert len(r.stderr.splitlines()) <= 1 + 2 * case.startswith("tir")
