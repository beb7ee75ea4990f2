"""tinycc_nn/progress.py, and Artifact.run in slices: a bar on a terminal only, and the
same outputs and stats as one run."""
import sys

import numpy as np

import qdq
import tinycc_nn
from tinycc_nn.progress import progress_bar


def test_a_bar_only_on_a_terminal(monkeypatch):
    with progress_bar(100, "x") as bar:
        assert bar is None                      # pytest's stderr is not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar(100, "x") as bar:
        assert bar is not None and bar.total == 100
    with progress_bar(100, "x", enabled=False) as bar:
        assert bar is None
    with progress_bar(1, "x") as bar:
        assert bar is None


class _Count:
    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k


def test_running_in_slices_changes_nothing():
    rng = np.random.default_rng(2)
    m = qdq.random_mlp(rng, max_width=10, max_depth=2)
    art = tinycc_nn.compile(qdq.build(m), "pms150c")
    x = qdq.random_inputs(rng, m, 250)
    whole, stats = art.run(x, with_stats=True)
    count = _Count()
    sliced, sliced_stats = art.run(x, with_stats=True, progress=count)
    assert count.n == 250
    assert all(np.array_equal(whole[k], sliced[k]) for k in whole)
    assert stats.keys() == sliced_stats.keys()
    assert all(np.array_equal(stats[k], sliced_stats[k]) for k in stats)
