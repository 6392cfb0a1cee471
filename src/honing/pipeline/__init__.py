"""The working process: a recipe in, stages in order, artifacts out.

```python
result = honing.pipeline.run("examples/digits-mlp.yaml", out="runs/digits", workers=2)
result.test_metrics            # {'accuracy': ..., 'f1_macro': ..., ...}
model = honing.load_model("runs/digits/model")
model.predict(raw_rows)
```
"""

from __future__ import annotations

from honing.pipeline._artifacts import LoadedModel, load_model, save_model, versions
from honing.pipeline._compress import compress_folder
from honing.pipeline._objective import RecipeObjective, measure_latency_ms, median_forward_ms
from honing.pipeline._run import RunResult, output_dir, run, train_once

__all__ = [
    "LoadedModel",
    "RecipeObjective",
    "RunResult",
    "compress_folder",
    "load_model",
    "measure_latency_ms",
    "median_forward_ms",
    "output_dir",
    "run",
    "save_model",
    "train_once",
    "versions",
]
