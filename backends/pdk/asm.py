"""An assembly buffer: readable sdas source, sized by the one ISA table.

Every instruction line goes through `Core.lookup` (numeric operands) so a form the
core lacks fails here, at compile time, not in sdas; its words and cycles come
from the same table the simulator executes.  Labels and symbolic jump targets are
resolved by sdas.
"""
from __future__ import annotations

from dataclasses import dataclass, field


def h(value: int) -> str:
    """A number as sdas reads it."""
    return f"0x{value:02x}"


@dataclass
class Asm:
    core: object
    lines: list = field(default_factory=list)    # (kind, text, comment)
    words: int = 0
    section_words: dict = field(default_factory=dict)
    _section: str = "startup"

    def section(self, name: str) -> None:
        """Attribute the words that follow to `name` (the per-layer ROM breakdown)."""
        self._section = name
        self.section_words.setdefault(name, 0)

    def op(self, text: str, comment: str = "", symbols: tuple = ()) -> None:
        """One instruction; `symbols` are RAM operands the linker resolves (checked as 0)."""
        mnemonic, _, rest = text.partition(" ")
        operands = [o.strip() for o in rest.split(",")] if rest else []
        if mnemonic not in ("goto", "call"):
            probe = text
            for name in symbols:
                probe = probe.replace(name, "0x00")
            entry, fields = self.core.lookup(probe)  # raises on a form this core lacks
            self.core.encode(entry, fields)          # ... or an operand out of its field
        elif len(operands) != 1:
            raise ValueError(f"bad jump {text!r}")
        self.lines.append(("op", text, comment))
        self.words += 1
        self.section_words[self._section] = self.section_words.get(self._section, 0) + 1

    def label(self, name: str, comment: str = "") -> None:
        self.lines.append(("label", name, comment))

    def comment(self, text: str) -> None:
        self.lines.append(("comment", text, ""))

    def directive(self, text: str) -> None:
        self.lines.append(("directive", text, ""))

    def render(self) -> str:
        out = []
        for kind, text, comment in self.lines:
            if kind == "op":
                line = f"        {text:<24s}"
                out.append((line + f"; {comment}" if comment else line).rstrip())
            elif kind == "label":
                out.append(f"{text}:" + (f"  ; {comment}" if comment else ""))
            elif kind == "comment":
                out.append(f"        ; {text}" if text else "")
            else:
                out.append(f"        {text}")
        return "\n".join(out) + "\n"
