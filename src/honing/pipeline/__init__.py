"""The working process: a recipe in, stages in order, artifacts out.

```python
result = honing.pipeline.run("examples/digits-mlp.yaml", out="runs/digits", workers=2)
result.test_metrics            # {'accuracy': ..., 'f1_macro': ..., ...}
result.results["stages"]       # each stage: outcome (done / resumed), seconds
honing.pipeline.list_stages("run")   # ['data', 'search', 'select', 'final_fit', 'test', ...]
```

A new capability is one stage (``register_stage``) and, for compression, one step
(``register_compress_step``); installed plugins register theirs through the entry-point group
``honing.plugins`` (docs/architecture.md).
"""

from __future__ import annotations

from honing.artifacts import LoadedModel, load_model, predict_file, save_model, versions
from honing.pipeline._build import build_model, build_trainer
from honing.pipeline._compress import (
    COMPRESS_STEPS,
    CompressStep,
    CompressWork,
    StepOutput,
    compress_folder,
    list_compress_steps,
    register_compress_step,
)
from honing.pipeline._context import RunContext, RunOptions
from honing.pipeline._objective import RecipeObjective, measure_latency_ms, median_forward_ms
from honing._core import load_plugins
from honing.pipeline._run import RunResult, run, train_once
from honing.pipeline._stage_output import build_reference
from honing.pipeline._stage_search import output_dir
from honing.pipeline._summary import baseline_lines, data_lines
from honing.pipeline._stages import STAGE_LISTS, STAGES, Stage, list_stages, register_stage
from honing.pipeline._worker import WorkerResult, work

__all__ = [
    "COMPRESS_STEPS",
    "STAGES",
    "STAGE_LISTS",
    "CompressStep",
    "CompressWork",
    "LoadedModel",
    "RecipeObjective",
    "RunContext",
    "RunOptions",
    "RunResult",
    "Stage",
    "StepOutput",
    "WorkerResult",
    "baseline_lines",
    "build_model",
    "build_reference",
    "build_trainer",
    "compress_folder",
    "data_lines",
    "list_compress_steps",
    "list_stages",
    "load_model",
    "predict_file",
    "load_plugins",
    "measure_latency_ms",
    "median_forward_ms",
    "output_dir",
    "register_compress_step",
    "register_stage",
    "run",
    "save_model",
    "train_once",
    "versions",
    "work",
]
