"""Serve a model folder, watch its inputs drift.

```python
from honing.serve import ServeConfig, create_app, serve, detect_drift
app = create_app(ServeConfig(model_dir="runs/digits"))    # a FastAPI app (tests, embedding)
serve(ServeConfig(model_dir="runs/digits", port=8000))     # uvicorn on 127.0.0.1, token auth on
```

``honing serve MODEL_DIR``, ``honing drift MODEL_DIR --data SOURCE``, ``honing log MODEL_DIR
--out FILE`` (the logged rows, pre-labelled, to review), ``honing refit`` and ``honing rollback``
are the commands;
docs/serve.md has the routes, the security defaults and the drift rules.
"""

from __future__ import annotations

from honing.serve._app import create_app
from honing.serve._config import ServeConfig, is_loopback, load_or_create_token, resolve_variant
from honing.serve._drift import DEFAULT_ALPHA, DRIFT_METHODS, EMBEDDING_TESTS, DriftReport, FeatureDrift, detect_drift
from honing.serve._logged import export_log, read_log
from honing.serve._refit import RefitConfig, refit, served_model_folder
from honing.serve._server import drift_of_source, serve

__all__ = [
    "DEFAULT_ALPHA",
    "DRIFT_METHODS",
    "EMBEDDING_TESTS",
    "DriftReport",
    "FeatureDrift",
    "RefitConfig",
    "ServeConfig",
    "create_app",
    "detect_drift",
    "drift_of_source",
    "export_log",
    "is_loopback",
    "load_or_create_token",
    "read_log",
    "refit",
    "resolve_variant",
    "serve",
    "served_model_folder",
]

