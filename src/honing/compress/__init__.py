"""Compression: make a trained model smaller and faster, at a measured cost in accuracy.

```python
from honing import compress, export

small = compress.structured_prune(model, 0.5, example_inputs=x[:2])   # half the channels, rebuilt
student = compress.distill(teacher, student, data.train, data.val, temperature=4, alpha=0.7)
q = compress.quantize_dynamic(model)                                  # int8 linear / LSTM / GRU
export.to_onnx(model, "model.onnx", x[:8])                            # checked in ONNX Runtime
```

- Quantization: ``quantize_dynamic`` (PyTorch int8 kernels), ``to_half`` (fp16 / bf16),
  ``prepare_qat`` / ``finish_qat`` (int8-simulated fine-tuning); static int8 is ONNX Runtime's
  (``honing.export.quantize_onnx``).
- Pruning: ``magnitude_prune`` (per layer or global), ``structured_prune`` (removes neurons and
  channels and rebuilds smaller layers), ``iterative_prune`` (prune-then-fine-tune rounds on a
  ``prune_schedule``), ``admm_prune`` (ADMM training under the sparsity constraint), with
  ``sparsity_report`` per layer.
- Distillation: ``Distiller`` (what the Trainer trains), ``distill`` (one call).

The recipe's ``compress:`` section runs these as steps after the final training (docs/compress.md).
"""

from __future__ import annotations

from honing.compress._distill import DistillationLoss, Distiller, distill, distillation_loss
from honing.compress._prune import (
    admm_prune,
    clone,
    has_masks,
    iterative_prune,
    keep_sparsity,
    magnitude_prune,
    make_permanent,
    prune_schedule,
    sparsity_report,
    total_sparsity,
)
from honing.compress._quantize import (
    HalfPrecision,
    finish_qat,
    is_qat,
    load_quantized,
    prepare_qat,
    quantizable_layers,
    quantize_dynamic,
    quantized_state_dict,
    to_half,
)
from honing.compress._structured import layer_widths, rebuild_like, structured_prune, width_changes

__all__ = [
    "DistillationLoss",
    "Distiller",
    "HalfPrecision",
    "admm_prune",
    "clone",
    "distill",
    "distillation_loss",
    "finish_qat",
    "has_masks",
    "is_qat",
    "iterative_prune",
    "keep_sparsity",
    "layer_widths",
    "load_quantized",
    "magnitude_prune",
    "make_permanent",
    "prepare_qat",
    "prune_schedule",
    "quantizable_layers",
    "quantize_dynamic",
    "quantized_state_dict",
    "rebuild_like",
    "sparsity_report",
    "structured_prune",
    "to_half",
    "total_sparsity",
    "width_changes",
]
