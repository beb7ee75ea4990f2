"""The ordered list of passes for a target, and the driver that runs them.

There is no global fixed point: each target's list says exactly what runs, in
which order.  `import` names the frontend's output (for --dump-ir/--stop-after).
"""
from __future__ import annotations

from .errors import TinyccError
from .ir import Graph, verify
from .passes.fuse_dense import FuseDense
from .passes.lower_elementwise import LowerElementwise
from .passes.pack_weights import PackWeights
from .passes.plan_ram import PlanRam
from .passes.schedule_channels import ScheduleChannels


def common_passes(input_in_ram: bool = True) -> list:
    return [FuseDense(), LowerElementwise(), PackWeights(),
            ScheduleChannels(input_in_ram=input_in_ram), PlanRam(input_in_ram=input_in_ram)]


def pipeline_for(backend, options: dict) -> list:
    """The passes for `backend`: the common ones, then the backend's own."""
    passes = common_passes(input_in_ram=getattr(backend, "input_in_ram", True))
    return passes + list(backend.passes(options))


def pass_names(passes) -> list:
    return ["import"] + [p.name for p in passes]


def check_pass_name(name, passes, what: str) -> None:
    names = pass_names(passes)
    if name is not None and name != "all" and name not in names:
        raise TinyccError(f"{what}: no pass named '{name}'; passes: {', '.join(names)}")


def run_passes(graph: Graph, passes, *, stop_after=None, on_pass=None, verify_each=False) -> bool:
    """Run `passes` in order on `graph`, calling on_pass(name, graph) after the import
    and after each pass.  Returns True when it stopped early at `stop_after`."""
    if on_pass:
        on_pass("import", graph)
    if stop_after == "import":
        return True
    for p in passes:
        p.apply(graph)
        if verify_each:
            verify(graph)
        if on_pass:
            on_pass(p.name, graph)
        if stop_after == p.name:
            return True
    return False
