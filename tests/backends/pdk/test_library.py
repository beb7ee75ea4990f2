"""The library build (`--option harness=false`): model.asm + model.h linked into C firmware
by SDCC, run on the project's simulator from RAM full of junk, equal to onnxruntime."""
import re
import shutil
import subprocess

import numpy as np
import pytest

import qdq
import tinycc_nn
from tinycc_nn.backends.pdk import sdas
from tinycc_nn.backends.pdk.sim import Simulator
from tinycc_nn.hostio import prepare_input

pytestmark = pytest.mark.skipif(not sdas.available("pdk13") or shutil.which("sdcc") is None,
                                reason="needs sdcc, sdaspdk13 and sdldpdk (Debian package sdcc)")

MAIN = """#include "model.h"
static const unsigned char image[NN_INPUT_READS] = {%s};
volatile unsigned char result;
unsigned char nn_read_input(%s index) { return image[index]; }
void main(void) { result = nn_infer(); __asm__("stopsys"); }
"""


def _firmware(art, xq_row, work, core="pdk13"):
    for name, text in art.files.items():
        (work / name).write_text(text)
    subprocess.run([f"sdas{core}", "-plosgffw", "model.asm"], cwd=work, check=True, capture_output=True)
    index = "unsigned int" if len(xq_row) > 255 else "unsigned char"
    (work / "main.c").write_text(MAIN % (", ".join(str(int(v) & 0xFF) for v in xq_row), index))
    ram_end = re.search(r"#define NN_RAM_END (\S+)", art.files["model.h"]).group(1)
    subprocess.run(["sdcc", f"-m{core}", "--data-loc", ram_end, "main.c", "model.rel", "-o", "prog.ihx"],
                   cwd=work, check=True, capture_output=True)
    result = int(re.search(r"(?m)^\s+([0-9A-F]{8})\s+_result\s", (work / "prog.map").read_text()).group(1), 16)
    return (work / "prog.ihx").read_text(), result


@pytest.mark.parametrize("k", [20, 64])     # the input in RAM; streamed (staged)
def test_the_library_links_into_sdcc_firmware_and_computes_what_onnxruntime_does(tmp_path, k):
    rng = np.random.default_rng(5)
    widths = [k, 12, 10]
    layers = [qdq.Layer(qdq.random_weights(rng, (widths[k], widths[k + 1]), "pm2"), -1,
                        rng.integers(-40, 40, widths[k + 1]), relu=k == 0, out_exp=-1 if k == 0 else 0,
                        out_dtype="uint8" if k == 0 else "int8") for k in range(2)]
    m = qdq.Model(layers, k, in_exp=-7, in_dtype="int8", argmax=True)
    model = qdq.build(m)
    art = tinycc_nn.compile(model, "pms150c", harness=False)
    assert art.report["input"] == ("ram" if k == 20 else "streamed")
    assert art.report["input_staged"] == (k == 64)
    header = art.files["model.h"]
    assert "unsigned char nn_infer(void);" in header and "nn_read_input(unsigned char index)" in header
    assert "model.ihx" not in art.files and ".org" not in art.files["model.asm"]
    logits_at = int(re.search(r"#define NN_OUT_\w+ \(\(volatile unsigned char \*\)(\S+)\)", header).group(1), 16)
    lo = int(re.search(r"element i = RAM\[\S+ \+ i\] \+ \((-?\d+)\)", header).group(1))
    x = qdq.random_inputs(rng, m, 3)
    xq = prepare_input(x, art.graph.attrs(art.graph.inputs()[0]))
    want_logits, want_class = qdq.ort_run(model, x)
    for row in range(len(x)):
        ihx, result = _firmware(art, xq[row], tmp_path)
        sim = Simulator.from_ihx(ihx, "PMS150C", ram_fill=0xA5)     # RAM is junk at reset
        res = sim.run()
        assert res.ok, res.message
        assert sim.ram[result] == int(np.ravel(want_class[row])[0])
        got = np.array(sim.ram[logits_at:logits_at + 10], np.int64) + lo   # logits scale is 1
        assert np.array_equal(got, np.ravel(want_logits[row]).astype(np.int64))


def test_an_input_of_300_values_reaches_nn_read_input_with_a_16_bit_index(tmp_path):
    rng = np.random.default_rng(6)
    m = qdq.Model([qdq.Layer(qdq.random_weights(rng, (300, 8), "pm2"), -1, None, True, -1, "uint8"),
                   qdq.Layer(qdq.random_weights(rng, (8, 10), "pm2"), -1, None, False, 0)],
                  300, in_exp=-7, in_dtype="uint8", argmax=True)
    model = qdq.build(m)
    art = tinycc_nn.compile(model, "pfs154", harness=False)
    assert "nn_read_input(unsigned int index)" in art.files["model.h"]
    x = qdq.random_inputs(rng, m, 2)
    xq = prepare_input(x, art.graph.attrs(art.graph.inputs()[0]))
    _, want_class = qdq.ort_run(model, x)
    for row in range(len(x)):
        ihx, result = _firmware(art, xq[row], tmp_path, core="pdk14")
        sim = Simulator.from_ihx(ihx, "PFS154", ram_fill=0xA5)
        res = sim.run()
        assert res.ok, res.message
        assert sim.ram[result] == int(np.ravel(want_class[row])[0])
