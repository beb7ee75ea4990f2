"""What each instruction form does and costs, shared by pdk13 and pdk14 (only the encodings
differ between the cores, see `isa_pdk13` / `isa_pdk14`).

Semantics are Python statements over the CPU state, which the simulator's translator
(`translate.py`) pastes into generated code after filling in the operands ``{M} {IO} {k}
{n}`` and the numbers derived from them ``{M1}`` (M + 1), ``{k15}`` (k & 15), ``{bit}``
(1 << n), ``{nbit}`` (the other seven bits): the translator lifts numbers out of the code
it compiles, so constant sub-expressions must be folded here. State names: ``a``; flags
``z c ac ov`` (0/1); RAM list ``m``; temporaries ``r t u v w p q`` (the translator's own: ``s
n cy``). Words in capitals are expanded by the translator, because they depend on the part
or on an address only known per instruction:

* ``IOR`` / ``IOW = x``: read / write I/O register ``{IO}`` (0x00 is FLAG, 0x02 is SP, checked
  against the stack limit; other addresses are plain latches).
* ``FLAGS`` / ``FLAGS = x``: the flag byte, Z bit 0, C bit 1, AC bit 2, OV bit 3.
* ``RAM_BYTES``: the part's RAM size. ``CHECK cond, what``: fault unless ``cond``.
* ``PUSH x, y`` / ``POP x, y``: two stack bytes at SP, checked against the stack limit.
* Control: ``SKIP = cond``, ``GOTO k``, ``CALL k``, ``RET address``, ``PCADD``, ``STOP``,
  ``FAULT msg``.

Flags follow the free-pdk tables and the golden vectors: add-type instructions set C to the
carry out of bit 7, AC to the carry out of bit 3, OV to signed overflow; subtract-type ones set
C and AC to the borrows. ``nadd`` is an addition of a negated operand. Cycle sources: `isa`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Behaviour:
    cycles: int
    skip_cycles: int
    flags: tuple[str, ...]  # flags written
    semantics: tuple[str, ...] | None


def _sum(*terms: str) -> str:
    kept = [t for t in terms if t != "0"]
    return " + ".join(kept) if kept else "0"


def _nibble(operand: str) -> str:
    """The low nibble of an operand, folded where it is a known number."""
    if operand == "{k}":
        return "{k15}"
    return str(int(operand) & 15) if operand.isdigit() else f"({operand} & 15)"


def _minus(x: str, *terms: str) -> str:
    return " - ".join([x, *(t for t in terms if t != "0")])


def _add(x: str, y: str, carry: str = "0") -> tuple[str, ...]:
    # AC and OV read the old operands and the carry-in, so they come before `c` is written.
    return (f"r = {_sum(x, y, carry)}",
            f"ac = ({_sum(_nibble(x), _nibble(y), carry)}) >> 4",
            f"ov = (({x} ^ r) & ({y} ^ r)) >> 7 & 1",
            "z = (r & 255) == 0",
            "c = r >> 8 & 1")


def _sub(x: str, y: str, borrow: str = "0") -> tuple[str, ...]:
    return (f"r = {_minus(x, y, borrow)}",
            f"ac = ({_minus(_nibble(x), _nibble(y), borrow)}) >> 4 & 1",
            f"ov = (({x} ^ {y}) & ({x} ^ r)) >> 7 & 1",
            "z = (r & 255) == 0",
            "c = r >> 8 & 1")


def _arith(op, carry: str = "0") -> dict[str, tuple[str, ...]]:
    """The immediate, to-A and to-M forms of add/sub (carry "c": addc/subc)."""
    return {"#k": (*op("a", "{k}", carry), "a = r & 255"),
            "a, M": ("v = m[{M}]", *op("a", "v", carry), "a = r & 255"),
            "M, a": ("v = m[{M}]", *op("v", "a", carry), "m[{M}] = r & 255"),
            "a": (*op("a", "0", carry), "a = r & 255"),
            "M": ("v = m[{M}]", *op("v", "0", carry), "m[{M}] = r & 255")}


def _logic(symbol: str) -> dict[str, tuple[str, ...]]:
    return {"#k": (f"a = a {symbol} {{k}}", "z = a == 0"),
            "a, M": (f"a = a {symbol} m[{{M}}]", "z = a == 0"),
            "M, a": (f"t = m[{{M}}] {symbol} a", "m[{M}] = t", "z = t == 0")}


def _on_a_and_m(a_stmts: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A one-operand operation on A, and the same on M through the temporary `t`."""
    m_stmts = tuple(s.replace("a", "t") for s in a_stmts)
    return a_stmts, ("t = m[{M}]", *m_stmts, "m[{M}] = t")


_ADD, _SUB = _arith(_add), _arith(_sub)
_ADDC, _SUBC = _arith(_add, "c"), _arith(_sub, "c")
_AND, _OR, _XOR = _logic("&"), _logic("|"), _logic("^")
_NOT = _on_a_and_m(("a = a ^ 255", "z = a == 0"))
_NEG = _on_a_and_m(("a = -a & 255", "z = a == 0"))
_SR = _on_a_and_m(("c = a & 1", "a = a >> 1"))
_SL = _on_a_and_m(("c = a >> 7", "a = a << 1 & 255"))
_SRC = _on_a_and_m(("u = a & 1", "a = a >> 1 | c << 7", "c = u"))
_SLC = _on_a_and_m(("u = a >> 7", "a = (a << 1 | c) & 255", "c = u"))
_NOT_MODELLED = "FAULT '{form} is not modelled by the simulator'"
_IDXM_POINTER = ("p = m[{M}] | m[{M1}] << 8",
                 "CHECK p < RAM_BYTES, 'idxm pointer %d (read from 0x{M:02x}) outside RAM' % p")
ALL, Z, C = ("z", "c", "ac", "ov"), ("z",), ("c",)

FORMS: dict[str, Behaviour] = {
    "nop": Behaviour(1, 0, (), ()),
    "mov a, #k": Behaviour(1, 0, (), ("a = {k}",)),
    "mov a, M": Behaviour(1, 0, Z, ("a = m[{M}]", "z = a == 0")),
    "mov M, a": Behaviour(1, 0, (), ("m[{M}] = a",)),
    "mov.io a, IO": Behaviour(1, 0, Z, ("a = IOR", "z = a == 0")),
    "mov.io IO, a": Behaviour(1, 0, (), ("IOW = a",)),
    "xch a, M": Behaviour(1, 0, (), ("t = m[{M}]", "m[{M}] = a", "a = t")),
    "clear M": Behaviour(1, 0, (), ("m[{M}] = 0",)),
    "add a, #k": Behaviour(1, 0, ALL, _ADD["#k"]),
    "add a, M": Behaviour(1, 0, ALL, _ADD["a, M"]),
    "add M, a": Behaviour(1, 0, ALL, _ADD["M, a"]),
    "sub a, #k": Behaviour(1, 0, ALL, _SUB["#k"]),
    "sub a, M": Behaviour(1, 0, ALL, _SUB["a, M"]),
    "sub M, a": Behaviour(1, 0, ALL, _SUB["M, a"]),
    "addc a, M": Behaviour(1, 0, ALL, _ADDC["a, M"]),
    "addc M, a": Behaviour(1, 0, ALL, _ADDC["M, a"]),
    "addc a": Behaviour(1, 0, ALL, _ADDC["a"]),
    "addc M": Behaviour(1, 0, ALL, _ADDC["M"]),
    "subc a, M": Behaviour(1, 0, ALL, _SUBC["a, M"]),
    "subc M, a": Behaviour(1, 0, ALL, _SUBC["M, a"]),
    "subc a": Behaviour(1, 0, ALL, _SUBC["a"]),
    "subc M": Behaviour(1, 0, ALL, _SUBC["M"]),
    "inc M": Behaviour(1, 0, ALL, ("v = m[{M}]", *_add("v", "1"), "m[{M}] = r & 255")),
    "dec M": Behaviour(1, 0, ALL, ("v = m[{M}]", *_sub("v", "1"), "m[{M}] = r & 255")),
    "and a, #k": Behaviour(1, 0, Z, _AND["#k"]),
    "and a, M": Behaviour(1, 0, Z, _AND["a, M"]),
    "and M, a": Behaviour(1, 0, Z, _AND["M, a"]),
    "or a, #k": Behaviour(1, 0, Z, _OR["#k"]),
    "or a, M": Behaviour(1, 0, Z, _OR["a, M"]),
    "or M, a": Behaviour(1, 0, Z, _OR["M, a"]),
    "xor a, #k": Behaviour(1, 0, Z, _XOR["#k"]),
    "xor a, M": Behaviour(1, 0, Z, _XOR["a, M"]),
    "xor M, a": Behaviour(1, 0, Z, _XOR["M, a"]),
    "xor.io IO, a": Behaviour(1, 0, (), ("IOW = IOR ^ a",)),
    "not a": Behaviour(1, 0, Z, _NOT[0]),
    "not M": Behaviour(1, 0, Z, _NOT[1]),
    "neg a": Behaviour(1, 0, Z, _NEG[0]),
    "neg M": Behaviour(1, 0, Z, _NEG[1]),
    "sr a": Behaviour(1, 0, C, _SR[0]),
    "sr M": Behaviour(1, 0, C, _SR[1]),
    "sl a": Behaviour(1, 0, C, _SL[0]),
    "sl M": Behaviour(1, 0, C, _SL[1]),
    "src a": Behaviour(1, 0, C, _SRC[0]),
    "src M": Behaviour(1, 0, C, _SRC[1]),
    "slc a": Behaviour(1, 0, C, _SLC[0]),
    "slc M": Behaviour(1, 0, C, _SLC[1]),
    "swap a": Behaviour(1, 0, (), ("a = (a >> 4 | a << 4) & 255",)),
    "comp a, M": Behaviour(1, 0, ALL, ("v = m[{M}]", *_sub("a", "v"))),
    "comp M, a": Behaviour(1, 0, ALL, ("v = m[{M}]", *_sub("v", "a"))),
    "nadd a, M": Behaviour(1, 0, ALL, ("v = m[{M}]", "w = -a & 255", *_add("v", "w"), "a = r & 255")),
    "nadd M, a": Behaviour(1, 0, ALL, ("w = -m[{M}] & 255", *_add("w", "a"), "m[{M}] = r & 255")),
    # Conditional skips: 1 cycle, 1 more when the next instruction is skipped.
    "izsn a": Behaviour(1, 1, ALL, (*_add("a", "1"), "a = r & 255", "SKIP = a == 0")),
    "izsn M": Behaviour(1, 1, ALL, ("v = m[{M}]", *_add("v", "1"), "m[{M}] = r & 255", "SKIP = z")),
    "dzsn a": Behaviour(1, 1, ALL, (*_sub("a", "1"), "a = r & 255", "SKIP = a == 0")),
    "dzsn M": Behaviour(1, 1, ALL, ("v = m[{M}]", *_sub("v", "1"), "m[{M}] = r & 255", "SKIP = z")),
    "ceqsn a, #k": Behaviour(1, 1, ALL, (*_sub("a", "{k}"), "SKIP = a == {k}")),
    "ceqsn a, M": Behaviour(1, 1, ALL, ("v = m[{M}]", *_sub("a", "v"), "SKIP = a == v")),
    "cneqsn a, #k": Behaviour(1, 1, ALL, (*_sub("a", "{k}"), "SKIP = a != {k}")),
    "cneqsn a, M": Behaviour(1, 1, ALL, ("v = m[{M}]", *_sub("a", "v"), "SKIP = a != v")),
    "t0sn M, #n": Behaviour(1, 1, (), ("SKIP = not m[{M}] & {bit}",)),
    "t1sn M, #n": Behaviour(1, 1, (), ("SKIP = m[{M}] & {bit}",)),
    "t0sn.io IO, #n": Behaviour(1, 1, (), ("SKIP = not IOR & {bit}",)),
    "t1sn.io IO, #n": Behaviour(1, 1, (), ("SKIP = IOR & {bit}",)),
    "set0 M, #n": Behaviour(1, 0, (), ("m[{M}] = m[{M}] & {nbit}",)),
    "set1 M, #n": Behaviour(1, 0, (), ("m[{M}] = m[{M}] | {bit}",)),
    "set0.io IO, #n": Behaviour(1, 0, (), ("IOW = IOR & {nbit}",)),
    "set1.io IO, #n": Behaviour(1, 0, (), ("IOW = IOR | {bit}",)),
    "swapc.io IO, #n": Behaviour(1, 0, C, ("t = IOR", "u = t >> {n} & 1",
                                             "IOW = t & {nbit} | c << {n}", "c = u")),
    "idxm a, M": Behaviour(2, 0, (), (*_IDXM_POINTER, "a = m[p]")),
    "idxm M, a": Behaviour(2, 0, (), (*_IDXM_POINTER, "m[p] = a")),
    "pushaf": Behaviour(1, 0, (), ("PUSH a, FLAGS",)),
    "popaf": Behaviour(1, 0, ALL, ("POP a, q", "FLAGS = q")),
    "goto k": Behaviour(2, 0, (), ("GOTO {k}",)),
    "call k": Behaviour(2, 0, (), ("CALL {k}",)),
    "ret": Behaviour(2, 0, (), ("POP p, q", "RET p | q << 8")),
    "ret #k": Behaviour(2, 0, (), ("POP p, q", "a = {k}", "RET p | q << 8")),
    "reti": Behaviour(2, 0, (), ("POP p, q", "RET p | q << 8")),
    "pcadd a": Behaviour(2, 0, (), ("PCADD",)),
    "stopsys": Behaviour(1, 0, (), ("STOP",)),
    # No interrupt sources, watchdog or wake-up events exist in the simulator: enabling or
    # disabling interrupts and feeding the watchdog change nothing it can observe, while
    # waiting for a wake-up (stopexe) or resetting the chip would never come back.
    "engint": Behaviour(1, 0, (), ()),
    "disgint": Behaviour(1, 0, (), ()),
    "wdreset": Behaviour(1, 0, (), ()),
    "stopexe": Behaviour(1, 0, (), ("FAULT 'stopexe waits for a wake-up event, which is not modelled'",)),
    "reset": Behaviour(1, 0, (), ("FAULT 'reset instruction (chip reset is not modelled)'",)),
    # Accepted by sdas, but timer16 is not modelled, mul exists on no pdk13/pdk14 part, and
    # the documentation of ldsptl/ldspth is contradicted by simulators (TARGETS.md).
    "ldt16 M": Behaviour(1, 0, (), (_NOT_MODELLED.format(form="ldt16"),)),
    "stt16 M": Behaviour(1, 0, (), (_NOT_MODELLED.format(form="stt16"),)),
    "mul": Behaviour(1, 0, (), (_NOT_MODELLED.format(form="mul"),)),
    "ldsptl": Behaviour(1, 0, (), (_NOT_MODELLED.format(form="ldsptl"),)),
    "ldspth": Behaviour(1, 0, (), (_NOT_MODELLED.format(form="ldspth"),)),
}
