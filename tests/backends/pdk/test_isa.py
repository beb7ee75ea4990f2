"""The pdk13/pdk14 tables against the real assembler, against themselves (encode, decode,
text round trips over the whole word space) and against the golden vectors' opcodes."""

import itertools
import json
import re
from pathlib import Path

import pytest

from tinycc_nn.backends.pdk import isa, sdas

CORES = sorted(isa.CORES)
VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "pdk-vectors"


def samples(entry):
    """Operand sets with each field at its minimum, middle and maximum."""
    values = []
    for f in entry.fields:
        middle = (f.max // 2) // f.align * f.align
        values.append(sorted({0, middle, f.max}))
    for combo in itertools.product(*values):
        yield dict(zip((f.name for f in entry.fields), combo))


def sdas_text(core, entry, operands):
    # sdas 4.2 flags numeric swapc.io addresses as an error; it takes the named registers.
    if entry.form == "swapc.io IO, #n":
        return f"swapc.io {'f' if operands['IO'] == 0 else 'sp'}, #{operands['n']}"
    return core.format(entry, operands)


def sdas_samples(entry):
    if entry.form == "swapc.io IO, #n":
        return [{"IO": io, "n": n} for io in (0, 2) for n in (0, 3, 7)]
    return list(samples(entry))


@pytest.mark.parametrize("name", CORES)
def test_every_form_matches_sdas(name):
    if not sdas.available(name):
        pytest.skip(f"sdas{name}/sdldpdk not on PATH (Debian package sdcc); CI installs them")
    core = isa.CORES[name]
    lines, expected = [], []
    for entry in core.entries:
        for operands in sdas_samples(entry):
            lines.append(sdas_text(core, entry, operands))
            expected.append(core.encode(entry, operands))
    source = "\t.area CODE (ABS)\n\t.org 0\n" + "".join(f"\t{line}\n" for line in lines)
    words = sdas.assemble(source, name).words
    got = [words.get(i) for i in range(len(lines))]
    wrong = [(line, hex(w or 0), hex(e)) for line, w, e in zip(lines, got, expected) if w != e]
    assert not wrong, wrong
    assert len(lines) > 5 * len(core.entries) // 2


@pytest.mark.parametrize("name", CORES)
def test_encode_decode_format_round_trip(name):
    core = isa.CORES[name]
    for entry in core.entries:
        for operands in samples(entry):
            word = core.encode(entry, operands)
            decoded, decoded_operands = core.decode(word)
            assert (decoded, decoded_operands) == (entry, operands)
            assert core.lookup(core.disassemble(word)) == (entry, operands)


@pytest.mark.parametrize("name", CORES)
def test_whole_word_space_decodes_consistently(name):
    core = isa.CORES[name]
    legal = 0
    for word in range(1 << core.word_bits):
        try:
            entry, operands = core.decode(word)
        except isa.IllegalOpcode:
            continue
        legal += 1
        assert core.encode(entry, operands) == word
    assert legal > (1 << core.word_bits) * 3 // 4


@pytest.mark.parametrize("name", CORES)
def test_vector_opcodes(name):
    path = VECTORS / f"{name}.jsonl"
    if not path.exists():
        pytest.skip(f"golden vectors not found at {path}")
    core = isa.CORES[name]
    for line in path.read_text().splitlines():
        vector = json.loads(line)
        entry, operands = core.lookup(vector["asm"])
        assert entry.form == vector["form"]
        assert core.encode(entry, operands) == vector["opcode"], vector["asm"]


@pytest.mark.parametrize("text, complaint", [
    ("mov a, 0x40", "outside 0..63"),          # sdas would silently wrap to 0x00
    ("t0sn 0x10, #7", "outside 0..15"),        # bit operations reach 16 bytes on pdk13
    ("idxm a, 0x11", "steps of 2"),
    ("t0sn 0x03.4", "write 'M, #n'"),
    ("cneqsn a, #1", "no pdk13 instruction"),  # pdk14 only
    ("mov a, #256", "outside 0..255"),
    ("mov a, #-1", "expected a number"),
    ("goto 1024", "outside 0..1023"),
])
def test_lookup_rejects_what_sdas_would_mangle(text, complaint):
    with pytest.raises(ValueError, match=re.escape(complaint)):
        isa.PDK13.lookup(text)


def test_lookup_syntax_variants():
    core = isa.PDK14
    assert core.lookup("ADD A, 18 ; comment") == core.lookup("add a, 0x12")
    assert core.lookup("xch 0x10") == core.lookup("xch a, 0x10")
    assert core.lookup("mov.io a, sp")[1] == {"IO": 2}
    assert core.lookup("t1sn.io f, #1")[1] == {"IO": 0, "n": 1}
    assert core.lookup("mov a, 0b101")[1] == {"M": 5}
    assert core.lookup("t1sn.io f, c") == core.lookup("t1sn.io 0x00, #1")
    assert core.lookup("set0.io f, ov")[1] == {"IO": 0, "n": 3}
    with pytest.raises(ValueError, match="flag name"):
        core.lookup("mov a, c")


def declared_flags(entry):
    written = set()
    for statement in entry.semantics or ():
        target = statement.split(" = ", 1)[0]
        if target in ("z", "c", "ac", "ov"):
            written.add(target)
        if target == "FLAGS":
            written.update(("z", "c", "ac", "ov"))
    return written


@pytest.mark.parametrize("name", CORES)
def test_declared_flags_match_semantics(name):
    for entry in isa.CORES[name].entries:
        assert declared_flags(entry) == set(entry.flags), entry.form


def test_cycle_model():
    core = isa.PDK13
    two = {"goto k", "call k", "idxm a, M", "idxm M, a", "ret", "ret #k", "reti", "pcadd a"}
    skips = {"izsn a", "izsn M", "dzsn a", "dzsn M", "ceqsn a, #k", "ceqsn a, M",
             "t0sn M, #n", "t1sn M, #n", "t0sn.io IO, #n", "t1sn.io IO, #n"}
    for entry in core.entries:
        assert entry.words == 1
        assert entry.cycles == (2 if entry.form in two else 1), entry.form
        assert entry.skip_cycles == (1 if entry.form in skips else 0), entry.form
        assert (entry.flow == "SKIP") == (entry.form in skips), entry.form
