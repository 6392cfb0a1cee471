"""`honing serve` on an ensemble folder: a real server answers as the loaded ensemble does."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from _serve_helpers import start_server

from honing.artifacts import load_model
from honing.data import read_source
from honing.pipeline import run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pipeline"))
from _run_helpers import tiny  # noqa: E402


def test_an_ensemble_folder_serves_its_averaged_predictions(tmp_path):
    recipe = tiny({"tune.n_trials": 3, "tune.pruner": "none", "ensemble": {"method": "average"}})
    run(recipe, out=tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "ensemble"
    model = load_model(folder)
    raw = read_source("sklearn:iris")
    rows = [dict(zip(raw.layout["columns"], map(float, r))) for r in raw.x[::15]]
    server = start_server(folder)
    try:
        status, body, _ = server.request("POST", "/predict", {"rows": rows})
    finally:
        server.stop()
    assert status == 200, body
    assert body["predictions"] == list(model.predict(rows))
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), atol=1e-5)
    assert len(model.model.members) == 3  # the average keeps every candidate
