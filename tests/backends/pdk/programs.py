"""Small hand-written Padauk programs for the tests, assembled with the project's ISA
table (no sdas): one instruction per line, ``name:`` lines label code addresses,
``.word n`` places a raw word."""
import re

from tinycc_nn.backends.pdk import isa


def build(core_name, source):
    """The program's words, in address order."""
    core = isa.CORES[core_name]
    labels, lines = {}, []
    for line in source.splitlines():
        line = line.split(";")[0].strip()
        if line.endswith(":"):
            labels[line[:-1]] = len(lines)
        elif line:
            lines.append(line)
    for name, address in labels.items():
        lines = [re.sub(rf"\b{name}\b", str(address), line) for line in lines]
    return [int(line.split()[1], 0) if line.startswith(".word") else core.encode(*core.lookup(line))
            for line in lines]
