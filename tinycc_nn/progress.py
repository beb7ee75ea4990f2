"""A progress bar for long runs (the Padauk simulator over a test set takes minutes).

A tqdm bar on stderr when stderr is a terminal, nothing otherwise (a log file, a pipe, a
test), so output meant for machines never carries it.  It clears itself when done.
"""
from __future__ import annotations

import contextlib
import sys


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A context manager giving a tqdm bar (or None when there is nothing to show)."""
    if not enabled or total < 2 or not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="input", leave=False, file=sys.stderr,
                dynamic_ncols=True)
