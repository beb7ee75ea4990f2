"""Padauk pdk13 / pdk14 instruction sets: one table per core, read by the emitter, the
size/cycle estimator and the simulator alike, so the three cannot disagree.

An `Entry` is one instruction form (``"add a, M"``, ``"t0sn.io IO, #n"``, ``"goto k"``): its
encoding on one core (opcode, mask, operand fields) merged with its behaviour, which is the
same on both cores (cycles, flags, semantics, see `isa_forms`). Encodings come from the
free-pdk instruction-set tables (free-pdk.github.io, "PADAUK FPPA 13/14 bit instruction set")
and were checked word for word against Debian's sdas 4.2 (`tests/backends/pdk/test_isa.py`).

Operand text is the sdas syntax SDCC emits, with numbers where SDCC writes symbols:
``M`` and ``IO`` are addresses (``0x12``), ``#k`` an 8-bit immediate, ``#n`` a bit number,
``k`` a code *word* address (``goto 0x010``). I/O forms carry the ``.io`` suffix
(``mov.io a, 0x02``); as in sdas, ``f`` and ``sp`` name I/O 0x00 and 0x02, and ``z c ac ov``
the flag bit numbers 0-3 (``t1sn.io f, c``).
sdas 4.2 rejects the ``M.n`` bit syntax of the Padauk manuals: write ``t0sn M, #n``.

Cycle model (one number per form in `isa_forms`, plus `Entry.skip_cycles` for a taken skip):

* 1 cycle for every instruction not listed below (Padauk datasheets: "1T" instructions).
* 2 for ``goto k``, ``call k``, ``idxm`` (both directions): free-pdk instruction-set tables
  ("address in words, 2 cycles", "M must be word aligned, 2 cycles").
* 2 for ``ret``, ``ret #k``, ``reti`` and ``pcadd a``: chosen, because every instruction that
  loads the program counter non-sequentially refills the fetch stage like goto/call do; this
  is the Padauk datasheets' rule for "2T" instructions. Other sources disagree (naken_asm's
  pdk tables count ret and pcadd as 1; SDCC's pdk code generator costs ``ret`` 1 and
  ``pcadd`` 2; ucsim's counts are approximate), so these four are the uncertain numbers.
* Conditional skips (``izsn dzsn ceqsn cneqsn t0sn t1sn``, memory and I/O forms): 1 when the
  next instruction executes, 2 when it is skipped (``skip_cycles = 1`` extra), the Padauk
  datasheets' rule for "condition met" skips and naken_asm's 1/2 columns alike.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from . import isa_forms


class IllegalOpcode(ValueError):
    """A program word that encodes no instruction of the core."""


@dataclass(frozen=True)
class Field:
    """An operand stored as ``value << shift`` in ``width`` bits.

    ``align`` > 1 means the low bits of the value are fixed by the opcode (the even RAM
    address of ``idxm``, ``ldt16``, ``stt16``), so the value must be a multiple of it.
    """

    name: str
    shift: int
    width: int
    align: int = 1

    @property
    def max(self) -> int:
        return (1 << self.width) - self.align

    def bits(self, value: int) -> int:
        if not 0 <= value <= self.max or value % self.align:
            step = f" in steps of {self.align}" if self.align > 1 else ""
            raise ValueError(f"operand {self.name}={value} outside 0..{self.max}{step}")
        return value << self.shift

    def value(self, word: int) -> int:
        return (word >> self.shift) & ((1 << self.width) - self.align)


@dataclass(frozen=True)
class Entry:
    """One instruction form on one core; every number the tools need about it."""

    form: str                 # "add a, M": mnemonic and operand pattern
    opcode: int
    mask: int                 # bits fixed by the form; the rest belong to `fields`
    fields: tuple[Field, ...]
    cycles: int               # cycles when the next instruction is not skipped
    skip_cycles: int          # extra cycles when a skip is taken (0 for non-skips)
    flags: tuple[str, ...]    # flags written: some of "z", "c", "ac", "ov"
    semantics: tuple[str, ...] | None  # statements for the simulator; None: not modelled
    words: int = 1

    @property
    def mnemonic(self) -> str:
        return self.form.split(" ", 1)[0]

    @property
    def flow(self) -> str | None:
        """How control leaves the instruction: None (falls through), or the final
        statement's keyword: SKIP, GOTO, CALL, RET, PCADD, STOP, FAULT."""
        if not self.semantics:
            return None if self.semantics == () else "FAULT"
        head = re.match(r"[A-Z]+", self.semantics[-1])
        kind = head.group(0) if head else None
        return kind if kind in ("SKIP", "GOTO", "CALL", "RET", "PCADD", "STOP", "FAULT") else None


_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]+|0[bB][01]+|[1-9][0-9]*|0)$")
_IO_NAMES = {"f": 0x00, "sp": 0x02}
_FLAG_BITS = {"z": 0, "c": 1, "ac": 2, "ov": 3}  # bit numbers of FLAG, as in `t1sn.io f, c`


def _number(text: str, line: str) -> int:
    if not _NUMBER.match(text):
        raise ValueError(f"{line!r}: expected a number (decimal, 0x.. or 0b..), got {text!r}")
    return int(text, 0)


def _shape(form: str) -> tuple[str, ...]:
    """Operand kinds of a form: 'a' accumulator, '#' immediate/bit, '@' address."""
    operands = form.split(" ", 1)[1].split(", ") if " " in form else []
    return tuple("a" if op == "a" else "#" if op.startswith("#") else "@" for op in operands)


def _names(form: str) -> tuple[str | None, ...]:
    operands = form.split(" ", 1)[1].split(", ") if " " in form else []
    return tuple(None if op == "a" else op.lstrip("#") for op in operands)


@dataclass
class Core:
    """One core's table and the conversions over it: `lookup` (sdas text -> entry and
    operands), `encode` (-> word), `decode` (word -> entry and operands, IllegalOpcode if
    none), `format` / `disassemble` (-> sdas text that `lookup` and sdas read back)."""

    name: str
    word_bits: int
    entries: tuple[Entry, ...]
    aliases: dict[str, str] = field(default_factory=dict)  # accepted alternative forms
    _by_shape: dict = field(init=False, repr=False)
    _by_form: dict = field(init=False, repr=False)
    _decoded: list | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._by_form = {e.form: e for e in self.entries}
        self._by_shape = {(e.mnemonic, _shape(e.form)): e for e in self.entries}
        for alias, form in self.aliases.items():
            self._by_shape[(alias.split(" ", 1)[0], _shape(alias))] = self._by_form[form]

    def entry(self, form: str) -> Entry:
        return self._by_form[form]

    def lookup(self, line: str) -> tuple[Entry, dict[str, int]]:
        """Parse one sdas instruction (``"add a, 0x12"``; a ``;`` comment may follow)."""
        text = line.split(";", 1)[0].strip()
        mnemonic, _, rest = text.partition(" ")
        mnemonic = mnemonic.lower()
        raw = [op.strip() for op in rest.split(",")] if rest.strip() else []
        shape = tuple("a" if op.lower() == "a" else "#" if op.startswith("#") or op.lower() in _FLAG_BITS
                      else "@" for op in raw)
        entry = self._by_shape.get((mnemonic, shape))
        if entry is None:
            if any(re.fullmatch(r"\w+\.\d", op) for op in raw):
                raise ValueError(f"{line!r}: sdas 4.2 rejects 'M.n'; write 'M, #n'")
            raise ValueError(f"{line!r}: no {self.name} instruction has this form")
        operands: dict[str, int] = {}
        names = list(_names(entry.form))
        if len(names) != len(raw):  # an alias with an implicit accumulator ("xch M")
            names = [n for n in names if n is not None]
            raw = [op for op in raw if op.lower() != "a"]
        for name, op in zip(names, raw):
            if name is None:
                continue
            op = op.lstrip("#").strip()
            if name == "IO" and op.lower() in _IO_NAMES:
                operands[name] = _IO_NAMES[op.lower()]
            elif op.lower() in _FLAG_BITS:
                if name != "n":
                    raise ValueError(f"{line!r}: flag name {op!r} only stands for a bit number")
                operands[name] = _FLAG_BITS[op.lower()]
            else:
                operands[name] = _number(op, line)
        try:
            self.encode(entry, operands)  # range check now, with the line in hand
        except ValueError as error:
            raise ValueError(f"{line!r}: {error}") from None
        return entry, operands

    def encode(self, entry: Entry, operands: dict[str, int] | None = None) -> int:
        operands = operands or {}
        word = entry.opcode
        for f in entry.fields:
            if f.name not in operands:
                raise ValueError(f"{entry.form}: operand {f.name} missing")
            word |= f.bits(operands[f.name])
        extra = set(operands) - {f.name for f in entry.fields}
        if extra:
            raise ValueError(f"{entry.form}: unexpected operands {sorted(extra)}")
        return word

    def decode(self, word: int) -> tuple[Entry, dict[str, int]]:
        if self._decoded is None:
            self._decoded = self._decode_all()
        if not 0 <= word < len(self._decoded) or self._decoded[word] is None:
            raise IllegalOpcode(f"{self.name}: word 0x{word:04x} is no instruction")
        entry = self._decoded[word]
        return entry, {f.name: f.value(word) for f in entry.fields}

    def _decode_all(self) -> list:
        table: list = [None] * (1 << self.word_bits)
        for entry in self.entries:
            choices = [[v << f.shift for v in range(0, 1 << f.width, f.align)] for f in entry.fields]
            for bits in itertools.product(*choices):
                word = entry.opcode | sum(bits)
                if table[word] is not None:
                    raise AssertionError(f"{entry.form} overlaps {table[word].form} at 0x{word:04x}")
                table[word] = entry
        return table

    def format(self, entry: Entry, operands: dict[str, int] | None = None) -> str:
        """sdas text for an instruction; `lookup` reads it back."""
        operands = operands or {}
        out = []
        for op in (entry.form.split(" ", 1)[1].split(", ") if " " in entry.form else []):
            name = op.lstrip("#")
            if op == "a":
                out.append("a")
            elif op == "#n":
                out.append(f"#{operands['n']}")
            elif op == "#k":
                out.append(f"#0x{operands['k']:02x}")
            elif name == "k":
                out.append(f"0x{operands['k']:03x}")
            else:
                out.append(f"0x{operands[name]:02x}")
        return entry.mnemonic + (" " + ", ".join(out) if out else "")

    def disassemble(self, word: int) -> str:
        entry, operands = self.decode(word)
        return self.format(entry, operands)


def build_core(name: str, word_bits: int, encodings, aliases=None) -> Core:
    """Merge a core's encodings ``(form, opcode, fields)`` with the shared behaviour."""
    entries = []
    for form, opcode, fields in encodings:
        behaviour = isa_forms.FORMS[form]
        field_bits = 0
        for f in fields:
            field_bits |= ((1 << f.width) - f.align) << f.shift
        mask = ((1 << word_bits) - 1) & ~field_bits
        entries.append(Entry(form, opcode, mask, tuple(fields), behaviour.cycles,
                             behaviour.skip_cycles, behaviour.flags, behaviour.semantics))
    return Core(name, word_bits, tuple(entries), dict(aliases or {}))


def _cores() -> dict[str, Core]:
    from . import isa_pdk13, isa_pdk14
    return {"pdk13": isa_pdk13.PDK13, "pdk14": isa_pdk14.PDK14}


CORES: dict[str, Core] = _cores()
PDK13 = CORES["pdk13"]
PDK14 = CORES["pdk14"]
