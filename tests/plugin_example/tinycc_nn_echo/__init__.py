"""An example tinycc-nn backend living outside the compiler: target `echo-python`.

It renders the graph with the reference backend's renderer and writes the module
under another name, `model_echo.py`, so a test can tell which backend produced it.
"""
from tinycc_nn.backend import Backend
from tinycc_nn.backends.python import PythonProgram, render
from tinycc_nn.passes.pack_weights import packed_bytes


class EchoPythonBackend(Backend):
    name = "echo-python"
    description = "plugin example: the reference module, written as model_echo.py"

    def emit(self, graph, options):
        report = {"rom_used": packed_bytes(graph), "ram_used": graph.ram_peak}
        return {"model_echo.py": render(graph)}, report

    def load(self, artifact):
        return PythonProgram(artifact.files["model_echo.py"])
