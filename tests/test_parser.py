"""tinycc_nn/parser.py: reading .tir, error positions with a caret, and .tir files as models."""
import numpy as np
import pytest

import qdq
import tinycc_nn
from tinycc_nn import TinyccError
from tinycc_nn.cli import main
from tinycc_nn.ir import TensorType, verify
from tinycc_nn.parser import parse, parse_file

GOOD = '''# tinycc-nn IR
graph @g {   # comments run to the end of the line
  %x = input() {name = "x", dtype = "float32", shape = ["N", 2], qdtype = "int8",
                scale = 0.5, zero_point = 0} : i8[2] -128..127
  %w = const() {values = [[1, -1], [2, 0]]} : i3[2, 2] -1..2
  %y = matmul(%x, %w) : i10[2] -384..381
  %k = argmax(%y) {last = true} : u1[] 0..1
  %o = output(%k) {name = "k", dtype = "int64", shape = ["N"], float_ops = []}
}
'''


def test_parse_reads_ops_operands_attrs_types():
    g = parse(GOOD)
    assert g.name == "g"
    assert g.order() == ["x", "w", "y", "k", "o"]
    assert g.operands("y") == ["x", "w"]
    assert g.op("k") == "argmax" and g.attrs("k") == {"last": True}
    assert g.type("y") == TensorType(True, 10, (2,), -384, 381)
    assert g.type("k") == TensorType(False, 1, (), 0, 1)
    assert g.type("o") is None
    values = g.attrs("w")["values"]
    assert isinstance(values, np.ndarray) and values.dtype == np.int64
    assert values.tolist() == [[1, -1], [2, 0]]
    assert g.attrs("x")["shape"] == ["N", 2] and g.attrs("x")["scale"] == 0.5
    assert type(g.attrs("x")["zero_point"]) is int
    assert g.attrs("o")["float_ops"] == []
    verify(g)


def test_parse_accepts_empty_attr_braces_and_untyped_values():
    g = parse('graph @g {\n  %x = input() {} \n}')
    assert g.attrs("x") == {} and g.type("x") is None


def _error(text, filename="<tir>"):
    with pytest.raises(TinyccError) as e:
        parse(text, filename)
    return str(e.value)


def _caret_column(message):
    """The 1-based column the caret points at, and the quoted source line."""
    head, src, caret = message.split("\n")
    assert src.startswith("  ") and caret.startswith("  ")
    return caret.index("^") - 2 + 1, src[2:]


def test_syntax_error_names_file_line_col_with_caret():
    text = GOOD.replace("%y = matmul(%x, %w)", "%y = matmul(%x %w)")
    msg = _error(text, "model.tir")
    line_no = text.splitlines().index("  %y = matmul(%x %w) : i10[2] -384..381") + 1
    col = text.splitlines()[line_no - 1].index("%w") + 1
    assert msg.startswith(f"model.tir:{line_no}:{col}: unexpected '%w'")
    caret_col, src = _caret_column(msg)
    assert src == text.splitlines()[line_no - 1]
    assert caret_col == col and src[caret_col - 1:].startswith("%w")


def test_bad_character_error_points_at_it():
    text = 'graph @g {\n  %x = input() {name = "x"} : u8[1] 0..255 $\n}\n'
    msg = _error(text)
    assert msg.startswith("<tir>:2:")
    caret_col, src = _caret_column(msg)
    assert src[caret_col - 1] == "$"


def test_unexpected_end_of_file():
    text = 'graph @g {\n  %x = input() {name = "x"} : u8[1] 0..255\n'
    msg = _error(text, "cut.tir")
    assert msg.startswith("cut.tir:2:")     # holds today
    assert "unexpected end of file" in msg.splitlines()[0]
    caret_col, src = _caret_column(msg)
    assert caret_col == len(src) + 1


def test_use_before_definition():
    text = GOOD.replace("%y = matmul(%x, %w)", "%y = matmul(%x, %v)")
    msg = _error(text, "m.tir")
    line_no = next(i for i, ln in enumerate(text.splitlines(), 1) if "%v)" in ln)
    col = text.splitlines()[line_no - 1].index("%v") + 1
    assert msg.startswith(f"m.tir:{line_no}:{col}: %v is used before it is defined")
    assert _caret_column(msg)[0] == col


def test_use_before_definition_of_a_later_value():
    text = ('graph @g {\n  %a = clamp(%b) {lo = 0, hi = 1}\n'
            '  %b = input() {name = "b"} : u8[1] 0..255\n}\n')
    assert _error(text).startswith("<tir>:2:14: %b is used before it is defined")


def test_duplicate_definition():
    text = GOOD.replace('  %k = argmax(%y)', '  %y = argmax(%y)').replace("output(%k)", "output(%y)")
    msg = _error(text, "dup.tir")
    line_no = next(i for i, ln in enumerate(text.splitlines(), 1) if "argmax" in ln)
    assert msg.startswith(f"dup.tir:{line_no}:3: %y is defined twice")
    assert _caret_column(msg)[0] == 3


@pytest.mark.parametrize("literal, value", [
    ("0.1", 0.1), ("1e-05", 1e-05), ("-0.0", -0.0), ("2.", 2.0), ("+1.5", 1.5), ("1E3", 1000.0),
    ("inf", float("inf")), ("-inf", float("-inf")), ("0.10000000149011612", float(np.float32(0.1))),
    ("-7", -7), ("+3", 3), ("true", True), ("false", False), ("null", None), ('"a\\"b"', 'a"b'),
    ("[]", []), ("[1, [2.5, null], \"s\"]", [1, [2.5, None], "s"]),
])
def test_literals(literal, value):
    got = parse('graph @g {\n  %x = input() {v = ' + literal + '}\n}').attrs("x")["v"]
    assert got == value and type(got) is type(value)


def test_list_of_one_null():
    assert parse('graph @g {\n  %x = input() {v = [null]}\n}').attrs("x")["v"] == [None]


def test_parse_file_names_the_file(tmp_path):
    p = tmp_path / "broken.tir"
    p.write_text("graph @g {\n  %x = = input()\n}\n")
    with pytest.raises(TinyccError, match=r"broken\.tir:2:8: "):
        parse_file(p)
    with pytest.raises(TinyccError, match=r"missing\.tir: cannot read"):
        parse_file(tmp_path / "missing.tir")


# .tir files through the command line and compile ----------------------------------------

@pytest.fixture
def mlp(tmp_path, rng):
    m = qdq.random_mlp(rng, max_width=12, max_depth=3)
    m.argmax = True
    path = tmp_path / "m.onnx"
    import onnx
    onnx.save(qdq.build(m), path)
    x = qdq.random_inputs(rng, m, 30)
    np.save(tmp_path / "x.npy", x)
    return path, x


def test_ir_file_round_trips_through_the_cli(mlp, tmp_path, capsys):
    path, x = mlp
    assert main(["ir", str(path), "--after", "import"]) == 0
    text = capsys.readouterr().out
    tir = tmp_path / "m.tir"
    tir.write_text(text)
    # the printed IR, read back and printed again, is the same text
    assert main(["ir", str(tir), "--after", "import"]) == 0
    assert capsys.readouterr().out == text
    # and the whole pipeline gives the same final IR from the .tir as from the .onnx
    assert main(["ir", str(path)]) == 0
    final = capsys.readouterr().out
    assert main(["ir", str(tir)]) == 0
    assert capsys.readouterr().out == final


def test_compile_of_a_tir_file_matches_the_onnx_model(mlp, tmp_path):
    path, x = mlp
    tir = tmp_path / "m.tir"
    tir.write_text(tinycc_nn.compile(path, "python", stop_after="import").ir_text)
    from_onnx = tinycc_nn.compile(path, "python").run(x)
    from_tir = tinycc_nn.compile(tir, "python").run(x)
    assert list(from_tir) == list(from_onnx)
    for name in from_onnx:
        assert from_tir[name].dtype == from_onnx[name].dtype
        assert np.array_equal(from_tir[name], from_onnx[name])
    # the final IR (after plan-ram) is also a valid model to compile again
    final = tmp_path / "final.tir"
    final.write_text(tinycc_nn.compile(path, "python").ir_text)
    again = tinycc_nn.compile(final, "python").run(x)
    for name in from_onnx:
        assert np.array_equal(again[name], from_onnx[name])


def test_compile_of_an_invalid_tir_reports_verify_error(tmp_path):
    bad = tmp_path / "bad.tir"
    bad.write_text(GOOD.replace("i10[2] -384..381", "i16[2] -384..383"))
    with pytest.raises(TinyccError, match="%y = matmul: type is i16"):
        tinycc_nn.compile(bad, "python")


@pytest.mark.parametrize("literal", ['"a\\qb"', '"tab\there"'], ids=["bad-escape", "raw-tab"])
def test_bad_string_literal_is_a_parse_error(tmp_path, capsys, literal):
    text = 'graph @g {\n  %x = input() {name = ' + literal + '} : u8[1] 0..255\n}\n'
    msg = _error(text, "s.tir")
    assert msg.startswith("s.tir:2:")
    path = tmp_path / "s.tir"
    path.write_text(text)
    assert main(["ir", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"tinycc-nn: error: {path}:2:")
