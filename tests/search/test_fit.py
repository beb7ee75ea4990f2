"""tinycc_nn/search/fit.py and the rejection path of objective.py: a model too big for
the PMS150C is pruned with the compiler's numbers, and nothing is trained."""
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

import tinycc_nn  # noqa: E402
from tinycc_nn.qat import experiment  # noqa: E402
from tinycc_nn.qat.experiment import Experiment  # noqa: E402
from tinycc_nn.search.fit import check_fit  # noqa: E402
from tinycc_nn.search.objective import make_objective  # noqa: E402
from tinycc_nn.search.space import space_for  # noqa: E402


def test_an_oversized_model_is_refused_with_the_compilers_numbers():
    exp = Experiment(size=14, widths=(196, 32, 10), schemes="int4")
    with pytest.raises(tinycc_nn.DoesNotFit, match=r"PMS150C: needs .*ROM.* has 1016"):
        check_fit(exp, "pms150c", {})


def test_a_small_model_fits_with_exact_figures():
    report = check_fit(Experiment(size=8, widths=(64, 16, 10), schemes="binary"), "pms150c", {})
    assert report["rom_capacity"] == 1016 and 0 < report["rom_used"] <= 1016
    assert 0 < report["ram_used"] <= 64 and report["cycles_per_inference"] > 0


def test_the_trial_is_pruned_without_training(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a model that cannot fit was trained")
    monkeypatch.setattr(experiment, "run", no_training)
    space = space_for("pms150c", [14], {"depth": 1, "width_0": 32, "scheme_0": "int4",
                                        "scheme_1": "int4"})
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective(space, "pms150c", {}, tmp_path, log=lambda msg: None), n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED"
    assert "needs" in trial.user_attrs["rejected"] and "1016" in trial.user_attrs["rejected"]
    assert not (tmp_path / "trials").exists()
