import hashlib
import re
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))   # helpers such as qdq.py


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(12345)


# --- every Padauk program a test generates reads no contested flag ---------------------

_FLAG_LINT: dict = {}     # (core, sha1 of the source) -> findings


def _undefined_globals(source, core):
    """-g options defining a library build's firmware symbols for the linker: jump targets
    past the end of ROM (code the lint cannot see), RAM symbols at 0."""
    from tinycc_nn.backends.pdk import sdas
    from tinycc_nn.backends.pdk.parts import CORE_LIMITS
    try:
        sdas.assemble(source, core)
        return ()
    except sdas.AssemblerError as e:
        names = re.findall(r"Undefined Global '([^']+)'", str(e))
        if not names:
            raise
    top = 2 * (CORE_LIMITS[core][0] - 1)        # a byte address
    jumps = set(re.findall(r"(?m)^\s*(?:goto|call)\s+(\S+)", source))
    return tuple(o for n in names for o in ("-g", f"{n}=0x{top if n in jumps else 0:x}"))


def _flag_lint(source, core, words):
    from tinycc_nn.backends.pdk import flaglint, isa, sdas
    from tinycc_nn.backends.pdk.parts import CORE_LIMITS
    key = (core, hashlib.sha1(source.encode()).hexdigest())
    if key not in _FLAG_LINT:
        found = ()
        if words <= CORE_LIMITS[core][0]:          # else sdas would wrap the addresses
            try:
                assembly = sdas.assemble(source, core,
                                         linker_options=_undefined_globals(source, core))
            except sdas.AssemblerError:
                assembly = None                     # the test itself meets the error
            if assembly is not None:
                found = tuple(flaglint.lint_assembly(assembly, isa.CORES[core]))
        _FLAG_LINT[key] = found
    return _FLAG_LINT[key]


@pytest.fixture(autouse=True)
def _padauk_flag_lint(monkeypatch):
    """Lint every Padauk program the test generates (every variant the backend tries,
    library builds too) for reads of contested flags (`backends/pdk/flaglint.py`), and
    fail the test with the findings."""
    from tinycc_nn.backends.pdk import codegen, sdas
    if not (sdas.available("pdk13") and sdas.available("pdk14")):
        yield
        return
    found = {}
    emit = codegen.Codegen.emit

    def linted(gen):
        source = emit(gen)
        for f in _flag_lint(source, gen.core_name, gen.asm.words):
            found.setdefault((gen.core_name, str(f)), None)
        return source

    monkeypatch.setattr(codegen.Codegen, "emit", linted)
    yield
    if found:
        lines = [f"{core}: {text}" for core, text in found]
        more = f"\n... and {len(lines) - 40} more" if len(lines) > 40 else ""
        pytest.fail("generated Padauk code reads contested flags (a read of the flag after "
                    "an instruction the references disagree on, see backends/pdk/flaglint.py):\n"
                    + "\n".join(lines[:40]) + more, pytrace=False)
