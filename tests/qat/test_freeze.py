"""freeze_fake_quant: the frozen copy computes what the eval model computes, bit for bit."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.ao.quantization import (FakeQuantize, FakeQuantizeBase,  # noqa: E402
                                   MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver, disable_fake_quant,
                                   disable_observer)

from tinycc_nn.qat import FrozenFakeQuant, freeze_fake_quant  # noqa: E402


def _quantizers():
    per_tensor = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                              dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    per_channel = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128,
                               quant_max=127, dtype=torch.qint8,
                               qscheme=torch.per_channel_symmetric, ch_axis=0)
    return per_tensor, per_channel


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 5)
        self.act, self.weight = _quantizers()

    def forward(self, x):
        return nn.functional.linear(self.act(x), self.weight(self.fc.weight), self.fc.bias)


def _observed():
    net = Net().train()
    for _ in range(4):
        net(torch.randn(16, 6) * 3)
    net.apply(disable_observer)
    return net.eval()


def test_frozen_copy_is_bit_exact_and_leaves_the_model_alone():
    net = _observed()
    frozen = freeze_fake_quant(net)
    x = torch.randn(200, 6) * 4
    assert torch.equal(frozen(x), net(x))
    assert isinstance(frozen.act, FrozenFakeQuant) and frozen.act.axis is None
    assert isinstance(frozen.weight, FrozenFakeQuant) and frozen.weight.axis == 0
    assert isinstance(net.act, FakeQuantize) and net.training is False
    assert not any(isinstance(m, FakeQuantizeBase) for m in frozen.modules())


def test_a_disabled_fake_quantizer_becomes_identity():
    net = _observed()
    net.act.apply(disable_fake_quant)
    frozen = freeze_fake_quant(net)
    assert isinstance(frozen.act, nn.Identity)
    x = torch.randn(50, 6)
    assert torch.equal(frozen(x), net(x))
