"""backends/pdk/__init__.py: a model too big for its part is refused naming every resource
that does not fit, with the numbers (RAM was named alone when ROM was short too)."""
import numpy as np
import pytest

import qdq
import tinycc_nn
from tinycc_nn.errors import DoesNotFit


def _model(widths):
    rng = np.random.default_rng(0)
    layers = [qdq.Layer(qdq.random_weights(rng, (a, b), "pm2"), -1, None, True, -1, "uint8")
              for a, b in zip(widths[:-2], widths[1:-1])]
    layers.append(qdq.Layer(qdq.random_weights(rng, widths[-2:], "pm2"), -1, None, False, 0))
    return qdq.build(qdq.Model(layers, widths[0], in_exp=-7, in_dtype="uint8", argmax=True))


@pytest.mark.parametrize("target, rom", [("pms150c", 1016), ("pfs154", 2032)])
def test_short_of_ram_and_rom_names_both(target, rom):
    with pytest.raises(DoesNotFit) as e:
        tinycc_nn.compile(_model((64, 60, 50, 10)), target)
    msg = str(e.value)
    assert "bytes of RAM, has" in msg
    assert f"and ROM: needs about " in msg and msg.endswith(f"words, has {rom}")


def test_short_of_ram_only_names_ram():
    with pytest.raises(DoesNotFit) as e:
        tinycc_nn.compile(_model((24, 40, 30, 4)), "pms150c")
    assert "bytes of RAM" in str(e.value) and "ROM" not in str(e.value)
