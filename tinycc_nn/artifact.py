"""The result of a compilation: files, report, final IR, and a way to run it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import hostio
from .errors import TinyccError
from .outfiles import write_folder
from .printer import print_graph


@dataclass
class Artifact:
    target: str
    backend: object
    graph: object
    files: dict
    report: dict
    options: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)       # backend-private data for load()
    assembly: object = None
    _program: object = None

    @property
    def ir_text(self) -> str:
        return print_graph(self.graph)

    def write(self, outdir) -> Path:
        """Make outdir hold exactly these files and report.json, replaced as a whole
        (see outfiles.py); the report lists the files, so a later write knows them."""
        files = {k: v for k, v in self.files.items() if k != "report.json"}
        report = dict(self.report, files=sorted([*files, "report.json"]))
        files["report.json"] = json.dumps(report, indent=2) + "\n"
        return write_folder(outdir, files, make_parents=True)

    def program(self):
        if self._program is None:
            self._program = self.backend.load(self)
        return self._program

    def run_quantized(self, xq, progress=None):
        """Integer outputs and stats for quantized inputs [n, F].  With `progress` (e.g. a
        tqdm bar) the inputs run in about a hundred slices, progress.update(k) after each."""
        xq = np.asarray(xq, np.int64)
        if progress is None or len(xq) < 2:
            values, stats = self.program().run(xq)
            if progress is not None:
                progress.update(len(xq))
            return values, stats
        step = max(1, -(-len(xq) // 100))
        parts = []
        for start in range(0, len(xq), step):
            parts.append(self.program().run(xq[start:start + step]))
            progress.update(len(parts[-1][0][0]) if parts[-1][0] else step)
        values = [np.concatenate([p[0][k] for p in parts]) for k in range(len(parts[0][0]))]
        stats = {k: np.concatenate([np.asarray(p[1][k]) for p in parts]) for k in parts[0][1]}
        return values, stats

    def quantize_inputs(self, x) -> np.ndarray:
        inp = self.graph.inputs()[0]
        try:
            return hostio.prepare_input(x, self.graph.attrs(inp))
        except ValueError as e:
            raise TinyccError(str(e)) from None

    def run(self, x, with_stats: bool = False, progress=None):
        """ONNX outputs {name: [n, ...]} for float inputs x [n, ...] (progress: see
        run_quantized)."""
        values, stats = self.run_quantized(self.quantize_inputs(x), progress)
        outs = {}
        for node, v in zip(self.graph.outputs(), values):
            attrs = self.graph.attrs(node)
            outs[attrs["name"]] = hostio.finish_output(v, attrs)
        return (outs, stats) if with_stats else outs
