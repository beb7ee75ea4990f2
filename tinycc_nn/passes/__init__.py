"""Graph passes.  Each pass is a frozen dataclass with a kebab-case `name`, its options
as fields, and `apply(graph) -> bool` (whether it changed the graph)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = "pass"

    def apply(self, graph) -> bool:  # pragma: no cover - interface
        raise NotImplementedError
