"""tinycc-nn: a compiler from quantized (QDQ ONNX) neural networks to the cheapest
microcontrollers: Padauk PDK assembly, CH32V003 RISC-V C, and reference Python.

    import tinycc_nn
    art = tinycc_nn.compile("model.onnx", "python")
    art.write("out/")                       # model.py + report.json
    outputs = art.run(x)                    # {output name: array}, bit-exact
"""
from .artifact import Artifact
from .compiler import compile, load_model
from .errors import DoesNotFit, TinyccError

__version__ = "0.1.0.dev0"
__all__ = ["compile", "load_model", "Artifact", "TinyccError", "DoesNotFit", "__version__"]
