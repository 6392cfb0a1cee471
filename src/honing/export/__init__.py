"""Models out of PyTorch: ONNX files checked against the model, int8 ONNX, torch.export programs.

    from honing.export import OnnxModel, quantize_onnx, to_onnx

    exported = to_onnx(model, "model.onnx", x[:64])        # checked on x[:64] in onnxruntime
    quantize_onnx("model.onnx", "model-int8.onnx", calibration=[x[:256]])
    fast = OnnxModel("model-int8.onnx", threads=1)
    y = fast(x)                                             # float32 tensor, like model(x)

onnx, onnxscript and onnxruntime come with ``pip install "honing[compress]"`` and are imported
only when a function needs them.
"""

from __future__ import annotations

from honing.export._onnx import (
    ExportMismatch,
    OnnxExport,
    OnnxModel,
    check_onnx,
    count_initializers,
    cpu_features,
    int8_settings,
    quantize_onnx,
    to_onnx,
)
from honing.export._torch_export import load_torch_export, to_torch_export

__all__ = [
    "ExportMismatch",
    "OnnxExport",
    "OnnxModel",
    "check_onnx",
    "count_initializers",
    "cpu_features",
    "int8_settings",
    "load_torch_export",
    "quantize_onnx",
    "to_onnx",
    "to_torch_export",
]
