"""Architecture and training search for a target (extra `train`: torch and optuna).

    from tinycc_nn.search import search
    search("pms150c", "out/", trials=50)     # same as: tinycc-nn search -t pms150c --trials 50 -o out/

Each trial proposes a network and recipe (`space`), compiles its untrained export to reject
at once what cannot fit (`fit`), trains the rest with the QAT toolkit (`objective`), and
keeps everything in an optuna study (`study`); the front of accuracy against ROM, RAM and
cycles (`pareto`) and the best model, compiled and verified (`winner`), are written at the
end (`driver`).
"""
from __future__ import annotations


def search(target: str, out_dir, **settings) -> dict:
    """See `tinycc_nn.search.driver.search`."""
    from tinycc_nn.search.driver import search as run_search
    return run_search(target, out_dir, **settings)


__all__ = ["search"]
