"""The search loop: trials until --trials are finished or --timeout passes, then the reports.

`trials` counts the study's finished trials (trained or rejected by the compiler), not this
run's, so the same command run again after an interruption finishes the job, and workers
sharing a database stop together once the study has them (each may finish the trial it
started, so a shared study can end with a few more). Ctrl-C fails only the trial that was
running; the finished ones stay in the study, and the reports and the best model so far
are written before returning.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from tinycc_nn.backend import get_backend
from tinycc_nn.errors import TinyccError
from tinycc_nn.progress import progress_bar
from tinycc_nn.search import pareto, study as studies, winner
from tinycc_nn.search.objective import make_objective
from tinycc_nn.search.space import space_for


def search(target: str, out_dir, *, options: dict | None = None, sizes=None, trials: int | None = None,
           timeout: float | None = None, storage: str | None = None, study_name: str | None = None,
           seed: int = 0, train_limit: int | None = None, test_limit: int | None = None,
           epochs_scale: float = 1.0, fixed: dict | None = None, verify_images: int | None = 1000,
           log=print) -> dict:
    """Search MNIST models for `target`; returns {"study", "ran", "finished", "interrupted",
    "winner"} (winner: winner.write_winner's summary, or None when nothing trained)."""
    options = dict(options or {})
    get_backend(target)  # an unknown target is a user error before any work
    if trials is None and timeout is None:
        raise TinyccError("give --trials N or --timeout SECONDS (or both)")
    if trials is not None and trials < 1:
        raise TinyccError("--trials must be at least 1")
    if timeout is not None and timeout <= 0:
        raise TinyccError("--timeout must be above 0 seconds")
    for flag, value in (("--train-limit", train_limit), ("--test-limit", test_limit)):
        if value is not None and value < 1:
            raise TinyccError(f"{flag} must be at least 1")
    space = space_for(target, sizes, fixed, epochs_scale=epochs_scale, train_limit=train_limit,
                      test_limit=test_limit, seed=seed)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise TinyccError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study_name or studies.default_name(target)
    store = studies.storage_for(storage, out_dir)
    if not storage:  # one study per folder: its reports and winner are the folder's
        others = [s.study_name for s in store.get_all_studies() if s.study_name != name]
        if others:
            raise TinyccError(f"{out_dir} holds the study {others[0]!r}; resume it with --study "
                              f"{others[0]} and its target, or choose another output folder")
    study = studies.open_study(store, name, target, options, seed, shared=bool(storage))
    terminal = sys.stderr.isatty()
    objective = make_objective(space, target, options, out_dir, progress=terminal, log=log)
    deadline = None if timeout is None else time.time() + timeout
    ran, interrupted = 0, False
    todo = None if trials is None else max(0, trials - studies.finished(study))
    try:
        with progress_bar(todo or 0, f"{target}: search") as bar:
            if bar is not None:
                bar.unit = "trial"
            while (trials is None or studies.finished(study) < trials) and \
                    (deadline is None or time.time() < deadline):
                study.optimize(objective, n_trials=1)
                ran += 1
                if bar is not None:
                    bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    best = _report(study, out_dir, target, options, name, verify_images, interrupted, terminal)
    done = studies.finished(study)
    log(f"study {name!r}: {done} finished trials ({ran} started by this run)"
        + (f"; interrupted: the finished trials are kept, run the same command to resume"
           if interrupted else ""))
    return {"study": name, "ran": ran, "finished": done, "interrupted": interrupted, "winner": best}


def _report(study, out_dir, target, options, name, verify_images, interrupted, terminal):
    """The Pareto reports and the winner (verified unless interrupted)."""
    pareto.write_reports(study, out_dir, f"tinycc-nn search {name!r} for {target}")
    n = 0 if interrupted else verify_images
    with progress_bar(n or 10000, f"{target}: verify winner", enabled=terminal and n != 0) as bar:
        return winner.write_winner(study, out_dir, target, options, n, progress=bar)
