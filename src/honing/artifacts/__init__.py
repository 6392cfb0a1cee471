"""The model folder: save a trained model with its preprocessing and recipe, load it back,
predict and evaluate; compressed variants through a registry of weight formats.

A server or a user imports this without the search code:

```python
from honing.artifacts import load_model
model = load_model("runs/digits/model")      # every file checked (docs/security.md)
model.predict(rows)                          # class names, or values in the target's units
model.evaluate("csv:new.csv")                # metrics, and which rows were scored
predict_file("runs/digits/model", "new.csv", out="predictions.csv")   # honing predict
```
"""

from __future__ import annotations

from honing.artifacts._folder import (
    FOLDER_VERSION,
    META,
    PREPROCESSOR,
    RECIPE,
    load_model,
    save_model,
    split_record,
    versions,
)
from honing.artifacts._formats import (
    FORMATS,
    ONNX_FILE,
    PT2_FILE,
    WEIGHTS,
    ModelFormat,
    list_formats,
    model_format,
    register_format,
    weights_file,
    write_state,
)
from honing.artifacts._reference import REFERENCE, find_reference, read_reference, write_reference
from honing.artifacts._versions import CURRENT, VERSIONS, add_version, current_version, list_versions, set_current
from honing.artifacts._loaded import EVAL_SPLITS, LoadedModel, match_columns, same_source, split_digest
from honing.artifacts._predict_file import predict_file

__all__ = [
    "CURRENT",
    "VERSIONS",
    "add_version",
    "current_version",
    "list_versions",
    "set_current",
    "EVAL_SPLITS",
    "FOLDER_VERSION",
    "FORMATS",
    "META",
    "ONNX_FILE",
    "PREPROCESSOR",
    "PT2_FILE",
    "RECIPE",
    "REFERENCE",
    "WEIGHTS",
    "LoadedModel",
    "ModelFormat",
    "find_reference",
    "list_formats",
    "load_model",
    "predict_file",
    "match_columns",
    "model_format",
    "read_reference",
    "register_format",
    "same_source",
    "save_model",
    "split_digest",
    "split_record",
    "versions",
    "weights_file",
    "write_reference",
    "write_state",
]
