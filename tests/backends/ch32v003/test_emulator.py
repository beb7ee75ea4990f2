import numpy as np
import pytest
import unicorn
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from tinycc_nn.backends.ch32v003.emulator import (
    CYCLES, SRAM_BASE, SRAM_SIZE, Ch32v003Emulator, FirmwareError, classify)

from .fixtures import reference


@pytest.fixture(scope="module")
def ternary(build):
    return Ch32v003Emulator(build("ternary/model.c"))


@pytest.fixture(scope="module")
def wide(build):
    return Ch32v003Emulator(build("wide/model.c"))


def _probe(build, name, **kwargs):
    return Ch32v003Emulator(build(f"probes/{name}.c"), **kwargs)


@settings(max_examples=60, deadline=None)
@given(x=arrays(np.int8, 16))
def test_ternary_matches_numpy(ternary, x):
    classes, outputs = reference.ternary(x[None, :])
    run = ternary.run(x.tobytes())
    assert run.fault is None
    assert run.result == classes[0]
    assert np.array_equal(np.frombuffer(run.output, np.int8), outputs[0])


@settings(max_examples=60, deadline=None)
@given(x=arrays(np.uint8, 8))
def test_wide_int16_outputs_match_numpy(wide, x):
    classes, outputs = reference.wide(x[None, :])
    run = wide.run(x.tobytes())
    assert run.fault is None
    assert run.result == classes[0]
    assert np.array_equal(np.frombuffer(run.output, np.int16), outputs[0])


def test_element_types_come_from_the_harness(ternary, wide):
    assert (ternary.input_dtype, ternary.output_dtype) == (np.int8, np.int8)
    assert (ternary.input_size, ternary.output_size) == (16, 4)
    assert (wide.input_dtype, wide.output_dtype) == (np.uint8, np.int16)
    assert (wide.input_size, wide.output_size) == (8, 4)


def test_run_many_agrees_with_run_and_numpy(wide):
    x = np.random.default_rng(7).integers(0, 256, (40, 8), dtype=np.uint8)
    batch = wide.run_many(x)
    classes, outputs = reference.wide(x)
    assert batch.outputs.dtype == np.int16 and batch.outputs.shape == (40, 4)
    assert np.array_equal(batch.results, classes)
    assert np.array_equal(batch.outputs, outputs)
    assert batch.faults == [None] * 40
    single = wide.run(x[3].tobytes())
    assert (batch.instructions[3], batch.cycles[3]) == (single.instructions, single.cycles)


def test_counts_are_deterministic_and_plausible(ternary):
    x = np.arange(-8, 8, dtype=np.int8).tobytes()
    first, second = ternary.run(x), ternary.run(x)
    assert first == second
    assert first.instructions > 100
    assert first.instructions < first.cycles <= 6 * first.instructions
    assert 0 < first.stack_high_water < SRAM_SIZE


def test_counts_depend_on_the_data_path(wide):
    # __mulsi3 loops over the bits of one operand, so zeros are cheaper.
    zeros = wide.run(bytes(8))
    ones = wide.run(bytes([255] * 8))
    assert zeros.instructions < ones.instructions
    assert zeros.cycles < ones.cycles


def _traced(emulator, x):
    """Instruction count and cycles from a per-instruction hook: slow, independent."""
    trace = []
    hook = emulator._uc.hook_add(unicorn.UC_HOOK_CODE,  # test-only access to the engine
                                 lambda uc, address, size, data: trace.append((address, size)))
    try:
        run = emulator.run(x)
    finally:
        emulator._uc.hook_del(hook)
    table = CYCLES[48]
    cycles = 0
    following = trace[1:] + [(emulator._symbols["_halt"][0], 0)]
    for (address, size), (next_address, _) in zip(trace, following):
        word = int.from_bytes(emulator._uc.mem_read(address, size), "little")
        kind, length = classify(word)
        assert length == size
        if kind == "branch" and next_address != address + size:
            kind = "branch-taken"
        cycles += table[kind][size // 4]
    return run, len(trace), cycles


@pytest.mark.parametrize("name", ["ternary", "wide"])
def test_block_counting_matches_a_per_instruction_trace(build, name):
    emulator = Ch32v003Emulator(build(f"{name}/model.c"))
    for seed in range(3):
        x = np.random.default_rng(seed).integers(0, 100, emulator.input_size)
        run, instructions, cycles = _traced(emulator, x.astype(emulator.input_dtype).tobytes())
        assert (run.instructions, run.cycles) == (instructions, cycles)


def test_slower_clock_has_no_flash_wait_states(build):
    elf = build("ternary/model.c")
    x = bytes(range(16))
    at48, at24 = Ch32v003Emulator(elf).run(x), Ch32v003Emulator(elf, clock_mhz=24).run(x)
    assert at48.instructions == at24.instructions
    assert at24.instructions <= at24.cycles < at48.cycles
    with pytest.raises(ValueError, match="clock_mhz"):
        Ch32v003Emulator(elf, clock_mhz=96)


def test_every_run_starts_from_fresh_ram_and_registers(build):
    emulator = _probe(build, "stateful")
    x = np.array([1, 2, 3, 4, 0, 0, 0, 0], dtype=np.int8)
    for _ in range(3):
        run = emulator.run(x.tobytes())
        assert run.fault is None
        assert run.result == 1  # .bss counter zeroed again
        assert list(np.frombuffer(run.output, np.int8)) == [6, -1, 10, 5]  # .data reloaded


def test_stack_high_water_grows_by_one_frame_per_level(build):
    emulator = _probe(build, "recursion")
    water = [emulator.run(bytes([depth] + [0] * 7)).stack_high_water for depth in range(8)]
    frame = water[2] - water[1]
    assert frame >= 24  # the volatile 24-byte array lives in each frame
    assert water[1:] == [water[1] + frame * (d - 1) for d in range(1, 8)]


def test_stack_running_off_sram_is_a_fault_and_the_next_run_recovers(build):
    emulator = _probe(build, "recursion")
    deep = emulator.run(bytes([200] + [0] * 7))
    assert deep.fault is not None and "write to unmapped memory at 0x1fff" in deep.fault
    assert deep.fault.startswith("stack overflow")      # the stack pointer is below .bss
    shallow = emulator.run(bytes([3] + [0] * 7))
    assert shallow.fault is None and shallow.result == 3


def test_stack_reaching_bss_is_reported_as_overflow(build):
    emulator = _probe(build, "stack_buffer")
    gap = SRAM_BASE + SRAM_SIZE - emulator._symbols["__bss_end"][0]
    runs = {n: emulator.run(bytes([(n - 1) >> 4, (n - 1) & 15] + [0] * 6))
            for n in range(gap - 64, gap + 16, 4)}
    fine = [n for n, run in runs.items() if run.fault is None]
    overflow = [n for n, run in runs.items() if run.fault and run.fault.startswith("stack overflow")]
    unmapped = [n for n, run in runs.items() if run.fault and "unmapped" in run.fault]
    within = [n for n in overflow if n not in unmapped]     # the buffer still inside SRAM
    assert fine and within and unmapped and set(unmapped) <= set(overflow)
    assert max(fine) < min(overflow) and max(within) < min(unmapped)
    overhead = runs[fine[0]].stack_high_water - fine[0]  # frames around the buffer
    assert all(runs[n].stack_high_water == n + overhead for n in fine)
    assert all(runs[n].stack_high_water == gap for n in within)
    # below SRAM the stack pointer gives the depth: more than the whole gap
    assert all(runs[n].stack_high_water > gap for n in unmapped)


def test_access_past_2k_of_sram_is_a_fault(build):
    run = _probe(build, "sram_overrun").run(bytes(8))
    assert "0x20000900" in run.fault and "beyond the 2 KB of SRAM" in run.fault


def test_jump_to_unmapped_address_is_a_fault(build):
    run = _probe(build, "wild_jump").run(bytes(8))
    assert "fetch from unmapped memory at 0x10000000" in run.fault


def test_store_to_flash_is_a_fault(build):
    run = _probe(build, "flash_write").run(bytes(8))
    assert "write to read-only memory at 0x08000100" in run.fault


def test_runaway_code_hits_the_instruction_limit(build):
    run = _probe(build, "forever", max_instructions=20_000).run(bytes(8))
    assert "instruction limit of 20000" in run.fault
    assert run.instructions >= 20_000


def test_instruction_missing_from_the_core_is_a_fault(build):
    # Built for a core with a multiplier, the same C uses `mul`, which unicorn
    # would happily execute.
    flags = ("-march=rv32em_zicsr", "-mabi=ilp32e", "-O2", "-ffreestanding", "-nostdlib")
    emulator = Ch32v003Emulator(build("probes/multiply.c", cflags=flags))
    run = emulator.run(bytes([3, 5] + [0] * 6))
    assert "not implemented by the QingKe V2A" in run.fault


def test_memset_from_picolibc_runs(build):
    x = np.array([1, 2, 3, 63, 127, 0, 65, -1], dtype=np.int8)
    run = _probe(build, "histogram").run(x.tobytes())
    assert run.fault is None
    counts = np.bincount(x.astype(np.int64) & 63, minlength=64)
    assert run.result == counts[63]
    assert list(np.frombuffer(run.output, np.int8)) == list(counts[:4])


def test_inputs_are_checked(ternary):
    with pytest.raises(ValueError, match="16 bytes"):
        ternary.run(bytes(15))
    with pytest.raises(ValueError, match="int8"):
        ternary.run_many(np.full((2, 16), 200))
    with pytest.raises(ValueError):
        ternary.run_many(np.zeros((2, 15), dtype=np.int8))


def test_non_harness_elf_is_rejected():
    with pytest.raises(FirmwareError):
        Ch32v003Emulator("/bin/sh")


@pytest.mark.parametrize("word, expected", [
    (0x0505, ("alu", 2)),            # c.addi a0,1
    (0x00150513, ("alu", 4)),        # addi a0,a0,1
    (0x00001537, ("alu", 4)),        # lui a0,1
    (0x00001517, ("alu", 4)),        # auipc a0,1
    (0x852E, ("alu", 2)),            # c.mv a0,a1
    (0x952E, ("alu", 2)),            # c.add a0,a1
    (0x0506, ("alu", 2)),            # c.slli a0,1
    (0x41C8, ("load", 2)),           # c.lw a0,4(a1)
    (0x4512, ("load", 2)),           # c.lwsp a0,4(sp)
    (0x0045A503, ("load", 4)),       # lw a0,4(a1)
    (0xC1C8, ("store", 2)),          # c.sw a0,4(a1)
    (0xC22A, ("store", 2)),          # c.swsp a0,4(sp)
    (0x00A5A223, ("store", 4)),      # sw a0,4(a1)
    (0x00B50063, ("branch", 4)),     # beq a0,a1,.
    (0xC101, ("branch", 2)),         # c.beqz a0,.
    (0xE101, ("branch", 2)),         # c.bnez a0,.
    (0x000000EF, ("jump", 4)),       # jal ra,.
    (0x000500E7, ("jump", 4)),       # jalr ra,0(a0)
    (0xA001, ("jump", 2)),           # c.j .
    (0x2001, ("jump", 2)),           # c.jal .
    (0x8082, ("jump", 2)),           # c.jr ra
    (0x9502, ("jump", 2)),           # c.jalr a0
    (0x30002573, ("system", 4)),     # csrr a0,mstatus
    (0x0FF0000F, ("system", 4)),     # fence
    (0x00000073, ("system", 4)),     # ecall
    (0x9002, ("system", 2)),         # c.ebreak
    (0x02B50533, ("illegal", 4)),    # mul a0,a0,a1
    (0x00B6252F, ("illegal", 4)),    # amoadd.w a0,a1,(a2)
    (0x00053007, ("illegal", 4)),    # fld ft0,0(a0)
    (0x2108, ("illegal", 2)),        # c.fld (XW c.lbu on WCH's own toolchain)
    (0x0000, ("illegal", 2)),        # defined illegal instruction
])
def test_classify(word, expected):
    assert classify(word) == expected
