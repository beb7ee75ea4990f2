"""Where a search keeps its trials: an optuna study in a local file or a shared database.

By default the study lives in `OUT/study.log`, optuna's journal file (an append-only log
of every trial event, locked for each write): nothing to install, and a search that
stopped resumes from it. `--storage` names a database URL instead (optuna's RDB storage
through SQLAlchemy, e.g. `postgresql://user:password@host/db`), which searches on several
machines share: each worker asks the database for its next trial, so trial numbers are
unique and no finished trial is lost or run twice.

A study remembers the target and options it was started with; resuming it for another
target is refused, since its figures would no longer compare.
"""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from tinycc_nn.errors import TinyccError

FINISHED = ("COMPLETE", "PRUNED")


def default_name(target: str) -> str:
    """The study's name when --study does not give one."""
    return f"tinycc-nn-{target}"


def storage_for(url: str | None, out_dir: Path):
    """The optuna storage: the journal file `out_dir/study.log`, or the database at `url`."""
    import optuna

    if not url:
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(str(out_dir / "study.log")))
    if "://" not in url:
        raise TinyccError(f"--storage {url!r}: expected a database URL such as "
                          "postgresql://user:password@host/database")
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # SQLAlchemy and its drivers: connection refused, no driver, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinyccError(f"--storage: cannot open {_redacted(url)}: {first}") from None


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


def open_study(storage, name: str, target: str, options: dict, seed: int, shared: bool):
    """Create the study or load it to resume; checks it belongs to this target.

    The sampler's seed moves on with every trial already in the study, so a resumed search
    proposes new models rather than repeating the first ones; workers sharing a database
    also mix in their host and process, or two started together would propose alike.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a Ctrl-C is not a failure to report
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                load_if_exists=True)
    started = study.user_attrs.get("target")
    if started is None:
        study.set_user_attr("target", target)
        study.set_user_attr("options", options)
    elif started != target or study.user_attrs.get("options", {}) != options:
        raise TinyccError(f"study {name!r} was started for -t {started} with options "
                          f"{study.user_attrs.get('options', {})}; choose another --study or output folder")
    salt = f"{seed}:{len(study.trials)}" + (f":{socket.gethostname()}:{os.getpid()}" if shared else "")
    sampler = optuna.samplers.TPESampler(
        seed=int.from_bytes(hashlib.sha256(salt.encode()).digest()[:4], "little"),
        constant_liar=shared)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def finished(study) -> int:
    """Trials that count towards --trials: trained ones and ones rejected by the compiler."""
    return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))
