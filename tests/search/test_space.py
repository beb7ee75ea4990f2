"""tinycc_nn/search/space.py: a trial's Experiment, pinned dimensions, and bad pins."""
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

from tinycc_nn.errors import TinyccError  # noqa: E402
from tinycc_nn.search.space import space_for, suggest  # noqa: E402


def _experiments(space, n=12):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [suggest(study.ask(), space) for _ in range(n)]


def test_pinned_dimensions_are_not_searched():
    space = space_for("pms150c", [8], {"crop": 24, "depth": 1, "width_0": 16, "bias": False})
    for exp in _experiments(space):
        assert (exp.size, exp.crop, exp.widths, exp.bias) == (8, 24, (64, 16, 10), False)


def test_the_crop_is_searched_below_28_and_absent_at_28():
    exps = _experiments(space_for("python", [10, 28]), 40)
    assert {e.crop for e in exps if e.size == 10} == {28, 24, 22, 20}
    assert {e.crop for e in exps if e.size == 28} == {28}


def test_bad_pins_name_the_dimension():
    with pytest.raises(TinyccError, match="--fix crop=25: the MNIST loader crops to 28, 26, 24"):
        space_for("pms150c", [8], {"crop": 25})
    with pytest.raises(TinyccError, match="--fix wdith_0: not a dimension"):
        space_for("pms150c", [8], {"wdith_0": 16})
