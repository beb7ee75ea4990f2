"""The result of a compilation: files, report, final IR, and a way to run it."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import hostio
from .errors import TinyccError
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
        """Write every file into outdir atomically: all of them appear, or none."""
        out = Path(outdir)
        parent = out.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=parent))
        try:
            for name, data in self.files.items():
                mode = "wb" if isinstance(data, bytes) else "w"
                with open(tmp / name, mode) as f:
                    f.write(data)
            if out.exists():
                if not out.is_dir():
                    raise TinyccError(f"{out}: exists and is not a directory")
                for name in self.files:
                    os.replace(tmp / name, out / name)
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    def program(self):
        if self._program is None:
            self._program = self.backend.load(self)
        return self._program

    def run_quantized(self, xq):
        """Integer outputs and stats for quantized inputs [n, F]."""
        return self.program().run(np.asarray(xq, np.int64))

    def quantize_inputs(self, x) -> np.ndarray:
        inp = self.graph.inputs()[0]
        try:
            return hostio.prepare_input(x, self.graph.attrs(inp))
        except ValueError as e:
            raise TinyccError(str(e)) from None

    def run(self, x, with_stats: bool = False):
        """ONNX outputs {name: [n, ...]} for float inputs x [n, ...]."""
        values, stats = self.run_quantized(self.quantize_inputs(x))
        outs = {}
        for node, v in zip(self.graph.outputs(), values):
            attrs = self.graph.attrs(node)
            outs[attrs["name"]] = hostio.finish_output(v, attrs)
        return (outs, stats) if with_stats else outs
