import shutil
from pathlib import Path

import numpy as np
import pytest

from tinycc_nn.backends.ch32v003.emulator import Ch32v003Emulator
from tinycc_nn.backends.ch32v003.hostbuild import HostBuildError, HostModel

from .fixtures import reference

FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")


def _host(source: str, **kwargs) -> HostModel:
    path = FIXTURES / source
    return HostModel([path], [path.parent], **kwargs)


def _random_inputs(dtype, rows: int, columns: int, seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    return rng.integers(info.min, info.max, (rows, columns), endpoint=True).astype(dtype)


@pytest.mark.parametrize("name", ["ternary", "wide"])
def test_host_build_matches_numpy(name):
    model = _host(f"{name}/model.c")
    x = _random_inputs(model.input_dtype, 5000, model.input_size, seed=1)
    classes, outputs = model.infer(x)
    expected_classes, expected_outputs = getattr(reference, name)(x)
    assert outputs.dtype == expected_outputs.dtype
    assert np.array_equal(classes, expected_classes)
    assert np.array_equal(outputs, expected_outputs)


@pytest.mark.parametrize("source", ["ternary/model.c", "wide/model.c", "probes/plain_char.c",
                                    "probes/histogram.c"])
def test_host_build_agrees_with_the_emulator(build, source):
    model = _host(source)
    emulator = Ch32v003Emulator(build(source))
    x = _random_inputs(model.input_dtype, 200, model.input_size, seed=2)
    classes, outputs = model.infer(x)
    batch = emulator.run_many(x)
    assert np.array_equal(classes, batch.results)
    assert np.array_equal(outputs, batch.outputs)


def test_plain_char_is_unsigned_as_on_risc_v():
    x = np.array([[-2, -1, 0, 3, 0, 0, 0, 0]], dtype=np.int8)
    _, outputs = _host("probes/plain_char.c").infer(x)
    assert list(outputs[0]) == [127, 127, 0, 1]  # (unsigned char)0xFE >> 1 = 127


def test_types_and_sizes_come_from_model_h():
    model = _host("wide/model.c")
    assert (model.input_size, model.output_size) == (8, 4)
    assert (model.input_dtype, model.output_dtype) == (np.uint8, np.int16)


def test_caller_dtypes_are_checked_against_model_h():
    assert _host("wide/model.c", input_dtype=np.uint8, output_dtype="int16").input_size == 8
    with pytest.raises(ValueError, match="nn_input_t is uint8"):
        _host("wide/model.c", input_dtype=np.int8)
    with pytest.raises(ValueError, match="nn_output_t is int16"):
        _host("wide/model.c", output_dtype=np.int32)


def test_inputs_must_fit_shape_and_type():
    model = _host("ternary/model.c")
    with pytest.raises(ValueError):
        model.infer(np.zeros((3, 15), dtype=np.int8))
    with pytest.raises(ValueError):
        model.infer(np.full((3, 16), 128))
    classes, outputs = model.infer(np.zeros((0, 16), dtype=np.int8))
    assert classes.shape == (0,) and outputs.shape == (0, 4)


def test_compile_errors_are_reported(tmp_path):
    source = tmp_path / "model.c"
    source.write_text('#include "model.h"\nint nn_infer(void) { return 0; }\n')
    with pytest.raises(HostBuildError, match="nn_infer"):
        HostModel([source], [FIXTURES / "probes"])
