"""Reads of contested flags: a program must not read a flag whose last writer, on some path,
is an instruction whose result for that flag the Padauk references disagree on.

The free-pdk tables (which `isa_forms` follows) and ucsim 0.6.4 differ on Z after ``mov a,
M`` / ``mov.io a, IO`` (ucsim leaves it), on Z after ``not`` / ``neg``, on Z after every
add-type instruction (``add addc inc izsn nadd``: a sum that may wrap cannot be excluded
statically), and on C and OV after ``nadd``. `CONTESTED` lists those (form, flags); every
other fact comes from the ISA table: the flags an instruction writes are `Entry.flags`, the
flags it reads are those its `Entry.semantics` use before writing them (``addc`` reads C),
and I/O 0x00 is FLAG: ``t0sn.io f, #n`` reads flag n, ``mov.io a, f`` and ``pushaf`` read
all four, ``set0.io f, #n`` writes flag n alone.

The analysis is a forward may-dataflow over the program words. Edges: fall-through, both
outcomes of a skip (next, next + 2), ``goto``, and ``pcadd a`` to every word of the run of
``ret``/``ret #k``/``goto`` words that follows it (the shape of our ``ret #k`` tables and
segment dispatchers; a ``pcadd`` followed by anything else may go to any of the next 255
words). Calls are handled per routine (every call target, and each root, is one): a routine
is analysed once, from a symbolic entry state, into a summary (which flags may pass through
it unchanged, and which contested writers it may leave behind at its returns) that is
applied at every call site; the state at a routine's entry is the union over its call sites,
so a read inside a routine is checked against every caller, and a read after a call only
against that call's own state. A ``goto``/``call`` outside the program (a library build's
firmware function) returns with every flag written by that unknown code, which counts as
contested: nothing may read a flag the firmware leaves.
"""
from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import dataclass, replace

from .isa import Core, IllegalOpcode
from .isa_forms import FORMS

FLAGS = ("z", "c", "ac", "ov")        # FLAG (I/O 0x00) bits 0..3
FLAG_IO = 0x00
ENTRY = -1                            # the writer "whatever held at the routine's entry"

_ADD_TYPE = ("add", "addc", "inc", "izsn", "nadd")


def _contested() -> dict[str, frozenset[str]]:
    chosen = {"mov a, M": {"z"}, "mov.io a, IO": {"z"}}
    for form in FORMS:
        mnemonic = form.split(" ", 1)[0]
        if mnemonic in ("not", "neg", *_ADD_TYPE):
            chosen[form] = {"z"}
        if mnemonic == "nadd":
            chosen[form] = {"z", "c", "ov"}
    return {form: frozenset(flags) & frozenset(FORMS[form].flags) for form, flags in chosen.items()}


CONTESTED: dict[str, frozenset[str]] = _contested()

_FLAG_USE = re.compile(r"\b(z|c|ac|ov)\b")
_QUOTED = re.compile(r"'[^']*'")


def effects(entry, operands: dict[str, int]) -> tuple[frozenset[str], frozenset[str]]:
    """(flags read, flags written) by one instruction, from its table entry."""
    on_flag = operands.get("IO") == FLAG_IO
    bit = operands.get("n")
    one = {FLAGS[bit]} if bit is not None and bit < len(FLAGS) else set()
    reads: set[str] = set()
    written: set[str] = set(entry.flags)
    seen: set[str] = set()             # written earlier in this instruction
    for statement in entry.semantics or ():
        statement = _QUOTED.sub("", statement)
        target, eq, expr = statement.partition(" = ")
        if not eq:
            target, expr = "", statement
        uses = set(_FLAG_USE.findall(expr))
        if re.search(r"\bFLAGS\b", expr):
            uses |= set(FLAGS)
        if on_flag and "IOR" in expr:
            # with a bit number, IOW = IOR op bit only rewrites that bit: no read
            uses |= set(FLAGS) if bit is None else set() if target == "IOW" else one
        reads |= uses - seen
        if target in FLAGS:
            seen.add(target)
        elif target == "FLAGS" or (target == "IOW" and on_flag):
            hit = set(FLAGS) if target == "FLAGS" or bit is None else one
            seen |= hit
            written |= hit
    return frozenset(reads), frozenset(written)


@dataclass(frozen=True)
class Finding:
    read: int               # word address of the instruction reading the flag
    text: str               # its disassembly
    flag: str
    writer: int             # word address of the contested writer
    writer_text: str        # its disassembly, or "external code"
    writer_form: str        # its form ("mov a, M"), or "external"
    where: str = ""         # label + offset of the read, when known
    writer_where: str = ""

    def __str__(self) -> str:
        at = f" ({self.where})" if self.where else ""
        wat = f" ({self.writer_where})" if self.writer_where else ""
        return (f"0x{self.read:03x}{at} {self.text}: reads {self.flag.upper()} last written "
                f"by 0x{self.writer:03x}{wat} {self.writer_text}")


class _Program:
    def __init__(self, core: Core, words: dict[int, int]):
        self.core, self.words = core, words
        self.decoded: dict[int, tuple] = {}

    def at(self, address: int):
        """(entry, operands, reads, writes) or None for no instruction there."""
        if address not in self.decoded:
            word = self.words.get(address)
            try:
                entry, operands = self.core.decode(word) if word is not None else (None, None)
            except IllegalOpcode:
                entry = None
            self.decoded[address] = None if entry is None else \
                (entry, operands, *effects(entry, operands))
        return self.decoded[address]

    def text(self, address: int) -> str:
        if self.at(address) is None:
            return "external code"
        entry, operands = self.at(address)[:2]
        return self.core.format(entry, operands)

    def pcadd_targets(self, address: int) -> list[int]:
        run = []
        for target in range(address + 1, address + 256):
            step = self.at(target)
            if step is None or step[0].mnemonic not in ("ret", "goto"):
                break
            run.append(target)
        return run or [t for t in range(address + 1, address + 256) if self.at(t) is not None]


def _transfer(facts, writes, address: int, form: str) -> frozenset:
    kept = {(f, w) for f, w in facts if f not in writes}
    return frozenset(kept | {(f, address) for f in CONTESTED.get(form, ())})


def _through(facts, summary) -> frozenset:
    """A call's effect: what its routine lets through, plus what it leaves behind."""
    passes = {f for f, w in summary if w == ENTRY}
    return frozenset({(f, w) for f, w in facts if f in passes} |
                     {(f, w) for f, w in summary if w != ENTRY})


def _external(target: int) -> frozenset:
    return frozenset((f, target) for f in FLAGS)


def lint(core: Core, words: dict[int, int], entries=(0,)) -> list[Finding]:
    """Findings for the program `words` (word address -> word) started at `entries`."""
    prog = _Program(core, dict(words))
    facts: dict[tuple[int, int], frozenset] = {}
    summary: dict[int, frozenset] = {}         # routine -> facts at its returns
    callers: dict[int, set] = defaultdict(set)  # routine -> {(routine, call address)}
    work: deque = deque()
    start = frozenset((f, ENTRY) for f in FLAGS)

    def reach(routine: int, address: int, new: frozenset) -> None:
        if prog.at(address) is None:          # past the end, or no instruction: a fault
            return
        old = facts.get((routine, address))
        if old is None or not new <= old:
            facts[(routine, address)] = new if old is None else old | new
            work.append((routine, address))

    def returns(routine: int, out: frozenset) -> None:
        old = summary.get(routine)
        if old is None or not out <= old:
            summary[routine] = out if old is None else old | out
            work.extend(callers[routine])

    for root in entries:
        reach(root, root, start)
    while work:
        routine, address = work.popleft()
        entry, operands, _reads, writes = prog.at(address)
        out = _transfer(facts[(routine, address)], writes, address, entry.form)
        flow = entry.flow
        if flow is None:
            reach(routine, address + 1, out)
        elif flow == "SKIP":
            reach(routine, address + 1, out)
            reach(routine, address + 2, out)
        elif flow == "GOTO":
            target = operands["k"]
            if prog.at(target) is None:
                returns(routine, _external(target))
            else:
                reach(routine, target, out)
        elif flow == "CALL":
            target = operands["k"]
            if prog.at(target) is None:
                reach(routine, address + 1, _external(target))
                continue
            callers[target].add((routine, address))
            reach(target, target, start)
            if target in summary:
                reach(routine, address + 1, _through(out, summary[target]))
        elif flow == "RET":
            returns(routine, out)
        elif flow == "PCADD":
            for target in prog.pcadd_targets(address):
                reach(routine, target, out)
        # STOP, FAULT: no successor

    # what may hold at each routine's entry: the union over its call sites
    at_entry: dict[int, frozenset] = {r: frozenset() for r in {r for r, _ in facts}}
    changed = True
    while changed:
        changed = False
        for callee, sites in callers.items():
            new = frozenset().union(*(_resolve(facts[site], at_entry[site[0]]) for site in sites))
            if not new <= at_entry[callee]:
                at_entry[callee] |= new
                changed = True

    found = {}
    for (routine, address), held in facts.items():
        reads = prog.at(address)[2]
        for flag, writer in _resolve(held, at_entry[routine]):
            if flag in reads:
                step = prog.at(writer)
                found[(address, flag, writer)] = Finding(
                    address, prog.text(address), flag, writer, prog.text(writer),
                    "external" if step is None else step[0].form)
    return [found[k] for k in sorted(found)]


def _resolve(held: frozenset, entry_facts: frozenset) -> frozenset:
    """Facts with the symbolic entry state replaced by what may hold at the entry."""
    through = {f for f, w in held if w == ENTRY}
    return frozenset({(f, w) for f, w in held if w != ENTRY} |
                     {(f, w) for f, w in entry_facts if f in through})


# a label line of the listing: byte address, no code bytes, line number, label
_LABEL_LINE = re.compile(r"^\s+([0-9A-F]{6})\s+\d+\s+([A-Za-z_.$][\w.$]*)::?")


def labels(listing: str) -> dict[int, str]:
    """Code labels by word address, from an sdas listing (byte addresses)."""
    found = {}
    for line in listing.splitlines():
        m = _LABEL_LINE.match(line)
        if m:
            found.setdefault(int(m.group(1), 16) // 2, m.group(2))
    return found


def lint_assembly(assembly, core: Core, entries=None) -> list[Finding]:
    """`lint` on an assembled program (`sdas.Assembly`), started at word 0 and at its global
    labels, with each address named by the label before it."""
    roots = sorted({0, *assembly.symbols.values()}) if entries is None else entries
    named = sorted(labels(assembly.listing).items())

    def where(address: int) -> str:
        before = [(a, n) for a, n in named if a <= address]
        if not before:
            return ""
        at, name = before[-1]
        return name if at == address else f"{name}+{address - at}"

    return [replace(f, where=where(f.read),
                    writer_where=where(f.writer) if f.writer in assembly.words else "")
            for f in lint(core, assembly.words, roots)]
