"""tinycc_nn/search/study.py: two worker processes share one study in PostgreSQL (the
server scripts/setup-dev.sh installs and starts) without losing or repeating a trial.

The workers take the search's cheap path: every model they are allowed to propose is too
big for the PMS150C, so each trial is one untrained compile, then pruned."""
import os
import re
import subprocess
import sys
import uuid

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

URL = os.environ.get("TINYCC_NN_TEST_POSTGRES", "postgresql://tinycc:tinycc@localhost/tinycc_search")
TOO_BIG = ["--size", "14", "--fix", "depth=1", "--fix", "width_0=32", "--fix", "scheme_0=int4",
           "--fix", "scheme_1=int4"]


def _server():
    """The storage, or a skip (a failure under CI) naming the setup script."""
    try:
        return optuna.storages.RDBStorage(URL)
    except Exception as e:  # no server, no role, no driver
        why = (f"PostgreSQL not reachable at {URL} ({str(e).splitlines()[0]}); "
               "scripts/setup-dev.sh installs and starts it")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def test_two_workers_share_one_study(tmp_path):
    storage = _server()
    name = f"test-{uuid.uuid4().hex}"
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tinycc_nn.cli", "search", "-t", "pms150c", *TOO_BIG, "--trials", "4",
         "--storage", URL, "--study", name, "-o", str(tmp_path / f"worker{i}")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=120) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
    started = [int(re.search(r"\((\d+) started by this run\)", out).group(1)) for out, _ in outputs]
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(trials) == sum(started)      # nothing lost, nothing counted twice
    assert 4 <= len(trials) <= 5            # each worker may finish the trial it began
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state.name == "PRUNED" and "needs" in t.user_attrs["rejected"] for t in trials)
    assert len({t.params["lr"] for t in trials}) == len(trials)
    assert all(started)                     # both worked on it
    optuna.delete_study(study_name=name, storage=storage)
