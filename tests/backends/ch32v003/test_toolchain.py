import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tinycc_nn.backends.ch32v003 import toolchain
from tinycc_nn.backends.ch32v003.toolchain import (
    DEFAULT_CFLAGS, ForbiddenSymbolError, ToolchainError, build_firmware,
    firmware_size, libgcc_path)

FIXTURES = Path(__file__).parent / "fixtures"


def _symbols(elf_path):
    with open(elf_path, "rb") as f:
        return {s.name: s for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()}


def test_missing_compiler_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ToolchainError, match=toolchain.DEBIAN_PACKAGE):
        toolchain.find_gcc()


def test_libgcc_comes_from_the_rv32e_multilib(build):
    path = libgcc_path("rv32ec_zicsr", "ilp32e")
    assert path.parts[-3:] == ("rv32e", "ilp32e", "libgcc.a")
    assert path.is_file()


def test_firmware_layout_and_sizes(build):
    elf = build("ternary/model.c")
    size = firmware_size(elf)
    symbols = _symbols(elf)
    assert symbols["_start"]["st_value"] == 0x0800_0000
    assert symbols["__stack_top"]["st_value"] == 0x2000_0800
    assert symbols["weights"]["st_size"] == 64
    assert size.rodata >= 64
    assert size.bss >= 16 + 4 + 4  # input, output, result
    assert size.flash_bytes == size.text + size.rodata + size.data
    assert size.ram_bytes == size.data + size.bss
    # Berkeley `size` counts text+rodata as text: an independent reading of the ELF.
    berkeley = subprocess.run(["riscv64-unknown-elf-size", str(elf)], capture_output=True,
                              text=True, check=True).stdout.splitlines()[1].split()
    assert [int(v) for v in berkeley[:3]] == [size.text + size.rodata, size.data, size.bss]


def test_initialised_data_is_counted_in_flash_and_ram(build):
    size = firmware_size(build("probes/stateful.c"))
    assert size.data >= 4
    assert size.flash_bytes >= size.text + size.data


def test_memset_emitted_by_gcc_comes_from_picolibc(build):
    assert toolchain.picolibc_path("rv32ec_zicsr", "ilp32e") is not None
    assert "memset" in _symbols(build("probes/histogram.c"))


def test_general_weights_link_mulsi3_from_libgcc(build):
    assert "__mulsi3" in _symbols(build("wide/model.c"))


def test_forbidden_symbol_names_the_caller(build):
    with pytest.raises(ForbiddenSymbolError, match=r"multiply\.o: nn_infer -> __mulsi3") as info:
        build("probes/multiply.c", forbid_symbols=("__mulsi3",))
    assert info.value.symbols == ("__mulsi3",)


def test_multiplier_free_model_passes_the_forbid_check(build):
    elf = build("ternary/model.c", forbid_symbols=("__mulsi3",))
    assert "__mulsi3" not in _symbols(elf)


def test_unused_functions_are_collected(build, tmp_path):
    source = tmp_path / "model.c"
    source.write_text((FIXTURES / "ternary/model.c").read_text()
                      + "int nn_unused(int x);\nint nn_unused(int x) { return x + 1; }\n")
    elf = build_firmware([source], [FIXTURES / "ternary"], tmp_path / "out")
    assert "nn_unused" not in _symbols(elf)


@pytest.mark.parametrize("body, message", [
    ("int nn_infer(const nn_input_t *i, nn_output_t *o) { return undefined_name; }",
     "undefined_name"),
    ("int nn_infer(const nn_input_t *i, nn_output_t *o) { (void)i; (void)o; int n = 1; return 0; }",
     "unused variable"),  # -Wall -Wextra -Werror
    ("static const int8_t big[20000] = {1};\n"
     "int nn_infer(const nn_input_t *i, nn_output_t *o) { (void)o; return big[i[0] + 128]; }",
     "FLASH"),  # region FLASH overflowed
    ("int nn_infer(const nn_input_t *i, nn_output_t *o) { (void)i; (void)o; return 0; }\n"
     "int nn_infer(const nn_input_t *i, nn_output_t *o) { (void)i; (void)o; return 1; }",
     "redefinition"),
])
def test_build_errors_carry_the_compiler_message(build, tmp_path, body, message):
    source = tmp_path / "model.c"
    source.write_text('#include "model.h"\n' + body + "\n")
    with pytest.raises(ToolchainError, match=message):
        build_firmware([source], [FIXTURES / "probes"], tmp_path / "out")


def test_cflags_without_march_are_rejected(build, tmp_path):
    flags = tuple(f for f in DEFAULT_CFLAGS if not f.startswith("-march"))
    with pytest.raises(ToolchainError, match="-march"):
        build_firmware([FIXTURES / "ternary/model.c"], [FIXTURES / "ternary"], tmp_path,
                       cflags=flags)
