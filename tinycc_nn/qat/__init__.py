"""Quantization-aware training in torch for models tinycc-nn compiles (extra `train`).

torch is imported only when a torch-facing name is first used, so the scheme table
(`tinycc_nn.qat.schemes`) and `import tinycc_nn` work without torch installed.

    model = mlp((64, 24, 16, 10), weight_schemes="pm2", act_bits=4)
    ... train in torch as usual ...
    export_onnx(model, "model.onnx", input_shape=64)
    logits, classes = torch_predict(model, x)   # equal, bit for bit, to onnxruntime
"""

from __future__ import annotations

import importlib

import numpy as np

_EXPORTS = {
    "ActQuant": "quantizers", "QLinear": "layers", "mlp": "layers", "SCHEMES": "schemes",
    "QConv2d": "conv", "conv_weight_bytes": "conv",
    "WeightScheme": "schemes", "build_onnx": "export", "export_onnx": "export",
    "choose_widths": "budget", "weight_bytes": "budget",
    "FrozenFakeQuant": "freeze", "freeze_fake_quant": "freeze",
}
__all__ = sorted([*_EXPORTS, "torch_predict"])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tinycc_nn.qat.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tinycc_nn.qat' has no attribute {name!r}")


def torch_predict(model, x, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(logits float32 [N, C], classes int64 [N]) of the eval-mode model; mode restored after.

    The class is the first index of the largest logit, as ONNX ArgMax picks it.
    """
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
            logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)
    return logits.numpy(), logits.argmax(dim=1).numpy().astype(np.int64)
