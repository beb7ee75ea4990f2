"""tinycc_nn/search/driver.py through the CLI: a tiny search end to end (two trials on a few
hundred images, one epoch), the reports and the verified winner, then a resume that adds a
trial to the same study without repeating any."""
import json

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

from tinycc_nn.cli import main  # noqa: E402

TINY = ["-t", "pms150c", "--size", "8", "--fix", "depth=1", "--fix", "width_0=12",
        "--fix", "refine_passes=0", "--fix", "float_epochs=0", "--train-limit", "300",
        "--test-limit", "100", "--epochs-scale", "0.01", "--verify-images", "20"]


def _study(out):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    storage = JournalStorage(JournalFileBackend(str(out / "study.log")))
    return optuna.load_study(study_name="tinycc-nn-pms150c", storage=storage)


def test_a_tiny_search_writes_the_winner_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["search", *TINY, "--trials", "2", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "verified on 20 images, 0 mismatches" in said
    for name in ("model.onnx", "pareto.md", "pareto.json", "pareto.png", "winner.json",
                 "pms150c/report.json", "pms150c/model.asm"):
        assert (out / name).is_file(), name
    winner = json.loads((out / "winner.json").read_text())
    assert winner["verify"]["mismatches"] == 0 and winner["rom_used"] <= 1016
    front = json.loads((out / "pareto.json").read_text())
    assert front["trained"] + front["rejected"] == 2
    assert "| trial | accuracy |" in (out / "pareto.md").read_text()
    first = _study(out).trials

    assert main(["search", *TINY, "--trials", "3", "-o", str(out)]) == 0
    assert "3 finished trials (1 started by this run)" in capsys.readouterr().out
    trials = _study(out).trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.params for t in trials[:2]] == [t.params for t in first]
    assert trials[2].params not in [t.params for t in first]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["search", "-t", "pms150c", "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == ("tinycc-nn: error: give --trials N or --timeout SECONDS "
                                               "(or both)")
    assert main(["search", "-t", "pms150c", "--trials", "1", "--size", "9", "-o", str(out)]) == 2
    assert "--size 9" in capsys.readouterr().err
    assert main(["search", "-t", "pms150c", "--trials", "1", "--fix", "depht=1", "-o", str(out)]) == 2
    assert "--fix depht" in capsys.readouterr().err
    assert main(["search", "-t", "pms150c", "--trials", "1", "--threads", "0", "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "tinycc-nn: error: --threads must be at least 1"
    assert not out.exists()


def test_a_folder_holds_one_study(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["search", *TINY, "--fix", "width_0=32", "--fix", "scheme_0=int8", "--trials", "1",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["search", "-t", "python", "--trials", "1", "-o", str(out)]) == 2
    assert "holds the study 'tinycc-nn-pms150c'" in capsys.readouterr().err
