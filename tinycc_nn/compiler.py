"""`compile(model, target)`: frontend, pipeline, backend, report."""
from __future__ import annotations

import os

from .artifact import Artifact
from .backend import get_backend
from .errors import TinyccError
from .frontend import load_onnx
from .ir import Graph, verify
from .parser import parse_file
from .pipeline import check_pass_name, pipeline_for, run_passes


def load_model(model, warn=None) -> Graph:
    """An IR graph from an .onnx/.tir path, an onnx.ModelProto, or a Graph (copied)."""
    if isinstance(model, Graph):
        return model.copy()
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".tir"):
        graph = parse_file(model)
        verify(graph)
        return graph
    return load_onnx(model, warn=warn)


def compile(model, target: str = "python", *, stop_after=None, on_pass=None,
            verify_ir: bool = False, warn=None, **options) -> Artifact:
    """Compile `model` for `target`.  Options are backend options (e.g. opt="speed").

    With stop_after=PASS the artifact holds the IR after that pass and no files.
    on_pass(name, graph) is called after the import and after every pass.
    """
    backend = get_backend(target)
    unknown = set(options) - set(backend.options)
    if unknown:
        raise TinyccError(f"target '{target}' has no option(s) {', '.join(sorted(unknown))}; "
                          f"options: {', '.join(sorted(backend.options)) or 'none'}")
    if "opt" in options and options["opt"] not in ("size", "speed"):
        raise TinyccError(f"opt={options['opt']!r}: expected size or speed")
    opts = {k: default for k, (default, _help) in backend.options.items()}
    opts.update(options)
    passes = pipeline_for(backend, opts)
    check_pass_name(stop_after, passes, "--stop-after")
    graph = load_model(model, warn=warn)
    stopped = run_passes(graph, passes, stop_after=stop_after, on_pass=on_pass, verify_each=verify_ir)
    if stopped:
        return Artifact(target, backend, graph, {}, {"target": target, "stopped_after": stop_after}, opts)
    verify(graph)
    files, extra = backend.emit(graph, opts)
    report = {"target": target, "rom_used": None, "rom_capacity": backend.rom_capacity,
              "rom_unit": backend.rom_unit, "ram_used": None,
              "ram_capacity": backend.ram_capacity, "cycles_per_inference": None}
    report.setdefault("ram_plan", ram_plan(graph))
    report.update(extra)
    artifact = Artifact(target, backend, graph, dict(files), report, opts)
    finish = getattr(backend, "finish", None)
    if finish is not None:      # a backend that measures its build (e.g. on a simulator)
        finish(artifact)
    return artifact


def ram_plan(graph) -> dict:
    """The IR's RAM plan: peak and every buffer (offset, bytes, and for a value inside a
    channel loop the loop it belongs to; such a buffer holds one plane of its map)."""
    from .ir.schedule import loop_plane_values
    planes = loop_plane_values(graph)
    buffers = []
    for n in graph.order():
        a = graph.attrs(n)
        if "ram_offset" in a:
            buf = {"value": n, "offset": a["ram_offset"], "bytes": a["ram_bytes"],
                   "shape": list(graph.type(n).shape)}
            if "channel_loop" in a:
                buf["channel_loop"] = a["channel_loop"]
                buf["holds"] = "one plane" if n in planes else "whole map"
            buffers.append(buf)
    return {"peak": graph.ram_peak, "buffers": buffers}
