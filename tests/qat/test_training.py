"""tinycc_nn.qat.training: the optimizer split that `Recipe.muon` asks for."""
import numpy as np
import torch

from tinycc_nn.qat import mlp
from tinycc_nn.qat.training import Recipe, fit, float_mlp, hidden_weights


def test_hidden_weights_are_the_matrices_between_first_and_last():
    assert hidden_weights(float_mlp((64, 24, 16, 10))) == ["2.weight"]
    assert hidden_weights(float_mlp((64, 32, 24, 16, 10))) == ["2.weight", "4.weight"]
    assert hidden_weights(float_mlp((64, 16, 10))) == []
    # the QAT model has the twin's parameter names, so both phases split alike
    assert hidden_weights(mlp((64, 24, 16, 10), "pm2", bias=False)) == ["2.weight"]


def test_muon_gets_the_hidden_weights_and_adam_the_rest(monkeypatch):
    given = {}

    class Spy(torch.optim.Muon):
        def __init__(self, params, **kw):
            params = list(params)
            given["muon"] = {id(p) for p in params}
            super().__init__(params, **kw)

    monkeypatch.setattr(torch.optim, "Muon", Spy)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 64)
    model = float_mlp((64, 24, 16, 10))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = fit(model, images, labels, 8, Recipe(epochs=1, batch_size=32, muon=True), progress=False)
    assert len(log) == 1 and np.isfinite(log[0]["loss"])
    assert given["muon"] == {id(model.get_parameter("2.weight"))}
    for n, p in model.named_parameters():     # every parameter moved, Muon's and Adam's
        assert not torch.equal(before[n], p.detach()), n


def test_without_muon_no_muon_optimizer(monkeypatch):
    monkeypatch.setattr(torch.optim, "Muon", None)     # would fail if called
    rng = np.random.default_rng(1)
    model = float_mlp((64, 24, 16, 10))
    fit(model, rng.integers(0, 256, (32, 28, 28), dtype=np.uint8), rng.integers(0, 10, 32), 8,
        Recipe(epochs=1, batch_size=32), progress=False)
