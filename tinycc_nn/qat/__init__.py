"""Quantization-aware training in torch for models tinycc-nn compiles (extra `train`).

Nothing outside this package imports torch: `import tinycc_nn` works without it.

    model = mlp((64, 24, 16, 10), weight_schemes="pm2", act_bits=4)
    ... train in torch as usual ...
    export_onnx(model, "model.onnx", input_shape=64)
    logits, classes = torch_predict(model, x)   # equal, bit for bit, to onnxruntime
"""

from __future__ import annotations

import numpy as np
import torch

from tinycc_nn.qat.budget import choose_widths, weight_bytes
from tinycc_nn.qat.export import build_onnx, export_onnx
from tinycc_nn.qat.layers import QLinear, mlp
from tinycc_nn.qat.quantizers import ActQuant
from tinycc_nn.qat.schemes import SCHEMES, WeightScheme

__all__ = ["ActQuant", "QLinear", "SCHEMES", "WeightScheme", "build_onnx", "choose_widths",
           "export_onnx", "mlp", "torch_predict", "weight_bytes"]


@torch.no_grad()
def torch_predict(model: torch.nn.Module, x, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(logits float32 [N, C], classes int64 [N]) of the eval-mode model; mode restored after.

    The class is the first index of the largest logit, as ONNX ArgMax picks it.
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)
    return logits.numpy(), logits.argmax(dim=1).numpy().astype(np.int64)
