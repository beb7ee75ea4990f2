"""Read the IR text form (.tir) with the lark grammar shipped in `grammar/`.

Errors name `file:line:col` and show the offending line with a caret under the
column, so a hand-edited IR file is as easy to fix as source code.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import json

import lark
import numpy as np

from .errors import TinyccError
from .ir import Graph, TensorType
from .limits import MAX_INT_BITS, too_many_values


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    text = resources.files("tinycc_nn.grammar").joinpath("tir.lark").read_text()
    return lark.Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True)


class _BadLiteral(Exception):
    def __init__(self, token, msg):
        super().__init__(msg)
        self.token, self.msg = token, msg


class _Values(lark.Transformer):
    def int(self, t):
        return int(t[0])

    def float(self, t):
        return float(t[0])

    def string(self, t):
        try:
            return json.loads(t[0])
        except ValueError as e:
            raise _BadLiteral(t[0], f"bad string literal ({e.msg.lower()})") from None

    def true(self, _):
        return True

    def false(self, _):
        return False

    def null(self, _):
        return None

    def list(self, items):
        return list(items)

    def empty_list(self, _):
        return []


def _caret(text: str, filename: str, line: int, col: int, msg: str) -> TinyccError:
    src = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
    err = TinyccError(f"{filename}:{line}:{col}: {msg}\n  {src}\n  {' ' * (col - 1)}^")
    err.caret = True        # three lines on purpose: the location, the source, the caret
    return err


def parse(text: str, filename: str = "<tir>") -> Graph:
    try:
        return _parse(text, filename)
    except RecursionError:      # lark's tree walk recurses once per nesting level
        raise TinyccError(f"{filename}: values nested too deeply to read") from None


def _parse(text: str, filename: str) -> Graph:
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        if isinstance(e, lark.exceptions.UnexpectedEOF) or (
                isinstance(e, lark.exceptions.UnexpectedToken) and e.token.type == "$END"):
            lines = text.splitlines() or [""]
            line, col, msg = len(lines), len(lines[-1]) + 1, "unexpected end of file"
        else:
            line, col = e.line, e.column
            tok = getattr(e, "token", None)
            msg = f"unexpected '{tok}'" if tok is not None else "unexpected character"
        raise _caret(text, filename, line, col, msg) from None
    try:
        tree = _Values().transform(tree)
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, _BadLiteral):
            tok = e.orig_exc.token
            raise _caret(text, filename, tok.line, tok.column, e.orig_exc.msg) from None
        raise
    graph = Graph(str(tree.children[0])[1:])
    for stmt in tree.children[1:]:
        _add_stmt(graph, stmt, text, filename)
    return graph


def _add_stmt(graph: Graph, stmt, text: str, filename: str) -> None:
    name_tok, op_tok, *rest = stmt.children
    name = str(name_tok)[1:]
    operands, attrs, type_ = [], {}, None
    for item in rest:
        if isinstance(item, lark.Token) and item.type == "VALUE":
            operands.append(item)
        elif isinstance(item, lark.Tree) and item.data == "attrs":
            for attr in item.children:
                if attr is not None:
                    attrs[str(attr.children[0])] = attr.children[1]
        elif isinstance(item, lark.Tree) and item.data == "type":
            type_ = _type(item, text, filename)
    for tok in operands:
        if tok[1:] not in graph.g:
            raise _caret(text, filename, tok.line, tok.column, f"{tok} is used before it is defined")
    if name in graph.g:
        raise _caret(text, filename, name_tok.line, name_tok.column, f"%{name} is defined twice")
    if op_tok == "const" and "values" in attrs:
        attrs["values"] = np.asarray(attrs["values"], dtype=np.int64)
    graph.add(name, str(op_tok), [str(t)[1:] for t in operands], attrs, type_)


def _type(tree, text: str, filename: str) -> TensorType:
    typename, *dims, lo, hi = tree.children
    bits = int(typename[1:])
    if not 1 <= bits <= MAX_INT_BITS:
        raise _caret(text, filename, typename.line, typename.column,
                     f"type {typename}: widths are 1 to {MAX_INT_BITS} bits")
    dims = [int(d) for d in dims if d is not None]
    count = 1
    for d in dims:
        count *= d
    refusal = too_many_values(count, f"type {typename}{dims}")
    if refusal:
        raise _caret(text, filename, typename.line, typename.column, refusal)
    return TensorType(typename[0] == "i", bits, tuple(dims), int(lo), int(hi))


def parse_file(path) -> Graph:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise TinyccError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise TinyccError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                          f"{e.start}); a .tir file is what `tinycc-nn ir` prints") from None
    return parse(text, str(path))
