"""refine_weights: integer coordinate descent never raises the loss and stays exportable."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import onnxruntime as ort  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tinycc_nn.qat import QLinear, export_onnx, mlp, torch_predict  # noqa: E402
from tinycc_nn.qat.refine import refine_weights  # noqa: E402

FEATURES, CLASSES = 12, 10


def _data(n=400, seed=0):
    """Sparse inputs in [0, 1] (zeros like background pixels) with a linear teacher's labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, FEATURES), dtype=np.float32) * (rng.random((n, FEATURES)) < 0.6)
    y = (x @ rng.standard_normal((FEATURES, CLASSES))).argmax(1)
    return x.astype(np.float32), y


def _trained(schemes, bias, offset=0, per_channel=False):
    torch.manual_seed(0)
    model = mlp((FEATURES, 16, 12, CLASSES), schemes, bias=bias, act_bits=8, weight_exponent_offset=offset,
                per_channel=per_channel)
    x, y = _data()
    return _fit(model, x, y, 40)


def _fit(model, x, y, batch):
    """One epoch of Adam (lr 0.01) in batches of `batch`."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for i in range(0, len(x), batch):
        loss = F.cross_entropy(model(torch.from_numpy(x[i:i + batch])), torch.from_numpy(y[i:i + batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _loss(model, x, y):
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)))


@pytest.mark.parametrize("schemes,bias,offset,per_channel", [
    ("pm2", False, -1, False), (("ternary", "odd4", "int4"), True, 0, False), ("odd2", True, 0, True)])
def test_refinement_lowers_the_loss_and_keeps_every_weight_on_its_grid(tmp_path, schemes, bias, offset, per_channel):
    model = _trained(schemes, bias, offset, per_channel)
    x, y = _data()
    before = _loss(model, x, y)
    exponents = [m.weight_exponents() for m in model if isinstance(m, QLinear)]
    log = refine_weights(model, x, y, passes=3, progress=False)
    assert log[0]["pass"] == 0 and log[0]["loss"] == pytest.approx(before, rel=1e-6)
    losses = [entry["loss"] for entry in log]
    assert all(b <= a + 1e-7 for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0]
    assert sum(entry["moves"] for entry in log) > 0
    # the incremental bookkeeping (changed rows only) agrees with a full forward pass
    assert _loss(model, x, y) == pytest.approx(losses[-1], rel=1e-6)
    for m, e in zip([m for m in model if isinstance(m, QLinear)], exponents):
        assert torch.equal(m.weight_exponents(), e)
        codes = m.weight.detach() / torch.exp2(e)[:, None]
        assert set(codes.unique().tolist()) <= set(m.scheme.levels)
    path = export_onnx(model, tmp_path / "m.onnx", FEATURES)
    logits, classes = torch_predict(model, x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ort_logits, ort_classes = session.run(["logits", "class"], {"input": x})
    assert np.array_equal(ort_logits.view(np.int32), logits.view(np.int32))
    assert np.array_equal(ort_classes, classes)


def test_refinement_is_deterministic_and_stops_when_nothing_moves():
    x, y = _data(n=200)

    def small():
        torch.manual_seed(0)
        model = mlp((FEATURES, 8, CLASSES), "pm2", bias=False)
        model.train()(torch.from_numpy(x))  # calibrate the quantizers; the weights stay random
        return model

    a, b = small(), small()
    log_a = refine_weights(a, x, y, passes=50, seed=3, progress=False)
    log_b = refine_weights(b, x, y, passes=50, seed=3, progress=False)
    assert log_a == log_b and log_a[-1]["moves"] == 0 and len(log_a) < 51
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_cnn_refines_its_dense_head_and_leaves_the_convolutions_alone(tmp_path):
    """The conv stack runs once for the whole set; only the head's integer weights move."""
    from torch import nn

    from tinycc_nn.qat import ActQuant
    from tinycc_nn.qat.conv import QConv2d

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.random((300, 1, 8, 8)) * (rng.random((300, 1, 8, 8)) < 0.6)).astype(np.float32)
    y = (x.reshape(300, -1) @ rng.standard_normal((64, CLASSES))).argmax(1)
    model = nn.Sequential(
        QConv2d(1, 3, 3, input_quant=ActQuant(8, scale="fixed", log2_scale=-8), per_channel=True), nn.ReLU(),
        QConv2d(3, 3, 3, groups=3, per_channel=True), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        QLinear(12, 16, weight_scheme="odd2"), nn.ReLU(), QLinear(16, CLASSES, weight_scheme="odd4"),
        ActQuant(8, signed=True, rounding="ceil"))
    _fit(model, x, y, 30)
    convs = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("0.", "2."))}
    log = refine_weights(model, x, y, passes=2, progress=False)
    assert log[-1]["loss"] < log[0]["loss"] and sum(entry["moves"] for entry in log) > 0
    assert _loss(model, x, y) == pytest.approx(log[-1]["loss"], rel=1e-6)
    changed = [k for k, v in convs.items()  # (unpinned exponents are nan)
               if not torch.allclose(model.state_dict()[k], v, rtol=0, atol=0, equal_nan=True)]
    assert not changed, changed
    path = export_onnx(model, tmp_path / "cnn.onnx", (1, 8, 8))
    logits, _ = torch_predict(model, x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(["logits"], {"input": x})[0].view(np.int32), logits.view(np.int32))
