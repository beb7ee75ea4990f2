"""What a backend is, and how targets are found.

A backend is a small class: capability attributes, the passes it adds to the
pipeline, `emit(graph, options) -> (files, report)`, and `load(artifact)` returning
a `Program` that executes the emitted code on quantized inputs.  Backends register
under the entry-point group `tinycc_nn.backends` (the built-in ones too), so a
plugin package is found the moment it is installed.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import ClassVar

import numpy as np

from .errors import TinyccError

ENTRY_POINT_GROUP = "tinycc_nn.backends"


class Program:
    """Executable form of an artifact.  `run(xq)` takes quantized inputs [n, F] (int64)
    and returns (values, stats): values[k] is an [n, size] int64 array for the k-th
    output node of the graph, stats maps 'cycles'/'instructions' to per-input arrays
    (or is empty when the target cannot count them)."""

    def run(self, xq: np.ndarray):  # pragma: no cover - interface
        raise NotImplementedError


class Backend:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    rom_unit: ClassVar[str] = "bytes"
    rom_capacity: ClassVar[int | None] = None
    ram_capacity: ClassVar[int | None] = None
    word_bits: ClassVar[int] = 8
    has_multiply: ClassVar[bool] = True
    input_in_ram: ClassVar[bool] = True
    options: ClassVar[dict] = {"opt": ("size", "size|speed: what to favour where code can trade")}

    def passes(self, options: dict) -> list:
        return []

    def emit(self, graph, options: dict):  # pragma: no cover - interface
        """Return (files: dict name -> str|bytes, report: dict)."""
        raise NotImplementedError

    def load(self, artifact) -> Program:
        """Optional: a backend without it compiles, but cannot run (verify, run)."""
        raise TinyccError(f"target '{self.name}' cannot run its programs (its backend has no "
                          "load()); `compile` works, `verify` and `run` need a target that runs")


@lru_cache(maxsize=1)
def available_targets() -> dict:
    """Target name -> entry point, for every installed backend (read once per process)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def get_backend(name: str) -> Backend:
    eps = available_targets()
    if name not in eps:
        raise TinyccError(f"unknown target '{name}'; available: {', '.join(sorted(eps))}")
    try:
        cls = eps[name].load()
    except Exception as e:  # a broken plugin must not take the compiler down
        raise TinyccError(f"target '{name}': cannot load backend {eps[name].value}: {e}") from None
    return cls()
