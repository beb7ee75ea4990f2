"""The contested-flag lint: hand-written programs, and the Padauk examples as compiled."""
from pathlib import Path

import pytest

import tinycc_nn
from tinycc_nn.backends.pdk import flaglint, isa, sdas

from .programs import build

ROOT = Path(__file__).resolve().parents[3]


def words(source, core="pdk13"):
    """Words by address for `source` (the simulator tests' hand-written programs)."""
    return dict(enumerate(build(core, source)))


def lint(source, core="pdk13"):
    return [(f.read, f.flag, f.writer) for f in flaglint.lint(isa.CORES[core], words(source, core))]


def test_z_after_mov_a_m_is_found():
    found = flaglint.lint(isa.PDK13, words("""
        mov a, 0x10
        t1sn.io f, z
        stopsys
        stopsys"""))
    assert [(f.read, f.text, f.flag, f.writer, f.writer_text, f.writer_form) for f in found] == \
        [(1, "t1sn.io 0x00, #0", "z", 0, "mov a, 0x10", "mov a, M")]


def test_z_after_sub_or_compare_is_fine():
    assert lint("""
        mov a, 0x10
        sub a, #0x01
        t1sn.io f, z
        stopsys
        or a, 0x11
        t0sn.io f, z
        stopsys
        stopsys""") == []


def test_c_after_add_is_fine_z_is_not():
    assert lint("""
        add a, #0x01
        addc 0x10
        t1sn.io f, c
        stopsys
        t1sn.io f, z
        stopsys
        stopsys""") == [(4, "z", 1)]


def test_not_neg_and_inc_write_a_contested_z():
    for form in ("not a", "neg 0x10", "inc 0x10", "izsn 0x10"):
        assert lint(f"""
            {form}
            nop
            t1sn.io f, z
            stopsys
            stopsys""") == [(2, "z", 0)], form


def test_nadd_c_and_ov_are_contested_on_pdk14():
    assert lint("""
        nadd a, 0x10
        src a
        t0sn.io f, ov
        stopsys
        stopsys""", "pdk14") == [(1, "c", 0), (2, "ov", 0)]


def test_a_read_through_a_skip():
    # the skip may pass over the sub that would have overwritten Z
    assert lint("""
        mov a, 0x10
        t0sn 0x01, #0
        sub a, #0x01
        t1sn.io f, z
        stopsys
        stopsys""") == [(3, "z", 0)]
    # ... or over the contested writer: then only the taken path is clean
    assert lint("""
        sub a, #0x01
        t0sn 0x01, #0
        mov a, 0x10
        t1sn.io f, z
        stopsys
        stopsys""") == [(3, "z", 2)]


def test_a_read_through_call_and_ret():
    assert lint("""
        call load
        t1sn.io f, z
        stopsys
        stopsys
    load:
        mov a, 0x10
        ret""") == [(1, "z", 4)]


def test_a_routine_that_leaves_z_alone_carries_each_callers_own():
    # `keep` is called after a contested writer and after a sub: only the first call's
    # read is a finding (a per-routine summary, not every caller's state at every return)
    assert lint("""
        mov a, 0x10
        call keep
        t1sn.io f, z
        nop
        sub a, #0x01
        call keep
        t1sn.io f, z
        nop
        stopsys
    keep:
        mov 0x12, a
        ret""") == [(2, "z", 0)]


def test_a_read_inside_a_routine_sees_every_caller():
    assert lint("""
        sub a, #0x01
        call test
        mov a, 0x10
        call test
        stopsys
    test:
        t1sn.io f, z
        nop
        ret""") == [(5, "z", 2)]


def test_a_ret_k_table_behind_pcadd():
    assert lint("""
        mov a, 0x11
        call table
        t1sn.io f, z
        stopsys
        stopsys
    table:
        add a, #0x01
        pcadd a
        ret #0x05
        ret #0x07""") == [(2, "z", 5)]


def test_flag_register_bits():
    # set1 f, c rewrites C alone: Z still comes from the mov
    assert lint("""
        mov a, 0x10
        set1.io f, #1
        t1sn.io f, z
        stopsys
        stopsys""") == [(2, "z", 0)]
    assert lint("""
        mov a, 0x10
        set0.io f, #0
        t1sn.io f, z
        stopsys
        stopsys""") == []
    # reading the whole FLAG byte reads Z too
    assert lint("""
        mov a, 0x10
        mov.io a, f
        stopsys""") == [(1, "z", 0)]


def test_the_isa_table_decides_reads_and_writes():
    for core in isa.CORES.values():
        for entry in core.entries:
            if entry.semantics is None or "IO" in entry.form:
                continue
            reads, writes = flaglint.effects(entry, {"M": 0x10, "k": 1, "n": 0})
            assert writes == set(entry.flags), entry.form
    reads, _ = flaglint.effects(*isa.PDK13.lookup("addc a"))
    assert reads == {"c"}
    reads, _ = flaglint.effects(*isa.PDK13.lookup("izsn 0x10"))
    assert reads == set()             # its skip tests the Z it has just written
    assert set(flaglint.CONTESTED) <= set(e.form for e in isa.PDK14.entries)


def test_code_outside_the_program_leaves_no_flag_to_read():
    assert lint("""
        call 0x3f0
        t1sn.io f, c
        stopsys
        stopsys""") == [(1, "c", 0x3f0)]


needs_sdas = pytest.mark.skipif(not sdas.available("pdk13") or not sdas.available("pdk14"),
                                reason="needs sdaspdk13/sdaspdk14 and sdldpdk (Debian package sdcc)")


@needs_sdas
def test_findings_are_named_by_the_labels_of_the_listing():
    assembly = sdas.assemble("""
        .area CODE (ABS)
        .org 0x0000
start:
        call load
        t1sn.io f, z
        stopsys
        stopsys
load:
        mov a, 0x10
        ret
""", "pdk13")
    [found] = flaglint.lint_assembly(assembly, isa.PDK13)
    assert (found.where, found.writer_where) == ("start+1", "load")


@needs_sdas
@pytest.mark.parametrize("opt", ["size", "speed"])
@pytest.mark.parametrize("target", ["pms150c", "pfs154"])
@pytest.mark.parametrize("example", ["pms150c_best", "mnist8x8", "mnist8x8_ref"])
def test_the_examples_read_no_contested_flag(example, target, opt):
    art = tinycc_nn.compile(str(ROOT / "examples" / example / "model.onnx"), target, opt=opt)
    found = flaglint.lint_assembly(art.assembly, isa.CORES[art.backend.core])
    assert not found, "\n".join(map(str, found))
